"""`python -m worker`: configuration, logging, registration, signals, and the claimer for the chosen mode."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from .claiming import Claimer, ClaimWorkClaimer, SqsClaimer
from .config import Config, ConfigError, parse_config
from .manager import Registration, WorkerManagerCalls, register
from .queue import QueueCalls, TaskclusterFailure, brief
from .worker import CREDENTIALS_MARGIN, Worker

log = logging.getLogger(__name__)


def docker_engine() -> bool:
    """Whether a Docker engine answers here (a `docker` CLI alone is not enough)."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "version"], capture_output=True, timeout=15, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def sqs_client(config: Config) -> Any:
    """The SQS client for --claim-mode sqs (None in claim-work mode); ConfigError without AWS settings."""
    if config.claim_mode == "claim-work":
        return None
    import boto3

    session = boto3.Session()
    if session.get_credentials() is None:
        raise ConfigError(
            "--claim-mode sqs needs AWS credentials (the usual AWS_* settings); or use --claim-mode claim-work"
        )
    # The stack's region when the provisioner said (its dispatch queues are there), else the usual.
    from_user_data = config.user_data.aws_region if config.user_data else ""
    region = from_user_data or session.region_name or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise ConfigError("--claim-mode sqs needs a region: set AWS_DEFAULT_REGION")
    return session.client("sqs", region_name=region)


def make_claimer(config: Config, queue: QueueCalls, sqs: Any) -> Claimer:
    if sqs is None:
        return ClaimWorkClaimer(
            queue, config.task_queue_id, config.worker_group, config.worker_id, config.claim_work_interval
        )
    return SqsClaimer(
        sqs,
        config.queue_prefix,
        config.task_queue_id,
        queue,
        config.worker_group,
        config.worker_id,
        config.poll_seconds,
    )


def setup_logging(worker_id: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(f"%(asctime)s.%(msecs)03dZ worker={worker_id} %(message)s", "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    parent = logging.getLogger("worker")  # every module's logger (getLogger(__name__)) is its child
    parent.addHandler(handler)
    parent.setLevel(logging.INFO)
    parent.propagate = False


def register_worker(config: Config) -> Registration | None:
    """registerWorker with the user data's token; None (logged) when worker-manager refuses."""
    assert config.user_data is not None
    try:
        registration = register(config.user_data, config.worker_id)
    except TaskclusterFailure as e:
        log.error("registration-failed worker_pool=%s error=%s", config.user_data.worker_pool_id, brief(e))
        return None
    log.info(
        "registered worker_pool=%s provider=%s credentials=%s expires=%s",
        config.user_data.worker_pool_id,
        config.user_data.provider_id,
        registration.credentials.get("clientId", "none"),
        registration.expires.isoformat(),
    )
    return registration


def claim_deadline(expires: datetime) -> float:
    """The time.monotonic() at which to stop claiming: a margin before the credentials expire."""
    left = (expires - datetime.now(UTC)).total_seconds()
    return time.monotonic() + left - CREDENTIALS_MARGIN


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = parse_config(argv)
        sqs = sqs_client(config)  # before registering: registration is one-time
    except ConfigError as e:
        print(f"python -m worker: error: {e}", file=sys.stderr)
        return 2
    setup_logging(config.worker_id)
    manager, claim_until = None, None
    if config.user_data is not None:
        registration = register_worker(config)
        if registration is None:
            return 1
        config = replace(config, credentials=registration.credentials)
        manager = WorkerManagerCalls(config.root_url, registration.credentials)
        claim_until = claim_deadline(registration.expires)
    queue = QueueCalls(config.root_url, config.credentials)
    claimer = make_claimer(config, queue, sqs)
    docker = docker_engine()
    worker = Worker(config, queue, claimer, docker, manager=manager, claim_until=claim_until)

    def on_signal(signum: int, frame: object) -> None:
        worker.stop(signal.Signals(signum).name.lower())

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # sqs mode: where it looks for hints, so that a wrong prefix or region shows at a glance.
    hints_at = f" queue_prefix={config.queue_prefix} region={sqs.meta.region_name}" if sqs is not None else ""
    log.info(
        "worker-started task_queue=%s worker=%s/%s capacity=%d claim_mode=%s%s credentials=%s docker=%s work_dir=%s",
        config.task_queue_id,
        config.worker_group,
        config.worker_id,
        config.capacity,
        config.claim_mode,
        hints_at,
        config.credentials.get("clientId", "none"),
        "yes" if docker else "no",
        config.work_dir,
    )
    code = worker.run()
    if config.own_work_dir:
        with contextlib.suppress(OSError):
            config.work_dir.rmdir()  # only when empty: task directories kept on request stay
    log.info("worker-stopped reason=%s exit=%d", worker.stop_reason, code)
    return code
