"""The pools table (tables.PoolRow): worker pools, their workers and their errors (PoolStore).

Every write is conditional where the protocol says so, and a failed condition is reported as
False, never raised: creating a pool needs its id free, replacing it needs it present (and, when
the caller says what it read, unchanged since); recording a launched worker needs the worker
absent (a retried launch records nothing twice); changing a worker needs it still in the state
the decision was made from (invariant 2). Deleting a pool needs it still marked for deletion.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DeleteError, PutError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from ..domain.model import format_date, parse_date
from ..domain.pools import ERROR_RETENTION, PoolError, PoolWorker, WorkerPool, WorkerState
from ..domain.provisioning import Lease
from .items import check_fits
from .pagination import decode_token, equal, next_token, prefixed
from .tables import PoolRow

CONDITION_FAILED = "ConditionalCheckFailedException"
POOL_SK = "#pool"
POOL_KIND = "pool"
WORKER_PREFIX = "worker/"
ERROR_PREFIX = "error/"
ERROR_END = "error0"  # '0' follows '/': every error sk sorts before it
NULL_PROVIDER = "null-provider"  # a pool marked for deletion (Taskcluster's name)
PAGE = 500  # items per DynamoDB page when reading everything
LEASE_KEY = ("#provisioner", "#lease")  # no pool id begins with '#'


@dataclass(frozen=True)
class WorkerTally:
    """A worker as the pool's counters need it: its state and capacity (a projection)."""

    state: WorkerState
    capacity: int


def _failed_condition(err: Exception) -> bool:
    return getattr(err, "cause_response_code", None) == CONDITION_FAILED


def _date(text: str | None) -> datetime | None:
    return parse_date(text) if text else None


def _required_date(text: str | None) -> datetime:
    value = _date(text)
    assert value is not None
    return value


def worker_sk(worker_group: str, worker_id: str) -> str:
    return f"{WORKER_PREFIX}{worker_group}/{worker_id}"


def error_sk(reported: datetime, error_id: str) -> str:
    return f"{ERROR_PREFIX}{format_date(reported)}/{error_id}"


def _pool(row: PoolRow) -> WorkerPool:
    return WorkerPool(
        worker_pool_id=row.workerPoolId,
        provider_id=row.providerId or "",
        description=row.description or "",
        owner=row.owner or "",
        email_on_error=bool(row.emailOnError),
        config=json.loads(row.config or "{}"),
        created=_required_date(row.created),
        last_modified=_required_date(row.lastModified),
        previous_provider_ids=tuple(json.loads(row.previousProviderIds or "[]")),
    )


def _worker(row: PoolRow) -> PoolWorker:
    return PoolWorker(
        worker_pool_id=row.workerPoolId,
        worker_group=row.workerGroup or "",
        worker_id=row.workerId or "",
        provider_id=row.providerId or "",
        launch_config_id=row.launchConfigId or "",
        state=WorkerState(row.state),
        capacity=int(row.capacity or 0),
        created=_required_date(row.created),
        last_modified=_required_date(row.lastModified),
        last_checked=_required_date(row.lastChecked),
        expires=_required_date(row.expires),
        terminate_after=_date(row.terminateAfter),
        provider_data=json.loads(row.providerData or "{}"),
        registration_hash=row.registrationHash or "",
        secret_hash=row.secretHash or "",
        registered=_date(row.registered),
        should_terminate=row.shouldTerminate or "",
    )


def _error(row: PoolRow) -> PoolError:
    return PoolError(
        worker_pool_id=row.workerPoolId,
        error_id=row.errorId or "",
        reported=_required_date(row.reported),
        kind=row.errorKind or "",
        title=row.title or "",
        description=row.description or "",
        launch_config_id=row.launchConfigId,
        extra=json.loads(row.extra or "{}"),
    )


