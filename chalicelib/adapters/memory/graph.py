"""The in-memory graph table: MemoryGraphStore, task groups, their members and dependency edges.

It stands for adapters/graph_store.py: one item per fact, in partitions (pk) sorted by sk.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from ...domain.graph import TaskGroup
from ...domain.model import format_date, parse_date
from ..pagination import equal
from .common import Key, _query, _start, _token

GROUP_SK = "-"


def _dependent_key(dependent_id: str, link: str) -> str:
    return f"{dependent_id}#{link}" if link else dependent_id


def _requires_key(dependent_id: str, link: str) -> str:
    return f"requires#{dependent_id}#{link}" if link else f"requires#{dependent_id}"


class MemoryGraphStore:
    """The graph table (adapters/graph_store.py): one item per fact, in partitions sorted by sk."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, dict[str, Any]]] = {}  # pk -> sk -> attributes
        self._lock = threading.RLock()

    def _put(self, pk: str, sk: str, **attributes: Any) -> None:
        self._items.setdefault(pk, {})[sk] = attributes

    def _delete(self, pk: str, sk: str) -> None:
        partition = self._items.get(pk, {})
        partition.pop(sk, None)
        if not partition:
            self._items.pop(pk, None)

    def _partition(self, pk: str) -> list[tuple[Key, tuple[str, dict[str, Any]]]]:
        return [((sk,), (sk, dict(attrs))) for sk, attrs in self._items.get(pk, {}).items()]

    # --- groups --------------------------------------------------------------------------------
    def group(self, task_group_id: str, consistent: bool = False) -> TaskGroup | None:
        with self._lock:
            row = self._items.get(f"group#{task_group_id}", {}).get(GROUP_SK)
        if row is None:
            return None
        sealed = row.get("sealed")
        return TaskGroup(
            task_group_id,
            row.get("schedulerId") or "-",
            parse_date(row.get("expires") or "1970-01-01T00:00:00.000Z"),
            parse_date(sealed) if sealed else None,
        )

    def ensure_group(self, task_group_id: str, scheduler_id: str, expires: datetime) -> TaskGroup | None:
        pk = f"group#{task_group_id}"
        with self._lock:
            row = self._items.get(pk, {}).get(GROUP_SK)
            if row is not None and not (
                row.get("schedulerId") == scheduler_id
                and "sealed" not in row
                and row.get("expires") is not None
                and row["expires"] < format_date(expires)
            ):
                return None
            self._put(
                pk,
                GROUP_SK,
                **{
                    **(row or {}),
                    "schedulerId": scheduler_id,
                    "expires": format_date(expires),
                    "ttl": int(expires.timestamp()),
                },
            )
        return TaskGroup(task_group_id, scheduler_id, expires)

    def seal_group(self, group: TaskGroup) -> None:
        assert group.sealed is not None
        pk = f"group#{group.task_group_id}"
        with self._lock:
            row = self._items.get(pk, {}).get(GROUP_SK) or {}
            if "sealed" not in row:  # an UpdateItem: it makes the item if there is none
                self._put(pk, GROUP_SK, **row, sealed=format_date(group.sealed))

    # --- unresolved members --------------------------------------------------------------------
    def add_member(self, task_group_id: str, task_id: str, expires: datetime) -> None:
        with self._lock:
            self._put(f"active#{task_group_id}", task_id, ttl=int(expires.timestamp()))

    def remove_members(self, members: Iterable[tuple[str, str]]) -> None:
        with self._lock:
            for task_group_id, task_id in members:
                self._delete(f"active#{task_group_id}", task_id)

    def has_members(self, task_group_id: str) -> bool:
        with self._lock:
            return bool(self._items.get(f"active#{task_group_id}"))

    # --- dependency edges ----------------------------------------------------------------------
    def add_edges(
        self, dependent_id: str, link: str, requires: str, required_ids: Sequence[str], count: int, expires: datetime
    ) -> None:
        ttl = int(expires.timestamp())
        with self._lock:
            for required_id in dict.fromkeys(required_ids):
                sk = _dependent_key(dependent_id, link)
                self._put(f"dependents#{required_id}", sk, requires=requires, dependencies=count, ttl=ttl)
                self._put(_requires_key(dependent_id, link), required_id, ttl=ttl)

    def delete_edges(self, dependent_id: str, link: str, required_ids: Sequence[str]) -> None:
        with self._lock:
            for required_id in dict.fromkeys(required_ids):
                self._delete(f"dependents#{required_id}", _dependent_key(dependent_id, link))
                self._delete(_requires_key(dependent_id, link), required_id)

    def satisfy(self, edges: Iterable[tuple[str, str, str]]) -> None:
        with self._lock:
            for dependent_id, link, required_id in edges:
                self._delete(_requires_key(dependent_id, link), required_id)

    def requirements(self, dependent_id: str, link: str, limit: int | None = None) -> list[str]:
        with self._lock:
            rows, _ = _query(self._partition(_requires_key(dependent_id, link)), None, limit)
        return [sk for sk, _ in rows]

    def dependents(
        self, required_id: str, limit: int, continuation: str | None
    ) -> tuple[list[tuple[str, str, str, int | None]], str | None]:
        pk = f"dependents#{required_id}"
        start = _start(continuation, ("pk", "sk"), ("sk",), {"pk": equal(pk)})
        with self._lock:
            rows, last = _query(self._partition(pk), start, limit)
        page: list[tuple[str, str, str, int | None]] = []
        for sk, attrs in rows:
            dependent_id, _, link = sk.partition("#")
            count = attrs.get("dependencies")
            page.append((dependent_id, link, attrs.get("requires") or "all-completed", count))
        return page, _token(("pk", "sk"), (pk, *last) if last else None)
