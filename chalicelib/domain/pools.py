"""Worker pools and their workers: Taskcluster worker-manager's vocabulary as plain values.

A worker pool's id is its task queue id (`<provisionerId>/<workerType>`). Its config says how much
capacity to keep (min/max, scalingRatio), how long a worker may take to register or stay silent
(lifecycle), and how to launch one (launchConfigs: region, an EC2 launch specification,
capacityPerInstance, per-config maxCapacity and initialWeight). Capacity is counted in task slots,
never instances (a worker of capacity 4 runs 4 tasks at once).

Worker states: requested → (registerWorker) → running → (removed) → stopping → (cloud confirms) →
stopped; requested/running → stopped directly when the cloud reports the instance gone.

Pure: no I/O. The arithmetic is in domain/provisioning.py.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from .errors import InputError
from .model import format_date

IDENTIFIER = re.compile(r"^[a-zA-Z0-9-_]{1,38}$")
DEFAULT_REREGISTRATION_TIMEOUT = 345600  # 4 days
MAX_REREGISTRATION_TIMEOUT = 2592000  # 30 days
DEFAULT_QUEUE_INACTIVITY_TIMEOUT = 7200
MIN_QUEUE_INACTIVITY_TIMEOUT = 1200
WORKER_EXPIRES = timedelta(days=7)  # a worker row lives this long past its last check
ERROR_WINDOW = timedelta(hours=1)  # errors this recent lower a launch config's weight
ERROR_RETENTION = timedelta(days=7)
# Keys a launch specification may not set: the provider owns them.
FORBIDDEN_LAUNCH_KEYS = ("IamInstanceProfile", "UserData", "MinCount", "MaxCount")
RESERVED_USER_DATA_KEYS = (
    *("rootUrl", "workerPoolId", "providerId", "workerGroup", "workerConfig"),
    *("capacity", "queuePrefix", "awsRegion", "registrationToken", "launchConfigId"),
)


class WorkerState(StrEnum):
    REQUESTED = "requested"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class LaunchConfig:
    launch_config_id: str
    region: str
    launch_spec: dict[str, Any]  # passed to RunInstances as is (plus what the provider adds)
    capacity_per_instance: int = 1
    initial_weight: float = 1.0
    max_capacity: int | None = None  # per-config cap; the pool's maxCapacity always applies too
    worker_config: dict[str, Any] = field(default_factory=dict)  # public: handed to the worker
    additional_user_data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolConfig:
    min_capacity: int
    max_capacity: int
    scaling_ratio: float = 1.0
    registration_timeout: int | None = None  # seconds a launched worker has to register
    reregistration_timeout: int = DEFAULT_REREGISTRATION_TIMEOUT  # lifetime of its credentials
    queue_inactivity_timeout: int = DEFAULT_QUEUE_INACTIVITY_TIMEOUT  # silent this long: a zombie
    launch_configs: tuple[LaunchConfig, ...] = ()

    def launch_config(self, launch_config_id: str) -> LaunchConfig | None:
        return next((lc for lc in self.launch_configs if lc.launch_config_id == launch_config_id), None)


@dataclass(frozen=True)
class WorkerPool:
    worker_pool_id: str
    provider_id: str
    description: str
    owner: str
    email_on_error: bool
    config: dict[str, Any]  # as the user wrote it (what the API shows back)
    created: datetime
    last_modified: datetime
    previous_provider_ids: tuple[str, ...] = ()

    @property
    def settings(self) -> PoolConfig:
        return pool_config(self.config)


@dataclass(frozen=True)
class PoolWorker:
    """A worker as worker-manager knows it: an instance (or process) launched for a pool."""

    worker_pool_id: str
    worker_group: str  # the region on EC2
    worker_id: str  # the instance id on EC2
    provider_id: str
    launch_config_id: str
    state: WorkerState
    capacity: int
    created: datetime
    last_modified: datetime
    last_checked: datetime
    expires: datetime
    terminate_after: datetime | None = None  # removed unconditionally after this
    provider_data: dict[str, Any] = field(default_factory=dict)
    registration_hash: str = ""  # sha256 of the one-time registration token (never the token)
    secret_hash: str = ""  # sha256 of the one-time secret for the next reregisterWorker (never the secret)
    registered: datetime | None = None
    should_terminate: str = ""  # the scanner's decision ("" = keep), read by shouldWorkerTerminate

    @property
    def alive(self) -> bool:
        return self.state is not WorkerState.STOPPED

    def to_json(self) -> dict[str, Any]:
        """As worker-manager shows a worker (listWorkersForWorkerPool, worker)."""
        out: dict[str, Any] = {
            "workerPoolId": self.worker_pool_id,
            "workerGroup": self.worker_group,
            "workerId": self.worker_id,
            "providerId": self.provider_id,
            "created": format_date(self.created),
            "expires": format_date(self.expires),
            "state": self.state.value,
            "capacity": self.capacity,
            "lastModified": format_date(self.last_modified),
            "lastChecked": format_date(self.last_checked),
        }
        if self.launch_config_id:
            out["launchConfigId"] = self.launch_config_id
        return out


@dataclass(frozen=True)
class QueueActivity:
    """What the queue knows of a worker: joined in to spot zombies and quarantined capacity."""

    first_claim: datetime | None = None
    last_date_active: datetime | None = None
    quarantine_until: datetime | None = None

    def quarantined(self, now: datetime) -> bool:
        return self.quarantine_until is not None and self.quarantine_until > now


@dataclass(frozen=True)
class PoolError:
    worker_pool_id: str
    error_id: str
    reported: datetime
    kind: str  # creation-error, termination-error, operation-error, worker-error
    title: str
    description: str
    launch_config_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "workerPoolId": self.worker_pool_id,
            "errorId": self.error_id,
            "reported": format_date(self.reported),
            "kind": self.kind,
            "title": self.title,
            "description": self.description,
            "extra": self.extra,
        }
        if self.launch_config_id:
            out["launchConfigId"] = self.launch_config_id
        return out


def pool_counters(tallies: Iterable[tuple[WorkerState, int]]) -> dict[str, int]:
    """Taskcluster's (deprecated, still served) aggregate counters of a pool's workers, from each
    worker's (state, capacity)."""
    out = {"currentCapacity": 0}
    for state in WorkerState:
        out[f"{state.value}Count"] = 0
        out[f"{state.value}Capacity"] = 0
    for state, capacity in tallies:
        out[f"{state.value}Count"] += 1
        out[f"{state.value}Capacity"] += capacity
        if state is not WorkerState.STOPPED:
            out["currentCapacity"] += capacity
    return out


