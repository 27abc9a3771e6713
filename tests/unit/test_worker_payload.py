"""The worker's payload rules (generic-worker's): what validates,
what is refused with a message naming the field, the task's environment, content types."""

from __future__ import annotations

from typing import Any

import pytest

from worker.payload import (
    ArtifactSpec,
    MalformedPayload,
    content_type,
    docker_command,
    parse_payload,
    task_environment,
)

LIMIT = 3600


def test_a_full_payload_parses_into_commands_env_artifacts_and_retry_codes() -> None:
    payload = parse_payload(
        {
            "command": [["sh", "-c", "make"], ["true"]],
            "env": {"A": "1"},
            "maxRunTime": 600,
            "artifacts": [
                {"type": "file", "path": "out/app.tar.gz", "name": "public/app.tar.gz"},
                {"type": "directory", "path": "./logs/", "expires": "2030-01-01T00:00:00.000Z", "optional": True},
            ],
            "onExitStatus": {"retry": [36, 75]},
            "features": {"liveLog": True},
        },
        LIMIT,
    )
    assert payload.commands == (("sh", "-c", "make"), ("true",))
    assert payload.env == {"A": "1"}
    assert payload.max_run_time == 600
    assert payload.artifacts == (
        ArtifactSpec("file", "out/app.tar.gz", "public/app.tar.gz"),
        ArtifactSpec("directory", "logs", "logs", "2030-01-01T00:00:00.000Z", None, True),
    )
    assert payload.retry_codes == {36, 75}
    assert payload.image is None


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("echo hi", "payload must be an object"),
        ({"maxRunTime": 10}, "payload.command is required"),
        ({"command": "echo hi", "maxRunTime": 10}, "payload.command must be a non-empty list"),
        ({"command": [], "maxRunTime": 10}, "payload.command must be a non-empty list"),
        ({"command": [[]], "maxRunTime": 10}, "payload.command[0] must be a non-empty list"),
        ({"command": [["echo", 1]], "maxRunTime": 10}, "payload.command[0][1] must be a string, got int"),
        ({"command": [["true"]]}, "payload.maxRunTime must be an integer from 1 to 3600"),
        ({"command": [["true"]], "maxRunTime": 0}, "payload.maxRunTime must be an integer"),
        ({"command": [["true"]], "maxRunTime": 3601}, "payload.maxRunTime must be an integer"),
        ({"command": [["true"]], "maxRunTime": True}, "payload.maxRunTime must be an integer"),
        ({"command": [["true"]], "maxRunTime": 1, "env": {"A": 1}}, "payload.env.A must be a string"),
        ({"command": [["true"]], "maxRunTime": 1, "comand": []}, "unknown properties: comand"),
        ({"command": [["true"]], "maxRunTime": 1, "mounts": [{"directory": "x"}]}, "mounts are not supported"),
        ({"command": [["true"]], "maxRunTime": 1, "artifacts": [{"path": "a"}]}, "artifacts[0].type must be"),
        ({"command": [["true"]], "maxRunTime": 1, "artifacts": [{"type": "file"}]}, "artifacts[0].path must be"),
        (
            {"command": [["true"]], "maxRunTime": 1, "artifacts": [{"type": "file", "path": "/etc/passwd"}]},
            "must be relative to the task directory",
        ),
        (
            {"command": [["true"]], "maxRunTime": 1, "artifacts": [{"type": "file", "path": "a/../../x"}]},
            "must be relative to the task directory",
        ),
        (
            {"command": [["true"]], "maxRunTime": 1, "artifacts": [{"type": "file", "path": "a", "expires": "soon"}]},
            "artifacts[0].expires must be a date-time",
        ),
        ({"command": [["true"]], "maxRunTime": 1, "onExitStatus": {"retry": [0]}}, "retry must be a list of positive"),
        ({"command": [["true"]], "maxRunTime": 1, "image": {"type": "indexed-image"}}, "payload.image must be"),
    ],
)
def test_a_payload_that_does_not_validate_is_refused_naming_the_field(payload: Any, message: str) -> None:
    with pytest.raises(MalformedPayload, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        parse_payload(payload, LIMIT)


def test_an_image_payload_needs_no_command() -> None:
    payload = parse_payload({"image": {"type": "docker-image", "name": "ubuntu:24.04"}, "maxRunTime": 5}, LIMIT)
    assert (payload.image, payload.commands) == ("ubuntu:24.04", ())
    assert parse_payload({"image": "alpine", "command": [["ls"]], "maxRunTime": 5}, LIMIT).image == "alpine"


def test_injected_variables_win_over_the_payload_and_worker_secrets_stay_out() -> None:
    worker_env = {
        "PATH": "/usr/bin",
        "HOME": "/home/w",
        "TASKCLUSTER_ACCESS_TOKEN": "secret",
        "AWS_SECRET_ACCESS_KEY": "x",
    }
    env = task_environment({"PATH": "/opt/bin", "TASK_ID": "spoofed", "X": "1"}, worker_env, {"TASK_ID": "abc"})
    assert env == {"PATH": "/opt/bin", "HOME": "/home/w", "X": "1", "TASK_ID": "abc"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("public/logs/build.log", "text/plain; charset=utf-8"),
        ("public/result.json", "application/json"),
        ("public/app.tar.gz", "application/x-tar"),
        ("public/page.html", "text/html"),
        ("public/blob", "application/octet-stream"),
    ],
)
def test_content_type_is_guessed_from_the_name(name: str, expected: str) -> None:
    assert content_type(name) == expected


def test_a_container_command_mounts_the_task_directory_and_passes_the_env_by_name() -> None:
    argv = docker_command(
        "alpine", ("ls", "-l"), "/w/task_x_0", {"TASK_ID": "x", "PATH": "/bin", "TASK_WORKDIR": "/w"}, "n"
    )
    assert argv[:4] == ["docker", "run", "--rm", "--init"]
    assert "-v" in argv and "/w/task_x_0:/task" in argv
    assert argv[-3:] == ["alpine", "ls", "-l"]
    assert argv[argv.index("TASK_ID") - 1 : argv.index("TASK_ID") + 1] == ["-e", "TASK_ID"]
    assert "PATH" not in argv  # the container's own PATH
