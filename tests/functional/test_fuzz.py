"""A property-based fuzz of the HTTP API: whatever a request holds, the answer is never a 5xx, and
every error carries Taskcluster's error body `{code, message, requestInfo}`.

Every route the app serves is fuzzed (the Api endpoints of chalicelib.handlers.http.ENDPOINTS and
the reference documents). Requests are built around a small "world" made first (a running task with
artifacts, a dependent task, a worker pool, a role, a client) so that valid values name things that
exist; each example then makes one part of the request hostile (path parameters, query, body,
headers, or all of them; hostile values in tests/fuzz_corpus.py) and keeps the rest valid, so that
it gets past the other checks into the handler. Most requests are signed as the root client, which holds
every scope. Four tests:

- test_no_request_gets_a_5xx_or_a_malformed_error: hypothesis, FUZZ_EXAMPLES (default 20) per route;
- test_each_field_of_a_valid_body_with_hostile_values: every field of valid bodies, one at a time,
  with a few values known to get past schemas (lone surrogates, 10**4000, 1e300 …): deterministic,
  what random examples reach too rarely at CI's count;
- test_forged_credentials_get_401_not_5xx: Hawk headers no client made (hostile id, ts, ext);
- test_seed_corpus: fuzz_corpus.SEEDS (deep JSON, 5,000-digit numbers, out-of-range dates, over-long
  ids, hostile continuation tokens and headers), on every run.

Runs are derandomized (CI sees the same requests every time). FUZZ_SHRINK=1 has hypothesis shrink a
failing request to a minimal one (off by default: while a route fails, shrinking costs seconds per
route, and the failing request is reported in full anyway); FUZZ_LOGS=1 keeps the app's own log of
each 500. A longer exploration: `FUZZ_EXAMPLES=500 FUZZ_SHRINK=1 .venv/bin/pytest
tests/functional/test_fuzz.py -p no:xdist`.

Not failures: Chalice's answers to requests no view takes (API Gateway's 403 for a path no route
matches; 405 MethodNotAllowedError for a method the route lacks, which only Chalice's local server
gives, API Gateway answers 403: reported as FrameworkAnswer warnings), and 424 `{reason, message}`
for an error artifact (Taskcluster's own answer). Chalice's 415 UnsupportedMediaType *is* a failure:
the app's own routes declare which content types they take, and behind API Gateway the Lambda
answers it just the same.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import re
import string
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

import mohawk
import pytest
import slugid
from chalice.test import HTTPResponse
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from app import app
from chalicelib.domain.model import format_date
from chalicelib.handlers.api import ENDPOINTS, SPLAT_SEP
from chalicelib.schemas import load
from tests.fuzz_corpus import (
    CONTENT_TYPES,
    DEEP,
    HOSTILE_BODIES,
    HOSTILE_CLIENT_IDS,
    HOSTILE_DATES,
    HOSTILE_EXTS,
    HOSTILE_NUMBERS,
    HOSTILE_STRINGS,
    HOSTILE_TOKENS,
    LONG,
    SEEDS,
    TOKEN_KEYS,
    Credentials,
    Raw,
    Seed,
    Template,
    b64,
    deep_array,
    deep_object,
    shorten,
)
from tests.harness import Harness, task_def

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
SHRINK = os.environ.get("FUZZ_SHRINK", "") not in ("", "0")
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    phases=(Phase.explicit, Phase.generate, Phase.shrink) if SHRINK else (Phase.explicit, Phase.generate),
    deadline=None,  # one request may take a while (50,000 levels of JSON); time is bounded by the count
    derandomize=True,  # CI sees the same requests on every run
    database=None,  # nothing to replay between runs: derandomized already
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


# --- the routes ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    """One route to fuzz: an Api endpoint, or one of the documents the reference serves."""

    id: str
    method: str
    path: str  # absolute, Taskcluster's form: /api/queue/v1/task/<taskId>
    input: str | None = None
    query: tuple[str, ...] = ()
    splat: bool = False


ROUTES: tuple[Route, ...] = tuple(
    Route(
        id=f"{e.service}.{e.name}",
        method=e.method,
        path=f"/api/{e.service}/{e.api_version}{e.path}",
        input=e.input,
        query=e.query,
        splat=e.splat,
    )
    for e in ENDPOINTS.values()
) + (
    # Plain routes of handlers/reference_api.py: documents rather than API methods, not in ENDPOINTS.
    Route("references.manifest", "GET", "/references/manifest.json"),
    Route("references.api", "GET", "/references/<service>/<version>/api.json"),
    Route("references.schema", "GET", "/schemas/<service>/<version>/<name>"),
    # Plain routes of handlers/inspector.py: the web inspector's static files.
    Route("inspector.index", "GET", "/inspector"),
    Route("inspector.file", "GET", "/inspector/<file>"),
)


def _chalice_form(path: str) -> str:
    return re.sub(r"<([A-Za-z0-9_]+)>", r"{\1}", path)


def test_every_route_of_the_app_is_fuzzed() -> None:
    """A route added to the app without an Api endpoint (or a new document) must be added to ROUTES."""
    fuzzed = {_chalice_form(r.path) for r in ROUTES}
    splat_tail = re.compile(rf"(/\{{[A-Za-z0-9_]+{SPLAT_SEP}[0-9]+\}})+$")
    served = {splat_tail.sub("", path) for path in app.routes}
    assert served <= fuzzed, sorted(served - fuzzed)


# --- the world the fuzzer works in ---------------------------------------------------------------
@dataclass
class World:
    """Objects made before fuzzing, so that valid path parameters name something that exists: a task
    whose run 0 is running with three artifacts, a pending task depending on it, a worker pool, a
    role and a client; names made unique by `n`, as worlds share the module's stack (shared_world,
    fresh_world)."""

    stack: Harness
    n: int
    task: str
    pending: str
    group: str
    queue: str
    role: str
    client: str
    dates: tuple[str, ...] = ()
    incidents: dict[str, str] = field(default_factory=lambda: INCIDENTS)

    @property
    def worker_type(self) -> str:
        return self.queue.split("/")[1]

    def values(self, param: str) -> list[str]:
        """Decoded values of path parameter `param` that name something of this world, the most
        useful first."""
        values: dict[str, list[str]] = {
            "taskId": [self.task, self.task, self.pending],
            "taskGroupId": [self.group],
            "runId": ["0", "1", "49"],
            "name": ["public/fuzz.txt", "private/fuzz.log", "public/link", "public/new"],
            "taskQueueId": [self.queue, "proj/linux"],
            "workerPoolId": [self.queue, "proj/linux"],
            "provisionerId": ["fuzz"],
            "workerType": [self.worker_type],
            "workerGroup": ["wg", "us-east-1"],
            "workerId": ["w1"],
            "clientId": [self.client, "static/taskcluster/root"],
            "roleId": [self.role],
            "service": ["queue", "auth", "worker-manager"],
            "version": ["v1"],
            "file": ["app.js", "index.html", "..", "app.py"],
        }
        return values.get(param, ["create-task-request.json", "x"])

    def valid(self, param: str) -> st.SearchStrategy[str]:
        """values(param), or a new slugid for the ids a request may create."""
        known = st.sampled_from(self.values(param))
        return st.one_of(known, new_slugids()) if param in ("taskId", "taskGroupId") else known

    def hints(self) -> dict[str, list[Any]]:
        """Valid values for body properties by name, drawn instead of the schema's own from time to
        time: a body that names this world's objects gets further into the handler."""
        return {
            "taskQueueId": [self.queue],
            "provisionerId": ["fuzz"],
            "workerType": [self.worker_type],
            "taskGroupId": [self.group],
            "dependencies": [[self.task], [self.pending]],
            "taskIds": [[self.task, self.pending]],
            "workerGroup": ["wg"],
            "workerId": ["w1"],
            "workerPoolId": [self.queue],
            "providerId": ["aws", "local", "null-provider"],
            "artifact": ["public/fuzz.txt"],
            "region": ["us-east-1"],
            "scopes": [["*"], ["queue:get-artifact:*"], [f"assume:{self.role}"]],
            "reason": ["worker-shutdown", "malformed-payload", "superseded"],
            "storageType": ["s3", "reference", "link", "error", "object"],
            "ImageId": ["ami-0123456789abcdef0"],
            # createTask's rules: created within 15 minutes of now, the deadline after it (at most
            # 5 days), expires after the deadline.
            "created": [self.dates[0], self.dates[1]],
            "deadline": [self.dates[2], self.dates[3]],
            "expires": [self.dates[4], self.dates[5]],
        }

    def examples(self, schema: str) -> list[Any]:
        """Bodies of input schema `schema` this world's objects accept: the starting points of
        body mutations, so that what is hostile in a body is the one value put there."""
        now = self.stack.clock.now()
        in_a_day = format_date(now + timedelta(days=1))
        artifact = {"expires": in_a_day, "contentType": "text/plain"}
        worker = {"workerGroup": "wg", "workerId": "w1"}
        bodies: dict[str, list[Any]] = {
            "create-task-request": [
                task_def(self.stack.clock, taskQueueId=self.queue, taskGroupId=self.group),
                task_def(self.stack.clock, taskQueueId=self.queue, dependencies=[self.task], priority="high"),
                task_def(self.stack.clock, provisionerId="fuzz", workerType=self.worker_type, taskQueueId=None),
            ],
            "claim-work-request": [{**worker, "tasks": 1}, {**worker, "tasks": 32}],
            "task-claim-request": [worker],
            "task-exception-request": [{"reason": "worker-shutdown"}, {"reason": "malformed-payload"}],
            "change-task-priority-request": [{"newPriority": "highest"}],
            "tasks-request": [{"taskIds": [self.task, self.pending]}],
            "post-artifact-request": [
                {"storageType": "s3", **artifact, "contentLength": 3},
                {"storageType": "reference", **artifact, "url": "https://example.com/a"},
                {"storageType": "link", "expires": in_a_day, "artifact": "public/fuzz.txt"},
                {"storageType": "error", "expires": in_a_day, "reason": "file-missing-on-worker", "message": "x"},
            ],
            "finish-artifact-request": [{"uploadId": slugid.nice()}],
            "create-client-request": [{"expires": in_a_day, "description": "fuzz", "scopes": ["queue:*"]}],
            "create-role-request": [{"description": "fuzz", "scopes": ["queue:get-artifact:*"]}],
            "scopeset": [{"scopes": [f"assume:{self.role}", "queue:*"]}],
            "create-worker-pool-request": [POOL],
            "update-worker-pool-request": [POOL],
            "quarantine-worker-request": [{"quarantineUntil": in_a_day, "quarantineInfo": "fuzz"}],
            "update-worker-request": [{"expires": in_a_day}],
            "report-worker-error-request": [
                {**worker, "kind": "fuzz", "title": "t", "description": "d", "extra": {}, "notify": []}
            ],
        }
        return bodies.get(schema, [])

    def template(self, t: Template) -> Any:
        """A valid body of kind `t.kind` with `t.overrides` in it."""
        now = self.stack.clock.now()
        expires = format_date(now + timedelta(days=1))
        bodies: dict[str, Any] = {
            "task": task_def(self.stack.clock, taskQueueId=self.queue, taskGroupId=self.group),
            "client": {"expires": expires, "description": "fuzz", "scopes": []},
            "role": {"description": "fuzz", "scopes": []},
            "artifact": {
                "storageType": "reference",
                "expires": expires,
                "contentType": "text/plain",
                "url": "https://example.com/a",
            },
        }
        body = bodies[t.kind]
        for dotted, value in t.overrides:
            *parents, last = dotted.split(".")
            target = body
            for key in parents:
                target = target.setdefault(key, {})
            target[last] = value
        return body

    def fill(self, path: str) -> str:
        """A seed path with this world's objects in place of its placeholders."""
        for placeholder, value in {
            "{task}": self.task,
            "{group}": self.group,
            "{queue_enc}": quote(self.queue, safe=""),
            "{worker_type}": self.worker_type,
            "{new_task}": slugid.nice(),
            "{new_pool_enc}": quote(f"fuzz/new-{self.n}-{slugid.nice().lower()[:8]}", safe=""),
        }.items():
            path = path.replace(placeholder, value)
        return path


