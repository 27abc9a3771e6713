"""What the tests share: test modules import helpers from here only (and test_fuzz.py its data
from fuzz_corpus.py), never from one another.

- The in-process stack a functional test drives (`Harness`, the `stack` fixture of conftest.py):
  HTTP through Chalice's test client (or a real local HTTP server for the official client), the
  event pump as a step helper, a FakeClock; and request helpers over it (runs, claims, reports,
  clients, stream records, artifact bodies, an EC2 pool for the provisioner).
- `FakeWorkerManager`: a worker-manager stand-in on loopback for the reference worker's tests.
- The embedded stack as users run it, for tests/e2e: `serving()` (`python -m chalicelib.local
  serve` in its own process), bounded polling (`eventually`), processes (`alive`, `descendants`,
  `running`), and reference-worker processes (`WorkerProc`, `worker_starter`).
- IAM as far as infra's policies use it (`allowed`, `iam_requests`), for the tests of those.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import quote

import mohawk
import mohawk.base
import pytest
import requests
import slugid
import taskcluster
from chalice.config import Config
from chalice.local import LocalDevServer
from chalice.test import Client, HTTPResponse
from taskcluster.exceptions import TaskclusterRestFailure

from app import app
from chalicelib import container
from chalicelib.adapters import aws
from chalicelib.adapters.event_bus import EventBridgeBus
from chalicelib.adapters.hint_queues import SqsHintQueues
from chalicelib.clock import FakeClock
from chalicelib.config import Settings
from chalicelib.domain.model import format_date
from chalicelib.local.bootstrap import create_resources, event_tap_name
from chalicelib.local.pump import EventPump, lambda_stream_record
from chalicelib.local.stack import PROJECT_DIR, free_port, local_server
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


def assert_error(
    response: HTTPResponse, status: int, code: str, method: str | None = None, says: str = ""
) -> dict[str, Any]:
    """A Taskcluster error body (`code`, `message` with its footer, `requestInfo`) with this status,
    and no redirect; the request's `method` (the API method's name) named in both, and the message
    saying `says` (if given)."""
    assert response.status_code == status, (response.status_code, response.body)
    body: dict[str, Any] = response.json_body
    assert body["code"] == code, body
    assert f"* errorCode:  {code}" in body["message"], body["message"]
    assert f"* statusCode: {status}" in body["message"], body["message"]
    assert says in body["message"], body["message"]
    assert set(body["requestInfo"]) == {"method", "params", "payload", "time"}
    if method is not None:
        assert f"* method:     {method}" in body["message"], body["message"]
        assert body["requestInfo"]["method"] == method, body["requestInfo"]
    assert "Location" not in response.headers
    return body


class StandInProvider:
    """A second provider, `local`, as the embedded stack has one: pools may name it; it starts
    nothing (a launch fails as a cloud would refuse it), so no test starts processes by accident."""

    provider_id = "local"

    def launch(self, pool: Any, launch: Any, user_data: dict[str, Any], token: str) -> list[Any]:
        raise LaunchFailed("NotInTests", "the test harness starts no workers")

    def observe(self, workers: Any) -> dict[tuple[str, str], str]:
        return {(w.worker_group, w.worker_id): "not-found" for w in workers}

    def census(self, regions: Any) -> dict[tuple[str, str], str]:
        return {}

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
        ddb = aws.client("dynamodb", region_name=settings.region)
        sqs = aws.client("sqs", region_name=settings.region)
        streams = aws.client("dynamodbstreams", region_name=settings.region)
        create_resources(settings, ddb, sqs, aws.client("events", region_name=settings.region))
        c = container.build(settings, clock, providers={"local": StandInProvider()})
        container.configure(c)
        pump = EventPump(
            app,
            ddb,
            streams,
            sqs,
            settings.region,
            table_for_stream=lambda arn: settings.tasks_table,
            failure_queue=settings.stream_failure_queue,
            stream_retry_pause=0.0,  # tests retry a failed record by stepping again
        )
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


# --- request helpers over the in-process stack -------------------------------------------------------
AUTH = "/api/auth/v1"
WM = "/api/worker-manager/v1"


def runs(status: dict[str, Any]) -> list[tuple[Any, ...]]:
    """A task status's runs as (runId, state, reasonCreated, reasonResolved)."""
    return [(r["runId"], r["state"], r["reasonCreated"], r.get("reasonResolved")) for r in status["runs"]]