def _epoch_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _lease(row: PoolRow) -> Lease:
    until = datetime.fromtimestamp(int(row.leaseUntil or 0) / 1000, UTC)
    return Lease(row.holder or "", until, row.resumeAt or "")


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class DynamoPoolStore:
    def __init__(self, model: type[PoolRow]) -> None:
        self.model = model

    # --- pools ----------------------------------------------------------------------------------
    def get_pool(self, worker_pool_id: str, consistent: bool = False) -> WorkerPool | None:
        try:
            return _pool(self.model.get(worker_pool_id, POOL_SK, consistent_read=consistent))
        except self.model.DoesNotExist:
            return None

    def put_pool(self, pool: WorkerPool, *, create: bool, expected: WorkerPool | None = None) -> bool:
        """Create (id not taken) or replace (id exists; with `expected`, only if the stored pool
        is still the one read: same lastModified and providerId); False when that fails."""
        m = self.model
        row = m(
            pool.worker_pool_id,
            POOL_SK,
            kind=POOL_KIND,
            providerId=pool.provider_id,
            previousProviderIds=json.dumps(list(pool.previous_provider_ids)),
            description=pool.description,
            owner=pool.owner,
            emailOnError=pool.email_on_error,
            config=_json(pool.config),
            created=format_date(pool.created),
            lastModified=format_date(pool.last_modified),
        )
        condition: Condition
        if create:
            condition = m.workerPoolId.does_not_exist()
        elif expected is not None:
            condition = (m.lastModified == format_date(expected.last_modified)) & (m.providerId == expected.provider_id)
        else:
            condition = m.workerPoolId.exists()
        check_fits(row, f"Worker pool {pool.worker_pool_id}")
        return self._conditional(lambda: row.save(condition=condition), PutError)

    def delete_pool(self, worker_pool_id: str) -> None:
        """Remove the pool's item once its deletion completed (the provisioner calls this when a
        pool marked with null-provider has no workers left). A pool given a real provider again
        meanwhile stays. Its workers and errors go with their TTL."""
        m = self.model
        self._conditional(
            lambda: m(worker_pool_id, POOL_SK).delete(condition=m.providerId == NULL_PROVIDER), DeleteError
        )

    def list_pools(self, limit: int, continuation: str | None) -> tuple[list[WorkerPool], str | None]:
        rows = self.model.byKind.query(
            POOL_KIND,
            limit=limit,
            page_size=limit,
            last_evaluated_key=decode_token(continuation, {"kind", "workerPoolId", "sk"}, {"kind": equal(POOL_KIND)}),
        )
        found = [_pool(r) for r in rows]
        return found, next_token(rows.last_evaluated_key, len(found), limit)

    def all_pools(self) -> list[WorkerPool]:
        return [_pool(r) for r in self.model.byKind.query(POOL_KIND, page_size=PAGE)]

    # --- workers --------------------------------------------------------------------------------
    def get_worker(self, worker_pool_id: str, worker_group: str, worker_id: str) -> PoolWorker | None:
        try:
            row = self.model.get(worker_pool_id, worker_sk(worker_group, worker_id), consistent_read=True)
        except self.model.DoesNotExist:
            return None
        return _worker(row)

    def find_worker(self, worker_id: str) -> PoolWorker | None:
        # The index is eventually consistent and holds keys only: the item itself is read
        # consistently, so a state written just before is seen.
        for key in self.model.byWorkerId.query(worker_id, limit=1):
            return self.get_worker(key.workerPoolId, *key.sk[len(WORKER_PREFIX) :].split("/", 1))
        return None

    def list_workers(
        self,
        worker_pool_id: str,
        limit: int,
        continuation: str | None,
        state: str | None = None,
        launch_config_id: str | None = None,
    ) -> tuple[list[PoolWorker], str | None]:
        m = self.model
        condition: Condition | None = None
        if state is not None:
            condition = m.state == state
        if launch_config_id is not None:
            by_config = m.launchConfigId == launch_config_id
            condition = by_config if condition is None else condition & by_config
        bounds = {"workerPoolId": equal(worker_pool_id), "sk": prefixed(WORKER_PREFIX)}
        rows = m.query(
            worker_pool_id,
            m.sk.startswith(WORKER_PREFIX),
            filter_condition=condition,
            limit=limit,
            page_size=limit,
            consistent_read=True,
            last_evaluated_key=decode_token(continuation, {"workerPoolId", "sk"}, bounds),
        )
        found = [_worker(r) for r in rows]
        return found, next_token(rows.last_evaluated_key, len(found), limit)

    def alive_workers(self, worker_pool_id: str) -> list[PoolWorker]:
        m = self.model
        rows = m.query(
            worker_pool_id,
            m.sk.startswith(WORKER_PREFIX),
            filter_condition=m.state != WorkerState.STOPPED.value,
            page_size=PAGE,
            consistent_read=True,
        )
        return [_worker(r) for r in rows]

    def worker_tallies(self, worker_pool_id: str) -> list[WorkerTally]:
        """Every worker's state and capacity (all pages, only those two attributes read back)."""
        m = self.model
        rows = m.query(
            worker_pool_id,
            m.sk.startswith(WORKER_PREFIX),
            attributes_to_get=["state", "capacity"],
            page_size=PAGE,
        )
        return [WorkerTally(WorkerState(r.state), int(r.capacity or 0)) for r in rows]

    def put_worker(
        self, worker: PoolWorker, *, expected_state: WorkerState | None = None, expected_secret_hash: str | None = None
    ) -> bool:
        m = self.model
        row = m(
            worker.worker_pool_id,
            worker_sk(worker.worker_group, worker.worker_id),
            workerGroup=worker.worker_group,
            workerId=worker.worker_id,
            providerId=worker.provider_id,
            launchConfigId=worker.launch_config_id or None,
            state=worker.state.value,
            capacity=worker.capacity,
            created=format_date(worker.created),
            lastModified=format_date(worker.last_modified),
            lastChecked=format_date(worker.last_checked),
            expires=format_date(worker.expires),
            terminateAfter=format_date(worker.terminate_after) if worker.terminate_after else None,
            providerData=_json(worker.provider_data),
            registrationHash=worker.registration_hash or None,
            secretHash=worker.secret_hash or None,
            registered=format_date(worker.registered) if worker.registered else None,
            shouldTerminate=worker.should_terminate or None,
            ttl=int(worker.expires.timestamp()),
        )
        condition = m.sk.does_not_exist() if expected_state is None else m.state == expected_state.value
        if expected_secret_hash is not None:
            condition &= m.secretHash == expected_secret_hash
        return self._conditional(lambda: row.save(condition=condition), PutError)

    # --- errors ---------------------------------------------------------------------------------
    def add_error(self, error: PoolError) -> None:
        """Record an error; recording the same error again changes nothing (its id is in its key)."""
        m = self.model
        row = m(
            error.worker_pool_id,
            error_sk(error.reported, error.error_id),
            errorId=error.error_id,
            reported=format_date(error.reported),
            errorKind=error.kind,
            title=error.title,
            description=error.description,
            launchConfigId=error.launch_config_id,
            extra=_json(error.extra),
            ttl=int((error.reported + ERROR_RETENTION).timestamp()),
        )
        check_fits(row, f"Worker pool error {error.error_id}")
        self._conditional(lambda: row.save(condition=m.sk.does_not_exist()), PutError)

    def errors(
        self,
        worker_pool_id: str,
        since: datetime,
        limit: int,
        continuation: str | None,
        launch_config_id: str | None = None,
        error_id: str | None = None,
    ) -> tuple[list[PoolError], str | None]:
        """A page of the errors reported at or after `since`, newest first."""
        m = self.model
        condition: Condition | None = None
        if launch_config_id is not None:
            condition = m.launchConfigId == launch_config_id
        if error_id is not None:
            by_id = m.errorId == error_id
            condition = by_id if condition is None else condition & by_id
        bounds = {"workerPoolId": equal(worker_pool_id), "sk": (f"{ERROR_PREFIX}{format_date(since)}", ERROR_END)}
        rows = m.query(
            worker_pool_id,
            m.sk.between(*bounds["sk"]),
            filter_condition=condition,
            scan_index_forward=False,
            limit=limit,
            page_size=limit,
            last_evaluated_key=decode_token(continuation, {"workerPoolId", "sk"}, bounds),
        )
        found = [_error(r) for r in rows]
        return found, next_token(rows.last_evaluated_key, len(found), limit)

    # --- the provisioner's lease -------------------------------------------------------------------
    def take_lease(self, holder: str, now: datetime, until: datetime) -> Lease:
        m = self.model
        row = m(*LEASE_KEY)
        free = m.sk.does_not_exist() | m.leaseUntil.does_not_exist() | (m.leaseUntil <= _epoch_ms(now))
        actions: list[Action] = [m.holder.set(holder), m.leaseUntil.set(_epoch_ms(until))]
        if self._conditional(lambda: row.update(actions=actions, condition=free), UpdateError):
            return _lease(row)  # UpdateItem answers the whole item: resumeAt with it
        return _lease(m.get(*LEASE_KEY, consistent_read=True))

    def release_lease(self, holder: str, resume_at: str) -> bool:
        m = self.model
        resume = m.resumeAt.set(resume_at) if resume_at else m.resumeAt.remove()
        actions: list[Action] = [m.leaseUntil.set(0), resume]
        mine = m.holder == holder
        return self._conditional(lambda: m(*LEASE_KEY).update(actions=actions, condition=mine), UpdateError)

    # --- shared ---------------------------------------------------------------------------------
    @staticmethod
    def _conditional(write: Callable[[], Any], error: type[Exception]) -> bool:
        try:
            write()
        except error as err:
            if _failed_condition(err):
                return False
            raise
        return True