INCIDENTS: dict[str, str] = {}  # incidentId: traceback, of every 500 of the module's stack


class Incidents(logging.Filter):
    """The app logs each 500's traceback with its incidentId (handlers/http.py): kept here, so that a
    failure report shows where the exception came from, and not logged (to stdout and pytest's
    capture, in full, for each of hundreds of requests: that would bury the report). FUZZ_LOGS=1
    logs them as well."""

    def __init__(self, incidents: dict[str, str]) -> None:
        super().__init__()
        self.incidents = incidents

    def filter(self, record: logging.LogRecord) -> bool:
        m = re.search(r"incidentId ([0-9a-f-]{36})", record.getMessage())
        if m and record.exc_info:
            self.incidents[m[1]] = "".join(logging.Formatter().formatException(record.exc_info))
        return bool(os.environ.get("FUZZ_LOGS"))


@pytest.fixture(scope="module")
def fuzz_stack() -> Iterator[Harness]:
    """One stack for the module: setting it up takes longer than a route's whole fuzz; tests make
    their worlds on it (shared_world, fresh_world)."""
    # One filter (a logger's filter sees each record before any handler; pytest adds its own
    # handlers to this logger) for all worlds: the first filter to refuse a record is the last.
    api_log, incidents = logging.getLogger("chalicelib.handlers.api"), Incidents(INCIDENTS)
    api_log.addFilter(incidents)
    with mock_aws():
        harness = Harness.start()
        try:
            yield harness
        finally:
            harness.stop()
            api_log.removeFilter(incidents)