@dataclass(frozen=True)
class WorkerPoolView:
    """A worker pool as worker-manager shows it: its definition and its workers' counters."""

    pool: WorkerPool
    counters: Mapping[str, int]

    def to_json(self) -> dict[str, Any]:
        pool = self.pool
        return {
            "workerPoolId": pool.worker_pool_id,
            "providerId": pool.provider_id,
            "previousProviderIds": list(pool.previous_provider_ids),
            "description": pool.description,
            "config": pool.config,
            "owner": pool.owner,
            "emailOnError": pool.email_on_error,
            "created": format_date(pool.created),
            "lastModified": format_date(pool.last_modified),
            **self.counters,
        }


@dataclass(frozen=True)
class RegistrationGrant:
    """What registerWorker and reregisterWorker give a worker: credentials until `expires`, the
    one-time secret of its next reregistration and (registerWorker only) its launch config's
    workerConfig."""

    expires: datetime
    credentials: Mapping[str, str] = field(repr=False)
    secret: str = field(repr=False)
    worker_config: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "expires": format_date(self.expires),
            "credentials": dict(self.credentials),
            "secret": self.secret,
        }
        if self.worker_config is not None:
            out["workerConfig"] = self.worker_config
        return out


@dataclass(frozen=True)
class TerminationAdvice:
    """shouldWorkerTerminate's answer: the scanner's decision for a worker, and why."""

    terminate: bool
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {"terminate": self.terminate, "reason": self.reason}


