"""Dependencies between tasks (Taskcluster's dependency tracker): createTask's edges, their
release when a task resolves, the sweeper's re-check, and listDependentTasks.

Creating a task with dependencies writes one edge pair per dependency (a `dependents#` item
for listing and release, a `requires#` item while unsatisfied), *before* the task row, so a
dependency resolving meanwhile always finds the edge. When a task resolves for good, each of
its dependents' edges is satisfied by deleting the requirement (idempotent), and a dependent
whose strongly consistent requirement list is empty is scheduled with the usual conditional
write. Release walks dependents in pages and stops before its time runs out, handing the rest
on (`ReleaseQueue`); the sweeper re-checks unscheduled dependents, so none is ever stranded.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from ..domain import transitions
from ..domain.errors import InputError, RequestConflict
from ..domain.graph import satisfied_by, satisfies
from ..domain.model import Task, TaskState
from .ports import GraphStore, ReleaseQueue, TaskStore
from .transition import Transitioned, transition

RELEASE_PAGE = 100
RELEASE_CONCURRENCY = 16
RELEASE_MARGIN = 5.0  # seconds of an invocation left when release hands on what remains
BATCH_GET = 100
LINK_ROUND = 2000  # dependencies whose edges are written, then read, at once (after the first batch)
T = TypeVar("T")


@dataclass
class ReleaseReport:
    released: list[str] = field(default_factory=list)  # dependents scheduled
    satisfied: int = 0  # edges satisfied
    continuation: str | None = None  # where release stopped, if it did


class Dependencies:
    def __init__(self, store: TaskStore, graph: GraphStore, releases: ReleaseQueue, clock: Any) -> None:
        self.store = store
        self.graph = graph
        self.releases = releases
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=RELEASE_CONCURRENCY, thread_name_prefix="release")

    # --- createTask ----------------------------------------------------------------------------
    def link(self, task: Task) -> list[str]:
        """Record a new task's dependencies; return those not yet satisfied.

        Edges are written before the task row, so a dependency resolving meanwhile finds them;
        each round's dependencies are then read, strongly consistent. Missing dependencies, or
        ones expiring before this task's deadline, are refused and the edges this request wrote
        removed: a dependency defined later must not trigger someone else's task. The first
        round is one read batch, so naming thousands of tasks that do not exist costs little.
        """
        deps: list[str] = task.definition["dependencies"]
        requires: str = task.definition["requires"]
        count = len(set(deps))
        written: list[str] = []
        done: set[str] = set()
        for start, end in _rounds(len(deps)):
            chunk = deps[start:end]
            self.graph.add_edges(task.task_id, task.link, requires, chunk, count, task.expires)
            written += chunk
            others = [d for d in chunk if d != task.task_id]
            found = self._read(others)
            missing = [d for d in others if d not in found]
            expiring = [d for d in others if d in found and found[d].expires < task.deadline]
            if missing or expiring:
                self.unlink(task, written)
                raise InputError(
                    "Task dependencies must exist and must not expire before the task's deadline",
                    dependencies=deps,
                    missingTaskDependencies=missing,
                    expiringTaskDependencies=expiring,
                )
            done.update(d for d in others if satisfied_by(found[d], requires))
        if done:
            self.graph.satisfy([(task.task_id, task.link, d) for d in done])
        return [d for d in deps if d not in done]

    def unlink(self, task: Task, deps: Sequence[str] | None = None) -> None:
        """Remove the edges this request wrote for `task` (its link's only: never another's)."""
        self.graph.delete_edges(task.task_id, task.link, task.definition["dependencies"] if deps is None else deps)

    def settle(self, task: Task) -> Task:
        """After inserting an unscheduled task: release it if its last requirement went meanwhile."""
        if (
            task.state is TaskState.UNSCHEDULED
            and task.definition["dependencies"]
            and not self.graph.requirements(task.task_id, task.link, limit=1)
        ):
            return self._schedule(task.task_id).task
        return task

    def _schedule(self, task_id: str, read: Task | None = None) -> Transitioned:
        def step(t: Task, now: datetime) -> Task:
            try:
                return transitions.schedule(t, now)
            except RequestConflict:
                return t  # past its deadline: the sweeper resolves it

        return transition(self.store, self.clock, task_id, step, read)

    # --- resolution: release, and the sweeper's re-check ---------------------------------------
    def release(
        self, task_id: str, resolved: TaskState, continuation: str | None, time_left: Callable[[], float]
    ) -> ReleaseReport:
        """Satisfy the edges of `task_id`'s dependents that its resolution satisfies, a page at a time."""
        return self._release([(task_id, resolved, continuation)], time_left)

    def release_all(self, resolved: Sequence[tuple[str, TaskState]], time_left: Callable[[], float]) -> list[str]:
        """Release the dependents of many resolutions (a stream batch's) together."""
        walks = [(task_id, state, None) for task_id, state in dict.fromkeys(resolved)]
        return self._release(walks, time_left).released

    def _release(
        self, walks: Sequence[tuple[str, TaskState, str | None]], time_left: Callable[[], float]
    ) -> ReleaseReport:
        """Walk the dependents of resolved tasks a page of each at a time; the edges of a round are
        satisfied in batches, each dependent among them is checked once, and those left with no
        requirement are read in batches and scheduled. A walk not done when time runs short is
        handed on to the release queue."""
        report = ReleaseReport()
        while walks:
            pages = self._map(lambda w: self.graph.dependents(w[0], RELEASE_PAGE, w[2]), walks)
            # e.g. all-completed and it failed: those dependents wait (or time out at their deadline)
            edges = [
                (dependent_id, link, task_id, dependencies == 1)
                for (task_id, resolved, _), (page, _) in zip(walks, pages, strict=True)
                for dependent_id, link, requires, dependencies in page
                if satisfies(resolved, requires)
            ]
            report.satisfied += len(edges)
            report.released += self._satisfy(edges)
            walks = [(w[0], w[1], cursor) for w, (_, cursor) in zip(walks, pages, strict=True) if cursor is not None]
            if walks and time_left() < RELEASE_MARGIN:
                self.releases.enqueue([{"taskId": t, "resolved": s.value, "continuation": c} for t, s, c in walks])
                report.continuation = walks[0][2]
                return report
        return report

    def _satisfy(self, edges: Sequence[tuple[str, str, str, bool]]) -> list[str]:
        """Satisfy (dependent, link, required, it is the dependent's only dependency) edges;
        schedule the dependents left with no requirement (asking only about those with others).
        Returns those scheduled. Every step is idempotent: a retried batch does no harm."""
        if not edges:
            return []
        self.graph.satisfy([(d, link, r) for d, link, r, _ in edges])
        dependents = list(dict.fromkeys((d, link) for d, link, _, _ in edges))
        sole = {(d, link) for d, link, _, only in edges if only}
        others = [e for e in dependents if e not in sole]
        left = self._map(self._has_requirements, others)
        free = sole | {e for e, blocked in zip(others, left, strict=True) if not blocked}
        unblocked = [e for e in dependents if e in free]
        found = self._read([d for d, _ in unblocked])
        # Not found: an edge of a createTask that failed. Another link: the edge of a request
        # that lost the race for that taskId, which the stored task does not depend on.
        ready = [found[d] for d, link in unblocked if d in found and found[d].link == link]
        scheduled = self._map(lambda t: self._schedule(t.task_id, t).changed, ready)
        return [t.task_id for t, changed in zip(ready, scheduled, strict=True) if changed]

    def recheck(self, task: Task) -> Task:
        """The sweeper's backstop for an unscheduled dependent: settle what a lost release missed."""
        remaining = self.graph.requirements(task.task_id, task.link)
        others = [d for d in remaining if d != task.task_id]
        found = self._read(others)
        done = [d for d in others if d in found and satisfied_by(found[d], task.definition["requires"])]
        if done:
            self.graph.satisfy([(task.task_id, task.link, d) for d in done])
        if set(remaining) - set(done):
            return task
        return self._schedule(task.task_id).task

    # --- listDependentTasks --------------------------------------------------------------------
    def dependents(self, task_id: str, limit: int, continuation: str | None) -> tuple[list[Task], str | None]:
        page, token = self.graph.dependents(task_id, limit, continuation)
        found = self.store.get_many([d for d, _, _, _ in page])
        return [found[d] for d, link, _, _ in page if d in found and found[d].link == link], token

    # --- plumbing ------------------------------------------------------------------------------
    def _has_requirements(self, edge: tuple[str, str]) -> bool:
        return bool(self.graph.requirements(edge[0], edge[1], limit=1))

    def _read(self, task_ids: Sequence[str]) -> dict[str, Task]:
        """Strongly consistent reads of tasks, in batches (those that do not exist are left out)."""
        chunks = [task_ids[i : i + BATCH_GET] for i in range(0, len(task_ids), BATCH_GET)]
        found: dict[str, Task] = {}
        for part in self._map(lambda ids: self.store.get_many(ids, consistent=True), chunks):
            found.update(part)
        return found

    def _map(self, fn: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
        """`fn` over `items` side by side (each is one independent request or chain of them)."""
        items = list(items)
        if len(items) <= 1:
            return [fn(i) for i in items]
        return list(self._pool.map(fn, items))


def _rounds(n: int) -> list[tuple[int, int]]:
    """createTask's dependency rounds: one read batch first, then LINK_ROUND at a time."""
    bounds = [0, *range(min(n, BATCH_GET), n, LINK_ROUND), n]
    return [(a, b) for a, b in itertools.pairwise(bounds) if a < b]