_worlds = iter(range(1, 1_000_000))
POOL = {
    "providerId": "aws",
    "description": "fuzz",
    "owner": "fuzz@example.com",
    "emailOnError": False,
    "config": {
        "minCapacity": 0,
        "maxCapacity": 2,
        "launchConfigs": [{"region": "us-east-1", "launchConfig": {"ImageId": "ami-0123456789abcdef0"}}],
    },
}


def make_world(stack: Harness) -> World:
    """A new world on `stack`."""
    n = next(_worlds)
    queue = f"fuzz/q{n}"
    group = slugid.nice()
    task = stack.create(taskQueueId=queue, taskGroupId=group)
    [claim] = stack.claim(queue, worker_id="w1")
    assert claim["status"]["taskId"] == task
    pending = stack.create(taskQueueId=queue, taskGroupId=group, dependencies=[task])
    expires = format_date(stack.clock.now() + timedelta(days=1))
    for name, body in (
        (
            "public/fuzz.txt",
            {
                "storageType": "reference",
                "expires": expires,
                "contentType": "text/plain",
                "url": "https://example.com/a",
            },
        ),
        (
            "private/fuzz.log",
            {"storageType": "error", "expires": expires, "reason": "file-missing-on-worker", "message": "none"},
        ),
        ("public/link", {"storageType": "link", "expires": expires, "artifact": "public/fuzz.txt"}),
    ):
        r = stack.call("POST", f"/task/{task}/runs/0/artifacts/{quote(name, safe='')}", body)
        assert r.status_code == 200, r.body
    r = stack.call("PUT", f"/api/worker-manager/v1/worker-pool/{quote(queue, safe='')}", POOL)
    assert r.status_code == 200, r.body
    role, client = f"fuzz-role-{n}", f"fuzz/client-{n}"
    r = stack.call("PUT", f"/api/auth/v1/roles/{role}", {"description": "fuzz", "scopes": ["queue:get-artifact:*"]})
    assert r.status_code == 200, r.body
    r = stack.call("PUT", f"/api/auth/v1/clients/{quote(client, safe='')}", {"expires": expires, "description": "fuzz"})
    assert r.status_code == 200, r.body
    now = stack.clock.now()
    dates = tuple(format_date(now + timedelta(seconds=s)) for s in (-60, 0, 3600, 86400, 3 * 86400, 365 * 86400))
    return World(stack, n, task, pending, group, queue, role, client, dates)


@pytest.fixture(scope="module")
def shared_world(fuzz_stack: Harness) -> World:
    """The world of routes that only read, and of the seed corpus: making one costs 0.2 s."""
    return make_world(fuzz_stack)


@pytest.fixture
def fresh_world(fuzz_stack: Harness) -> World:
    """A world of its own for a route that changes things: its examples resolve the run, delete the
    pool, cancel the task …, which would leave the next route nothing to get deep into."""
    return make_world(fuzz_stack)


def world_for(route: Route, request: pytest.FixtureRequest) -> World:
    """The shared world for a route that only reads, a fresh one for any other."""
    world: World = request.getfixturevalue("shared_world" if route.method == "GET" else "fresh_world")
    return world


