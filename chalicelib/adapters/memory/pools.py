"""The in-memory pools table: MemoryPoolStore, worker pools, their workers and their errors.

It stands for adapters/pool_store.py (the worker-manager's table): conditional writes of pools
and workers, a pool's config and a worker's provider data through JSON, errors newest first.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ...domain.model import format_date
from ...domain.pools import PoolError, PoolWorker, WorkerPool, WorkerState
from ...domain.provisioning import Lease
from ..pagination import equal, prefixed
from ..pool_store import WorkerTally
from .common import _check_fits, _json_copy, _ms, _opt_ms, _query, _start, _token, _worker_sk

NULL_PROVIDER = "null-provider"


def _stored_pool(p: WorkerPool) -> WorkerPool:
    config: dict[str, Any] = json.loads(json.dumps(p.config, separators=(",", ":"), sort_keys=True))
    return replace(
        p,
        config=config,
        created=_ms(p.created),
        last_modified=_ms(p.last_modified),
        previous_provider_ids=tuple(p.previous_provider_ids),
    )


def _stored_worker(w: PoolWorker) -> PoolWorker:
    return replace(
        w,
        created=_ms(w.created),
        last_modified=_ms(w.last_modified),
        last_checked=_ms(w.last_checked),
        expires=_ms(w.expires),
        terminate_after=_opt_ms(w.terminate_after),
        registered=_opt_ms(w.registered),
        provider_data=_json_copy(w.provider_data),
    )


def _error_sk(e: PoolError) -> str:
    return f"error/{format_date(e.reported)}/{e.error_id}"


class MemoryPoolStore:
    """The pools table (adapters/pool_store.py): pools, their workers and their errors."""

    def __init__(self) -> None:
        self._pools: dict[str, WorkerPool] = {}
        self._workers: dict[str, dict[str, PoolWorker]] = {}  # pool -> "worker/<group>/<id>" -> worker
        self._errors: dict[str, dict[str, PoolError]] = {}  # pool -> "error/<reported>/<id>" -> error
        self._lease: Lease | None = None
        self._lock = threading.Lock()

    # --- pools ---------------------------------------------------------------------------------
    def get_pool(self, worker_pool_id: str, consistent: bool = False) -> WorkerPool | None:
        with self._lock:
            return self._pools.get(worker_pool_id)

    def put_pool(self, pool: WorkerPool, *, create: bool, expected: WorkerPool | None = None) -> bool:
        with self._lock:
            stored = self._pools.get(pool.worker_pool_id)
            if create:
                ok = stored is None
            elif expected is not None:
                ok = (
                    stored is not None
                    and stored.last_modified == _ms(expected.last_modified)
                    and stored.provider_id == expected.provider_id
                )
            else:
                ok = stored is not None
            _check_fits(f"Worker pool {pool.worker_pool_id}", {"description": pool.description, "config": pool.config})
            if ok:
                self._pools[pool.worker_pool_id] = _stored_pool(pool)
        return ok

    def delete_pool(self, worker_pool_id: str) -> None:
        with self._lock:
            stored = self._pools.get(worker_pool_id)
            if stored is not None and stored.provider_id == NULL_PROVIDER:
                del self._pools[worker_pool_id]

    def list_pools(self, limit: int, continuation: str | None) -> tuple[list[WorkerPool], str | None]:
        names = ("kind", "workerPoolId", "sk")
        start = _start(continuation, names, ("workerPoolId", "sk"), {"kind": equal("pool")})
        with self._lock:
            rows = [((p.worker_pool_id, "#pool"), p) for p in self._pools.values()]
        pools, last = _query(rows, start, limit)
        return pools, _token(names, ("pool", *last) if last else None)

    def all_pools(self) -> list[WorkerPool]:
        with self._lock:
            return sorted(self._pools.values(), key=lambda p: p.worker_pool_id)

    # --- workers -------------------------------------------------------------------------------
    def get_worker(self, worker_pool_id: str, worker_group: str, worker_id: str) -> PoolWorker | None:
        with self._lock:
            return self._workers.get(worker_pool_id, {}).get(_worker_sk(worker_group, worker_id))

    def find_worker(self, worker_id: str) -> PoolWorker | None:
        with self._lock:
            found = [w for pool in self._workers.values() for w in pool.values() if w.worker_id == worker_id]
        return min(found, key=lambda w: (w.worker_pool_id, w.worker_group), default=None)

    def list_workers(
        self,
        worker_pool_id: str,
        limit: int,
        continuation: str | None,
        state: str | None = None,
        launch_config_id: str | None = None,
    ) -> tuple[list[PoolWorker], str | None]:
        names = ("workerPoolId", "sk")
        bounds = {"workerPoolId": equal(worker_pool_id), "sk": prefixed("worker/")}
        start = _start(continuation, names, ("sk",), bounds)
        with self._lock:
            rows = [
                ((sk,), w)
                for sk, w in self._workers.get(worker_pool_id, {}).items()
                if (state is None or w.state.value == state)
                and (launch_config_id is None or w.launch_config_id == launch_config_id)
            ]
        workers, last = _query(rows, start, limit)
        return workers, _token(names, (worker_pool_id, *last) if last else None)

    def alive_workers(self, worker_pool_id: str) -> list[PoolWorker]:
        with self._lock:
            rows = [((sk,), w) for sk, w in self._workers.get(worker_pool_id, {}).items() if w.alive]
        return _query(rows, None, None)[0]

    def worker_tallies(self, worker_pool_id: str) -> list[WorkerTally]:
        with self._lock:
            rows = [
                ((sk,), WorkerTally(w.state, w.capacity)) for sk, w in self._workers.get(worker_pool_id, {}).items()
            ]
        return _query(rows, None, None)[0]

    def put_worker(
        self, worker: PoolWorker, *, expected_state: WorkerState | None = None, expected_secret_hash: str | None = None
    ) -> bool:
        sk = _worker_sk(worker.worker_group, worker.worker_id)
        with self._lock:
            stored = self._workers.get(worker.worker_pool_id, {}).get(sk)
            ok = stored is None if expected_state is None else stored is not None and stored.state is expected_state
            if expected_secret_hash is not None:
                ok = ok and stored is not None and stored.secret_hash == expected_secret_hash
            if ok:
                self._workers.setdefault(worker.worker_pool_id, {})[sk] = _stored_worker(worker)
        return ok

    # --- errors --------------------------------------------------------------------------------
    def add_error(self, error: PoolError) -> None:
        _check_fits(f"Worker pool error {error.error_id}", {"description": error.description, "extra": error.extra})
        with self._lock:
            errors = self._errors.setdefault(error.worker_pool_id, {})
            errors.setdefault(
                _error_sk(error), replace(error, reported=_ms(error.reported), extra=_json_copy(error.extra))
            )

    def errors(
        self,
        worker_pool_id: str,
        since: datetime,
        limit: int,
        continuation: str | None,
        launch_config_id: str | None = None,
        error_id: str | None = None,
    ) -> tuple[list[PoolError], str | None]:
        names = ("workerPoolId", "sk")
        low = f"error/{format_date(since)}"
        start = _start(continuation, names, ("sk",), {"workerPoolId": equal(worker_pool_id), "sk": (low, "error0")})
        with self._lock:
            rows = [
                ((sk,), e)
                for sk, e in self._errors.get(worker_pool_id, {}).items()
                if low <= sk <= "error0"
                and (launch_config_id is None or e.launch_config_id == launch_config_id)
                and (error_id is None or e.error_id == error_id)
            ]
        errors, last = _query(rows, start, limit, descending=True)
        return errors, _token(names, (worker_pool_id, *last) if last else None)

    # --- the provisioner's lease -------------------------------------------------------------------
    def take_lease(self, holder: str, now: datetime, until: datetime) -> Lease:
        with self._lock:
            if self._lease is None or self._lease.until <= _ms(now):
                self._lease = Lease(holder, _ms(until), self._lease.resume_at if self._lease else "")
            return self._lease

    def release_lease(self, holder: str, resume_at: str) -> bool:
        with self._lock:
            if self._lease is None or self._lease.holder != holder:
                return False
            self._lease = Lease(holder, datetime.fromtimestamp(0, UTC), resume_at)
            return True
