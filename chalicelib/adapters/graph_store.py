"""The graph table: task groups, their unresolved members, and dependency edges (tables.py).

Every fact is its own small item, written or deleted idempotently; the questions that decide
something ("is anything left?") are strongly consistent queries of one partition.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from pynamodb.exceptions import UpdateError

from ..domain.graph import TaskGroup
from ..domain.model import format_date, parse_date
from .pagination import decode_token, equal, next_token
from .tables import GraphRow

CONDITION_FAILED = "ConditionalCheckFailedException"
GROUP_SK = "-"
PARALLEL_CHUNK = 250  # items per writer thread: 10 BatchWriteItem requests
WRITERS = 8
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _writers() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="graph-write")
        return _pool


def _ttl(expires: datetime) -> int:
    return int(expires.timestamp())


class DynamoGraphStore:
    def __init__(self, model: type[GraphRow]) -> None:
        self._model = model

    # --- groups --------------------------------------------------------------------------------
    def group(self, task_group_id: str, consistent: bool = False) -> TaskGroup | None:
        try:
            row = self._model.get(f"group#{task_group_id}", GROUP_SK, consistent_read=consistent)
        except self._model.DoesNotExist:
            return None
        return TaskGroup(
            task_group_id,
            row.schedulerId or "-",
            parse_date(row.expires or "1970-01-01T00:00:00.000Z"),
            parse_date(row.sealed) if row.sealed else None,
        )

    def ensure_group(self, task_group_id: str, scheduler_id: str, expires: datetime) -> TaskGroup | None:
        """Create the group, or extend its expiry; None if it exists with another schedulerId
        or is sealed or already lives long enough (the caller re-reads to tell which)."""
        m = self._model
        row = m(f"group#{task_group_id}", GROUP_SK)
        condition = m.pk.does_not_exist() | (
            (m.schedulerId == scheduler_id) & m.sealed.does_not_exist() & (m.expires < format_date(expires))
        )
        try:
            row.update(
                actions=[
                    m.schedulerId.set(scheduler_id),
                    m.expires.set(format_date(expires)),
                    m.ttl.set(_ttl(expires)),
                ],
                condition=condition,
            )
        except UpdateError as e:
            if e.cause_response_code == CONDITION_FAILED:
                return None
            raise
        return TaskGroup(task_group_id, scheduler_id, expires)

    def seal_group(self, group: TaskGroup) -> None:
        assert group.sealed is not None
        m = self._model
        row = m(f"group#{group.task_group_id}", GROUP_SK)
        try:
            row.update(actions=[m.sealed.set(format_date(group.sealed))], condition=m.sealed.does_not_exist())
        except UpdateError as e:
            if e.cause_response_code != CONDITION_FAILED:
                raise

    # --- unresolved members --------------------------------------------------------------------
    def add_member(self, task_group_id: str, task_id: str, expires: datetime) -> None:
        self._model(f"active#{task_group_id}", task_id, ttl=_ttl(expires)).save()

    def add_members_many(self, members: Iterable[tuple[str, str, datetime]]) -> None:
        """add_member for many (taskGroupId, taskId, expires) at once, 25 to a BatchWriteItem
        (benchmarks and imports, not the API)."""
        m = self._model
        self._write([m(f"active#{gid}", task_id, ttl=_ttl(expires)) for gid, task_id, expires in members], [])

    def remove_members(self, members: Iterable[tuple[str, str]]) -> None:
        with self._model.batch_write() as batch:
            for task_group_id, task_id in dict.fromkeys(members):  # a batch may not name an item twice
                batch.delete(self._model(f"active#{task_group_id}", task_id))

    def has_members(self, task_group_id: str) -> bool:
        """Strongly consistent: is any task of the group not yet resolved for good?"""
        return any(True for _ in self._model.query(f"active#{task_group_id}", limit=1, consistent_read=True))

    # --- dependency edges ----------------------------------------------------------------------
    # An edge's keys carry the `link` of the createTask request that wrote it (Task.link), so
    # two requests racing for one taskId never write the same items: each can remove exactly
    # its own, and release honours only the edges of the stored task. An empty link is the
    # form of edges written before links existed.
    def add_edges(
        self, dependent_id: str, link: str, requires: str, required_ids: Sequence[str], count: int, expires: datetime
    ) -> None:
        """Edges from `dependent_id` to `required_ids` (some of its `count` dependencies)."""
        self.add_edges_many([(dependent_id, link, requires, required_ids, count, expires)])

    def add_edges_many(self, edges: Iterable[tuple[str, str, str, Sequence[str], int, datetime]]) -> None:
        """Write (dependent, link, requires, dependencies, count, expires) edges: an item pair per dependency."""
        m = self._model
        rows = []
        for dependent_id, link, requires, required_ids, count, expires in edges:
            ttl = _ttl(expires)
            for required_id in dict.fromkeys(required_ids):
                sk = _dependent_key(dependent_id, link)
                rows.append(m(f"dependents#{required_id}", sk, requires=requires, dependencies=count, ttl=ttl))
                rows.append(m(_requires_key(dependent_id, link), required_id, ttl=ttl))
        self._write(rows, [])

    def delete_edges(self, dependent_id: str, link: str, required_ids: Sequence[str]) -> None:
        m = self._model
        unique = list(dict.fromkeys(required_ids))
        sk, pk = _dependent_key(dependent_id, link), _requires_key(dependent_id, link)
        self._write([], [m(f"dependents#{r}", sk) for r in unique] + [m(pk, r) for r in unique])

    def _write(self, puts: Sequence[GraphRow], deletes: Sequence[GraphRow]) -> None:
        """BatchWriteItem, 25 items a request; a large set (a createTask naming thousands of
        dependencies) as several requests in flight at once, so it fits in an API call's time."""
        ops = [(True, row) for row in puts] + [(False, row) for row in deletes]
        chunks = [ops[i : i + PARALLEL_CHUNK] for i in range(0, len(ops), PARALLEL_CHUNK)]
        if len(chunks) > 1:
            list(_writers().map(self._write_chunk, chunks))
        elif chunks:
            self._write_chunk(chunks[0])

    def _write_chunk(self, ops: Sequence[tuple[bool, GraphRow]]) -> None:
        with self._model.batch_write() as batch:
            for put, row in ops:
                if put:
                    batch.save(row)
                else:
                    batch.delete(row)

    def satisfy(self, edges: Iterable[tuple[str, str, str]]) -> None:
        """Mark (dependent, link, required) edges satisfied: their requirement items go, 25 to a
        BatchWriteItem (deleting twice is harmless)."""
        unique = list(dict.fromkeys(edges))  # a batch may not name an item twice
        rows = [self._model(_requires_key(dependent, link), required) for dependent, link, required in unique]
        if len(rows) == 1:
            rows[0].delete()
            return
        self._write([], rows)

    def requirements(self, dependent_id: str, link: str, limit: int | None = None) -> list[str]:
        """Strongly consistent: the dependencies of `dependent_id` not yet satisfied."""
        rows = self._model.query(_requires_key(dependent_id, link), limit=limit, consistent_read=True)
        return [r.sk for r in rows]

    def dependents(
        self, required_id: str, limit: int, continuation: str | None
    ) -> tuple[list[tuple[str, str, str, int | None]], str | None]:
        """A page of (dependent taskId, its edges' link, requires, its number of dependencies if
        recorded) of `required_id`, ordered by dependent taskId."""
        result = self._model.query(
            f"dependents#{required_id}",
            limit=limit,
            last_evaluated_key=decode_token(continuation, {"pk", "sk"}, {"pk": equal(f"dependents#{required_id}")}),
            page_size=limit,
        )
        page: list[tuple[str, str, str, int | None]] = [
            (
                *_split_dependent_key(r.sk),
                r.requires or "all-completed",
                int(r.dependencies) if r.dependencies is not None else None,
            )
            for r in result
        ]
        return page, next_token(result.last_evaluated_key, len(page), limit)


def _dependent_key(dependent_id: str, link: str) -> str:
    return f"{dependent_id}#{link}" if link else dependent_id


def _split_dependent_key(sk: str) -> tuple[str, str]:
    dependent_id, _, link = sk.partition("#")
    return dependent_id, link


def _requires_key(dependent_id: str, link: str) -> str:
    return f"requires#{dependent_id}#{link}" if link else f"requires#{dependent_id}"
