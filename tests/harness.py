"""The in-process stack a functional test drives: HTTP through Chalice's test client (or a
real local HTTP server for the official client), the event pump as a step helper, a FakeClock."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import boto3
import mohawk
import mohawk.base
import slugid
from chalice.config import Config
from chalice.local import LocalDevServer
from chalice.test import Client, HTTPResponse

from app import app
from chalicelib import container
from chalicelib.clock import FakeClock
from chalicelib.config import Settings
from chalicelib.domain.model import format_date
from chalicelib.local.bootstrap import create_resources, event_tap_name
from chalicelib.local.pump import EventPump
from chalicelib.local.stack import local_server
from chalicelib.services.ports import LaunchFailed


class Root:
    """Marker: sign as the root client (the default of Harness.call)."""


ROOT_CREDENTIALS = Root()


def hawk_header(
    credentials: dict[str, str], method: str, url: str, body: bytes, headers: dict[str, str], now: float
) -> str:
    """An Authorization header as Taskcluster's Python client makes it (mohawk), independent of our code."""
    ext = ""
    if credentials.get("certificate"):
        cert = json.loads(credentials["certificate"])
        ext = base64.b64encode(json.dumps({"certificate": cert}).encode()).decode()
    sender = mohawk.Sender(
        credentials={"id": credentials["clientId"], "key": credentials["accessToken"], "algorithm": "sha256"},
        url=url,
        method=method.upper(),
        content=body.decode() if body else "",
        content_type=headers.get("Content-Type", "") if body else "",
        ext=ext,
        _timestamp=str(int(now)),
    )
    header: str = sender.request_header
    return header


class Interrupting:
    """A store standing in for `inner` that runs `interrupt` once, just before the `at`-th call
    counted in `counter` (shared by the stores of one request): one request then runs whole in the
    middle of another, at a point chosen by the test, for races explored one interleaving at a time."""

    def __init__(self, inner: Any, counter: list[int], at: int, interrupt: Callable[[], None]) -> None:
        self._inner, self._counter, self._at, self._interrupt = inner, counter, at, interrupt

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self._counter[0] += 1
            if self._counter[0] == self._at:
                self._interrupt()
            return target(*args, **kwargs)

        return call


def assert_error(response: HTTPResponse, status: int, code: str) -> dict[str, Any]:
    """A Taskcluster error body (`code`, `message` with its footer, `requestInfo`) with this status."""
    assert response.status_code == status, response.body
    body: dict[str, Any] = response.json_body
    assert body["code"] == code
    assert f"* errorCode:  {code}" in body["message"]
    assert f"* statusCode: {status}" in body["message"]
    assert set(body["requestInfo"]) == {"method", "params", "payload", "time"}
    return body


class StandInProvider:
    """A second provider, `local`, as the embedded stack has one: pools may name it; it starts
    nothing (a launch fails as a cloud would refuse it), so no test starts processes by accident."""

    provider_id = "local"

    def launch(self, pool: Any, launch: Any, user_data: dict[str, Any], token: str) -> list[Any]:
        raise LaunchFailed("NotInTests", "the test harness starts no workers")

    def observe(self, workers: Any) -> dict[tuple[str, str], str]:
        return {(w.worker_group, w.worker_id): "not-found" for w in workers}

    def terminate(self, workers: Any) -> None:
        return None


TEST_SETTINGS = Settings(claim_work_timeout=0.0, due_shards=2, root_access_token="test-root-token")
ROOT = "/api/queue/v1"