# --- requests and the property -------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    method: str
    path: str  # as sent: percent-encoded, query included
    body: bytes = b""
    content_type: str | None = None
    credentials: Credentials = "root"
    headers: tuple[tuple[str, str], ...] = ()  # more headers (Authorization here replaces the signature)

    def __repr__(self) -> str:
        """Short enough to read in a failure report, exact enough to rebuild the request."""
        parts = [f"{self.method} {shorten(self.path, 150)}", f"credentials={self.credentials}"]
        if self.content_type is not None:
            parts.append(f"Content-Type: {self.content_type!r}")
        parts += [f"{k}: {shorten(v)}" for k, v in self.headers]
        if self.body:
            parts.append(f"body={shorten(self.body.decode(errors='backslashreplace'), 150)}")
        return "Request(" + ", ".join(parts) + ")"


def send(stack: Harness, req: Request) -> HTTPResponse:
    """The request through Chalice's test client, as bytes: signed with Hawk as the root client
    (payload hash included, as the official clients send it) unless it is anonymous or forged."""
    headers = {"Host": "localhost"}
    if req.content_type is not None:
        headers["Content-Type"] = req.content_type
    headers.update(req.headers)
    if req.credentials == "root" and "Authorization" not in headers:
        root = {"id": stack.settings.root_client_id, "key": stack.settings.root_access_token, "algorithm": "sha256"}
        sender = mohawk.Sender(
            credentials=root,
            url=f"{_signed_origin(headers)}{req.path}",
            method=req.method,
            content=req.body,
            content_type=req.content_type or "",
            _timestamp=str(int(stack.clock.now().timestamp())),
        )
        headers["Authorization"] = sender.request_header
    try:
        return stack.client.http.request(req.method, req.path, headers=headers, body=req.body)
    except UnicodeEncodeError as e:
        # Chalice's local gateway, on a path no route matches, writes the Authorization header into
        # its 403 as ASCII, and raises if it is not: its bug, not the app's (API Gateway answers 403).
        if e.__traceback__ is None or not _raised_in(e.__traceback__, "chalice/local.py"):
            raise
        message = "Chalice's local gateway fails on a route miss with a non-ASCII header"
        warnings.warn(FrameworkAnswer(message), stacklevel=2)
        return HTTPResponse(b'{"message": "Missing Authentication Token"}', {}, 403)


def _raised_in(tb: TracebackType, filename: str) -> bool:
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename.endswith(filename)


class FrameworkAnswer(UserWarning):
    """An error answered by Chalice rather than the app (not a failure: reported)."""


def _signed_origin(headers: dict[str, str]) -> str:
    """Scheme, host and port a client that sends these headers signs for (as a proxy in front of the
    service would have them), so that a request with hostile headers is still authenticated when
    they are well-formed; garbage falls back to localhost:80 (the MAC fails, as it should)."""
    host, _, port = headers["Host"].partition(":")
    forwarded = headers.get("X-Forwarded-Port", "")
    if forwarded.isascii() and forwarded.isdigit() and len(forwarded) < 6:
        port = forwarded
    elif headers.get("X-Forwarded-Proto", "").lower() == "https":
        port = "443"
    if not (port.isascii() and port.isdigit() and len(port) < 6):
        port = "80"
    if not host or not host.isascii() or ":" in headers["Host"].partition(":")[2]:
        host = "localhost"
    return f"http://{host}:{port}"


def _framework_answer(r: HTTPResponse) -> bool:
    """Chalice's (API Gateway's) answers for a request no view takes: a path no route matches is
    403 (as API Gateway; with an Authorization header Chalice splices it into the body unescaped, so
    the body need not even be JSON); a method the route lacks is 405 (Chalice's local server)."""
    if r.status_code == 403:
        return r.body == b'{"message": "Missing Authentication Token"}' or r.body.startswith(
            b'{"message": "Authorization header requires '
        )
    if r.status_code == 405 and r.body.startswith(b'{"Code":"MethodNotAllowedError"'):
        warnings.warn(FrameworkAnswer(f"Chalice answered 405 itself: {r.body.decode()}"), stacklevel=2)
        return True
    return False


def _error_artifact(req: Request, r: HTTPResponse, body: Any) -> bool:
    """An artifact of storageType error is answered 424 `{reason, message}`, as Taskcluster does."""
    return (
        r.status_code == 424 and req.method == "GET" and isinstance(body, dict) and set(body) == {"reason", "message"}
    )


def violation(req: Request, r: HTTPResponse, incidents: dict[str, str]) -> str | None:
    """What is wrong with the answer `r` to `req`, or None."""
    try:
        body = json.loads(r.body) if r.body else None
    except ValueError:
        body = None
    text = shorten(r.body.decode(errors="backslashreplace"), 400)
    if r.status_code >= 500:
        incident = body.get("details", {}).get("incidentId") if isinstance(body, dict) else None
        trace = incidents.get(str(incident), "(no traceback logged)")
        return f"{req!r}\n→ {r.status_code} (incidentId {incident})\n{_last_frames(trace)}"
    if r.status_code < 400 or _framework_answer(r) or _error_artifact(req, r, body):
        return None
    if not isinstance(body, dict):
        return f"{req!r}\n→ {r.status_code}: the error body is not a JSON object: {text}"
    wrong = [
        f"{key} is not a {kind.__name__}"
        for key, kind in (("code", str), ("message", str), ("requestInfo", dict))
        if not isinstance(body.get(key), kind)
    ]
    return f"{req!r}\n→ {r.status_code}: {', '.join(wrong)}: {text}" if wrong else None


