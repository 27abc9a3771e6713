"""The live display of a task graph's progress, shared by `python -m taskqueue watch` and `make
run`'s demo: a table redrawn in place on a terminal, one plain line per change otherwise (CI=true,
TERM=dumb, or output not a terminal). Pure text from the queue's task statuses."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

FINAL = ("completed", "failed", "exception")


def fancy_output(stream: TextIO) -> bool:
    """Redraw in place only on a real terminal, and never in CI."""
    return (
        stream.isatty() and os.environ.get("CI", "").lower() not in ("1", "true") and os.environ.get("TERM") != "dumb"
    )


@dataclass
class Progress:
    """ids: the tasks shown, label -> taskId (labels may be added while it runs); `pool`: show the
    pool's workers and why its tasks wait (make run's demo)."""

    ids: dict[str, str]
    out: TextIO
    fancy: bool
    pool: bool = True
    started: float = field(default_factory=time.monotonic)
    states: dict[str, str] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    last: dict[str, str] = field(default_factory=dict)  # label -> its runs (and note), as shown
    workers: dict[str, str] = field(default_factory=dict)  # the pool's workers: id -> state
    waiting: str = ""  # why tasks of the pool wait, as last shown ("" when none does)
    _drawn: int = 0

    def done(self) -> int:
        return sum(1 for s in self.states.values() if s in FINAL)

    def live_workers(self) -> list[str]:
        return [w for w, state in self.workers.items() if state != "stopped"]

    def width(self) -> int:
        return max([7, *map(len, self.ids)])

    def bar(self, width: int = 30) -> str:
        n = len(self.ids)
        filled = width * self.done() // n if n else 0
        return (
            f"[{'#' * filled}{'.' * (width - filled)}] {self.done()}/{n} done  {time.monotonic() - self.started:5.1f}s"
        )

    def update(
        self,
        statuses: dict[str, dict[str, Any]],
        workers: dict[str, str],
        waiting: str = "",
        notes: dict[str, str] | None = None,
    ) -> None:
        """statuses: taskId -> status; notes: taskId -> a remark shown after its runs."""
        lines = []
        for worker_id, state in workers.items():
            if state != self.workers.get(worker_id):
                lines.append(f"worker  {worker_id} {self.workers.get(worker_id, '-')} -> {state}")
                self.workers[worker_id] = state
        if self.pool and waiting != self.waiting:
            lines.append(f"pool    {waiting or 'no task waiting'}")
            self.waiting = waiting
        width = self.width()
        for name, task_id in self.ids.items():
            status = statuses.get(task_id)
            if status is None:
                continue
            state, runs = status["state"], len(status["runs"])
            shown = run_summary(status) + (f"  ({notes[task_id]})" if notes and task_id in notes else "")
            if (state, runs, shown) != (self.states.get(name), self.runs.get(name), self.last.get(name)):
                lines.append(f"{name:{width}} {self.states.get(name, '-'):>11} -> {state}{shown}")
                self.states[name], self.runs[name], self.last[name] = state, runs, shown
        if self.fancy:
            self._draw()  # on every poll: the clock moves
            return
        if lines:
            for line in lines:
                print(f"{time.monotonic() - self.started:6.1f}s  {line}", file=self.out, flush=True)
            if self.ids:
                print(f"{'':8}{self.bar()}", file=self.out, flush=True)

    def _draw(self) -> None:
        width = self.width()
        rows = [f"  {name:{width}} {self.states.get(name, '-'):11}{self.last.get(name, '')}" for name in self.ids]
        room = max(shutil.get_terminal_size().lines - 5, 3)
        if len(rows) > room:  # the unfinished first; the rest summed up
            unfinished = [r for r, n in zip(rows, self.ids, strict=True) if self.states.get(n) not in FINAL]
            rows = [*unfinished[: room - 1], f"  ... and {len(rows) - min(len(unfinished), room - 1)} more"]
        lines = rows
        if self.pool:
            live = self.live_workers()
            lines.append(f"  workers {len(live)}: {', '.join(f'{w} {self.workers[w]}' for w in live) or '-'}")
            lines.append(f"  pool    {self.waiting or 'no task waiting'}")
        lines.append(f"  {self.bar()}")
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F")
        for line in lines:
            self.out.write(f"\x1b[2K{line}\n")
        self.out.write("\x1b[J")  # anything left below from a longer table
        self.out.flush()
        self._drawn = len(lines)


def run_summary(status: dict[str, Any]) -> str:
    """E.g. "  run 1 on local-0a1b2c3d (run 0: exception/intermittent-task)": the latest run, then earlier ones."""
    runs = status["runs"]
    if not runs:
        return ""
    latest = runs[-1]
    text = f"  run {latest['runId']}"
    if latest.get("workerId") and latest["state"] == "running":
        text += f" on {latest['workerId']}"
    elif latest.get("reasonResolved") not in (None, latest["state"]):
        text += f" ({latest['reasonResolved']})"
    earlier = [f"run {r['runId']}: {r['state']}/{r.get('reasonResolved')}" for r in runs[:-1]]
    return text + (f" ({', '.join(earlier)})" if earlier else "")
