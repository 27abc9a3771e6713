"""Carrying out decisions about a pool's workers, for the provisioner's scan and for worker
registration's removals and the cloud's events: one conditional write per change, on the state
the decision was made from (invariant 2); removal at the worker's provider; pool errors."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..clock import Clock
from ..domain.pools import PoolError, PoolWorker, WorkerState, new_error_id
from ..domain.provisioning import WorkerKey, key
from .ports import PoolStore, Provider

log = logging.getLogger(__name__)


class PoolWorkers:
    def __init__(self, pools: PoolStore, providers: Mapping[str, Provider], clock: Clock) -> None:
        self.pools = pools
        self.providers = providers
        self.clock = clock

    def update(self, w: PoolWorker, **changes: Any) -> bool:
        """One conditional write on the state the decision was made from (invariant 2)."""
        now = self.clock.now()
        updated = replace(w, last_modified=now, last_checked=now, **changes)
        return self.pools.put_worker(updated, expected_state=w.state)

    def remove(
        self, pool_id: str, removals: Sequence[tuple[PoolWorker, str]], keep_state: Collection[WorkerKey] = ()
    ) -> list[str]:
        """End each worker's instance at its provider; each one ended becomes stopping (unless in
        `keep_state`). A refused termination is a pool error and leaves the worker as it was.
        Returns "<workerId>: <reason>" for each worker removed."""
        removed = []
        for w, reason in removals:
            provider = self.providers.get(w.provider_id)
            if provider is None:
                continue
            try:
                provider.terminate([w])
            except Exception as err:
                self.error(pool_id, "termination-error", "Instance Termination Error", str(err), w.launch_config_id)
                continue
            log.info("removed %s/%s/%s: %s", pool_id, w.worker_group, w.worker_id, reason)
            removed.append(f"{w.worker_id}: {reason}")
            if key(w) not in keep_state:
                self.update(w, state=WorkerState.STOPPING)
        return removed

    def error(
        self, pool_id: str, kind: str, title: str, description: str, lc_id: str | None = None, **extra: Any
    ) -> None:
        error = PoolError(pool_id, new_error_id(), self.clock.now(), kind, title, description, lc_id, dict(extra))
        log.warning("%s %s: %s", pool_id, kind, description)
        self.pools.add_error(error)