def iso(dt: datetime) -> str:
    """JavaScript's Date.toJSON(), independently of chalicelib's own formatter."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def claim_task(stack: Harness, task_id: str, run_id: int = 0, worker_id: str = "w1") -> Any:
    return stack.call("POST", f"/task/{task_id}/runs/{run_id}/claim", {"workerGroup": "wg", "workerId": worker_id})


def report(stack: Harness, task_id: str, run_id: int, what: str, body: Any = None) -> Any:
    """reportCompleted, reportFailed or reportException (`what`: completed, failed, exception)."""
    return stack.call("POST", f"/task/{task_id}/runs/{run_id}/{what}", body)


def expires(stack: Harness, **delta: float) -> str:
    """A date `delta` (default: a day) after the stack's now."""
    return format_date(stack.clock.now() + timedelta(**delta or {"days": 1}))


def make_client(stack: Harness, client_id: str, scopes: list[str], **fields: Any) -> dict[str, str]:
    """A new client with these scopes (createClient as root): its credentials."""
    body = {"description": "test client", "expires": expires(stack), **fields}
    r = stack.call("PUT", f"{AUTH}/clients/{client_id.replace('/', '%2F')}", {**body, "scopes": scopes})
    assert r.status_code == 200, r.body
    return {"clientId": client_id, "accessToken": r.json_body["accessToken"]}


