"""Hostile inputs for tests/functional/test_fuzz.py, its only user: the values the fuzzer mixes into
requests, and the seed corpus of requests that must be tried on every run whatever hypothesis
happens to draw. A data module, not a test module.

Values here are plain data (no hypothesis): strings are *decoded* values; test_fuzz.py decides how
they are encoded into a path, a query or a JSON body. Seed requests name the objects of the fuzz
world (a running task, a worker pool …) by `{placeholder}`, filled in by test_fuzz.py.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

LONG = 5_000  # characters: beyond DynamoDB's 2,048-byte partition keys and Python's int() limit of 4,300 digits
DEEP = (1_000, 50_000)  # levels of JSON nesting: beyond Python's recursion limit, and far beyond


@dataclass(frozen=True)
class Raw:
    """JSON text spliced into a body as it is: what json.dumps cannot write (50,000 levels of nesting,
    numbers of 5,000 digits, 1e999)."""

    text: str

    def __repr__(self) -> str:
        return f"Raw({shorten(self.text)})"


def shorten(text: str, keep: int = 60) -> str:
    """A long value as `head…tail (N chars)`, so that failure reports stay readable."""
    if len(text) <= 2 * keep:
        return repr(text)
    return f"{text[:keep]!r}…{text[-keep:]!r} ({len(text)} chars)"


def deep_array(levels: int) -> str:
    return "[" * levels + "]" * levels


def deep_object(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(raw).decode()


# --- strings -------------------------------------------------------------------------------------
# Decoded values for path parameters, query values and JSON strings alike.
HOSTILE_STRINGS: tuple[str, ...] = (
    "",
    " ",
    ".",
    "..",
    "%2E%2E",  # literal: encoded once more on the way, decoded too often on the way in
    "%2F",
    "%",
    "%zz",
    "/",
    "a/b",
    "public/../../x",
    "../../../etc/passwd",
    "\\",
    "a\\b",
    "\x00",
    "a\x00b",
    "\x01\x1f\x7f",
    "\t",
    "\n",
    "\r\n",
    "?x=1",
    "#frag",
    "*",
    "<script>alert(1)</script>",
    "'\"",
    "é",
    "日本語",
    "💥",
    "\u202e",
    "\ufeff",
    "\ud800",  # a lone surrogate: valid JSON (\ud800), not encodable as UTF-8
    "null",
    "true",
    "NaN",
    "-1",
    "0",
    "1e9",
    "１",  # a full-width digit: int() takes it, [0-9] does not
    "²",  # a superscript digit: str.isdigit() says yes, int() says no
    "x" * LONG,
    "1" * LONG,
    "9" * LONG,
    "0" * LONG,
    "é" * LONG,
)

# Dates that are a date-time by RFC 3339 (or nearly), but not one a service can store or compute with.
HOSTILE_DATES: tuple[str, ...] = (
    "9999-12-31T23:59:59.999Z",
    "9999-01-01T00:00:00.000Z",
    "9998-12-31T23:59:59.999Z",
    "0001-01-01T00:00:00.000Z",
    "0001-01-01T00:00:00.000+01:00",
    "0000-01-01T00:00:00.000Z",
    "1969-12-31T23:59:59.999Z",
    "1970-01-01T00:00:00.000Z",
    "+275760-09-13T00:00:00.000Z",  # JavaScript's largest Date
    "-271821-04-20T00:00:00.000Z",  # and its smallest
    "2024-02-30T00:00:00.000Z",
    "2024-01-01T24:00:00.000Z",
    "2024-01-01T00:00:60.000Z",
    "2024-01-01T00:00:00.000+99:99",
    "2024-01-01T00:00:00." + "1" * LONG + "Z",
    "2024-01-01T00:00:00.000Z\n",
    "2024-01-01",
    "",
    "1" * LONG,
)

# --- numbers -------------------------------------------------------------------------------------
HOSTILE_NUMBERS: tuple[Any, ...] = (
    -1,
    0,
    2**31,
    2**53 + 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**4000,  # still under Python's 4,300-digit limit: json.loads takes it, arithmetic works
    1e300,  # passes `type: integer` (a float with an integral value) and DynamoDB's number range does not
    1e126,
    -1e130,
    1.5,
    -0.0,
    5e-324,
    True,
    Raw("1" * LONG),  # json.loads refuses it (ValueError)
    Raw("1e999"),  # json.loads makes it inf, though it refuses the literal Infinity
    Raw("-1e999"),
    Raw("1e-999"),
)

# --- bodies --------------------------------------------------------------------------------------
# Whole request bodies as bytes: not JSON, JSON of the wrong kind, JSON no parser should be made to
# recurse through.
HOSTILE_BODIES: tuple[bytes, ...] = (
    b"",
    b"{",
    b"}",
    b"[1,]",
    b"{'a': 1}",
    b"NaN",
    b'{"a": NaN}',
    b'{"a": Infinity}',
    b'{"a": -Infinity}',
    b'{"a": 1e999}',
    b"null",
    b"true",
    b"0",
    b'"string"',
    b"[]",
    b"{}",
    b'{"a": 1, "a": 2}',
    b"\xef\xbb\xbf{}",  # a UTF-8 byte-order mark
    b"\xff\xfe{\x00}\x00",  # UTF-16
    b"\xc3\x28",  # not UTF-8
    b'{"a": "\\ud800"}',
    b"\x00",
    b"{}" + b" " * 1000 + b"x",
    ("1" * LONG).encode(),
    b'{"a": ' + ("1" * LONG).encode() + b"}",
    *(deep_array(n).encode() for n in (100, 990, *DEEP)),
    *(deep_object(n).encode() for n in (100, 990, *DEEP)),
)

CONTENT_TYPES: tuple[str | None, ...] = (
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/json;;;",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "",
    ";",
    None,  # no Content-Type header at all
)

# --- continuation tokens -------------------------------------------------------------------------
# The key attributes of the Queries the stores page through (adapters/*_store.py): a token naming
# them gets past the first check and reaches the store, or DynamoDB, with its values.
TOKEN_KEYS: tuple[tuple[str, ...], ...] = (
    ("pk", "sk"),
    ("kind", "pk", "sk"),
    ("provisionerId",),
    ("kind", "workerPoolId", "sk"),
    ("workerPoolId", "sk"),
    ("taskGroupId", "taskId"),
    ("taskQueueId", "queueSort", "taskId"),
    ("kind", "id"),
    ("taskId", "runName"),
)

HOSTILE_TOKENS: tuple[str, ...] = (
    "",
    "0",
    "-1",
    "1" * LONG,
    "!!!",
    "====",
    "a",
    "é",
    b64("not json"),
    b64("null"),
    b64("[]"),
    b64("{}"),
    b64('{"a": 1}'),
    b64(deep_array(1_000)),
    b64(deep_object(1_000)),
    b64(b"\xff\xfe"),
    b64(json.dumps({"provisionerId": {"N": "1"}})),
    b64(json.dumps({"provisionerId": {"S": ""}})),
    b64(json.dumps({"pk": {"S": ""}, "sk": {"S": ""}})),
    b64(json.dumps({"pk": {"N": "x"}, "sk": {"N": "1" * LONG}})),
    b64(json.dumps({"taskGroupId": {"S": "x" * LONG}, "taskId": {"S": "x"}})),
    b64(json.dumps({"kind": {"S": "client"}, "id": {"S": "\ud800"}})),
)

# --- Hawk ------------------------------------------------------------------------------------------
# `ext` is parsed before the MAC is checked, and a certificate's issuer is looked up before it:
# anyone can make the service do both, so they are fuzzed with forged (unsigned) headers.
HOSTILE_EXTS: tuple[str, ...] = (
    "",
    "!",
    b64("null"),
    b64("[]"),
    b64(deep_array(1_000)),
    b64(deep_object(50_000)),
    b64(json.dumps({"certificate": deep_array(1_000)})),
    b64(json.dumps({"certificate": "{"})),
    b64(json.dumps({"certificate": []})),
    b64(json.dumps({"authorizedScopes": "x"})),
    b64(json.dumps({"authorizedScopes": [1]})),
)


def certificate_ext(**fields: Any) -> str:
    """An ext carrying a well-formed certificate with `fields` changed."""
    cert: dict[str, Any] = {
        "version": 1,
        "scopes": ["*"],
        "start": 0,
        "expiry": 1,
        "seed": "x" * 44,
        "signature": "x",
        **fields,
    }
    return b64(json.dumps({"certificate": cert}))


HOSTILE_EXTS += (
    certificate_ext(),
    certificate_ext(issuer=""),
    certificate_ext(issuer="x" * LONG),
    certificate_ext(issuer="\ud800"),
    certificate_ext(issuer="é"),
    certificate_ext(start=10**4000, expiry=10**4000),
    certificate_ext(start=-(10**4000)),
    certificate_ext(scopes=["x" * LONG]),
    certificate_ext(seed="é" * 44),
)

HOSTILE_CLIENT_IDS: tuple[str, ...] = ("x" * LONG, "é", "\ud800", " ", "static/taskcluster/root ", "a\x00b")


# --- the seed corpus -------------------------------------------------------------------------------
Credentials = Literal["root", "anonymous"]
CREDENTIALS: tuple[Credentials, ...] = ("anonymous", "root")


@dataclass(frozen=True)
class Template:
    """A valid body of `kind` ("task", "client", "artifact", "role") as test_fuzz.World makes it,
    with `overrides` (which may be Raw) put in at their dotted paths."""

    kind: str
    overrides: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Seed:
    """One request of the seed corpus. `path` is percent-encoded as sent, with placeholders for the
    fuzz world's objects (`{task}`, `{group}`, `{queue_enc}`, `{worker_type}`, `{new_task}`,
    `{new_pool_enc}`: see test_fuzz.World.fill)."""

    id: str
    method: str
    path: str
    body: bytes | Template = b""
    content_type: str | None = "application/json"
    credentials: Credentials = "root"
    authorization: str | None = None  # a forged Authorization header, sent instead of a signature
    headers: tuple[tuple[str, str], ...] = ()  # more headers (with them, a root signature may not verify)


def _query(path: str, **params: str) -> str:
    return f"{path}?{urlencode(params)}"


def _seeds() -> list[Seed]:
    seeds: list[Seed] = []
    # Deep JSON on endpoints with an input schema, as anyone (bodies are parsed before authentication)
    # and as root.
    deep_targets = {
        "createTask": ("PUT", "/api/queue/v1/task/{new_task}"),
        "claimWork": ("POST", "/api/queue/v1/claim-work/{queue_enc}"),
        "expandScopes": ("POST", "/api/auth/v1/scopes/expand"),
        "createWorkerPool": ("PUT", "/api/worker-manager/v1/worker-pool/{new_pool_enc}"),
    }
    for name, (method, path) in deep_targets.items():
        for levels in DEEP:
            for shape, text in (("array", deep_array(levels)), ("object", deep_object(levels))):
                for creds in CREDENTIALS:
                    label = f"{name}-deep-{shape}-{levels}-{creds}"
                    seeds.append(Seed(label, method, path, text.encode(), credentials=creds))
    # Deep JSON inside an otherwise valid body: past parsing, into validation, the handler and storage
    # (DynamoDB allows 32 levels of nesting in an item).
    for levels in (33, 100, 990, 1_000):
        deep = (("payload", Raw(deep_object(levels))),)
        seeds.append(
            Seed(f"createTask-payload-deep-{levels}", "PUT", "/api/queue/v1/task/{new_task}", Template("task", deep))
        )
        extra = (("extra", Raw(deep_object(levels))),)
        seeds.append(
            Seed(f"createTask-extra-deep-{levels}", "PUT", "/api/queue/v1/task/{new_task}", Template("task", extra))
        )

    digits = "1" * LONG
    for name, method, path in (
        ("claimTask", "POST", f"/api/queue/v1/task/{{task}}/runs/{digits}/claim"),
        ("reclaimTask", "POST", f"/api/queue/v1/task/{{task}}/runs/{digits}/reclaim"),
        ("reportCompleted", "POST", f"/api/queue/v1/task/{{task}}/runs/{digits}/completed"),
        ("reportException", "POST", f"/api/queue/v1/task/{{task}}/runs/{digits}/exception"),
        ("listArtifacts", "GET", f"/api/queue/v1/task/{{task}}/runs/{digits}/artifacts"),
        ("getArtifact", "GET", f"/api/queue/v1/task/{{task}}/runs/{digits}/artifacts/public%2Ffuzz.txt"),
        ("artifactInfo", "GET", f"/api/queue/v1/task/{{task}}/runs/{digits}/artifact-info/public%2Ffuzz.txt"),
        ("createArtifact", "POST", f"/api/queue/v1/task/{{task}}/runs/{digits}/artifacts/public%2Fx"),
    ):
        body: bytes | Template = b""  # the body each endpoint takes, so that only the runId is wrong
        if name == "reportException":
            body = b'{"reason": "worker-shutdown"}'
        elif name == "claimTask":
            body = b'{"workerGroup": "wg", "workerId": "w1"}'
        elif name == "createArtifact":
            body = Template("artifact")
        seeds.append(Seed(f"{name}-runId-{LONG}-digits", method, path, body))

    listings = {
        "listProvisioners": "/api/queue/v1/provisioners",
        "listTaskQueues": "/api/queue/v1/task-queues",
        "listWorkerTypes": "/api/queue/v1/provisioners/fuzz/worker-types",
        "listWorkers": "/api/queue/v1/provisioners/fuzz/worker-types/{worker_type}/workers",
        "listTaskGroup": "/api/queue/v1/task-group/{group}/list",
        "listDependentTasks": "/api/queue/v1/task/{task}/dependents",
        "listLatestArtifacts": "/api/queue/v1/task/{task}/artifacts",
        "listArtifacts": "/api/queue/v1/task/{task}/runs/0/artifacts",
        "listPendingTasks": "/api/queue/v1/task-queues/{queue_enc}/pending",
        "listClaimedTasks": "/api/queue/v1/task-queues/{queue_enc}/claimed",
        "listClients": "/api/auth/v1/clients",
        "listRoles": "/api/auth/v1/roles",
        "listWorkerPools": "/api/worker-manager/v1/worker-pools",
        "listWorkerPoolErrors": "/api/worker-manager/v1/worker-pool-errors/{queue_enc}",
        "listWorkersForWorkerPool": "/api/worker-manager/v1/workers/{queue_enc}",
    }
    for name, path in listings.items():
        seeds.append(Seed(f"{name}-limit-{LONG}-digits", "GET", _query(path, limit=digits)))
        seeds.append(Seed(f"{name}-limit-{LONG}-zeros-then-1", "GET", _query(path, limit="0" * LONG + "1")))
        for i, token in enumerate(HOSTILE_TOKENS):
            seeds.append(Seed(f"{name}-continuationToken-{i}", "GET", _query(path, continuationToken=token)))
        for keys in TOKEN_KEYS:
            # Each key set with values of the other type, and empty: the shape passes, the values do not.
            for kind, value in (("N", "x"), ("S", ""), ("N", "1" * LONG)):
                token = b64(json.dumps({k: {kind: value} for k in keys}))
                label = f"{name}-continuationToken-{'+'.join(keys)}-{kind}-{len(value)}"
                seeds.append(Seed(label, "GET", _query(path, continuationToken=token)))

    for field, date in (
        ("deadline", "9999-12-31T23:59:59.999Z"),
        ("created", "0001-01-01T00:00:00.000Z"),
        ("expires", "+275760-09-13T00:00:00.000Z"),
        ("deadline", "2100-01-01T00:00:00.000Z"),  # far out: Taskcluster allows 5 days after created
        ("expires", "9999-12-31T23:59:59.999Z"),
        ("created", "0001-01-01T00:00:00.000+01:00"),  # before datetime.min in UTC
    ):
        seeds.append(
            Seed(
                f"createTask-{field}-{date}", "PUT", "/api/queue/v1/task/{new_task}", Template("task", ((field, date),))
            )
        )
    for date in ("9999-12-31T23:59:59.999Z", "0001-01-01T00:00:00.000Z", "+275760-09-13T00:00:00.000Z"):
        seeds.append(
            Seed(
                f"createClient-expires-{date}",
                "PUT",
                "/api/auth/v1/clients/fuzz%2Fnew-{new_task}",
                Template("client", (("expires", date),)),
            )
        )
        seeds.append(
            Seed(
                f"createArtifact-expires-{date}",
                "POST",
                "/api/queue/v1/task/{task}/runs/0/artifacts/public%2Fnew-{new_task}",
                Template("artifact", (("expires", date),)),
            )
        )

    long_id = "r" * LONG
    seeds += [
        Seed(f"createRole-roleId-{LONG}", "PUT", f"/api/auth/v1/roles/{long_id}", Template("role")),
        Seed(f"updateRole-roleId-{LONG}", "POST", f"/api/auth/v1/roles/{long_id}", Template("role")),
        Seed(f"role-roleId-{LONG}", "GET", f"/api/auth/v1/roles/{long_id}"),
        Seed(f"deleteRole-roleId-{LONG}", "DELETE", f"/api/auth/v1/roles/{long_id}"),
        Seed(f"createClient-clientId-{LONG}", "PUT", f"/api/auth/v1/clients/{long_id}", Template("client")),
        Seed(f"updateClient-clientId-{LONG}", "POST", f"/api/auth/v1/clients/{long_id}", Template("client")),
        Seed(f"client-clientId-{LONG}", "GET", f"/api/auth/v1/clients/{long_id}"),
        Seed(f"resetAccessToken-clientId-{LONG}", "POST", f"/api/auth/v1/clients/{long_id}/reset"),
        Seed(f"deleteClient-clientId-{LONG}", "DELETE", f"/api/auth/v1/clients/{long_id}"),
    ]

    long_name = "public%2F" + "n" * 2_000
    for label, name in (
        ("2000-chars", long_name),
        ("dot-dot", "public%2F..%2F..%2Fx"),
        ("dot-dot-raw", "public/../../x"),
    ):
        seeds += [
            Seed(
                f"createArtifact-name-{label}",
                "POST",
                f"/api/queue/v1/task/{{task}}/runs/0/artifacts/{name}",
                Template("artifact"),
            ),
            Seed(f"getArtifact-name-{label}", "GET", f"/api/queue/v1/task/{{task}}/runs/0/artifacts/{name}"),
            Seed(f"getLatestArtifact-name-{label}", "GET", f"/api/queue/v1/task/{{task}}/artifacts/{name}"),
            Seed(f"artifactInfo-name-{label}", "GET", f"/api/queue/v1/task/{{task}}/runs/0/artifact-info/{name}"),
        ]

    long_task = "t" * LONG
    seeds += [
        Seed(f"task-taskId-{LONG}", "GET", f"/api/queue/v1/task/{long_task}"),
        Seed(f"status-taskId-{LONG}", "GET", f"/api/queue/v1/task/{long_task}/status"),
        Seed(f"createTask-taskId-{LONG}", "PUT", f"/api/queue/v1/task/{long_task}", Template("task")),
        Seed(f"listTaskGroup-taskGroupId-{LONG}", "GET", f"/api/queue/v1/task-group/{long_task}/list"),
        Seed(f"workerPool-workerPoolId-{LONG}", "GET", f"/api/worker-manager/v1/worker-pool/{long_task}%2Fx"),
    ]

    # The headers that say which host and port a signature covers: parsed for every request that is
    # not public, signed or not.
    for name, value in (
        ("X-Forwarded-Port", "²"),  # str.isdigit() is true, int() refuses it
        ("X-Forwarded-Port", digits),
        ("Host", "localhost:²"),
        ("Host", f"localhost:{digits}"),
    ):
        for creds in CREDENTIALS:
            label = f"headers-{name}-{shorten(value, 3)}-{creds}"
            seeds.append(Seed(label, "GET", "/api/auth/v1/scopes/current", credentials=creds, headers=((name, value),)))
    # A body over the service's 10 MB limit: 413 InputTooLarge, before any parsing.
    too_large = b'{"a": "' + b"x" * (11 * 1024 * 1024) + b'"}'
    for creds in CREDENTIALS:
        seeds.append(
            Seed(f"body-11MB-createTask-{creds}", "PUT", "/api/queue/v1/task/{new_task}", too_large, credentials=creds)
        )
    # Methods no route has. (Not OPTIONS: Chalice answers a CORS preflight before the app, and its
    # test client fails on that answer's empty body.)
    for method in ("PATCH", "HEAD", "TRACE"):
        for path in ("/api/queue/v1/task/{task}", "/api/auth/v1/scopes/expand", "/references/manifest.json"):
            seeds.append(Seed(f"methods-{method}-{path}", method, path))

    # The reference documents with a body of another media type than JSON.
    for path in ("/references/manifest.json", "/references/queue/v1/api.json", "/schemas/queue/v1/task.json"):
        seeds.append(Seed(f"references-{path}-text-plain", "GET", path, b"x", content_type="text/plain"))

    # Forged Hawk headers and bewits: what the service parses before any signature is checked.
    for i, ext in enumerate(HOSTILE_EXTS):
        header = f'Hawk id="fuzz", ts="1", nonce="n", ext="{ext}", mac="m"'
        seeds.append(Seed(f"hawk-ext-{i}", "GET", "/api/auth/v1/scopes/current", authorization=header))
    for i, client_id in enumerate(HOSTILE_CLIENT_IDS):
        header = f'Hawk id="{client_id}", ts="1", nonce="n", mac="m"'
        seeds.append(Seed(f"hawk-id-{i}", "GET", "/api/auth/v1/scopes/current", authorization=header))
    ts_header = f'Hawk id="fuzz", ts="{digits}", nonce="n", mac="m"'
    seeds.append(Seed("hawk-ts-digits", "GET", "/api/auth/v1/scopes/current", authorization=ts_header))
    for i, bewit in enumerate((b64(f"fuzz\\{digits}\\mac\\"), b64(f"{'x' * LONG}\\1\\mac\\"), b64("é\\1\\mac\\"), "!")):
        path = _query("/api/queue/v1/task/{task}/artifacts/private%2Ffuzz.log", bewit=bewit)
        seeds.append(Seed(f"bewit-{i}", "GET", path, credentials="anonymous"))
    return seeds


SEEDS: tuple[Seed, ...] = tuple(_seeds())
