"""claimWork honours the configured wait: on a deployed stage (TASKQUEUE_CLAIM_WORK_TIMEOUT 0, as
.chalice/config.json sets it) an empty claimWork does not wait at all, so Lambda bills only its
own work; the embedded stack's 20 s stays within API Gateway's 29 s with margin.

Asserted on what the queue service is asked to do (the wait it passes to the hint queues, what a
quarantined worker sleeps) and on the answers, never on wall time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from chalice.config import Config
from moto import mock_aws

from chalicelib.config import Settings
from chalicelib.domain.model import format_date
from chalicelib.handlers.work_api import API_GATEWAY_TIMEOUT
from tests.harness import TEST_SETTINGS, Harness

PROJECT = Path(__file__).resolve().parents[2]
CONFIG = json.loads((PROJECT / ".chalice" / "config.json").read_text())


def stage_settings(stage: str) -> Settings:
    """The API function's settings on `stage`, from its environment in .chalice/config.json."""
    env = Config(chalice_stage=stage, function_name="api_handler", config_from_disk=CONFIG).environment_variables
    return Settings.from_env(env or {})


class Recorded:
    """The waits claimWork asks of the hint queues, and what it sleeps."""

    def __init__(self, stack: Harness) -> None:
        self.receive_waits: list[float] = []
        self.sleeps: list[float] = []
        hints = stack.c.queue.hints
        receive = hints.receive

        def recording(task_queue_id: str, max_hints: int, wait_seconds: float) -> Any:
            self.receive_waits.append(wait_seconds)
            return receive(task_queue_id, max_hints, wait_seconds)

        hints.receive = recording  # type: ignore[method-assign]
        stack.c.queue._sleep = self.sleeps.append


def started(claim_work_timeout: float) -> Iterator[Harness]:
    with mock_aws():
        stack = Harness.start(replace(TEST_SETTINGS, claim_work_timeout=claim_work_timeout))
        try:
            yield stack
        finally:
            stack.stop()


@pytest.fixture
def deployed() -> Iterator[Harness]:
    """A stack whose claimWork waits as the dev stage's does."""
    yield from started(stage_settings("dev").claim_work_timeout)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_deployed_stages_configure_no_claim_work_wait(stage: str) -> None:
    assert stage_settings(stage).claim_work_timeout == 0.0
    assert Settings().claim_work_timeout == 20.0  # the embedded stack, where waiting is free


def test_an_empty_claim_work_on_a_deployed_stage_does_not_wait(deployed: Harness) -> None:
    seen = Recorded(deployed)
    deployed.create(taskQueueId="proj/other")  # the stage has hint queues; this task queue has nothing
    assert deployed.claim("proj/linux") == []
    assert seen.receive_waits == [0.0]  # one look at the hint queues, asking for no wait
    assert seen.sleeps == []


def test_a_pending_task_is_still_claimed_without_waiting(deployed: Harness) -> None:
    seen = Recorded(deployed)
    task_id = deployed.create()
    [claim] = deployed.claim()
    assert claim["status"]["taskId"] == task_id and claim["runId"] == 0
    assert seen.receive_waits == [0.0]
    assert deployed.status(task_id)["state"] == "running"


def test_a_quarantined_worker_on_a_deployed_stage_is_not_held(deployed: Harness) -> None:
    seen = Recorded(deployed)
    deployed.create()
    deployed.claim()
    deployed.pump.step()  # the stream records the worker
    until = format_date(deployed.clock.now() + timedelta(hours=1))
    r = deployed.call("PUT", "/provisioners/proj/worker-types/linux/workers/wg/w1", {"quarantineUntil": until})
    assert r.status_code == 200, r.body
    deployed.create()
    assert deployed.claim() == []
    assert seen.sleeps == [0.0]  # Taskcluster's "wait out the long poll", of a 0 s poll


@pytest.fixture
def embedded() -> Iterator[Harness]:
    """A stack whose claimWork waits as the embedded stack's does (the default, 20 s)."""
    yield from started(Settings().claim_work_timeout)


def test_the_embedded_stacks_long_poll_stays_within_api_gateways_timeout_with_margin(embedded: Harness) -> None:
    waits: list[float] = []

    def receive(task_queue_id: str, max_hints: int, wait_seconds: float) -> list[Any]:
        waits.append(wait_seconds)  # and nothing arrives, without waiting for real
        return []

    embedded.create(taskQueueId="proj/other")
    embedded.c.queue.hints.receive = receive  # type: ignore[method-assign]
    assert embedded.claim("proj/linux") == []
    [wait] = waits
    assert 15.0 < wait <= 20.0
    assert wait <= API_GATEWAY_TIMEOUT - 4.0  # 1 s to API Gateway's cut, 3 s for the claims