def token_hash(token: str) -> str:
    """What a worker row keeps of a one-time token or secret (registration, reregistration)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_error_id() -> str:
    """A slugid (v4, as Taskcluster's errorIds are) for a pool error."""
    raw = bytearray(uuid.uuid4().bytes)
    raw[0] &= 0x7F  # as slugid.nice(): never starting with "-"
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def _number(config: dict[str, Any], name: str, default: Any, lo: float, hi: float | None = None) -> Any:
    value = config.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise InputError(f"config.{name} must be a number {bound}, got {value!r}")
    return value


def _launch_config(raw: Any, index: int) -> LaunchConfig:
    where = f"config.launchConfigs[{index}]"
    if not isinstance(raw, dict):
        raise InputError(f"{where} must be an object")
    spec, region = raw.get("launchConfig"), raw.get("region")
    if not isinstance(region, str) or not region:
        raise InputError(f"{where}.region is required")
    if not isinstance(spec, dict) or not isinstance(spec.get("ImageId"), str):
        raise InputError(f"{where}.launchConfig must be an object with an ImageId")
    forbidden = [k for k in FORBIDDEN_LAUNCH_KEYS if k in spec]
    if forbidden:
        raise InputError(f"{where}.launchConfig may not set {', '.join(forbidden)}: the provider sets them")
    extra = raw.get("additionalUserData") or {}
    reserved = [k for k in RESERVED_USER_DATA_KEYS if k in extra]
    if reserved:
        raise InputError(f"{where}.additionalUserData may not set {', '.join(reserved)}")
    wm = raw.get("workerManager") or {}
    lc_id = wm.get("launchConfigId") or f"lc-{index}"
    if not IDENTIFIER.match(lc_id):
        raise InputError(f"{where}.workerManager.launchConfigId must match {IDENTIFIER.pattern}")
    max_capacity = wm.get("maxCapacity")
    return LaunchConfig(
        launch_config_id=lc_id,
        region=region,
        launch_spec=spec,
        capacity_per_instance=int(_number(wm, "capacityPerInstance", 1, 1)),
        initial_weight=float(_number(wm, "initialWeight", 1.0, 0.0, 1.0)),
        max_capacity=None if max_capacity is None else int(_number(wm, "maxCapacity", 0, 0)),
        worker_config=raw.get("workerConfig") or {},
        additional_user_data=extra,
    )


def pool_config(config: dict[str, Any]) -> PoolConfig:
    """Validate a pool's `config` (beyond its JSON schema) and read it; InputError says what is wrong."""
    min_capacity = int(_number(config, "minCapacity", None, 0))
    max_capacity = int(_number(config, "maxCapacity", None, 0))
    if min_capacity > max_capacity:
        raise InputError(f"config.minCapacity ({min_capacity}) exceeds config.maxCapacity ({max_capacity})")
    lifecycle = config.get("lifecycle") or {}
    registration = lifecycle.get("registrationTimeout")
    raw_lcs = config.get("launchConfigs")
    if not isinstance(raw_lcs, list):
        raise InputError("config.launchConfigs must be a list")
    lcs = tuple(_launch_config(raw, i) for i, raw in enumerate(raw_lcs))
    ids = [lc.launch_config_id for lc in lcs]
    if len(set(ids)) != len(ids):
        raise InputError("config.launchConfigs: launchConfigIds must be unique")
    return PoolConfig(
        min_capacity=min_capacity,
        max_capacity=max_capacity,
        scaling_ratio=float(_number(config, "scalingRatio", 1.0, 0.0, 1.0)),
        registration_timeout=None if registration is None else int(_number(lifecycle, "registrationTimeout", 0, 1)),
        reregistration_timeout=int(
            _number(lifecycle, "reregistrationTimeout", DEFAULT_REREGISTRATION_TIMEOUT, 1, MAX_REREGISTRATION_TIMEOUT)
        ),
        queue_inactivity_timeout=int(
            _number(lifecycle, "queueInactivityTimeout", DEFAULT_QUEUE_INACTIVITY_TIMEOUT, MIN_QUEUE_INACTIVITY_TIMEOUT)
        ),
        launch_configs=lcs,
    )


def terminate_after(config: PoolConfig, launched: datetime) -> datetime:
    """When an unregistered worker is removed: registrationTimeout if set and shorter."""
    seconds = config.reregistration_timeout
    if config.registration_timeout is not None and config.registration_timeout < seconds:
        seconds = config.registration_timeout
    return launched + timedelta(seconds=seconds)


def worker_credential_scopes(worker_pool_id: str, worker_group: str, worker_id: str) -> list[str]:
    """The scopes of a registered worker's credentials (worker-manager's createCredentials)."""
    who = f"{worker_group}/{worker_id}"
    return [
        f"assume:worker-type:{worker_pool_id}",
        f"assume:worker-pool:{worker_pool_id}",
        f"assume:worker-id:{who}",
        f"queue:worker-id:{who}",
        f"secrets:get:worker-type:{worker_pool_id}",
        f"secrets:get:worker-pool:{worker_pool_id}",
        f"queue:claim-work:{worker_pool_id}",
        f"queue:claim-task:{worker_pool_id}",  # ours: the reference worker's sqs mode claims with claimTask
        f"worker-manager:remove-worker:{worker_pool_id}/{who}",
        f"worker-manager:reregister-worker:{worker_pool_id}/{who}",
        f"worker-manager:should-worker-terminate:{worker_pool_id}/{who}",
    ]