def _last_frames(trace: str, frames: int = 3) -> str:
    """Where a traceback went wrong: the app's innermost frames (chalicelib/, a library's frames
    below them say little), the innermost frame of all, the exception, and what caused it."""
    lines = trace.rstrip().splitlines()
    chained = [i for i, line in enumerate(lines) if line.startswith(("The above exception", "During handling"))]
    last = lines[chained[-1] + 1 :] if chained else lines
    starts = [i for i, line in enumerate(last) if line.startswith("  File ")]
    if not starts:
        return trace
    own = [i for i in starts if "/chalicelib/" in last[i]][-frames:]
    picked = [*own, starts[-1]] if starts[-1] not in own else own
    out = [f"{_frame(last[i])}: {last[i + 1].strip()}" for i in picked]
    if own and picked[-1] != own[-1]:
        out.insert(len(own), "…")
    out.append(_clip(last[-1]))
    if chained:
        cause = next(line for line in reversed(lines[: chained[0]]) if line.strip())
        out.append(f"(caused by {_clip(cause)})")
    return "\n".join(out)


def _frame(line: str) -> str:
    """`  File "/…/chalicelib/x.py", line 9, in f` as `chalicelib/x.py:9 in f`."""
    m = re.match(r'\s*File "(.*)", line (\d+), in (.*)', line)
    if not m:
        return line.strip()
    path = re.sub(r"^.*/(site-packages|lib/python3\.\d+)/", "", m[1]).replace(f"{os.getcwd()}/", "")
    return f"{path}:{m[2]} in {m[3]}"


def _clip(text: str, keep: int = 320) -> str:
    """An exception's message, without pynamodb's request ids, at most `keep` characters."""
    text = re.sub(r" on request \([A-Za-z0-9]+\)", "", text)
    return text if len(text) <= keep else f"{text[:keep]}… ({len(text)} chars)"


def check(world: World, req: Request) -> None:
    problem = violation(req, send(world.stack, req), world.incidents)
    if problem:
        # The message holds all there is to know (request, answer, the server's traceback): pytest's
        # own traceback of the test would only bury it.
        pytest.fail(problem, pytrace=False)


# --- strategies ------------------------------------------------------------------------------------
def new_slugids() -> st.SearchStrategy[str]:
    """Nice slugids (slugid.nice()'s form) from hypothesis's bytes, so that a run is reproducible."""
    return st.binary(min_size=16, max_size=16).map(
        lambda b: slugid.encode(uuid.UUID(bytes=bytes([b[0] & 0x7F]) + b[1:], version=4))
    )


def pick(values: Any) -> st.SearchStrategy[Any]:
    """sampled_from(values), whose repr (printed when a strategy fails) does not spell out every
    value: some are 450 kB."""
    values = tuple(values)
    return st.integers(0, len(values) - 1).map(values.__getitem__)


def _quote(value: str, safe: str = "") -> str:
    return quote(value, safe=safe, errors="surrogatepass")


_URL_SAFE = set(string.ascii_letters + string.digits + string.punctuation) - {"%"}


def segment(param: str, world: World, splat: bool, hostile: bool) -> st.SearchStrategy[str]:
    """A path segment for `param` as sent: a valid value, or (when `hostile`) as often a hostile one;
    percent-encoded as the official clients do, or raw (a splat keeps its `/`)."""
    valid = world.valid(param)
    bad = st.one_of(
        pick(HOSTILE_STRINGS),
        st.text(max_size=30),
        valid.flatmap(lambda v: st.sampled_from([f"{v}\n", f"{v}/..", f" {v}", v.upper(), v * 3, f"{v}%00"])),
    )
    value = st.one_of(valid, bad) if hostile else valid

    def encode(value: str, how: str) -> str:
        # Raw: as a careless client sends it; a raw `/` outside a splat only when the path is the
        # focus (it makes another route, or none).
        if how == "raw" and value and set(value) <= _URL_SAFE and (hostile or splat or "/" not in value):
            return value
        return _quote(value, safe="/" if how == "slashes" and splat else "")

    return st.tuples(value, st.sampled_from(["quote", "quote", "raw", "slashes"])).map(lambda t: encode(*t))


def hostile_ints() -> st.SearchStrategy[str]:
    return pick(["0", "-1", "1" * LONG, "0" * LONG + "1", "9" * 9, "9" * 30, "1e3", "１", "²", " 1", "1 "])


def continuation_tokens() -> st.SearchStrategy[str]:
    """Tokens as the stores decode them (url-safe base64 of {attribute: {"S"|"N": text}}), with the
    stores' own key attributes and hostile values; and garbage."""
    attribute_value = st.sampled_from(["S", "N"]).flatmap(
        lambda kind: st.one_of(pick(["", "x", "1", "-1", "1" * LONG, "\ud800", "x" * LONG]), st.text(max_size=20)).map(
            lambda v: {kind: v}
        )
    )
    keyed = pick(TOKEN_KEYS).flatmap(lambda keys: st.fixed_dictionaries({k: attribute_value for k in keys}))
    return st.one_of(
        pick(HOSTILE_TOKENS),
        keyed.map(lambda key: b64(json.dumps(key))),
        st.text(max_size=30),
        st.binary(max_size=30).map(b64),
    )


def query_value(name: str) -> st.SearchStrategy[str]:
    hostile = st.one_of(pick(HOSTILE_STRINGS), st.text(max_size=20))
    own: dict[str, st.SearchStrategy[str]] = {
        "limit": st.one_of(st.sampled_from(["1", "2", "1000", "1001"]), hostile_ints()),
        "continuationToken": continuation_tokens(),
        "quarantined": st.sampled_from(["true", "false", "TRUE", "1"]),
        "state": st.sampled_from(["requested", "running", "stopping", "stopped"]),
        "prefix": st.sampled_from(["fuzz", "fuzz/", ""]),
        "bewit": pick(["", "!", b64("a\\1\\m\\"), b64(f"a\\{'1' * LONG}\\m\\")]),
    }
    return st.one_of(own.get(name, hostile), hostile)