def stream_records(stack: Harness, definitions: bool = False) -> list[dict[str, Any]]:
    """Every record on the tasks stream so far of the tasks' status items (with `definitions`, of
    their definition items too), as Lambda would deliver them."""
    ddb, streams = stack.pump.dynamodb, stack.pump.streams
    arn = ddb.describe_table(TableName=stack.settings.tasks_table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = streams.get_records(ShardIterator=it, Limit=1000)["Records"]
    return [
        lambda_stream_record(r, arn, stack.settings.region)
        for r in records
        if definitions or not r["dynamodb"]["Keys"]["taskId"]["S"].startswith("def#")
    ]


def invoke_stream(stack: Harness, records: list[dict[str, Any]]) -> Any:
    """The stream handler's answer, reduced to what tests look at: records read, hints sent."""
    payload = stack.client.lambda_.invoke("tasks_stream", {"Records": records}).payload
    return {k: payload[k] for k in ("records", "hints")}


# A refusal of one entry: the ErrorCode given for the entry of the n-th call (from 0), or None.
Refuse = Callable[[int, dict[str, Any]], str | None]


class Refusing:
    """A boto3 client standing in for `inner` whose PutEvents or SendMessageBatch refuses entries
    one by one as `refuse` says (a partial failure: the others go through to `inner`), or, when
    `refuse` raises, fails outright. `sent` keeps each call's entries."""

    def __init__(self, inner: Any, operation: str, refuse: Refuse) -> None:
        self._inner, self._operation, self._refuse = inner, operation, refuse
        self.sent: list[list[dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        if name != self._operation:
            return getattr(self._inner, name)
        return self._call

    def _call(self, **kwargs: Any) -> Any:
        call, entries = len(self.sent), kwargs["Entries"]
        self.sent.append(entries)
        codes = [self._refuse(call, e) for e in entries]
        accepted = [e for e, code in zip(entries, codes, strict=True) if code is None]
        if self._operation == "put_events":
            ids = iter(self._inner.put_events(**{**kwargs, "Entries": accepted})["Entries"] if accepted else [])
            answers = [next(ids) if code is None else {"ErrorCode": code, "ErrorMessage": "refused"} for code in codes]
            return {"FailedEntryCount": sum(c is not None for c in codes), "Entries": answers}
        result = self._inner.send_message_batch(**{**kwargs, "Entries": accepted}) if accepted else {}
        failed = [
            {"Id": e["Id"], "SenderFault": False, "Code": code} for e, code in zip(entries, codes, strict=True) if code
        ]
        return {"Successful": result.get("Successful", []), "Failed": failed}


def refuse_events(stack: Harness, refuse: Refuse) -> Refusing:
    """EventBridge refuses the PutEvents entries `refuse` names (retried at once, without pauses)."""
    bus = stack.c.outbox.events
    assert isinstance(bus, EventBridgeBus)
    inner = bus._events._inner if isinstance(bus._events, Refusing) else bus._events
    bus._events, bus._pause = Refusing(inner, "put_events", refuse), lambda seconds: None
    return cast(Refusing, bus._events)


def refuse_hints(stack: Harness, refuse: Refuse) -> Refusing:
    """SQS refuses the hints (SendMessageBatch entries) `refuse` names (retried at once)."""
    queues = stack.c.outbox.hints
    assert isinstance(queues, SqsHintQueues)
    inner = queues._sqs._inner if isinstance(queues._sqs, Refusing) else queues._sqs
    queues._sqs, queues._pause = Refusing(inner, "send_message_batch", refuse), lambda seconds: None
    return cast(Refusing, queues._sqs)


def failure_messages(stack: Harness) -> list[dict[str, Any]]:
    """What the stream's failure queue holds (left there, visible again at once)."""
    sqs = stack.pump.sqs
    url = sqs.get_queue_url(QueueName=stack.settings.stream_failure_queue)["QueueUrl"]
    msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    return [json.loads(m["Body"]) for m in msgs]


def failure_queue_depth(stack: Harness) -> int:
    """Messages in the stream's failure queue, hidden ones included."""
    sqs = stack.pump.sqs
    url = sqs.get_queue_url(QueueName=stack.settings.stream_failure_queue)["QueueUrl"]
    kinds = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=kinds)["Attributes"]
    return sum(int(attrs[k]) for k in kinds)


# Artifact bodies for createArtifact, one per storage type.
def s3_artifact(stack: Harness, content_type: str = "text/plain", **fields: Any) -> dict[str, Any]:
    return {"storageType": "s3", "expires": expires(stack), "contentType": content_type, **fields}


def reference_artifact(stack: Harness, url: str = "https://example.com/built.tar.gz", **fields: Any) -> dict[str, Any]:
    return {"storageType": "reference", "expires": expires(stack), "contentType": "application/gzip", "url": url,
            **fields}  # fmt: skip


def link_artifact(stack: Harness, target: str, **fields: Any) -> dict[str, Any]:
    return {"storageType": "link", "expires": expires(stack), "artifact": target, **fields}


def error_artifact(stack: Harness, message: str = "no such file", **fields: Any) -> dict[str, Any]:
    return {"storageType": "error", "expires": expires(stack), "reason": "file-missing-on-worker", "message": message,
            **fields}  # fmt: skip


def quote_name(name: str) -> str:
    """An artifact name as the official clients put it in a URL: every character but unreserved
    ones encoded, `/` included."""
    return quote(name, safe="")


def bucket_keys(stack: Harness, prefix: str) -> list[str]:
    """The keys in the artifact bucket under `prefix` (straight from S3, not through the API)."""
    s3 = aws.client("s3", region_name=stack.settings.region)
    listing = s3.list_objects_v2(Bucket=stack.settings.artifact_bucket, Prefix=prefix)
    return [o["Key"] for o in listing.get("Contents", [])]


# --- a worker pool on moto's EC2 (the provisioner's tests) -----------------------------------------
EC2_POOL = "proj/linux"
EC2_REGION = "us-east-1"


def ec2_pool_body(image: str) -> dict[str, Any]:
    """A pool of EC2 workers (capacity 2 each, at most 10) launched from `image`."""
    return {
        "providerId": "aws",
        "description": "burst test",
        "owner": "ops@example.com",
        "emailOnError": False,
        "config": {
            "minCapacity": 0,
            "maxCapacity": 10,
            "scalingRatio": 1.0,
            "lifecycle": {"registrationTimeout": 600, "queueInactivityTimeout": 1200},
            "launchConfigs": [
                {
                    "region": EC2_REGION,
                    "launchConfig": {"ImageId": image, "InstanceType": "m5.large"},
                    "workerManager": {"launchConfigId": "m5", "capacityPerInstance": 2},
                }
            ],
        },
    }


def instances(ec2: Any, states: tuple[str, ...] = ("pending", "running")) -> list[dict[str, Any]]:
    """The pool's instances in these states."""
    pages = ec2.describe_instances(Filters=[{"Name": "tag:WorkerPoolId", "Values": [EC2_POOL]}])["Reservations"]
    return [i for r in pages for i in r["Instances"] if i["State"]["Name"] in states]


def registration(ec2: Any, instance_id: str, token: str | None = None) -> dict[str, Any]:
    """registerWorker's body for this instance, from its user data (`token`: another token)."""
    raw = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    data = json.loads(base64.b64decode(raw["UserData"]["Value"]))
    return {
        "workerPoolId": data["workerPoolId"],
        "providerId": data["providerId"],
        "workerGroup": data["workerGroup"],
        "workerId": instance_id,
        "workerIdentityProof": {"registrationToken": token or data["registrationToken"]},
    }


def register_all(stack: Harness, ec2: Any) -> None:
    """Register every instance of the pool (a wrong token is refused, a second registration too)."""
    for instance in instances(ec2):
        body = registration(ec2, instance["InstanceId"])
        wrong = stack.call(
            "POST", f"{WM}/worker/register", {**body, "workerIdentityProof": {"registrationToken": "guess"}},
            credentials=None,
        )  # fmt: skip
        assert wrong.status_code == 400 and wrong.json_body["code"] == "InputError"
        r = stack.call("POST", f"{WM}/worker/register", body, credentials=None)
        assert r.status_code == 200, r.body
        assert r.json_body["credentials"]["clientId"].startswith(f"worker/aws/{EC2_POOL}/{EC2_REGION}/")
        again = stack.call("POST", f"{WM}/worker/register", body, credentials=None)
        assert again.status_code == 409  # one-time


def claim_on_pool(stack: Harness, worker_id: str, tasks: int) -> list[dict[str, Any]]:
    """claimWork on the pool's task queue as one of its EC2 workers."""
    stack.pump.step()
    r = stack.call(
        "POST",
        f"/claim-work/{EC2_POOL.replace('/', '%2F')}",
        {"workerGroup": EC2_REGION, "workerId": worker_id, "tasks": tasks},
    )
    assert r.status_code == 200, r.body
    claims: list[dict[str, Any]] = r.json_body["tasks"]
    return claims


# --- a worker-manager stand-in on loopback -------------------------------------------------------------
IDLE_CLAIM = 0.2  # seconds an upstream-less claimWork waits before answering "no tasks"


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None
    body: Any


@dataclass
class FakeWorkerManager:
    """registerWorker and shouldWorkerTerminate as the contract says, every request recorded;
    anything else is forwarded to an upstream queue (the embedded stack) with its Host header kept,
    so Hawk signatures made for this server still verify there, or, without an upstream, claimWork
    answers "no tasks" after a moment."""

    upstream: str | None = None  # the queue's root URL; None: claimWork answers no tasks
    credentials: dict[str, str] = field(default_factory=lambda: {"clientId": "worker/x", "accessToken": "t"})
    lifetime: timedelta = timedelta(hours=1)  # of the credentials register hands out
    register_status: int = 200
    terminate: bool = False
    reason: str = ""
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def root_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def calls(self, suffix: str) -> list[Seen]:
        return [s for s in list(self.seen) if s.path.startswith(WM) and s.path.endswith(suffix)]

    def start(self) -> FakeWorkerManager:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

            def do_PUT(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        body = json.loads(raw) if raw and h.headers.get("Content-Type", "").startswith("application/json") else None
        self.seen.append(Seen(h.command, h.path, h.headers.get("Authorization"), body))
        if h.path == f"{WM}/worker/register" and h.command == "POST":
            if self.register_status != 200:
                return _answer(h, self.register_status, {"code": "InputError", "message": "refused"})
            stamp = iso(datetime.now(UTC) + self.lifetime)
            return _answer(h, 200, {"expires": stamp, "credentials": self.credentials, "workerConfig": {"a": 1}})
        if h.path.startswith(f"{WM}/workers/") and h.path.endswith("/should-terminate"):
            return _answer(h, 200, {"terminate": self.terminate, "reason": self.reason or None})
        if self.upstream is None:
            if "/claim-work/" in h.path:
                time.sleep(IDLE_CLAIM)
                return _answer(h, 200, {"tasks": []})
            return _answer(h, 404, {"code": "ResourceNotFound", "message": h.path})
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("content-length", "accept-encoding")}
        r = requests.request(h.command, self.upstream + h.path, headers=headers, data=raw, timeout=60)
        h.send_response(r.status_code)
        h.send_header("Content-Type", r.headers.get("Content-Type", "application/json"))
        h.send_header("Content-Length", str(len(r.content)))
        h.end_headers()
        h.wfile.write(r.content)


def _answer(h: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


# --- the embedded stack in its own process (tests/e2e) -------------------------------------------------
READY_TIMEOUT = 60.0  # the stack (stand-in + app + pump) answering ping
POLL_TIMEOUT = 20.0  # a time-driven change (claim expiry, deadline) showing in status()
POLL_EVERY = 0.1
EXIT_TIMEOUT = 15.0  # SIGTERM to exit
ROOT_TOKEN = "e2e-root-token"
# Claims of 2 s and a sweeper every 0.2 s: claim expiry and deadlines happen within seconds.
E2E_ENV = {
    "TASKQUEUE_CLAIM_TIMEOUT": "2",
    "TASKQUEUE_SWEEP_INTERVAL": "0.2",
    "TASKQUEUE_REDISPATCH_AFTER": "1",
    "TASKQUEUE_ROOT_ACCESS_TOKEN": ROOT_TOKEN,
}
ROOT_CLIENT = {"clientId": "root", "accessToken": ROOT_TOKEN}

T = TypeVar("T")


def _proc_entry(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, command line) of a process, from /proc; None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may contain spaces and parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], cmdline


def _proc_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state, command line) for every process we can see."""
    entries = {int(p.name): _proc_entry(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()}
    return {pid: e for pid, e in entries.items() if e is not None}


def alive(pid: int, cmdline: str) -> bool:
    """Is this very process (same pid *and* command line: pids get reused) still running?"""
    entry = _proc_entry(pid)
    return entry is not None and entry[1] != "Z" and entry[2] == cmdline


def descendants(pid: int) -> dict[int, str]:
    """Every live process below `pid`: pid -> command line."""
    table = _proc_table()
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, state, cmdline) in table.items():
            if ppid == parent and child not in found and state != "Z":
                found[child] = cmdline
                frontier.append(child)
    return found


def running(matching: Callable[[str], bool]) -> dict[int, str]:
    """Every live (non-zombie) process whose command line satisfies `matching`."""
    return {pid: cmd for pid, (_, state, cmd) in _proc_table().items() if state != "Z" and matching(cmd)}


def answers(url: str) -> bool:
    """Does something answer HTTP at `url` (any status)?"""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def no_process(marker: str) -> bool:
    return not running(lambda cmd: marker in cmd)


def eventually(check: Callable[[], T | None], timeout: float, what: str, every: float = POLL_EVERY) -> T:
    """Poll `check` every `every` seconds until it returns something truthy (bounded)."""
    end = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


@dataclass
class Served:
    proc: subprocess.Popen[str]
    port: int
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None
    children: dict[int, str] = field(default_factory=dict)  # seen once the stack was up

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def aws_endpoint(self) -> str:
        """The AWS stand-in's URL, as the stack prints it."""
        found = re.search(r"AWS stand-in: (http://127\.0\.0\.1:\d+)", self.text())
        assert found, self.text()
        return found.group(1)

    def text(self) -> str:
        return "".join(self.output)

    def queue(self) -> taskcluster.Queue:
        return taskcluster.Queue({"rootUrl": self.root_url, "maxRetries": 0, "credentials": ROOT_CLIENT})


def _read_output(served: Served) -> None:
    assert served.proc.stdout is not None
    for line in served.proc.stdout:
        served.output.append(line)


def _pings(served: Served) -> bool:
    if served.proc.poll() is not None:
        pytest.fail(f"the stack exited with {served.proc.returncode} before answering:\n{served.text()}")
    try:
        with urllib.request.urlopen(f"{served.root_url}/api/queue/v1/ping", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _stop(served: Served) -> None:
    """Stop the stack and whatever it started, however the tests went (only processes we started)."""
    proc = served.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pid, cmdline in served.children.items():
        if alive(pid, cmdline):  # left behind by a failed stop: end it, by its id
            os.kill(pid, signal.SIGKILL)
    if served.reader is not None:
        served.reader.join(timeout=5)


@contextmanager
def serving(settings: dict[str, str], own_group: bool = False) -> Iterator[Served]:
    """`python -m chalicelib.local serve` with these TASKQUEUE_* settings (and other environment),
    answering; always stopped. `own_group`: the leader of its own process group, as a terminal's
    foreground job is."""
    env = {**os.environ, **settings, "PYTHONUNBUFFERED": "1"}
    env.pop("AWS_ENDPOINT_URL", None)  # the stack points its clients at its own moto server
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.local", "serve", "--port", str(port)],
        cwd=PROJECT_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=own_group,
    )
    served = Served(proc, port)
    served.reader = threading.Thread(target=_read_output, args=(served,), name="serve-output", daemon=True)
    served.reader.start()
    try:
        eventually(lambda: _pings(served), READY_TIMEOUT, f"GET {served.root_url}/api/queue/v1/ping")
        eventually(lambda: "AWS stand-in: " in served.text(), 10, "the stand-in's URL")
        served.children = descendants(proc.pid)
        yield served
    finally:
        _stop(served)


def task_def_now(task_queue_id: str, deadline_in: timedelta = timedelta(hours=1)) -> dict[str, Any]:
    """A task definition created now (the real clock), for the embedded stack."""
    now = datetime.now(UTC)
    return {
        "taskQueueId": task_queue_id,
        "created": iso(now),
        "deadline": iso(now + deadline_in),
        "payload": {"command": [["echo", "hi"]]},
        "metadata": {
            "name": "e2e",
            "description": "a task for the embedded stack's end-to-end test",
            "owner": "me@example.com",
            "source": "https://example.com/e2e",
        },
    }


def claim_when_handed_out(queue: taskcluster.Queue, task_queue_id: str, task_id: str) -> dict[str, Any]:
    """claimWork until it hands out this task (claimWork itself long-polls; bounded overall)."""

    def attempt() -> dict[str, Any] | None:
        claims = queue.claimWork(task_queue_id, {"workerGroup": "e2e", "workerId": "w1", "tasks": 1})["tasks"]
        assert [c["status"]["taskId"] for c in claims] in ([], [task_id]), claims
        return claims[0] if claims else None

    return eventually(attempt, POLL_TIMEOUT, f"claimWork to hand out {task_id}")


def status_when(queue: taskcluster.Queue, task_id: str, done: Callable[[dict[str, Any]], bool], what: str) -> Any:
    def check() -> dict[str, Any] | None:
        status: dict[str, Any] = queue.status(task_id)["status"]
        return status if done(status) else None

    return eventually(check, POLL_TIMEOUT, what)


# --- reference-worker processes against a served stack (tests/e2e) ------------------------------------
WORKER_PROVISIONER = "e2e-worker"  # the provisionerId of the workers' task queues
WORKER_WAIT = 30.0  # bound on any one wait for a worker
WORKER_EXIT = 20.0
# For the workers' stack: claims of 4 s (a worker reclaims every ~2 s, within a test); claimWork
# long-polls briefly, so a stopping worker exits soon.
WORKER_ENV = {
    "TASKQUEUE_CLAIM_TIMEOUT": "4",
    "TASKQUEUE_CLAIM_WORK_TIMEOUT": "2",
    "TASKQUEUE_SWEEP_INTERVAL": "0.2",
    "TASKQUEUE_ROOT_ACCESS_TOKEN": ROOT_TOKEN,
}


@dataclass
class WorkerProc:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=WORKER_EXIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the worker did not exit within {WORKER_EXIT:.0f}s:\n{self.log()}")


def worker_env(served: Served, **extra: str) -> dict[str, str]:
    """The environment of a worker process of this stack, as the root client."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TASKCLUSTER_"))}
    env.update(
        AWS_ENDPOINT_URL=served.aws_endpoint,
        AWS_ACCESS_KEY_ID="embedded",
        AWS_SECRET_ACCESS_KEY="embedded",
        AWS_DEFAULT_REGION="us-east-1",
        TASKCLUSTER_ROOT_URL=served.root_url,
        TASKCLUSTER_CLIENT_ID="root",
        TASKCLUSTER_ACCESS_TOKEN=ROOT_TOKEN,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@contextmanager
def worker_starter(served: Served, tmp: pytest.TempPathFactory) -> Iterator[Callable[..., WorkerProc]]:
    """start(worker_type, *args, env=None, provisioner=WORKER_PROVISIONER): a `python -m worker` on
    <provisioner>/<worker_type> (worker id: the worker type), logging to a file; every one still
    running is killed at the end."""
    started: list[WorkerProc] = []

    def start(
        worker_type: str, *args: str, env: dict[str, str] | None = None, provisioner: str = WORKER_PROVISIONER
    ) -> WorkerProc:
        work = tmp.mktemp(worker_type)
        log_path = work / "worker.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "worker", "--provisioner-id", provisioner, "--worker-type", worker_type,
                 "--worker-id", worker_type, "--work-dir", str(work / "work"), "--live-log-interval", "0.3",
                 "--poll-seconds", "1", *args],
                cwd=PROJECT_DIR,
                env=env or worker_env(served),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        started.append(WorkerProc(proc, log_path))
        return started[-1]

    try:
        yield start
    finally:
        for w in started:
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait()


def create_for_worker(served: Served, worker_type: str, payload: Any, **extra: Any) -> str:
    """createTask on WORKER_PROVISIONER/<worker_type> with this payload (deadline in 10 minutes)."""
    now = datetime.now(UTC)
    task_id: str = slugid.nice()
    served.queue().createTask(
        task_id,
        {
            "taskQueueId": f"{WORKER_PROVISIONER}/{worker_type}",
            "created": iso(now),
            "deadline": iso(now + timedelta(minutes=10)),
            "payload": payload,
            "metadata": {"name": f"e2e {worker_type}", "description": "", "owner": "me@example.com",
                         "source": "https://example.com/e2e"},
            **extra,
        },
    )  # fmt: skip
    return task_id


def resolved(served: Served, task_id: str, worker: WorkerProc, run_id: int = 0) -> dict[str, Any]:
    """The task's status once run `run_id` is resolved."""

    def check() -> dict[str, Any] | None:
        status: dict[str, Any] = served.queue().status(task_id)["status"]
        done = len(status["runs"]) > run_id and status["runs"][run_id]["state"] not in ("pending", "running")
        return status if done else None

    return eventually(check, WORKER_WAIT, f"run {run_id} of {task_id} to be resolved; worker log:\n{worker.log()}")


def artifact_text(served: Served, task_id: str, name: str, run_id: int = 0) -> str | None:
    try:
        url = served.queue().artifact(task_id, str(run_id), name)["url"]
    except TaskclusterRestFailure:
        return None
    r = requests.get(url, timeout=30)
    return r.text if r.status_code == 200 else None


def live_log(served: Served, task_id: str, run_id: int = 0) -> str:
    return artifact_text(served, task_id, "public/logs/live.log", run_id) or ""


def log_showing(served: Served, task_id: str, text: str, worker: WorkerProc, run_id: int = 0) -> str:
    """The live log, as soon as it shows `text` (it is uploaded while the task runs)."""

    def check() -> str | None:
        log = live_log(served, task_id, run_id)
        return log if text in log else None

    return eventually(check, WORKER_WAIT, f"{text!r} in the live log of {task_id}; worker log:\n{worker.log()}")


def sleeper(marker: int) -> list[list[str]]:
    """A command that starts a background child and then sleeps: a process tree to kill."""
    return [["sh", "-c", f"sleep {marker} & echo started; sleep {marker}"]]


# --- IAM, as far as infra's policies use it (tests/unit/test_deploy_policies.py, test_infra.py) -------
IAM_REGION = "us-east-1"
IAM_ACCOUNT = "123456789012"  # moto's


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def allowed(action: str, resource: str, policy: dict[str, Any], context: dict[str, str] | None = None) -> bool:
    """Whether the policy allows `action` on `resource` for a request with these condition keys
    (Allow statements only; conditions: StringEquals, every key present and equal)."""
    for statement in policy["Statement"]:
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}, statement
        assert statement["Effect"] == "Allow"
        if not any(fnmatchcase(action.lower(), a.lower()) for a in as_list(statement["Action"])):
            continue
        if not any(fnmatchcase(resource, r) for r in as_list(statement["Resource"])):
            continue
        conditions = statement.get("Condition", {})
        assert set(conditions) <= {"StringEquals"}, conditions
        wanted = conditions.get("StringEquals", {})
        if all((context or {}).get(key) == value for key, value in wanted.items()):
            return True
    return False


