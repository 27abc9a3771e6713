"""Worker-manager's API use cases: worker pools (create, update, delete, read, list), their workers
and their errors, as Taskcluster's worker-manager shows them. Launching, scanning and registering
workers are the provisioner's (services/provisioner.py); this service only defines pools and reads
what the provisioner records.

- createWorkerPool under a taken id is 409, whatever the definition, as Taskcluster answers it
  (deployment tools create, and update on 409; updateWorkerPool is the idempotent call).
- updateWorkerPool and deleteWorkerPool rewrite the pool only if it is still the one read (a
  conditional write on its lastModified and providerId), re-reading on a race (invariant 2).
- deleteWorkerPool, as Taskcluster, only marks the pool: its providerId becomes `null-provider`
  (the old one moves to previousProviderIds), the provisioner removes its workers, then the pool
  (`PoolStore.delete_pool`). Until then it is listed and can be given a real provider again.
- A pool's counters (currentCapacity, requestedCount …) are computed from its workers when it is
  shown: one Query of the pool's partition reading only each worker's state and capacity.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from ..clock import Clock
from ..domain.errors import InputError, RequestConflict, ResourceNotFound
from ..domain.model import format_date
from ..domain.pools import ERROR_RETENTION, PoolError, PoolWorker, WorkerPool, WorkerState, new_error_id, pool_config
from .ports import PoolStore

NULL_PROVIDER = "null-provider"  # Taskcluster's providerId of a pool pending deletion
UPDATE_ATTEMPTS = 5  # re-reads after a concurrent change before answering 409
ONE_MS = timedelta(milliseconds=1)


class Tally(Protocol):
    """A worker's state and capacity: all the counters need."""

    @property
    def state(self) -> WorkerState: ...

    @property
    def capacity(self) -> int: ...


class PoolRecords(PoolStore, Protocol):
    """The PoolStore plus what the API's listings need (adapters/pool_store.py has both)."""

    def put_pool(self, pool: WorkerPool, *, create: bool, expected: WorkerPool | None = None) -> bool: ...

    def list_workers(
        self,
        worker_pool_id: str,
        limit: int,
        continuation: str | None,
        state: str | None = None,
        launch_config_id: str | None = None,
    ) -> tuple[list[PoolWorker], str | None]: ...

    def worker_tallies(self, worker_pool_id: str) -> Sequence[Tally]: ...

    def errors(
        self,
        worker_pool_id: str,
        since: datetime,
        limit: int,
        continuation: str | None,
        launch_config_id: str | None = None,
        error_id: str | None = None,
    ) -> tuple[list[PoolError], str | None]: ...


def counters(tallies: Sequence[Tally]) -> dict[str, int]:
    """Taskcluster's (deprecated, still served) aggregate counters of a pool's workers."""
    out = {"currentCapacity": 0}
    for state in WorkerState:
        out[f"{state.value}Count"] = 0
        out[f"{state.value}Capacity"] = 0
    for t in tallies:
        out[f"{t.state.value}Count"] += 1
        out[f"{t.state.value}Capacity"] += t.capacity
        if t.state is not WorkerState.STOPPED:
            out["currentCapacity"] += t.capacity
    return out


def pool_json(pool: WorkerPool, tallies: Sequence[Tally]) -> dict[str, Any]:
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
        **counters(tallies),
    }


def worker_json(worker: PoolWorker) -> dict[str, Any]:
    out: dict[str, Any] = {
        "workerPoolId": worker.worker_pool_id,
        "workerGroup": worker.worker_group,
        "workerId": worker.worker_id,
        "providerId": worker.provider_id,
        "created": format_date(worker.created),
        "expires": format_date(worker.expires),
        "state": worker.state.value,
        "capacity": worker.capacity,
        "lastModified": format_date(worker.last_modified),
        "lastChecked": format_date(worker.last_checked),
    }
    if worker.launch_config_id:
        out["launchConfigId"] = worker.launch_config_id
    return out


def error_json(error: PoolError) -> dict[str, Any]:
    out: dict[str, Any] = {
        "workerPoolId": error.worker_pool_id,
        "errorId": error.error_id,
        "reported": format_date(error.reported),
        "kind": error.kind,
        "title": error.title,
        "description": error.description,
        "extra": error.extra,
    }
    if error.launch_config_id:
        out["launchConfigId"] = error.launch_config_id
    return out


