"""The worker's configuration: command-line flags plus the TASKCLUSTER_* environment, checked once.

`parse_config` raises ConfigError with a message a user can act on; the command line turns it
into a non-zero exit.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import metadata
from .user_data import UserData, UserDataError, is_url, load_user_data

IDENTIFIER = re.compile(r"^[a-zA-Z0-9_-]{1,38}$")  # Taskcluster's workerGroup/workerId/provisionerId
WORKER_TYPE = re.compile(r"^[a-z]([-a-z0-9]{0,36}[a-z0-9])?$")
CLAIM_MODES = ("sqs", "claim-work")
EC2_SPOT_NOTICE = "http://169.254.169.254/latest/meta-data/spot/instance-action"
EC2_USER_DATA = "http://169.254.169.254/latest/user-data"

DESCRIPTION = """\
The reference worker: claims tasks of one task queue (<provisioner-id>/<worker-type>), runs their
generic-worker-style payloads (command, env, maxRunTime, artifacts, onExitStatus.retry) in fresh
task directories, streams each task's log to public/logs/live.log and reports the outcome.

Credentials come from TASKCLUSTER_CLIENT_ID, TASKCLUSTER_ACCESS_TOKEN and TASKCLUSTER_CERTIFICATE
(temporary credentials); the root URL from --root-url or TASKCLUSTER_ROOT_URL. In --claim-mode sqs
the worker reads its task queue's SQS hint queues with the usual AWS settings (AWS_ENDPOINT_URL,
AWS_DEFAULT_REGION, credentials chain) and claims each hinted run with claimTask; in claim-work
mode it only uses the queue API's claimWork, so it works against any Taskcluster queue; after an
empty answer it calls again no sooner than --claim-work-interval seconds after that call began.

A provisioned worker (--user-data) instead reads its root URL, task queue (the workerPoolId) and
worker group from the user data its provider gave it, registers with worker-manager (registerWorker,
with the user data's one-time registration token) and uses the credentials that returns; the
TASKCLUSTER_* credentials are then ignored. It does not reregister: it stops claiming a minute
before those credentials expire and exits once its running tasks end. Between tasks, when it has
a free slot and nothing to do, it asks worker-manager whether to terminate (shouldWorkerTerminate,
at most every --should-terminate-interval seconds) and, if told to, stops claiming and exits the
same way. On EC2 whatever starts the worker shuts the instance down when it exits.

SIGTERM or SIGINT (or a spot interruption notice) stops claiming, kills running tasks and reports
them exception/worker-shutdown, so the queue retries them at once. A claimWork in flight is waited
for first (up to 20 s), so that the worker does not claim those retries itself; in sqs mode it
waits out its long poll (--poll-seconds) to give back the hints that poll brings. Exit status: 0
after a shutdown, --idle-timeout, credentials about to expire or worker-manager's word; 1 when the
queue refuses the worker's credentials or registration fails; 2 on bad configuration."""


class ConfigError(ValueError):
    """Bad configuration; the message says what to change."""


@dataclass(frozen=True)
class Config:
    root_url: str
    provisioner_id: str
    worker_type: str
    worker_group: str
    worker_id: str
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)  # empty: no credentials
    capacity: int = 1
    claim_mode: str = "sqs"
    idle_timeout: float = 0.0  # 0: never exit for lack of work
    work_dir: Path = Path(tempfile.gettempdir())
    keep_task_dirs: bool = False
    own_work_dir: bool = False  # made for this worker: removed at exit when empty
    queue_prefix: str = "taskqueue-"
    poll_seconds: int = 20
    claim_work_interval: float = 5.0  # least seconds between the starts of claimWork calls after an empty one
    live_log_interval: float = 5.0
    max_run_time_limit: int = 86400
    spot_notice_url: str = ""  # empty: don't poll
    spot_poll_interval: float = 5.0
    user_data: UserData | None = None  # set: a provisioned worker, which registers first
    should_terminate_interval: float = 30.0

    @property
    def task_queue_id(self) -> str:
        return f"{self.provisioner_id}/{self.worker_type}"


def default_worker_id() -> str:
    name = re.sub(r"[^a-zA-Z0-9_-]", "-", socket.gethostname().split(".")[0])[:30] or "worker"
    return f"{name}-{os.getpid()}"[:38]


def parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m worker", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--user-data",
        metavar="SOURCE",
        default=None,
        help="register with worker-manager using the user data at SOURCE, a JSON file or an http(s) URL "
        f"(on EC2: {EC2_USER_DATA}); it gives the root URL, task queue and worker group, so those flags "
        "are not used (default: no registration)",
    )
    p.add_argument("--root-url", default=None, help="the queue's root URL (default: $TASKCLUSTER_ROOT_URL)")
    p.add_argument("--provisioner-id", help="first half of the task queue id (required without --user-data)")
    p.add_argument("--worker-type", help="second half of the task queue id (required without --user-data)")
    p.add_argument("--worker-group", default=None, help="this worker's group (default: local)")
    p.add_argument(
        "--worker-id",
        default=None,
        help="this worker's id (default: <hostname>-<pid>; with --user-data from a URL, the instance id "
        "from <that URL's scheme://host>/latest/meta-data/instance-id)",
    )
    p.add_argument(
        "--capacity", type=int, default=None, help="tasks run at once (default: the user data's capacity, else 1)"
    )
    p.add_argument("--claim-mode", choices=CLAIM_MODES, default="sqs", help="how to find work (default: sqs)")
    p.add_argument(
        "--idle-timeout", type=float, default=0, help="exit after this many seconds with no task (default: 0, never)"
    )
    p.add_argument(
        "--work-dir", default=None, help="where task directories are made (default: a new temporary directory)"
    )
    p.add_argument("--keep-task-dirs", action="store_true", help="leave task directories behind (for debugging)")
    p.add_argument(
        "--queue-prefix",
        default=None,
        help="prefix of the SQS hint queues, sqs mode (default: the user data's queuePrefix, else "
        "$TASKQUEUE_QUEUE_PREFIX, else taskqueue-)",
    )
    p.add_argument(
        "--poll-seconds",
        type=int,
        default=20,
        help="longest SQS long poll, sqs mode (1-20, default: 20); a stopping worker waits out the one in flight",
    )
    p.add_argument(
        "--claim-work-interval",
        type=float,
        default=5.0,
        help="least seconds from the start of a claimWork that brought nothing to the next, claim-work "
        "mode (default: 5, as generic-worker; a queue that long-polls longer than this adds no wait)",
    )
    p.add_argument(
        "--live-log-interval",
        type=float,
        default=5.0,
        help="seconds between live log uploads while a task runs (default: 5)",
    )
    p.add_argument("--max-run-time-limit", type=int, default=86400, help="largest maxRunTime accepted (default: 86400)")
    p.add_argument(
        "--spot-notice-url",
        default="",
        help=f"poll this URL for a spot interruption notice; on EC2: {EC2_SPOT_NOTICE} (default: don't poll)",
    )
    p.add_argument(
        "--spot-poll-interval", type=float, default=5.0, help="seconds between spot notice polls (default: 5)"
    )
    p.add_argument(
        "--should-terminate-interval",
        type=float,
        default=30.0,
        help="least seconds between shouldWorkerTerminate calls, --user-data only (default: 30)",
    )
    return p


def credentials_from(env: Mapping[str, str]) -> dict[str, str]:
    client_id, token = env.get("TASKCLUSTER_CLIENT_ID", ""), env.get("TASKCLUSTER_ACCESS_TOKEN", "")
    if bool(client_id) != bool(token):
        raise ConfigError("set both TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN, or neither")
    if not client_id:
        if env.get("TASKCLUSTER_CERTIFICATE"):
            raise ConfigError("TASKCLUSTER_CERTIFICATE needs TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN")
        return {}
    creds = {"clientId": client_id, "accessToken": token}
    if env.get("TASKCLUSTER_CERTIFICATE"):
        creds["certificate"] = env["TASKCLUSTER_CERTIFICATE"]
    return creds


def parse_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """The configuration from flags and environment; argparse exits 2 on unknown or missing flags."""
    env = os.environ if env is None else env
    p = parser(env)
    a = p.parse_args(argv)
    who = _provisioned(a) if a.user_data else _from_flags(p, a, env)
    if not re.match(r"^https?://[^/]+", who.root_url):
        raise ConfigError(f"{who.names[0]} must be an http(s) URL, got {who.root_url!r}")
    for name, value in ((who.names[1], who.provisioner_id), (who.names[3], who.worker_group)):
        if not IDENTIFIER.match(value):
            raise ConfigError(f"{name} must be 1-38 characters of [a-zA-Z0-9_-], got {value!r}")
    if not IDENTIFIER.match(who.worker_id):
        raise ConfigError(f"--worker-id must be 1-38 characters of [a-zA-Z0-9_-], got {who.worker_id!r}")
    if not WORKER_TYPE.match(who.worker_type):
        raise ConfigError(
            f"{who.names[2]} must be 1-38 characters of [-a-z0-9], starting with a letter, got {who.worker_type!r}"
        )
    if a.capacity is not None and a.capacity < 1:
        raise ConfigError(f"--capacity must be at least 1, got {a.capacity}")
    if a.idle_timeout < 0:
        raise ConfigError("--idle-timeout must not be negative")
    if not 1 <= a.poll_seconds <= 20:
        raise ConfigError("--poll-seconds must be from 1 to 20 (SQS's longest wait)")
    if a.claim_work_interval < 0:
        raise ConfigError("--claim-work-interval must not be negative")
    if a.live_log_interval <= 0 or a.spot_poll_interval <= 0 or a.should_terminate_interval <= 0:
        raise ConfigError("--live-log-interval, --spot-poll-interval and --should-terminate-interval must be positive")
    if a.max_run_time_limit < 1:
        raise ConfigError("--max-run-time-limit must be at least 1")
    if a.spot_notice_url and not re.match(r"^https?://", a.spot_notice_url):
        raise ConfigError(f"--spot-notice-url must be an http(s) URL, got {a.spot_notice_url!r}")
    work_dir = Path(a.work_dir) if a.work_dir else Path(tempfile.mkdtemp(prefix="taskqueue-worker-"))
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--work-dir {work_dir} cannot be created: {e}") from None
    return Config(
        root_url=who.root_url.rstrip("/"),
        provisioner_id=who.provisioner_id,
        worker_type=who.worker_type,
        worker_group=who.worker_group,
        worker_id=who.worker_id,
        credentials=who.credentials,
        capacity=a.capacity or (who.user_data.capacity if who.user_data else 1),
        claim_mode=a.claim_mode,
        idle_timeout=a.idle_timeout,
        work_dir=work_dir.resolve(),
        keep_task_dirs=a.keep_task_dirs,
        own_work_dir=not a.work_dir,
        queue_prefix=a.queue_prefix
        or (who.user_data.queue_prefix if who.user_data else "")
        or env.get("TASKQUEUE_QUEUE_PREFIX", "taskqueue-"),
        poll_seconds=a.poll_seconds,
        claim_work_interval=a.claim_work_interval,
        live_log_interval=a.live_log_interval,
        max_run_time_limit=a.max_run_time_limit,
        spot_notice_url=a.spot_notice_url,
        spot_poll_interval=a.spot_poll_interval,
        user_data=who.user_data,
        should_terminate_interval=a.should_terminate_interval,
    )


