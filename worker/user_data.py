"""What a provisioned worker is told at launch: its user data, from a file or a URL.

The provisioner writes it (services/provisioner.py `_launch`): `rootUrl`, `workerPoolId`,
`providerId`, `workerGroup`, `launchConfigId`, `workerConfig`, `capacity` (the launch config's
capacityPerInstance: tasks run at once), `queuePrefix` and `awsRegion` (where the stack's dispatch
queues are, for --claim-mode sqs), the one-time `registrationToken`,
plus the launch config's `additionalUserData`. On EC2 the source is the metadata service
(`http://169.254.169.254/latest/user-data`); the local provider writes a file.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import metadata

ATTEMPTS = 5  # the metadata service can be slow to answer right after boot
REQUIRED = ("rootUrl", "workerPoolId", "providerId", "workerGroup", "registrationToken")


class UserDataError(ValueError):
    """No usable user data; the message says where it came from and what is wrong."""


@dataclass(frozen=True)
class UserData:
    root_url: str
    worker_pool_id: str
    provider_id: str
    worker_group: str
    registration_token: str = field(repr=False)
    launch_config_id: str = ""
    worker_config: dict[str, Any] = field(default_factory=dict)
    capacity: int = 1
    queue_prefix: str = ""  # the stack's dispatch queues: <queuePrefix><provisionerId>_<workerType>_<level>
    aws_region: str = ""  # ... in this region


def is_url(source: str) -> bool:
    return re.match(r"^https?://", source) is not None


def _fetch(source: str) -> str:
    if not is_url(source):
        try:
            return Path(source).read_text()
        except OSError as e:
            raise UserDataError(f"--user-data {source}: {e.strerror or e}") from None
    for attempt in range(ATTEMPTS):
        try:
            body = metadata.read(source)
        except metadata.MetadataError as e:
            if attempt == ATTEMPTS - 1:
                raise UserDataError(f"--user-data {source}: {e}") from None
            time.sleep(0.5 * 2**attempt)
            continue
        if body is None:
            raise UserDataError(f"--user-data {source}: not found (404): this instance was given no user data")
        return body
    raise AssertionError("unreachable")


def parse_user_data(text: str, source: str) -> UserData:
    try:
        raw = json.loads(text)
    except ValueError:
        raise UserDataError(f"--user-data {source}: not JSON") from None
    if not isinstance(raw, dict):
        raise UserDataError(f"--user-data {source}: not a JSON object")
    missing = [k for k in REQUIRED if not isinstance(raw.get(k), str) or not raw[k]]
    if missing:
        raise UserDataError(f"--user-data {source}: missing {', '.join(missing)}")
    worker_config = raw.get("workerConfig") or {}
    if not isinstance(worker_config, dict):
        raise UserDataError(f"--user-data {source}: workerConfig must be an object")
    capacity = raw.get("capacity", 1)
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise UserDataError(f"--user-data {source}: capacity must be a positive integer")
    return UserData(
        root_url=raw["rootUrl"].rstrip("/"),
        worker_pool_id=raw["workerPoolId"],
        provider_id=raw["providerId"],
        worker_group=raw["workerGroup"],
        registration_token=raw["registrationToken"],
        launch_config_id=str(raw.get("launchConfigId") or ""),
        worker_config=worker_config,
        capacity=capacity,
        queue_prefix=str(raw.get("queuePrefix") or ""),
        aws_region=str(raw.get("awsRegion") or ""),
    )


def load_user_data(source: str) -> UserData:
    """The user data at `source` (a path, or an http(s) URL read through the metadata service)."""
    return parse_user_data(_fetch(source), source)
