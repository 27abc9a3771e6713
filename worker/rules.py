"""The worker's pure decisions: when to reclaim, and what a run's ending reports.

Taskcluster's rules: non-zero exit of task code → failed;
an exit code listed in onExitStatus.retry → exception/intermittent-task; maxRunTime exceeded →
failed; a payload that does not validate → exception/malformed-payload; a worker shutting down →
exception/worker-shutdown (retried at once); a run cancelled by the queue → nothing to report.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

MIN_RECLAIM_DELAY = 0.2  # seconds: never hammer the API, even with very short claims


class Ending(StrEnum):
    """How the task code's run ended, as the worker saw it."""

    EXITED = "exited"  # every command ran; or one exited non-zero and the rest were skipped
    TIMED_OUT = "timed-out"  # maxRunTime exceeded: process tree killed
    CANCELLED = "cancelled"  # reclaim answered 409: the queue resolved the run
    SHUTDOWN = "shutdown"  # SIGTERM or spot interruption notice


@dataclass(frozen=True)
class Outcome:
    """What to report: "completed", "failed", "exception" (with a reason), or "none"."""

    resolution: str
    reason: str | None = None

    def __str__(self) -> str:
        return f"{self.resolution}/{self.reason}" if self.reason else self.resolution


COMPLETED = Outcome("completed")
FAILED = Outcome("failed")
NOTHING = Outcome("none")  # the queue already resolved the run (cancelled, deadline)


def exception(reason: str) -> Outcome:
    return Outcome("exception", reason)


def outcome(ending: Ending, exit_code: int | None, retry_codes: Collection[int], artifacts_missing: bool) -> Outcome:
    """The report for a run whose task code ran (or was stopped)."""
    if ending is Ending.CANCELLED:
        return NOTHING
    if ending is Ending.SHUTDOWN:
        return exception("worker-shutdown")
    if ending is Ending.TIMED_OUT:
        return FAILED
    if exit_code is not None and exit_code in retry_codes:
        return exception("intermittent-task")
    if exit_code != 0 or artifacts_missing:
        return FAILED
    return COMPLETED


def reclaim_delay(taken_until: datetime, now: datetime) -> float:
    """Seconds to wait before reclaiming: half of what is left of the claim (as docker-worker's
    reclaimDivisor 2), so one failed attempt still leaves time for another."""
    return max(MIN_RECLAIM_DELAY, (taken_until - now).total_seconds() / 2)


def retry_delay(taken_until: datetime, now: datetime) -> float:
    """After a failed reclaim (not a 409): try again soon, but well before the claim ends."""
    return max(MIN_RECLAIM_DELAY, min(5.0, (taken_until - now).total_seconds() / 4))