def queries(route: Route, hostile: bool) -> st.SearchStrategy[str]:
    """A query string (with its `?`), encoded as the Python client does (urlencode) or strictly:
    when not `hostile`, at most a valid `limit`."""
    if not hostile:
        return st.sampled_from(["", "", "?limit=1", "?limit=1000"]) if "limit" in route.query else st.just("")
    names = ("limit", "continuationToken", "prefix", *route.query)
    name = st.integers(0, 5).flatmap(lambda i: st.sampled_from(["bewit", "x", ""] if i == 0 else names))
    pairs = st.lists(name.flatmap(lambda n: st.tuples(st.just(n), query_value(n))), min_size=1, max_size=3)

    def encode(pairs: list[tuple[str, str]], strict: bool) -> str:
        if not pairs:
            return ""
        if strict:
            return "?" + urlencode(pairs, errors="surrogatepass", quote_via=quote)
        return "?" + urlencode(pairs, errors="surrogatepass")

    return st.tuples(pairs, st.booleans()).map(lambda t: encode(*t))


def hostile_json() -> st.SearchStrategy[Any]:
    """A JSON value no schema should let through to harm, or Raw JSON text json.dumps cannot write."""
    deep = [Raw(deep_array(n)) for n in (33, 100, 990, *DEEP)] + [Raw(deep_object(n)) for n in (33, 990, *DEEP)]
    return st.one_of(
        pick(HOSTILE_STRINGS),
        pick(HOSTILE_DATES),
        pick(HOSTILE_NUMBERS),
        pick([None, [], {}, "a" * 450_000, ["x"] * 10_000, {f"k{i}": i for i in range(2_000)}]),
        pick(deep),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
            max_leaves=8,
        ),
    )


def from_schema(schema: Any, world: World, hints: dict[str, list[Any]]) -> st.SearchStrategy[Any]:
    """Values that (mostly) satisfy a request schema of chalicelib/schemas: the keywords those schemas
    use (type, properties, required, pattern, enum, const, format, bounds, if/then in allOf); the
    result need not be valid, only near enough to get past validation often."""
    if schema is True or not isinstance(schema, dict):
        return hostile_json()
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    branches = [b for b in schema.get("allOf", []) if "if" in b and "then" in b]
    if branches:
        # post-artifact-request: one branch chosen by its `if`, its `then` merged into the base.
        def merged(branch: dict[str, Any]) -> dict[str, Any]:
            then = branch["then"]
            props = {**schema.get("properties", {}), **then.get("properties", {}), **branch["if"]["properties"]}
            required = [*schema.get("required", []), *then.get("required", [])]
            return {"type": "object", "properties": props, "required": required, "additionalProperties": False}

        return st.one_of(*(from_schema(merged(b), world, hints) for b in branches))
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", []))

        def prop(name: str) -> st.SearchStrategy[Any]:
            own = from_schema(props[name], world, hints)
            if name not in hints:
                return own
            return st.integers(0, 3).flatmap(lambda i: own if i == 0 else st.sampled_from(hints[name]))

        # A property the world has values for is always there (createTask's taskQueueId is optional
        # in the schema, yet a task needs it); a mutation deletes it now and then.
        fixed = {k: prop(k) for k in props if k in required or k in hints}
        optional = {k: prop(k) for k in props if k not in fixed}
        if not props:
            return st.dictionaries(st.text(max_size=8), hostile_json(), max_size=3)
        return st.fixed_dictionaries(fixed, optional=optional)
    if kind == "array":
        return st.lists(from_schema(schema.get("items", True), world, hints), max_size=3)
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            return st.sampled_from(world.dates)
        if fmt == "email":
            return st.just("fuzz@example.com")
        if fmt == "uri":
            return st.just("https://example.com/fuzz")
        lo, hi = schema.get("minLength", 0), schema.get("maxLength")
        if "pattern" in schema:
            # fastjsonschema reads `$` as the very end (no trailing newline): an anchored pattern
            # is generated as a full match, an open one (`^(https?://`) with anything after it.
            pattern: str = schema["pattern"]
            full = pattern.startswith("^") and pattern.endswith("$")
            return st.from_regex(pattern, fullmatch=full).filter(lambda s: lo <= len(s) <= (hi or len(s)))
        return st.text(min_size=lo, max_size=min(hi or 40, 40))
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    return hostile_json()


def _paths(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*at, i))


def surrogate_texts() -> st.SearchStrategy[str]:
    """Short texts with lone surrogates among other characters: valid JSON (`"\\ud800"`), not
    encodable as UTF-8. (hypothesis's characters() never makes them.)"""
    char = st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr))
    return st.lists(char, min_size=1, max_size=5).map("".join)


def hostile_like(value: Any) -> st.SearchStrategy[Any]:
    """A hostile value of the same JSON type as `value` more often than not: a number where a number
    is expected gets past the schema's type check (and, as 1e300 or 10**4000, into arithmetic and
    storage); a string, as a lone surrogate or a date out of range, into encoders and date maths."""
    if isinstance(value, bool) or value is None:
        same: st.SearchStrategy[Any] = hostile_json()
    elif isinstance(value, int | float):
        same = pick(HOSTILE_NUMBERS)
    elif isinstance(value, str):
        same = st.one_of(pick(HOSTILE_STRINGS), pick(HOSTILE_DATES), surrogate_texts())
    elif isinstance(value, list):
        same = st.one_of(hostile_json().map(lambda v: [v]), st.just(value * 1_000))
    else:
        same = hostile_json().map(lambda v: {"a": v})
    return st.integers(0, 2).flatmap(lambda i: hostile_json() if i == 0 else same)