@dataclass(frozen=True)
class _Identity:
    """Where the worker works and who it is, and how to name each part in a message."""

    root_url: str
    provisioner_id: str
    worker_type: str
    worker_group: str
    worker_id: str
    credentials: dict[str, str]
    user_data: UserData | None
    names: tuple[str, str, str, str]  # root URL, provisioner id, worker type, worker group


def _from_flags(p: argparse.ArgumentParser, a: argparse.Namespace, env: Mapping[str, str]) -> _Identity:
    missing = [f for f, v in (("--provisioner-id", a.provisioner_id), ("--worker-type", a.worker_type)) if not v]
    if missing:
        p.error(f"the following arguments are required: {', '.join(missing)} (or --user-data)")
    root_url = a.root_url or env.get("TASKCLUSTER_ROOT_URL")
    if not root_url:
        raise ConfigError("no root URL: pass --root-url or set TASKCLUSTER_ROOT_URL")
    return _Identity(
        root_url=root_url,
        provisioner_id=a.provisioner_id,
        worker_type=a.worker_type,
        worker_group=a.worker_group or "local",
        worker_id=a.worker_id or default_worker_id(),
        credentials=credentials_from(env),
        user_data=None,
        names=("--root-url", "--provisioner-id", "--worker-type", "--worker-group"),
    )


def _provisioned(a: argparse.Namespace) -> _Identity:
    """From the user data (and, read from EC2's metadata service, the instance id as worker id)."""
    flags = {"--root-url": a.root_url, "--provisioner-id": a.provisioner_id, "--worker-type": a.worker_type}
    given = [f for f, v in {**flags, "--worker-group": a.worker_group}.items() if v is not None]
    if given:
        raise ConfigError(f"--user-data gives the root URL, task queue and worker group: drop {', '.join(given)}")
    try:
        user_data = load_user_data(a.user_data)
    except UserDataError as e:
        raise ConfigError(str(e)) from None
    provisioner_id, slash, worker_type = user_data.worker_pool_id.partition("/")
    if not slash:
        raise ConfigError(
            f"workerPoolId in the user data must be <provisionerId>/<workerType>, got {user_data.worker_pool_id!r}"
        )
    return _Identity(
        root_url=user_data.root_url,
        provisioner_id=provisioner_id,
        worker_type=worker_type,
        worker_group=user_data.worker_group,
        worker_id=a.worker_id or _instance_id(a.user_data),
        credentials={},  # registration gives them; TASKCLUSTER_* are not used
        user_data=user_data,
        names=(
            "rootUrl in the user data",
            "the provisioner id in the user data's workerPoolId",
            "the worker type in the user data's workerPoolId",
            "workerGroup in the user data",
        ),
    )


def _instance_id(source: str) -> str:
    if not is_url(source):
        raise ConfigError("--user-data from a file needs --worker-id (the id the provider gave this worker)")
    base = metadata.metadata_base(source)
    try:
        found = metadata.instance_id(base)
    except metadata.MetadataError as e:
        raise ConfigError(f"no --worker-id, and no instance id from the metadata service: {e}") from None
    if not found:
        raise ConfigError(f"no --worker-id, and {base}/meta-data/instance-id is not there")
    return found
