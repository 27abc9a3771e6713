"""Artifacts on the embedded stack as users run it (`python -m chalicelib.local serve`): the bytes
really go to the AWS stand-in's S3 (the moto server, in its own process) through presigned URLs,
with plain HTTP, and come back through getArtifact's redirect and the official download helper.

The stack is this module's own (the `served` fixture of test_embedded_stack.py, module-scoped).
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import slugid
import taskcluster
import taskcluster.download
from taskcluster.exceptions import TaskclusterRestFailure

from tests.e2e import test_embedded_stack
from tests.e2e.test_embedded_stack import Served, claim, definition, iso

SIZE = 8 * 1024 * 1024  # bytes uploaded and downloaded over real HTTP
NAME = "public/build/hello world.bin"
served = test_embedded_stack.served  # the same module-scoped fixture: a stack of this module's own


def stand_in(served: Served) -> str:
    found = re.search(r"AWS stand-in: (http://127\.0\.0\.1:\d+)", served.text())
    assert found, served.text()
    return found.group(1)


def running_task(queue: taskcluster.Queue, task_queue_id: str) -> str:
    task_id: str = slugid.nice()
    queue.createTask(task_id, definition(task_queue_id))
    claim(queue, task_queue_id, task_id)
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
    assert answer["putUrl"].startswith(f"{stand_in(served)}/")  # a URL clients of this stack can reach
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
    assert content["url"].startswith(f"{stand_in(served)}/")
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
