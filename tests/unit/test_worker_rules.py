"""The worker's decisions: exit status → what it reports, and when it reclaims."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker import rules
from worker.rules import Ending, Outcome

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ending", "code", "missing", "expected"),
    [
        (Ending.EXITED, 0, False, Outcome("completed")),
        (Ending.EXITED, 1, False, Outcome("failed")),
        (Ending.EXITED, None, False, Outcome("failed")),  # the command could not start
        (Ending.EXITED, 75, False, Outcome("exception", "intermittent-task")),
        (Ending.EXITED, 0, True, Outcome("failed")),  # a required artifact is missing
        (Ending.TIMED_OUT, None, False, Outcome("failed")),
        (Ending.SHUTDOWN, 0, False, Outcome("exception", "worker-shutdown")),
        (Ending.SHUTDOWN, 75, False, Outcome("exception", "worker-shutdown")),
        (Ending.CANCELLED, 0, False, Outcome("none")),
    ],
)
def test_how_a_run_ended_decides_what_is_reported(
    ending: Ending, code: int | None, missing: bool, expected: Outcome
) -> None:
    assert rules.outcome(ending, code, {75}, missing) == expected


def test_outcomes_read_as_taskcluster_writes_them() -> None:
    assert str(rules.exception("worker-shutdown")) == "exception/worker-shutdown"
    assert str(rules.COMPLETED) == "completed"


def test_reclaim_happens_at_half_the_time_left() -> None:
    assert rules.reclaim_delay(NOW + timedelta(minutes=20), NOW) == 600
    assert rules.reclaim_delay(NOW + timedelta(seconds=2), NOW) == 1


def test_reclaim_is_never_scheduled_in_the_past_or_in_a_tight_loop() -> None:
    assert rules.reclaim_delay(NOW - timedelta(seconds=5), NOW) == rules.MIN_RECLAIM_DELAY
    assert rules.reclaim_delay(NOW, NOW) == rules.MIN_RECLAIM_DELAY


def test_a_failed_reclaim_is_retried_soon_and_well_before_the_claim_ends() -> None:
    assert rules.retry_delay(NOW + timedelta(minutes=20), NOW) == 5
    assert rules.retry_delay(NOW + timedelta(seconds=8), NOW) == 2
    assert rules.retry_delay(NOW - timedelta(seconds=1), NOW) == rules.MIN_RECLAIM_DELAY
