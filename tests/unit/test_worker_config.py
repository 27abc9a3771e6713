"""The worker's command line: flags and TASKCLUSTER_* variables, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import ConfigError, parse_config

BASE = ["--provisioner-id", "proj", "--worker-type", "linux"]
ENV = {"TASKCLUSTER_ROOT_URL": "http://127.0.0.1:8000/", "TASKCLUSTER_CLIENT_ID": "c", "TASKCLUSTER_ACCESS_TOKEN": "t"}


def test_flags_and_environment_make_the_configuration(tmp_path: Path) -> None:
    config = parse_config(
        [*BASE, "--capacity", "3", "--claim-mode", "claim-work", "--worker-id", "w-1", "--work-dir", str(tmp_path)],
        {**ENV, "TASKCLUSTER_CERTIFICATE": "{}"},
    )
    assert config.root_url == "http://127.0.0.1:8000"
    assert config.task_queue_id == "proj/linux"
    assert (config.capacity, config.claim_mode, config.worker_id) == (3, "claim-work", "w-1")
    assert dict(config.credentials) == {"clientId": "c", "accessToken": "t", "certificate": "{}"}
    assert config.work_dir == tmp_path.resolve() and not config.own_work_dir


def test_no_credentials_is_allowed_and_means_none_are_sent(tmp_path: Path) -> None:
    config = parse_config([*BASE, "--work-dir", str(tmp_path)], {"TASKCLUSTER_ROOT_URL": "http://q"})
    assert dict(config.credentials) == {}


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (BASE, {}, "no root URL"),
        ([*BASE, "--root-url", "ftp://x"], {}, "must be an http"),
        (BASE, {**ENV, "TASKCLUSTER_ACCESS_TOKEN": ""}, "set both TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN"),
        ([*BASE, "--capacity", "0"], ENV, "--capacity must be at least 1"),
        ([*BASE, "--worker-id", "has.dots"], ENV, "--worker-id must be 1-38 characters"),
        (["--provisioner-id", "p", "--worker-type", "Linux"], ENV, "--worker-type must be"),
        ([*BASE, "--poll-seconds", "30"], ENV, "--poll-seconds must be from 1 to 20"),
        ([*BASE, "--spot-notice-url", "169.254.169.254"], ENV, "--spot-notice-url must be an http"),
    ],
)
def test_bad_configuration_is_refused_with_a_message(
    args: list[str], env: dict[str, str], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config([*args, "--work-dir", str(tmp_path)], env)


def test_a_missing_required_flag_exits_2_as_argparse_does() -> None:
    with pytest.raises(SystemExit) as exited:
        parse_config(["--worker-type", "linux"], ENV)
    assert exited.value.code == 2
