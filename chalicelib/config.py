"""Settings, read once from the environment. Every name is documented in README.md."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from math import ceil

# The sweeper's index `byDue` (adapters/tables.py) is keyed by a shard 0…N-1 of the task id; its
# capacity is docs/architecture.md's "Capacity of byDue". Each index entry is < 1 KB (1 WCU); a
# state change that moves dueAt costs the index a delete and a put, adding or removing it one.
# A task's life: created (put) 1 + claimed (move) 2 + one reclaim (move) 2 + resolved (delete) 1.
BYDUE_WCU_PER_TASK = 6
BYDUE_TARGET_TASKS_PER_S = 1_000  # the design target (docs/architecture.md)
BYDUE_HEADROOM = 2  # twice the target: bursts, and a hash spread that is never exactly even
PARTITION_WCU_PER_S = 1_000  # DynamoDB's write limit per partition key, GSIs included
# ceil(1,000 tasks/s × 6 WCU × 2 / 1,000 WCU/s) = 12 shards: 2,000 tasks/s before any key throttles.
DUE_SHARDS = ceil(BYDUE_TARGET_TASKS_PER_S * BYDUE_WCU_PER_TASK * BYDUE_HEADROOM / PARTITION_WCU_PER_S)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    tasks_table: str = "taskqueue-tasks"
    graph_table: str = "taskqueue-graph"
    artifacts_table: str = "taskqueue-artifacts"
    auth_table: str = "taskqueue-auth"  # clients and roles
    workers_table: str = "taskqueue-workers"  # the queue's view of task queues and workers
    pools_table: str = "taskqueue-pools"  # worker-manager: worker pools, their workers and errors
    artifact_bucket: str = "taskqueue-artifacts"  # S3 bucket of s3 artifacts (public/ ones too)
    artifact_max_days: int = 400  # longest life of an s3 artifact = the bucket's lifecycle backstop; 0: none
    event_bus: str = "taskqueue-events"  # from_env: TASKQUEUE_EVENT_BUS, else "<queue_prefix>events" (one per stage)
    queue_prefix: str = "taskqueue-"
    region: str = "us-east-1"
    claim_timeout: int = 1200  # seconds a claim (lease) lasts before the worker must reclaim
    claim_work_timeout: float = 20.0  # longest claimWork long-poll, seconds
    max_task_deadline_days: int = 5
    redispatch_after: int = 600  # seconds before a pending run's first extra hint (then ×2, ×4 …)
    due_shards: int = DUE_SHARDS  # partitions new rows spread the sweeper's index (and byPurge) over
    due_shards_before: int = 0  # the count rows were written with before a change: swept too until they drain
    sweep_batch: int = 500  # most due tasks the sweeper takes from one shard per round
    sweep_interval: float = 5.0  # seconds between sweeper ticks in the embedded stack
    max_definition_bytes: int = 256 * 1024  # a task row must stay far below DynamoDB's 400 KB
    tasks_stream_arn: str = field(default="arn:aws:dynamodb:us-east-1:000000000000:table/taskqueue-tasks/stream/local")
    root_client_id: str = "root"  # the deployment's root client (all scopes: `*`)
    root_access_token: str = field(default="", repr=False)  # its token; on AWS read from a secret instead
    root_secret_arn: str = ""  # Secrets Manager secret {"clientId", "accessToken", "tokenKey"?} (AWS)
    token_key: str = field(default="", repr=False)  # key client tokens derive from; default: from the root token
    auth_cache_seconds: float = 10.0  # how long a Lambda trusts a cached client or role set
    public_root_url: str = ""  # the API's root URL as workers reach it (written into their user data)
    worker_instance_profile: str = ""  # ARN of the instance profile EC2 workers get (sqs claim mode)
    provision_interval: float = 3.0  # seconds between provisioner runs in the embedded stack
    quarantine_cache_seconds: float = 5.0  # how long a Lambda trusts a cached worker quarantine

    @property
    def release_queue(self) -> str:
        """SQS queue where a dependency release too big for one invocation continues."""
        return f"{self.queue_prefix}release"

    @property
    def due_shards_swept(self) -> int:
        """How many shards of `byDue` the sweeper reads: a row keeps the shard it was created with."""
        return max(self.due_shards, self.due_shards_before)

    @property
    def stream_failure_queue(self) -> str:
        """SQS queue where the tasks stream's event source sets aside records it gave up on."""
        return f"{self.queue_prefix}tasks-stream-failures"

    @property
    def claim_timeout_delta(self) -> timedelta:
        return timedelta(seconds=self.claim_timeout)

    @property
    def redispatch_base(self) -> timedelta:
        return timedelta(seconds=self.redispatch_after)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()
        return cls(
            tasks_table=env.get("TASKQUEUE_TASKS_TABLE", d.tasks_table),
            graph_table=env.get("TASKQUEUE_GRAPH_TABLE", d.graph_table),
            artifacts_table=env.get("TASKQUEUE_ARTIFACTS_TABLE", d.artifacts_table),
            auth_table=env.get("TASKQUEUE_AUTH_TABLE", d.auth_table),
            workers_table=env.get("TASKQUEUE_WORKERS_TABLE", d.workers_table),
            pools_table=env.get("TASKQUEUE_POOLS_TABLE", d.pools_table),
            artifact_bucket=env.get("TASKQUEUE_ARTIFACT_BUCKET", d.artifact_bucket),
            artifact_max_days=_int(env, "TASKQUEUE_ARTIFACT_MAX_DAYS", d.artifact_max_days),
            event_bus=env.get("TASKQUEUE_EVENT_BUS") or f"{env.get('TASKQUEUE_QUEUE_PREFIX', d.queue_prefix)}events",
            queue_prefix=env.get("TASKQUEUE_QUEUE_PREFIX", d.queue_prefix),
            region=env.get("AWS_DEFAULT_REGION", env.get("AWS_REGION", d.region)),
            claim_timeout=_int(env, "TASKQUEUE_CLAIM_TIMEOUT", d.claim_timeout),
            claim_work_timeout=_float(env, "TASKQUEUE_CLAIM_WORK_TIMEOUT", d.claim_work_timeout),
            max_task_deadline_days=_int(env, "TASKQUEUE_MAX_TASK_DEADLINE_DAYS", d.max_task_deadline_days),
            redispatch_after=_int(env, "TASKQUEUE_REDISPATCH_AFTER", d.redispatch_after),
            due_shards=_int(env, "TASKQUEUE_DUE_SHARDS", d.due_shards),
            due_shards_before=_int(env, "TASKQUEUE_DUE_SHARDS_BEFORE", d.due_shards_before),
            sweep_batch=_int(env, "TASKQUEUE_SWEEP_BATCH", d.sweep_batch),
            sweep_interval=_float(env, "TASKQUEUE_SWEEP_INTERVAL", d.sweep_interval),
            max_definition_bytes=_int(env, "TASKQUEUE_MAX_DEFINITION_BYTES", d.max_definition_bytes),
            tasks_stream_arn=env.get("TASKQUEUE_TASKS_STREAM_ARN", d.tasks_stream_arn),
            root_client_id=env.get("TASKQUEUE_ROOT_CLIENT_ID", d.root_client_id),
            root_access_token=env.get("TASKQUEUE_ROOT_ACCESS_TOKEN", d.root_access_token),
            root_secret_arn=env.get("TASKQUEUE_ROOT_SECRET_ARN", d.root_secret_arn),
            token_key=env.get("TASKQUEUE_TOKEN_KEY", d.token_key),
            auth_cache_seconds=_float(env, "TASKQUEUE_AUTH_CACHE_SECONDS", d.auth_cache_seconds),
            public_root_url=env.get("TASKQUEUE_PUBLIC_ROOT_URL", d.public_root_url),
            worker_instance_profile=env.get("TASKQUEUE_WORKER_INSTANCE_PROFILE", d.worker_instance_profile),
            provision_interval=_float(env, "TASKQUEUE_PROVISION_INTERVAL", d.provision_interval),
            quarantine_cache_seconds=_float(env, "TASKQUEUE_QUARANTINE_CACHE_SECONDS", d.quarantine_cache_seconds),
        )
