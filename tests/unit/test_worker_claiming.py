"""The reference worker's sqs claiming against moto's SQS: a stopping worker starts no new receive,
gives back every hint it received but did not claim (those a long poll brings after the stop too),
and says when no dispatch queue matches its prefix.

The worker runs for real (`Worker.run` in a thread); the queue API is a stand-in that must not be
called. Waits are bounded event waits; nothing asserts on durations.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.domain.dispatch import Hint, queue_name
from worker import claiming
from worker.claiming import NO_QUEUE_WARN_EVERY, SqsClaimer
from worker.config import Config
from worker.queue import QueueCalls
from worker.worker import Worker

TASK_QUEUE = "proj/linux"
PREFIX = "taskqueue-"
WAIT = 10.0  # bound on any one wait


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def hint_queue(sqs: Any, priority: str, prefix: str = PREFIX) -> str:
    name = queue_name(prefix, TASK_QUEUE, priority)
    url: str = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    return url


def visible_now(sqs: Any, url: str) -> list[tuple[str, str]]:
    """(body, ApproximateReceiveCount) of what a receive gets at once."""
    got = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["ApproximateReceiveCount"]
    ).get("Messages", [])
    return [(m["Body"], m["Attributes"]["ApproximateReceiveCount"]) for m in got]


class RecordingSqs:
    """The SQS client, noting each receive: when one that waits is in flight, and any started while stopping."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.stopping = threading.Event()  # the worker's, once it exists
        self.polling = threading.Event()  # a receive that waits has started
        self.polled = threading.Event()  # ... and has returned
        self.poller: threading.Thread | None = None  # the thread that made it
        self.started_while_stopping = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def receive_message(self, **kwargs: Any) -> Any:
        self.started_while_stopping += self.stopping.is_set()
        waits = kwargs.get("WaitTimeSeconds", 0) > 0
        if waits:
            self.poller = threading.current_thread()
            self.polling.set()
        try:
            return self._client.receive_message(**kwargs)
        finally:
            if waits:
                self.polled.set()


class StubQueue(QueueCalls):
    """claimTask answers with a bare claim; `on_claim` runs first."""

    def __init__(self, on_claim: Any = None) -> None:
        super().__init__("http://127.0.0.1:1", {})
        self.claimed: list[tuple[str, int]] = []
        self.on_claim = on_claim

    def claim_task(self, task_id: str, run_id: int, worker_group: str, worker_id: str) -> dict[str, Any]:
        self.claimed.append((task_id, run_id))
        if self.on_claim is not None:
            self.on_claim()
        return {"status": {"taskId": task_id}, "runId": run_id}


class Logged(logging.Handler):
    """What the worker logs at `level` and above; `said` is set once a message starts with `awaited`."""

    def __init__(self, level: int, awaited: str = "") -> None:
        super().__init__(level)
        self.messages: list[str] = []
        self.awaited, self.said = awaited, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        if self.awaited and self.messages[-1].startswith(self.awaited):
            self.said.set()


@contextlib.contextmanager
def logged(level: int, awaited: str = "") -> Iterator[Logged]:
    handler, logger = Logged(level, awaited), logging.getLogger("worker")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def sqs_worker(sqs: Any, tmp_path: Path, poll: int) -> tuple[Worker, RecordingSqs, StubQueue]:
    config = Config("http://127.0.0.1:1", "proj", "linux", "g", "w", work_dir=tmp_path, poll_seconds=poll)
    recording, queue = RecordingSqs(sqs), StubQueue()
    claimer = SqsClaimer(recording, PREFIX, TASK_QUEUE, queue, "g", "w", poll)
    worker = Worker(config, queue, claimer)
    recording.stopping = worker.stopping
    return worker, recording, queue


def eventually(check: Callable[[], bool]) -> bool:
    """Whether `check` holds within WAIT seconds (looked at every 50 ms)."""
    end = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def start(worker: Worker) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(worker.run()), daemon=True)
    thread.start()
    return thread, result


# --- stopping ---------------------------------------------------------------------------------------
def test_a_hint_brought_by_a_long_poll_in_flight_at_the_stop_is_visible_again_at_once(sqs: Any, tmp_path: Path) -> None:
    url = hint_queue(sqs, "lowest")
    worker, recording, queue = sqs_worker(sqs, tmp_path, poll=20)
    with logged(logging.INFO, awaited="waiting-for-poll-in-flight") as log:
        thread, result = start(worker)
        assert recording.polling.wait(WAIT), "the worker never long-polled"

        worker.stop("sigterm")
        # Once the worker has done all else its stop asks (or has returned, as it used to), a run
        # becomes pending: the poll, still in flight, gets its hint.
        assert eventually(lambda: log.said.is_set() or not thread.is_alive())
        hint = Hint("task-1", 0, TASK_QUEUE, "lowest")
        sqs.send_message(QueueUrl=url, MessageBody=hint.body())
        assert recording.polled.wait(WAIT)
        thread.join(WAIT)
    assert result == [0]

    # Received once by the stopped worker, given back: the next receive gets it now, not in 30 s.
    assert visible_now(sqs, url) == [(hint.body(), "2")]
    assert queue.claimed == [] and recording.started_while_stopping == 0


