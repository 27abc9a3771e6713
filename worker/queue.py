"""The queue API as the worker uses it, through the official taskcluster client (Hawk signing),
and uploads to the presigned URLs createArtifact hands out.

A `QueueCalls` is bound to one set of credentials: the worker's own for claiming, a claim's
temporary credentials (when the queue gives them) for everything about that run.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
import taskcluster
from taskcluster.exceptions import TaskclusterAuthFailure, TaskclusterFailure, TaskclusterRestFailure

UPLOAD_ATTEMPTS = 4
UPLOAD_TIMEOUT = 120.0


def status_code(error: BaseException) -> int | None:
    """The HTTP status of a failed API call (None: no answer at all)."""
    if isinstance(error, TaskclusterRestFailure | TaskclusterAuthFailure):
        return int(error.status_code)
    return None


def brief(error: BaseException) -> str:
    """An error on one log line: the client's messages run over several."""
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:297] + "..."


class QueueCalls:
    def __init__(self, root_url: str, credentials: Mapping[str, str], max_retries: int = 5) -> None:
        options: dict[str, Any] = {"rootUrl": root_url, "maxRetries": max_retries}
        if credentials:
            options["credentials"] = dict(credentials)
        self.root_url = root_url
        self.client = taskcluster.Queue(options)

    def with_credentials(self, credentials: Mapping[str, str] | None) -> QueueCalls:
        """Calls about one run: with the claim's temporary credentials when it carries them."""
        return QueueCalls(self.root_url, credentials, self.client.options["maxRetries"]) if credentials else self

    # --- claiming ------------------------------------------------------------------------------
    def claim_work(self, task_queue_id: str, worker_group: str, worker_id: str, tasks: int) -> list[dict[str, Any]]:
        body = {"workerGroup": worker_group, "workerId": worker_id, "tasks": tasks}
        answer: dict[str, Any] = self.client.claimWork(task_queue_id, body)
        return list(answer["tasks"])

    def claim_task(self, task_id: str, run_id: int, worker_group: str, worker_id: str) -> dict[str, Any]:
        claim: dict[str, Any] = self.client.claimTask(
            task_id, str(run_id), {"workerGroup": worker_group, "workerId": worker_id}
        )
        return claim

    def reclaim(self, task_id: str, run_id: int) -> dict[str, Any]:
        answer: dict[str, Any] = self.client.reclaimTask(task_id, str(run_id))
        return answer

    # --- resolving -----------------------------------------------------------------------------
    def report(self, task_id: str, run_id: int, resolution: str, reason: str | None) -> None:
        if resolution == "completed":
            self.client.reportCompleted(task_id, str(run_id))
        elif resolution == "failed":
            self.client.reportFailed(task_id, str(run_id))
        else:
            self.client.reportException(task_id, str(run_id), {"reason": reason})

    # --- artifacts -----------------------------------------------------------------------------
    def create_s3_artifact(
        self, task_id: str, run_id: int, name: str, expires: str, content_type: str, length: int | None = None
    ) -> dict[str, Any]:
        """createArtifact (s3): {putUrl, expires (of the URL), contentType}."""
        body: dict[str, Any] = {"storageType": "s3", "expires": expires, "contentType": content_type}
        if length is not None:
            body["contentLength"] = length
        answer: dict[str, Any] = self.client.createArtifact(task_id, str(run_id), name, body)
        return answer

    def create_error_artifact(
        self, task_id: str, run_id: int, name: str, expires: str, reason: str, message: str
    ) -> None:
        body = {"storageType": "error", "expires": expires, "reason": reason, "message": message[:4096]}
        self.client.createArtifact(task_id, str(run_id), name, body)


def upload(put_url: str, data: bytes | Path, content_type: str) -> None:
    """PUT the bytes (or a file's) to a presigned URL, retrying network errors and 5xx."""
    for attempt in range(UPLOAD_ATTEMPTS):
        try:
            if isinstance(data, Path):
                with data.open("rb") as f:
                    r = requests.put(put_url, data=f, headers={"Content-Type": content_type}, timeout=UPLOAD_TIMEOUT)
            else:
                r = requests.put(put_url, data=data, headers={"Content-Type": content_type}, timeout=UPLOAD_TIMEOUT)
        except requests.RequestException:
            if attempt == UPLOAD_ATTEMPTS - 1:
                raise
        else:
            if r.status_code < 500 or attempt == UPLOAD_ATTEMPTS - 1:
                r.raise_for_status()
                return
        time.sleep(0.5 * 2**attempt)


__all__ = ["QueueCalls", "TaskclusterFailure", "TaskclusterRestFailure", "brief", "status_code", "upload"]
