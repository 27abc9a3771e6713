"""The embedded stack as a user runs it: `python -m chalicelib.local serve` in its own process.

One stack serves the whole file (module-scoped fixture, always stopped at the end). The official
`taskcluster` client talks to it over HTTP with the real clock; claims last 2 s and the sweeper
ticks every 0.2 s, so claim expiry and deadlines happen within seconds. Anything time-driven is
awaited by polling with a bound, never by a fixed sleep, and no test asserts on durations.

Artifacts: the bytes really go to the AWS stand-in's S3 (the moto server, in its own process, which
checks presigned signatures, as in-process moto does not) through presigned URLs, with plain HTTP,
and come back through getArtifact's redirect and the official download helper.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import slugid
import taskcluster
import taskcluster.download
import taskcluster.exceptions
from taskcluster.exceptions import TaskclusterRestFailure

from tests.harness import (
    E2E_ENV,
    EXIT_TIMEOUT,
    Served,
    alive,
    answers,
    claim_when_handed_out,
    eventually,
    iso,
    runs,
    serving,
    status_when,
    task_def_now,
)

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
SIZE = 8 * 1024 * 1024  # bytes of an artifact uploaded and downloaded over real HTTP
NAME = "public/build/hello world.bin"


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving(E2E_ENV) as s:
        yield s


# --- tests (in file order: the last one stops the stack) ------------------------------------------
def test_serve_prints_its_root_url_and_answers_ping(served: Served) -> None:
    eventually(lambda: f"root URL:  {served.root_url}" in served.text(), 10, "the root URL on stdout")
    result = served.queue().ping()
    assert result["alive"] is True


def test_without_credentials_curl_reads_and_creates_sandbox_tasks_only(served: Served) -> None:
    """The embedded stack's anonymous role: plain HTTP (no Hawk) may create on sandbox/*, read anything."""
    task_id = slugid.nice()
    url = f"{served.root_url}/api/queue/v1/task/{task_id}"
    created = requests.put(url, json=task_def_now("sandbox/curl"), timeout=30)
    assert created.status_code == 200, created.text
    assert requests.get(f"{url}/status", timeout=30).json()["status"]["state"] == "pending"
    refused = requests.put(
        f"{served.root_url}/api/queue/v1/task/{slugid.nice()}", json=task_def_now("e2e/x"), timeout=30
    )
    assert refused.status_code == 403 and refused.json()["code"] == "InsufficientScopes"
    wrong = served.queue()
    wrong.options["credentials"] = {"clientId": "root", "accessToken": "not-the-token"}
    with pytest.raises(taskcluster.exceptions.TaskclusterAuthFailure):
        wrong.status(task_id)


def test_task_is_claimed_reclaimed_and_completed(served: Served) -> None:
    queue = served.queue()
    task_id = slugid.nice()
    status = queue.createTask(task_id, task_def_now("e2e/lifecycle"))["status"]
    assert (status["state"], runs(status)) == ("pending", [(0, "pending", "scheduled", None)])

    claimed = claim_when_handed_out(queue, "e2e/lifecycle", task_id)
    assert (claimed["runId"], claimed["workerGroup"], claimed["workerId"]) == (0, "e2e", "w1")
    assert claimed["task"] == queue.task(task_id)
    assert DATE.match(claimed["takenUntil"])

    reclaimed = queue.reclaimTask(task_id, 0)
    assert (reclaimed["runId"], reclaimed["workerId"], reclaimed["status"]["state"]) == (0, "w1", "running")
    assert reclaimed["takenUntil"] >= claimed["takenUntil"]  # a lease never moves backwards (same format)

    status = queue.reportCompleted(task_id, 0)["status"]
    assert (status["state"], runs(status)) == ("completed", [(0, "completed", "scheduled", "completed")])
    assert queue.status(task_id) == {"status": status}


def test_an_unreclaimed_claim_expires_and_the_task_is_retried(served: Served) -> None:
    queue = served.queue()
    task_id = slugid.nice()
    queue.createTask(task_id, task_def_now("e2e/expiry"))
    claimed = claim_when_handed_out(queue, "e2e/expiry", task_id)
    assert claimed["runId"] == 0

    status = status_when(queue, task_id, lambda s: s["runs"][0]["state"] != "running", "the claim to expire")
    assert status["state"] == "pending"
    assert runs(status) == [(0, "exception", "scheduled", "claim-expired"), (1, "pending", "retry", None)]
    assert status["retriesLeft"] == 4
    assert status["runs"][0]["takenUntil"] == claimed["takenUntil"]
    queue.cancelTask(task_id)  # nobody will claim the retry


def test_a_task_never_claimed_is_resolved_at_its_deadline(served: Served) -> None:
    queue = served.queue()
    task_id = slugid.nice()
    queue.createTask(task_id, task_def_now("e2e/deadline", deadline_in=timedelta(seconds=3)))

    status = status_when(queue, task_id, lambda s: s["state"] != "pending", "the deadline to pass")
    assert status["state"] == "exception"
    assert runs(status) == [(0, "exception", "scheduled", "deadline-exceeded")]
    assert DATE.match(status["runs"][0]["resolved"])