def _page(key: str, items: list[dict[str, Any]], token: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {key: items}
    if token:
        out["continuationToken"] = token
    return out


def _previous_providers(current: WorkerPool, new_provider_id: str) -> tuple[str, ...]:
    """The old provider joins previousProviderIds (its workers still need deprovisioning); the
    new one leaves it (it is current again); null-provider has no workers, so it never joins."""
    previous = [p for p in current.previous_provider_ids if p != new_provider_id]
    old = current.provider_id
    if old != new_provider_id and old != NULL_PROVIDER and old not in previous:
        previous.append(old)
    return tuple(previous)


class WorkerManager:
    def __init__(self, store: PoolRecords, clock: Clock, provider_ids: Collection[str] | None = None) -> None:
        """`provider_ids`: the providers pools may name (None: any; the provisioner then reports
        a pool whose provider it does not know). `null-provider` is always allowed."""
        self.store = store
        self.clock = clock
        self.provider_ids = None if provider_ids is None else {*provider_ids, NULL_PROVIDER}

    # --- pools ----------------------------------------------------------------------------------
    def create_worker_pool(self, worker_pool_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check_definition(body)
        now = self.clock.now()
        pool = WorkerPool(
            worker_pool_id=worker_pool_id,
            provider_id=body["providerId"],
            description=body["description"],
            owner=body["owner"],
            email_on_error=body["emailOnError"],
            config=dict(body["config"]),
            created=now,
            last_modified=now,
        )
        if self.store.put_pool(pool, create=True):
            return pool_json(pool, [])
        # As Taskcluster, whatever the definition: tools such as tc-admin create, and update on 409.
        raise RequestConflict("Worker pool already exists", workerPoolId=worker_pool_id)

    def update_worker_pool(self, worker_pool_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if body.get("workerPoolId", worker_pool_id) != worker_pool_id:
            raise InputError("Incorrect workerPoolId in request body")
        self._check_definition(body)
        fields = {
            "provider_id": body["providerId"],
            "description": body["description"],
            "owner": body["owner"],
            "email_on_error": body["emailOnError"],
            "config": dict(body["config"]),
        }
        return self._pool_json(self._rewrite(worker_pool_id, **fields))

    def delete_worker_pool(self, worker_pool_id: str) -> dict[str, Any]:
        return self._pool_json(self._rewrite(worker_pool_id, provider_id=NULL_PROVIDER))

    def worker_pool(self, worker_pool_id: str) -> dict[str, Any]:
        return self._pool_json(self._existing(worker_pool_id))

    def list_worker_pools(self, limit: int, continuation: str | None) -> dict[str, Any]:
        pools, token = self.store.list_pools(limit, continuation)
        return _page("workerPools", [self._pool_json(p) for p in pools], token)

    # --- workers and errors ---------------------------------------------------------------------
    def list_workers(
        self,
        worker_pool_id: str,
        limit: int,
        continuation: str | None,
        state: str | None = None,
        launch_config_id: str | None = None,
    ) -> dict[str, Any]:
        self._existing(worker_pool_id)  # Taskcluster: 404 for a pool that does not exist
        workers, token = self.store.list_workers(worker_pool_id, limit, continuation, state, launch_config_id)
        return _page("workers", [worker_json(w) for w in workers], token)

    def worker(self, worker_pool_id: str, worker_group: str, worker_id: str) -> dict[str, Any]:
        worker = self.store.get_worker(worker_pool_id, worker_group, worker_id)
        if worker is None:
            raise ResourceNotFound("Worker not found")
        return worker_json(worker)

    def list_errors(
        self,
        worker_pool_id: str,
        limit: int,
        continuation: str | None,
        launch_config_id: str | None = None,
        error_id: str | None = None,
    ) -> dict[str, Any]:
        """The pool's errors of the last 7 days (older ones are gone, as in Taskcluster), newest first."""
        since = self.clock.now() - ERROR_RETENTION
        errors, token = self.store.errors(worker_pool_id, since, limit, continuation, launch_config_id, error_id)
        return _page("workerPoolErrors", [error_json(e) for e in errors], token)

    def report_worker_error(self, worker_pool_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A worker's own error report, listed with the pool's errors (the launch config it was
        launched from, when known; who reported it in `extra`)."""
        self._existing(worker_pool_id)
        worker = self.store.get_worker(worker_pool_id, body["workerGroup"], body["workerId"])
        error = PoolError(
            worker_pool_id=worker_pool_id,
            error_id=new_error_id(),
            reported=self.clock.now(),
            kind=body["kind"],
            title=body["title"],
            description=body["description"],
            launch_config_id=worker.launch_config_id if worker is not None and worker.launch_config_id else None,
            extra={**body["extra"], "workerGroup": body["workerGroup"], "workerId": body["workerId"]},
        )
        self.store.add_error(error)
        return error_json(error)

    # --- helpers --------------------------------------------------------------------------------
    def _check_definition(self, body: Mapping[str, Any]) -> None:
        provider_id = body["providerId"]
        if self.provider_ids is not None and provider_id not in self.provider_ids:
            known = sorted(self.provider_ids)
            raise InputError(
                f"Invalid Provider {provider_id!r}: this deployment's providers are {', '.join(known)}",
                providerId=provider_id,
                validProviderIds=known,
            )
        pool_config(body["config"])  # InputError says what is wrong, beyond the JSON schema

    def _existing(self, worker_pool_id: str) -> WorkerPool:
        pool = self.store.get_pool(worker_pool_id, consistent=True)
        if pool is None:
            raise ResourceNotFound("Worker pool does not exist", workerPoolId=worker_pool_id)
        return pool

    def _rewrite(self, worker_pool_id: str, **fields: Any) -> WorkerPool:
        """Replace the pool's fields with one write conditional on the pool read; re-read on a race."""
        for _ in range(UPDATE_ATTEMPTS):
            current = self._existing(worker_pool_id)
            # lastModified is the write's guard: it must change even within one millisecond.
            modified = max(self.clock.now(), current.last_modified + ONE_MS)
            previous = _previous_providers(current, fields.get("provider_id", current.provider_id))
            updated = replace(current, **fields, previous_provider_ids=previous, last_modified=modified)
            if self.store.put_pool(updated, create=False, expected=current):
                return updated
        raise RequestConflict("Worker pool changed concurrently; try again", workerPoolId=worker_pool_id)

    def _pool_json(self, pool: WorkerPool) -> dict[str, Any]:
        return pool_json(pool, self.store.worker_tallies(pool.worker_pool_id))