def task_def(clock: FakeClock, **overrides: Any) -> dict[str, Any]:
    now = clock.now()
    body: dict[str, Any] = {
        "taskQueueId": "proj/linux",
        "created": format_date(now),
        "deadline": format_date(now + timedelta(hours=1)),
        "payload": {"command": [["echo", "hi"]]},
        "metadata": {
            "name": "t",
            "description": "a test task",
            "owner": "me@example.com",
            "source": "https://example.com/t",
        },
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


@dataclass
class Harness:
    clock: FakeClock
    settings: Settings
    client: Client
    pump: EventPump
    c: container.Container
    _server: LocalDevServer | None = field(default=None)

    @classmethod
    def start(cls, settings: Settings = TEST_SETTINGS) -> Harness:
        clock = FakeClock()
        ddb = boto3.client("dynamodb", region_name=settings.region)
        sqs = boto3.client("sqs", region_name=settings.region)
        streams = boto3.client("dynamodbstreams", region_name=settings.region)
        create_resources(settings, ddb, sqs, boto3.client("events", region_name=settings.region))
        c = container.build(settings, clock, providers={"local": StandInProvider()})
        container.configure(c)
        pump = EventPump(app, ddb, streams, sqs, settings.region, table_for_stream=lambda arn: settings.tasks_table)
        client = Client(app, stage_name="dev", project_dir=".")
        return cls(clock, settings, client, pump, c)

    @property
    def credentials(self) -> dict[str, str]:
        """The root client's credentials (all scopes), as the taskcluster clients take them."""
        return {"clientId": self.settings.root_client_id, "accessToken": self.settings.root_access_token}

    def client_clock_follows_stack(self, monkeypatch: Any) -> None:
        """Make Hawk signatures of the official client (mohawk) use this stack's FakeClock, as a
        client whose clock agrees with the server's; tests that advance the clock need it."""
        monkeypatch.setattr(
            mohawk.base, "utc_now", lambda offset_in_seconds=0: int(self.clock.now().timestamp()) + offset_in_seconds
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        container.configure(None)

    # --- HTTP ----------------------------------------------------------------------------------
    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        credentials: dict[str, str] | Root | None = ROOT_CREDENTIALS,
    ) -> HTTPResponse:
        """One request through the app, signed with Hawk as the root client unless `credentials`
        says otherwise (None: no credentials at all, the anonymous role). `path` is under the
        queue's API unless it starts with `/api/`."""
        hdrs = dict(headers or {})
        raw = b""
        if body is not None:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        url_path = path if path.startswith("/api/") else ROOT + path
        creds = self.credentials if isinstance(credentials, Root) else credentials
        hdrs.setdefault("Host", "localhost")
        if creds is not None and "Authorization" not in hdrs:
            hdrs["Authorization"] = hawk_header(
                creds, method, f"http://localhost{url_path}", raw, hdrs, self.clock.now().timestamp()
            )
        return self.client.http.request(method.upper(), url_path, headers=hdrs, body=raw)

    def create(self, task_id: str | None = None, **overrides: Any) -> str:
        task_id = task_id or slugid.nice()
        r = self.call("PUT", f"/task/{task_id}", task_def(self.clock, **overrides))
        assert r.status_code == 200, r.body
        return task_id

    def claim(self, task_queue_id: str = "proj/linux", tasks: int = 1, worker_id: str = "w1") -> list[dict[str, Any]]:
        self.pump.step()
        r = self.call(
            "POST",
            f"/claim-work/{task_queue_id.replace('/', '%2F')}",
            {"workerGroup": "wg", "workerId": worker_id, "tasks": tasks},
        )
        assert r.status_code == 200, r.body
        claims: list[dict[str, Any]] = r.json_body["tasks"]
        return claims

    def status(self, task_id: str) -> dict[str, Any]:
        r = self.call("GET", f"/task/{task_id}/status")
        assert r.status_code == 200, r.body
        status: dict[str, Any] = r.json_body["status"]
        return status

    # --- background work -----------------------------------------------------------------------
    def sweep(self) -> list[str]:
        changed = self.c.sweeper.sweep().changed
        self.pump.step()
        return changed

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """Task events published since the last call, as (exchange name, detail), oldest first."""
        url = self.pump.sqs.get_queue_url(QueueName=event_tap_name(self.settings))["QueueUrl"]
        out: list[tuple[str, dict[str, Any]]] = []
        while True:
            msgs = self.pump.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                event = json.loads(m["Body"])
                out.append((event["detail-type"], event["detail"]))
                self.pump.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    # --- the official client over real HTTP ----------------------------------------------------
    def root_url(self) -> str:
        if self._server is None:
            config = Config(chalice_stage="dev", user_provided_params={})
            self._server = local_server(app, config, "127.0.0.1", 0)
            threading.Thread(target=self._server.serve_forever, daemon=True).start()
        host, port = self._server.server.server_address[:2]
        return f"http://{host}:{port}"