# --- artifacts -------------------------------------------------------------------------------------
def running_task(queue: taskcluster.Queue, task_queue_id: str) -> str:
    task_id: str = slugid.nice()
    queue.createTask(task_id, task_def_now(task_queue_id))
    claim_when_handed_out(queue, task_queue_id, task_id)
    return task_id


def s3_body(content_type: str, size: int) -> dict[str, Any]:
    expires = iso(datetime.now(UTC) + timedelta(days=1))
    return {"storageType": "s3", "expires": expires, "contentType": content_type, "contentLength": size}


@pytest.fixture(scope="module")
def uploaded(served: Served) -> tuple[str, bytes]:
    """A task whose run 0 has NAME uploaded through its presigned PUT URL."""
    queue = served.queue()
    task_id = running_task(queue, "e2e/artifacts")
    data = os.urandom(SIZE)
    answer = queue.createArtifact(task_id, "0", NAME, s3_body("application/octet-stream", SIZE))
    assert answer["putUrl"].startswith(f"{served.aws_endpoint}/")  # a URL clients of this stack can reach
    put = requests.put(answer["putUrl"], data=data, headers={"Content-Type": "application/octet-stream"}, timeout=60)
    assert put.status_code == 200, put.text
    return task_id, data


def test_a_plain_http_get_with_raw_slashes_follows_the_redirect_to_the_bytes(
    served: Served,
    uploaded: tuple[str, bytes],
) -> None:
    task_id, data = uploaded
    url = f"{served.root_url}/api/queue/v1/task/{task_id}/runs/0/artifacts/{NAME.replace(' ', '%20')}"
    r = requests.get(url, timeout=60)  # follows the 303, as curl -L or a browser would
    assert [h.status_code for h in r.history] == [303]
    assert r.history[0].headers["x-taskcluster-artifact-storage-type"] == "s3"
    assert r.status_code == 200
    assert hashlib.sha256(r.content).digest() == hashlib.sha256(data).digest()


def test_the_official_download_helper_gets_the_same_bytes(served: Served, uploaded: tuple[str, bytes]) -> None:
    task_id, data = uploaded
    buf, content_type = taskcluster.download.downloadArtifactToBuf(
        taskId=task_id, name=NAME, queueService=served.queue()
    )
    assert content_type == "application/octet-stream"
    assert bytes(buf) == data


def test_an_artifact_never_uploaded_downloads_as_s3s_404(served: Served) -> None:
    queue = served.queue()
    task_id = running_task(queue, "e2e/artifacts-missing")
    queue.createArtifact(task_id, "0", "private/never.json", s3_body("application/json", 2))
    content = queue.artifact(task_id, "0", "private/never.json")
    assert content["url"].startswith(f"{served.aws_endpoint}/")
    assert requests.get(content["url"], timeout=30).status_code == 404


def test_a_name_escaped_in_its_s3_key_round_trips_through_the_stand_ins_signature_checks(served: Served) -> None:
    # `%` is escaped in the key (%25), and the key again in the presigned URL: both signatures hold.
    queue = served.queue()
    task_id = running_task(queue, "e2e/artifacts-escaped")
    name = "public/100%/.../a b+c.txt"
    answer = queue.createArtifact(task_id, "0", name, s3_body("text/plain", 5))
    assert "/public/100%2525/%252E%252E%252E/a%20b%2Bc.txt?" in answer["putUrl"]
    put = requests.put(answer["putUrl"], data=b"hello", headers={"Content-Type": "text/plain"}, timeout=30)
    assert put.status_code == 200, put.text
    buf, _ = taskcluster.download.downloadArtifactToBuf(taskId=task_id, name=name, queueService=queue)
    assert bytes(buf) == b"hello"


def test_a_traversal_name_is_refused_by_the_embedded_stack(served: Served) -> None:
    queue = served.queue()
    task_id = running_task(queue, "e2e/artifacts-traversal")
    for name in ("public/../../x", "public/%2E%2E/x", "public\\..\\x", "public//x"):
        with pytest.raises(TaskclusterRestFailure) as failure:
            queue.createArtifact(task_id, "0", name, s3_body("text/plain", 1))
        assert failure.value.status_code == 400, name
    assert queue.listArtifacts(task_id, "0")["artifacts"] == []


# --- last: stopping the stack -------------------------------------------------------------------------
def test_sigterm_stops_the_stack_and_its_stand_in(served: Served) -> None:
    stand_in = f"{served.aws_endpoint}/moto-api/"
    assert answers(stand_in), f"the stand-in does not answer at {stand_in}"

    served.proc.send_signal(signal.SIGTERM)
    try:
        returncode = served.proc.wait(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the stack did not exit within {EXIT_TIMEOUT:.0f}s of SIGTERM:\n{served.text()}")
    assert returncode == 0, served.text()

    assert not answers(stand_in), f"the stand-in still answers at {stand_in}"
    assert not [pid for pid, cmd in served.children.items() if alive(pid, cmd)], served.children
    # Nothing the stack started still holds its stdout: the output reaches its end.
    assert served.reader is not None
    served.reader.join(timeout=5)
    assert not served.reader.is_alive()
    assert "stopped" in served.text()