@st.composite
def mutated(draw: st.DrawFn, value: Any) -> Any:
    """`value` with one place in it replaced by a hostile value, deleted, or given a new key (never
    the whole of it: hostile whole bodies are HOSTILE_BODIES)."""
    path = draw(st.sampled_from(list(_paths(value))[1:] or [()]))
    old: Any = value
    for key in path:
        old = old[key]
    new = draw(hostile_like(old))
    if not path:
        return new
    value = copy.deepcopy(value)  # the drawn value may be shared between examples
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    op = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
    if op == "delete":
        del parent[path[-1]]
    elif op == "add" and isinstance(parent, dict):
        parent[draw(pick(["extra", "", "__proto__", "x" * LONG]))] = new
    else:
        parent[path[-1]] = new
    return value


def encode_json(value: Any) -> bytes:
    """JSON text of `value`, with each Raw spliced in as it is."""
    raws: list[str] = []

    def swap(v: Any) -> Any:
        if isinstance(v, Raw):
            raws.append(v.text)
            return f"\x00raw{len(raws) - 1}\x00"
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        if isinstance(v, list):
            return [swap(x) for x in v]
        return v

    text = json.dumps(swap(value))
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00raw{i}\x00"), raw, 1)
    return text.encode()


def bodies(route: Route, world: World, hostile: bool) -> st.SearchStrategy[bytes]:
    """A body from the endpoint's input schema (none if it takes none); when `hostile`, one with
    a hostile value in it, or hostile bytes."""
    if route.input is None:
        return st.one_of(st.just(b""), pick(HOSTILE_BODIES)) if hostile else st.just(b"")
    generated = from_schema(load(route.input), world, world.hints())
    examples = world.examples(route.input)
    valid = (
        st.integers(0, 3).flatmap(lambda i: generated if i == 0 else st.sampled_from(examples))
        if examples
        else generated
    )
    if not hostile:
        return valid.map(encode_json)
    return st.integers(0, 5).flatmap(
        lambda i: (
            valid.flatmap(mutated).map(encode_json)
            if i < 3
            else valid.flatmap(mutated).flatmap(mutated).map(encode_json)
            if i < 4
            else pick(HOSTILE_BODIES)
            if i < 5
            else st.binary(max_size=40)
        )
    )


def extra_headers() -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    """The headers the service reads besides Authorization and Content-Type (the host and port a
    signature covers), hostile; with Content-Type, hostile too."""
    header = st.one_of(
        st.tuples(st.just("X-Forwarded-Port"), pick(["443", "-1", "1" * LONG, "²", "99999999999", ""])),
        st.tuples(st.just("X-Forwarded-Proto"), st.sampled_from(["https", "", "é", "https, http"])),
        st.tuples(st.just("Host"), pick(["localhost:²", "localhost:" + "1" * LONG, "", "[::1]:80", "a:b:c", "é"])),
    )
    return st.lists(header, min_size=1, max_size=2, unique_by=lambda h: h[0]).map(tuple)


# What an example makes hostile: one part of the request, so that the rest gets it past the checks
# of the others into the handler (a fully valid request too: success paths have bugs of their own).
FOCI = ("none", "path", "path", "query", "body", "body", "body", "headers", "all")
FOCI_WITH_BODY = (*FOCI, "body", "body", "body")  # an endpoint that takes a body: most is in the body


def requests(route: Route, world: World) -> st.SearchStrategy[Request]:
    params = re.findall(r"<([A-Za-z0-9_]+)>", route.path)

    def path(values: tuple[str, ...], query: str) -> str:
        out = route.path
        for p, v in zip(params, values, strict=True):
            out = out.replace(f"<{p}>", v, 1)
        return out + query

    credentials: st.SearchStrategy[Credentials] = st.sampled_from(["root", "root", "root", "anonymous"])

    # A composite rather than builds(): hypothesis then reports a failing example by Request's short
    # repr, not by the (possibly 50,000-level) arguments it was built from.
    @st.composite
    def request(draw: st.DrawFn) -> Request:
        focus = draw(st.sampled_from(FOCI_WITH_BODY if route.input else FOCI))
        segments = tuple(draw(segment(p, world, route.splat, focus in ("path", "all"))) for p in params)
        query = draw(queries(route, focus in ("query", "all")))
        body = draw(bodies(route, world, focus in ("body", "all")))
        headers = draw(extra_headers()) if focus in ("headers", "all") else ()
        content_type: str | None = "application/json"
        if focus in ("headers", "body", "all") and draw(st.booleans()):
            content_type = draw(pick(CONTENT_TYPES))
        return Request(route.method, path(segments, query), body, content_type, draw(credentials), headers)

    return request()


# --- the tests -------------------------------------------------------------------------------------
@pytest.mark.parametrize("route", ROUTES, ids=[r.id for r in ROUTES])
def test_no_request_gets_a_5xx_or_a_malformed_error(route: Route, request: pytest.FixtureRequest) -> None:
    world = world_for(route, request)

    @FUZZ_SETTINGS
    @given(requests(route, world))
    def fuzz(req: Request) -> None:
        check(world, req)

    fuzz()


# One field at a time of a valid body, given each of these (by the JSON type the field has): the
# values that got past schemas into handlers, encoders and DynamoDB before.
HUGE = 450_000  # characters: an item over DynamoDB's 400 KB, a body well under the service's 10 MB
SWEEP_STRINGS: tuple[Any, ...] = (
    "\ud800",
    "x" * LONG,
    "x" * HUGE,
    "",
    "9999-12-31T23:59:59.999Z",
    "0001-01-01T00:00:00.000Z",
)
SWEEP_NUMBERS: tuple[Any, ...] = (10**4000, 1e300, -1, 2**64, 0.5)
SWEEP_CONTAINERS: tuple[Any, ...] = (
    Raw(deep_object(99)),
    Raw(deep_array(99)),
    None,
    ["x"] * 10_000,
    {"\ud800": "\ud800"},
    {"a": "x" * HUGE},
)
INPUT_ROUTES = tuple(r for r in ROUTES if r.input)
# What the endpoints that create something create, new for each body (an existing one is a 409,
# sometimes before the body gets as far as storage).
CREATED = {
    ("queue.createTask", "taskId"): "{slugid}",
    ("queue.createArtifact", "name"): "public/sweep-{slugid}",
    ("auth.createClient", "clientId"): "fuzz/sweep-{slugid}",
    ("auth.createRole", "roleId"): "sweep-{slugid}",
    ("worker-manager.createWorkerPool", "workerPoolId"): "fuzz/sweep-{world}-{n}",
}


