"""The worker-manager API as a provisioned worker uses it, through the official taskcluster client:
`registerWorker` once at start (no credentials: the user data's registration token is the proof)
and `shouldWorkerTerminate` between tasks (with the credentials registration returned).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import taskcluster

from .user_data import UserData


@dataclass(frozen=True)
class Registration:
    credentials: dict[str, str] = field(repr=False)
    expires: datetime  # when the credentials stop working; the worker does not reregister
    worker_config: dict[str, Any] = field(default_factory=dict)


def _client(root_url: str, credentials: Mapping[str, str] | None, max_retries: int) -> Any:
    options: dict[str, Any] = {"rootUrl": root_url, "maxRetries": max_retries}
    if credentials:
        options["credentials"] = dict(credentials)
    return taskcluster.WorkerManager(options)


def register(user_data: UserData, worker_id: str, max_retries: int = 5) -> Registration:
    """POST /worker/register; raises the client's TaskclusterFailure when refused."""
    answer: dict[str, Any] = _client(user_data.root_url, None, max_retries).registerWorker(
        {
            "workerPoolId": user_data.worker_pool_id,
            "providerId": user_data.provider_id,
            "workerGroup": user_data.worker_group,
            "workerId": worker_id,
            "workerIdentityProof": {"registrationToken": user_data.registration_token},
        }
    )
    credentials = {k: str(v) for k, v in answer["credentials"].items() if v}
    return Registration(
        credentials=credentials,
        expires=datetime.fromisoformat(answer["expires"]),
        worker_config=dict(answer.get("workerConfig") or {}),
    )


class WorkerManagerCalls:
    def __init__(self, root_url: str, credentials: Mapping[str, str], max_retries: int = 5) -> None:
        self.client = _client(root_url, credentials, max_retries)

    def should_terminate(self, worker_pool_id: str, worker_group: str, worker_id: str) -> tuple[bool, str]:
        """GET /workers/<workerPoolId>/<workerGroup>/<workerId>/should-terminate: (terminate, reason)."""
        answer: dict[str, Any] = self.client.shouldWorkerTerminate(worker_pool_id, worker_group, worker_id)
        return bool(answer.get("terminate")), str(answer.get("reason") or "")