def test_a_stopped_worker_starts_no_new_receive(sqs: Any, tmp_path: Path) -> None:
    # Two priorities in use: the worker waits on each in turn (1 s each), highest first.
    hint_queue(sqs, "high")
    lowest = hint_queue(sqs, "lowest")
    worker, recording, _ = sqs_worker(sqs, tmp_path, poll=20)
    thread, result = start(worker)
    assert recording.polling.wait(WAIT), "the worker never waited on a hint queue"

    worker.stop("sigterm")
    thread.join(WAIT)
    assert result == [0]
    # Nothing polls on behind the worker's back once it is done, and nothing polled after the stop.
    assert recording.poller is not None and not recording.poller.is_alive()
    assert recording.started_while_stopping == 0
    hint = Hint("task-2", 0, TASK_QUEUE, "lowest")
    sqs.send_message(QueueUrl=lowest, MessageBody=hint.body())
    assert visible_now(sqs, lowest) == [(hint.body(), "1")]  # nobody took it meanwhile


def test_claiming_stops_between_hints_and_the_rest_go_back(sqs: Any) -> None:
    url = hint_queue(sqs, "lowest")
    hints = [Hint(f"task-{n}", 0, TASK_QUEUE, "lowest") for n in range(3)]
    for h in hints:
        sqs.send_message(QueueUrl=url, MessageBody=h.body())
    stop = threading.Event()
    queue = StubQueue(on_claim=stop.set)  # the stop comes while the first claim is made
    claimer = SqsClaimer(sqs, PREFIX, TASK_QUEUE, queue, "g", "w", 1)

    offers = claimer.wait_for_work(3, stop)
    assert len(offers) == 3
    claims = claimer.take(offers, stop)

    assert [(c["status"]["taskId"], c["runId"]) for c in claims] == queue.claimed
    assert len(claims) == 1
    unclaimed = sorted(h.body() for h in hints if h.task_id != claims[0]["status"]["taskId"])
    assert sorted(visible_now(sqs, url)) == [(body, "2") for body in unclaimed]


# --- no dispatch queue ----------------------------------------------------------------------------
def test_no_dispatch_queue_for_the_prefix_is_warned_about_once_and_then_now_and_then(
    sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(claiming, "NO_QUEUE_WAIT", 0.0)
    hint_queue(sqs, "lowest")  # the stack's prefix; the worker was given another
    now = [1000.0]
    claimer = SqsClaimer(sqs, "nosuch-", TASK_QUEUE, StubQueue(), "g", "w", 1, clock=lambda: now[0])
    stop = threading.Event()

    with logged(logging.WARNING) as warnings:
        for _ in range(3):
            now[0] += 1
            assert claimer.wait_for_work(1, stop) == []
        assert warnings.messages == [
            "no-dispatch-queue prefix=nosuch- region=us-east-1 task_queue=proj/linux looked_for=nosuch-proj_linux_* "
            "(the queue makes one with this task queue's first task: if tasks are pending, check --queue-prefix "
            "and the region)"
        ]
        now[0] += NO_QUEUE_WARN_EVERY
        claimer.wait_for_work(1, stop)
        assert len(warnings.messages) == 2

        hint_queue(sqs, "lowest", prefix="nosuch-")  # the first task came: quiet from now on
        now[0] += NO_QUEUE_WARN_EVERY
        claimer.wait_for_work(1, stop)
        assert len(warnings.messages) == 2


# --- a run claimed again ----------------------------------------------------------------------------
class TwiceClaimer:
    """Brings the same claims every time: a hint delivered twice, answered with the same claim."""

    def __init__(self, claims: list[dict[str, Any]]) -> None:
        self.claims = claims

    def wait_for_work(self, wanted: int, stop: threading.Event) -> list[Any]:
        return [object()]

    def take(self, offers: list[Any], stop: threading.Event) -> list[dict[str, Any]]:
        return list(self.claims)

    def release(self, offers: list[Any]) -> None:
        pass


class StartRecorder(Worker):
    """Records the runs it would start, as running ones (no task code runs)."""

    def _start(self, claim: dict[str, Any]) -> None:
        run = SimpleNamespace(task_id=claim["status"]["taskId"], run_id=int(claim["runId"]))
        self._runs[threading.Thread()] = run  # type: ignore[assignment]


def test_a_run_claimed_twice_is_started_once(tmp_path: Path) -> None:
    """Two hints of one run (at-least-once delivery) bring the same claim twice, in one round or in
    two: the worker runs it once (two copies would share one work directory and log)."""
    config = Config("http://127.0.0.1:1", "proj", "linux", "g", "w", work_dir=tmp_path, capacity=4)
    claim = {"status": {"taskId": "t1"}, "runId": 0}
    other = {"status": {"taskId": "t1"}, "runId": 1}
    worker = StartRecorder(config, StubQueue(), TwiceClaimer([claim, claim, other]))
    with logged(logging.INFO) as log:
        assert worker._claim(4) == 2
        assert worker._claim(4) == 0
    assert sorted((r.task_id, r.run_id) for r in worker._runs.values()) == [("t1", 0), ("t1", 1)]
    assert sum(m.startswith("claimed-again task=t1 run=0") for m in log.messages) == 3  # 1, then 2
