"""Stopping the reference worker while it waits for work, against the embedded stack: a stop costs
a task at most one run, and leaves no hint hidden from other workers.

The module has its own stack, whose claimWork long-polls 10 s (test_worker.py's polls 2 s): a
SIGTERM then surely comes while one is in flight, and the retry it causes is hinted before that
poll ends. Waits are bounded polls; nothing asserts on durations.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from chalicelib.domain.dispatch import queue_name
from tests.harness import (
    WORKER_ENV,
    WORKER_EXIT,
    WORKER_PROVISIONER,
    WORKER_WAIT,
    Served,
    WorkerProc,
    create_for_worker,
    eventually,
    log_showing,
    no_process,
    resolved,
    runs,
    serving,
    sleeper,
    worker_starter,
)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving({**WORKER_ENV, "TASKQUEUE_CLAIM_WORK_TIMEOUT": "10"}) as s:
        yield s


@pytest.fixture(scope="module")
def start_worker(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., WorkerProc]]:
    with worker_starter(served, tmp_path_factory) as start:
        yield start


def stand_in_sqs(served: Served) -> Any:
    """An SQS client on the stack's AWS stand-in, as a second worker would have."""
    return boto3.client(
        "sqs",
        endpoint_url=served.aws_endpoint,
        region_name="us-east-1",
        aws_access_key_id="embedded",
        aws_secret_access_key="embedded",
    )


def wait_for_exit(worker: WorkerProc) -> None:
    """The worker, signalled already, exits 0 (a second signal could land in its interpreter's exit)."""
    try:
        assert worker.proc.wait(timeout=WORKER_EXIT) == 0, worker.log()
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not exit within {WORKER_EXIT:.0f}s:\n{worker.log()}")


def test_sigterm_while_claim_work_is_in_flight_costs_the_running_task_one_run(
    served: Served, start_worker: Callable[..., WorkerProc]
) -> None:
    # Two slots, one task: while it runs, the worker's claimWork for the other slot is in flight.
    worker = start_worker("cw-stop", "--claim-mode", "claim-work", "--capacity", "2")
    marker = 7411 + os.getpid() % 100
    task_id = create_for_worker(served, "cw-stop", {"command": sleeper(marker), "maxRunTime": 120})
    log_showing(served, task_id, "started\n", worker)

    assert worker.stop(signal.SIGTERM) == 0, worker.log()

    # Run 1 became pending only after that claimWork returned: this worker never claimed it.
    status = served.queue().status(task_id)["status"]
    assert runs(status) == [(0, "exception", "scheduled", "worker-shutdown"), (1, "pending", "retry", None)]
    assert "waiting-for-claim-in-flight" in worker.log()
    assert "stopped: worker shutting down" in log_showing(served, task_id, "result:", worker)
    assert no_process(f"sleep {marker}")
    served.queue().cancelTask(task_id)


def test_a_task_that_claim_work_in_flight_brings_after_a_sigterm_is_given_back_unrun(
    served: Served, start_worker: Callable[..., WorkerProc]
) -> None:
    worker = start_worker("cw-late", "--claim-mode", "claim-work")
    first = create_for_worker(served, "cw-late", {"command": [["true"]], "maxRunTime": 60})
    assert runs(resolved(served, first, worker)) == [(0, "completed", "scheduled", "completed")]
    # Idle now: its next claimWork is in flight once it says so (the second "worker-idle").
    eventually(lambda: worker.log().count("worker-idle") == 2 or None, WORKER_EXIT, "the worker idle again")

    worker.proc.send_signal(signal.SIGTERM)
    # That claimWork takes it:
    task_id = create_for_worker(served, "cw-late", {"command": [["echo", "ran"]], "maxRunTime": 60})
    wait_for_exit(worker)

    # The queue claimed it for the worker before answering: reported worker-shutdown at once, never run.
    status = served.queue().status(task_id)["status"]
    assert runs(status) == [(0, "exception", "scheduled", "worker-shutdown"), (1, "pending", "retry", None)]
    assert "waiting-for-claim-in-flight" in worker.log()
    log = log_showing(served, task_id, "result:", worker)
    assert "command 1/1" not in log and "ran\n" not in log
    served.queue().cancelTask(task_id)


def test_sigterm_during_an_sqs_long_poll_gives_back_the_hint_it_brings(
    served: Served, start_worker: Callable[..., WorkerProc]
) -> None:
    worker = start_worker("sqs-stop", "--poll-seconds", "10")
    first = create_for_worker(served, "sqs-stop", {"command": [["true"]], "maxRunTime": 60})
    assert runs(resolved(served, first, worker)) == [(0, "completed", "scheduled", "completed")]
    # Its hint queue exists now, and the worker long-polls it.

    worker.proc.send_signal(signal.SIGTERM)
    # Hinted during that poll:
    task_id = create_for_worker(served, "sqs-stop", {"command": [["true"]], "maxRunTime": 60})
    wait_for_exit(worker)
    # Nearly always the poll was in flight and brought the hint (if the SIGTERM came first, the
    # worker never received it: then it was never hidden either).
    released = "hints-released count=1" in worker.log()

    # The stopped worker gave the hint back: the next receive gets it at once, not after its 30 s
    # of visibility timeout.
    sqs = stand_in_sqs(served)
    url = sqs.get_queue_url(QueueName=queue_name("taskqueue-", f"{WORKER_PROVISIONER}/sqs-stop", "lowest"))["QueueUrl"]
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0, AttributeNames=["ApproximateReceiveCount"])
    messages = got.get("Messages", [])
    assert [(json.loads(m["Body"])["taskId"], m["Attributes"]["ApproximateReceiveCount"]) for m in messages] == [
        (task_id, "2" if released else "1")
    ]

    # Given back once more, the hint brings a fresh worker at once.
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"], VisibilityTimeout=0)
    other = start_worker("sqs-stop-2", "--worker-type", "sqs-stop")  # the worker id stays sqs-stop-2
    status = resolved(served, task_id, other)
    assert runs(status) == [(0, "completed", "scheduled", "completed")]
    assert status["runs"][0]["workerId"] == "sqs-stop-2"
    assert other.stop() == 0, other.log()


def test_an_sqs_worker_names_its_prefix_and_region_and_warns_when_no_queue_matches(
    served: Served, start_worker: Callable[..., WorkerProc]
) -> None:
    worker = start_worker("prefix", "--queue-prefix", "nosuch-")
    eventually(lambda: "no-dispatch-queue" in worker.log(), WORKER_WAIT, f"the warning; worker log:\n{worker.log()}")
    log = worker.log()
    assert "claim_mode=sqs queue_prefix=nosuch- region=us-east-1 " in log
    assert f"no-dispatch-queue prefix=nosuch- region=us-east-1 task_queue={WORKER_PROVISIONER}/prefix " in log
    assert f"looked_for=nosuch-{WORKER_PROVISIONER}_prefix_*" in log
    assert worker.stop() == 0, worker.log()