SQS_BATCH_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def iam_requests(service: str, operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """The (IAM action, resource ARN) pairs an API call is authorised against."""
    if service in ("dynamodb", "dynamodbstreams"):

        def table(name: str, index: str | None = None) -> str:
            arn = f"arn:aws:dynamodb:{IAM_REGION}:{IAM_ACCOUNT}:table/{name}"
            return f"{arn}/index/{index}" if index else arn

        if operation == "TransactWriteItems":
            return [
                (f"dynamodb:{TRANSACT_ACTIONS[k]}", table(v["TableName"]))
                for i in params["TransactItems"]
                for k, v in i.items()
            ]
        if operation == "TransactGetItems":
            return [("dynamodb:GetItem", table(i["Get"]["TableName"])) for i in params["TransactItems"]]
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [(f"dynamodb:{operation}", table(name)) for name in params["RequestItems"]]
        if "StreamArn" in params:
            return [(f"dynamodb:{operation}", params["StreamArn"])]
        if "TableName" in params:
            return [(f"dynamodb:{operation}", table(params["TableName"], params.get("IndexName")))]
        return [(f"dynamodb:{operation}", "*")]
    if service == "sqs":
        action = f"sqs:{SQS_BATCH_ACTIONS.get(operation, operation)}"
        if "QueueUrl" in params:
            return [(action, f"arn:aws:sqs:{IAM_REGION}:{IAM_ACCOUNT}:{params['QueueUrl'].rsplit('/', 1)[1]}")]
        if "QueueName" in params:
            return [(action, f"arn:aws:sqs:{IAM_REGION}:{IAM_ACCOUNT}:{params['QueueName']}")]
        return [(action, "*")]
    if service == "s3" and operation == "DeleteObjects":
        # Authorised per object, as s3:DeleteObject (there is no s3:DeleteObjects action).
        bucket = params["Bucket"]
        return [("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{o['Key']}") for o in params["Delete"]["Objects"]]
    if service == "s3" and "Key" in params:
        return [(f"s3:{operation}", f"arn:aws:s3:::{params['Bucket']}/{params['Key']}")]
    if service == "events" and operation == "PutEvents":
        buses = {e.get("EventBusName", "default") for e in params["Entries"]}
        return [("events:PutEvents", f"arn:aws:events:{IAM_REGION}:{IAM_ACCOUNT}:event-bus/{b}") for b in sorted(buses)]
    if service == "secretsmanager" and operation == "GetSecretValue":
        return [("secretsmanager:GetSecretValue", params["SecretId"])]
    if service == "ec2" and operation == "DescribeInstances":
        return [("ec2:DescribeInstances", "*")]
    if service == "ec2" and operation in ("RunInstances", "TerminateInstances"):
        return [(action, resource) for action, resource, _ in ec2_requests(operation, params, {})]
    raise AssertionError(f"the code calls {service}:{operation}: add it to infra/policies.py and to this test")


def ec2_requests(
    operation: str, params: dict[str, Any], tags_of: dict[str, dict[str, str]]
) -> list[tuple[str, str, dict[str, str]]]:
    """(action, resource, condition keys) an EC2 launch or termination is authorised against, as
    IAM documents RunInstances: each resource it makes or uses, tags and IMDS options as condition
    keys; a RunInstances with tags is also a CreateTags of them; passing an instance profile passes
    its role. `tags_of`: the tags of existing instances (for ec2:ResourceTag)."""

    def ec2(resource: str, account: str = IAM_ACCOUNT) -> str:
        return f"arn:aws:ec2:{IAM_REGION}:{account}:{resource}"

    if operation == "TerminateInstances":
        return [
            (
                "ec2:TerminateInstances",
                ec2(f"instance/{i}"),
                {f"ec2:ResourceTag/{k}": v for k, v in tags_of.get(i, {}).items()},
            )
            for i in params["InstanceIds"]
        ]
    tags = {
        ts["ResourceType"]: {t["Key"]: t["Value"] for t in ts["Tags"]} for ts in params.get("TagSpecifications", [])
    }
    metadata = params.get("MetadataOptions", {})
    instance_keys = {f"aws:RequestTag/{k}": v for k, v in tags.get("instance", {}).items()}
    if "HttpTokens" in metadata:
        instance_keys["ec2:MetadataHttpTokens"] = metadata["HttpTokens"]
    requests = [
        ("ec2:RunInstances", ec2("instance/*"), instance_keys),
        ("ec2:RunInstances", ec2("volume/*"), {f"aws:RequestTag/{k}": v for k, v in tags.get("volume", {}).items()}),
        ("ec2:RunInstances", ec2(f"image/{params['ImageId']}", account=""), {}),
        ("ec2:RunInstances", ec2("network-interface/*"), {}),
        ("ec2:RunInstances", ec2(f"subnet/{params.get('SubnetId', 'subnet-default')}"), {}),
        ("ec2:RunInstances", ec2("security-group/sg-default"), {}),
    ]
    requests += [("ec2:RunInstances", ec2(f"security-group/{g}"), {}) for g in params.get("SecurityGroupIds", [])]
    if params.get("KeyName"):
        requests.append(("ec2:RunInstances", ec2(f"key-pair/{params['KeyName']}"), {}))
    if params.get("InstanceMarketOptions", {}).get("MarketType") == "spot":
        requests.append(("ec2:RunInstances", ec2("spot-instances-request/*"), {}))
    for resource_type in tags:
        requests.append(("ec2:CreateTags", ec2(f"{resource_type}/*"), {"ec2:CreateAction": "RunInstances"}))
    profile = params.get("IamInstanceProfile", {}).get("Arn")
    if profile:  # the profile's role has the profile's name (infra/template.py)
        role = profile.replace(":instance-profile/", ":role/")
        requests.append(("iam:PassRole", role, {"iam:PassedToService": "ec2.amazonaws.com"}))
    return requests
