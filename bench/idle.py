"""Idle CPU of the embedded stack, empty and with many tasks stored.

    .venv/bin/python -m bench.idle [--tasks 10000] [--seconds 10]

The stack runs in this process (the API and the event pump) and its AWS stand-in (moto) in a
child. Figures: CPU used (in cores: CPU seconds per second) by both over `--seconds` of idleness,
once on a fresh stack and once after `--tasks` pending tasks were stored (bulk puts, as
bench/graph.py loads graphs) and the pump delivered their stream records. An idle stack should use
next to nothing, however much it stores. Not part of `make bench`; `measure()` returns the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from taskcluster.utils import slugId

from chalicelib import container
from chalicelib.domain import transitions
from chalicelib.domain.definition import new_task
from chalicelib.local.stack import EmbeddedStack, free_port

from .graph import _bulk_tasks, _definition, _wait_idle

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (all its threads), from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # "pid (comm) state ...": comm may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def children(pid: int) -> list[int]:
    """The processes `pid` started (from /proc: the children of each of its threads; a thread that
    ends while they are listed is passed over)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def process_and_children_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its children (the embedded stack's: its stand-in)."""
    total = cpu_seconds(pid)
    for child in children(pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # a child that ended meanwhile
            total += cpu_seconds(child)
    return total


def stack_cpu_seconds(stack: EmbeddedStack) -> float:
    """CPU seconds used so far by the stack: this process (all its threads) and its stand-in's."""
    return time.process_time() + (cpu_seconds(stack.stand_in_pid) if stack.stand_in_pid is not None else 0.0)


def idle_cpu(stack: EmbeddedStack, seconds: float) -> dict[str, float]:
    """Cores used by the stack: the API and the pump (this process; the caller only sleeps) and the stand-in."""
    t0, cpu0 = time.monotonic(), stack_cpu_seconds(stack)
    time.sleep(seconds)
    return {"stack_cores": round((stack_cpu_seconds(stack) - cpu0) / (time.monotonic() - t0), 4)}


def store_pending(n: int, batch: int = 500) -> None:
    """Write `n` pending tasks of one task queue directly to the tasks table, `batch` per bulk put."""
    c = container.get()
    now = c.clock.now()
    tq, group = "bench/idle", slugId()
    for start in range(0, n, batch):
        ids = [slugId() for _ in range(min(batch, n - start))]
        _bulk_tasks(c).put_many([transitions.schedule(new_task(i, _definition(c, i, tq, group, [])), now) for i in ids])


def settle(stack: EmbeddedStack) -> None:
    """Until the pump is idle and every schedule ran once since (a first run loads the AWS clients'
    service models: start-up work, not idleness)."""
    _wait_idle(stack, time.monotonic())
    settings = container.get().settings
    time.sleep(max(settings.sweep_interval, settings.provision_interval) + 1)


def measure(tasks: int, seconds: float) -> dict[str, Any]:
    """Idle CPU of a fresh stack, then of the same stack once `tasks` pending tasks are stored."""
    stack = EmbeddedStack(port=free_port())
    stack.start()
    try:
        settle(stack)
        empty = idle_cpu(stack, seconds)
        t0 = time.monotonic()
        store_pending(tasks)
        settle(stack)
        return {
            "seconds": seconds,
            "sweep_interval_s": container.get().settings.sweep_interval,
            "empty": empty,
            "stored": {"tasks": tasks, "load_s": round(time.monotonic() - t0, 1), **idle_cpu(stack, seconds)},
        }
    finally:
        stack.stop()


def report(label: str, cpu: dict[str, Any]) -> None:
    print(f"  {label:28} {cpu['stack_cores']:.3f} cores (API, pump and stand-in)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="pending tasks stored (default 10000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measurement (default 10)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TASKQUEUE_ROOT_ACCESS_TOKEN", secrets.token_urlsafe(33))
    result = measure(args.tasks, args.seconds)
    print(f"idle CPU over {args.seconds:g} s (sweeper every {result['sweep_interval_s']:g} s):")
    report("fresh stack", result["empty"])
    report(f"{args.tasks} pending tasks stored", result["stored"])
    print(f"  (storing them and delivering their stream records took {result['stored']['load_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
