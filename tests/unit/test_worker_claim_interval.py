"""The reference worker in claim-work mode waits between empty claimWork answers.

A deployed stage answers claimWork at once (TASKQUEUE_CLAIM_WORK_TIMEOUT 0: waiting is billed on
Lambda), so it is the worker that keeps an idle worker's calls to one per `--claim-work-interval`
(5 s, as generic-worker). Driven with a fake clock and a stop event that records its waits: no
real sleeping, nothing asserted on wall time.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from worker.claiming import CLAIM_WORK_INTERVAL, ClaimWorkClaimer
from worker.cli import make_claimer
from worker.config import ConfigError, parse_config


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingStop(threading.Event):
    """The worker's stop event: `wait` advances the fake clock instead of sleeping."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        if not self.is_set():
            self.clock.now += timeout
        return self.is_set()


class ScriptedQueue:
    """claimWork answers from a script; each call takes `call_seconds` of the fake clock."""

    def __init__(self, clock: FakeClock, answers: list[list[dict[str, Any]]], call_seconds: float) -> None:
        self.clock, self.answers, self.call_seconds = clock, answers, call_seconds
        self.calls: list[float] = []  # clock() at each call's start

    def claim_work(self, task_queue_id: str, worker_group: str, worker_id: str, tasks: int) -> list[dict[str, Any]]:
        self.calls.append(self.clock.now)
        self.clock.now += self.call_seconds
        return self.answers.pop(0)


def claimer(queue: ScriptedQueue, clock: FakeClock, interval: float = CLAIM_WORK_INTERVAL) -> ClaimWorkClaimer:
    return ClaimWorkClaimer(queue, "proj/linux", "g", "w", interval, clock)  # type: ignore[arg-type]


def poll(c: ClaimWorkClaimer, stop: threading.Event, times: int) -> None:
    """What Worker._claim does with a claimer, `times` over."""
    for _ in range(times):
        offers = c.wait_for_work(1, stop)
        if not stop.is_set():
            c.take(offers, stop)


def test_after_an_empty_answer_the_next_claim_work_starts_an_interval_after_the_last_began() -> None:
    clock = FakeClock()
    stop = RecordingStop(clock)
    queue = ScriptedQueue(clock, [[], [], []], call_seconds=0.03)  # a stage that answers at once
    poll(claimer(queue, clock), stop, 3)
    assert [round(b - a, 6) for a, b in zip(queue.calls, queue.calls[1:], strict=False)] == [5.0, 5.0]
    assert [round(w, 6) for w in stop.waits] == [4.97, 4.97]


def test_a_queue_that_long_polls_longer_than_the_interval_adds_no_wait() -> None:
    clock = FakeClock()
    stop = RecordingStop(clock)
    queue = ScriptedQueue(clock, [[], [], []], call_seconds=20.0)  # Taskcluster's, the embedded stack's
    poll(claimer(queue, clock), stop, 3)
    assert stop.waits == []
    assert [b - a for a, b in zip(queue.calls, queue.calls[1:], strict=False)] == [20.0, 20.0]


def test_an_answer_with_tasks_is_followed_by_the_next_call_at_once() -> None:
    clock = FakeClock()
    stop = RecordingStop(clock)
    queue = ScriptedQueue(clock, [[{"task": 1}], [], []], call_seconds=0.03)
    poll(claimer(queue, clock), stop, 3)
    assert queue.calls[1] - queue.calls[0] == pytest.approx(0.03)  # no wait after a claim
    assert queue.calls[2] - queue.calls[1] == pytest.approx(5.0)  # after the empty one


def test_a_stop_during_the_wait_ends_it_and_no_claim_work_is_sent() -> None:
    clock = FakeClock()
    stop = RecordingStop(clock)
    queue = ScriptedQueue(clock, [[], []], call_seconds=0.03)
    c = claimer(queue, clock)
    poll(c, stop, 1)
    stop.set()
    poll(c, stop, 1)
    assert len(queue.calls) == 1
    assert stop.waits == [pytest.approx(4.97)]


def test_the_interval_is_a_flag_defaulting_to_generic_workers_5_s(tmp_path: Path) -> None:
    env = {"TASKCLUSTER_ROOT_URL": "http://127.0.0.1:1"}
    base = ["--provisioner-id", "p", "--worker-type", "t", "--claim-mode", "claim-work", "--work-dir", str(tmp_path)]
    config = parse_config(base, env)
    assert config.claim_work_interval == CLAIM_WORK_INTERVAL == 5.0
    made = make_claimer(parse_config([*base, "--claim-work-interval", "7.5"], env), None, None)  # type: ignore[arg-type]
    assert isinstance(made, ClaimWorkClaimer) and made.interval == 7.5
    with pytest.raises(ConfigError, match="--claim-work-interval"):
        parse_config([*base, "--claim-work-interval", "-1"], env)