def sweep(body: Any, skip: set[tuple[Any, ...]]) -> Iterator[tuple[str, Any]]:
    """(where, body) for each leaf and container of `body` (but those at a path in `skip`, which
    gets this body's paths) replaced by each hostile value of its type."""
    for path in list(_paths(body))[1:]:
        if path in skip:
            continue
        skip.add(path)
        parent: Any = body
        for key in path[:-1]:
            parent = parent[key]
        old = parent[path[-1]]
        if isinstance(old, bool) or old is None:
            values: tuple[Any, ...] = ("true", 1)
        elif isinstance(old, int | float):
            values = SWEEP_NUMBERS
        elif isinstance(old, str):
            values = SWEEP_STRINGS
        else:
            values = SWEEP_CONTAINERS
        for value in values:
            changed = copy.deepcopy(body)
            target = changed
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
            yield ".".join(map(str, path)), changed


@pytest.mark.parametrize("route", INPUT_ROUTES, ids=[r.id for r in INPUT_ROUTES])
def test_each_field_of_a_valid_body_with_hostile_values(route: Route, request: pytest.FixtureRequest) -> None:
    """Every field of the world's valid bodies for the endpoint, one at a time, with each value of
    SWEEP_*: what random examples reach too rarely at CI's count. All failures in one report."""
    world = world_for(route, request)
    assert route.input is not None
    params = re.findall(r"<([A-Za-z0-9_]+)>", route.path)
    problems: list[str] = []
    swept: set[tuple[Any, ...]] = set()  # a field in several example bodies is swept in the first
    for base in world.examples(route.input):
        for n, (where, body) in enumerate(sweep(base, swept)):
            path = route.path
            for p in params:
                value = CREATED.get((route.id, p), world.values(p)[0]).format(n=n, world=world.n, slugid=slugid.nice())
                path = path.replace(f"<{p}>", _quote(value), 1)
            req = Request(route.method, path, encode_json(body), "application/json")
            problem = violation(req, send(world.stack, req), world.incidents)
            if problem:
                problems.append(f"[{where}] {problem}")
    if problems:
        pytest.fail(f"{len(problems)} field value(s) failed:\n\n" + "\n\n".join(problems), pytrace=False)


def forged_authorizations() -> st.SearchStrategy[str]:
    """Hawk headers no client made: hostile ids, timestamps and ext, never a valid MAC."""
    client_id = st.one_of(st.just("fuzz"), pick(HOSTILE_CLIENT_IDS), st.text(max_size=10))
    ts = st.one_of(st.just("1"), hostile_ints())
    ext = st.one_of(pick(HOSTILE_EXTS), st.text(max_size=20))
    quoted = {"id": client_id, "ts": ts, "nonce": st.just("n"), "ext": ext, "mac": st.just("m")}
    attrs = st.fixed_dictionaries(quoted).map(lambda a: ", ".join(f'{k}="{v}"' for k, v in a.items()))
    return st.one_of(attrs.map(lambda a: f"Hawk {a}"), pick(["Hawk", "Bearer x", "", "Hawk id=", "Hawk " + "a" * LONG]))


FORGED_TARGETS = (
    Route("auth.currentScopes", "GET", "/api/auth/v1/scopes/current"),
    Route("queue.task", "GET", "/api/queue/v1/task/<taskId>"),
    Route("queue.createTask", "PUT", "/api/queue/v1/task/<taskId>", input="create-task-request"),
)


@pytest.mark.parametrize("route", FORGED_TARGETS, ids=[r.id for r in FORGED_TARGETS])
def test_forged_credentials_get_401_not_5xx(route: Route, shared_world: World) -> None:
    world = shared_world

    @st.composite
    def forged(draw: st.DrawFn) -> Request:
        req = draw(requests(route, world))
        authorization = draw(forged_authorizations())
        return dataclasses.replace(req, credentials="anonymous", headers=(("Authorization", authorization),))

    @FUZZ_SETTINGS
    @given(forged())
    def fuzz(req: Request) -> None:
        check(world, req)

    fuzz()


def _seed_group(seed: Seed) -> str:
    return seed.id.split("-", 1)[0]


SEED_GROUPS = sorted({_seed_group(s) for s in SEEDS})


def seed_request(world: World, seed: Seed) -> Request:
    body = encode_json(world.template(seed.body)) if isinstance(seed.body, Template) else seed.body
    headers = (*seed.headers, ("Authorization", seed.authorization)) if seed.authorization else seed.headers
    credentials: Credentials = "anonymous" if seed.authorization else seed.credentials
    return Request(seed.method, world.fill(seed.path), body, seed.content_type if body else None, credentials, headers)


@pytest.mark.parametrize("group", SEED_GROUPS)
def test_seed_corpus(group: str, shared_world: World) -> None:
    """Every seed of the group, each one request; the failures of all of them in one report."""
    world = shared_world
    problems = []
    for seed in (s for s in SEEDS if _seed_group(s) == group):
        problem = violation(req := seed_request(world, seed), send(world.stack, req), world.incidents)
        if problem:
            problems.append(f"[{seed.id}] {problem}")
    if problems:
        pytest.fail(f"{len(problems)} seed(s) failed:\n\n" + "\n\n".join(problems), pytrace=False)
