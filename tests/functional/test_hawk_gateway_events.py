"""Hawk as API Gateway delivers requests (issue 18): REST proxy events (payload 1.0, what Chalice
deploys) built from the URL a client signed and how the API is reached, then handed to the app as
Lambda would (`app(event, context)`).

What the events are made of, and where it is known from:

- AWS's developer guide ("Lambda proxy integrations in API Gateway", input format): the request
  reaches the function "as-is, except that the order of the request parameters is not
  preserved"; `queryStringParameters` holds each key's last value, `multiValueQueryStringParameters`
  every value; `requestContext.path` is "the request path": for
  `https://{api}.execute-api.{region}.amazonaws.com/{stage}/root/child`, `/{stage}/root/child`;
  `requestContext.domainName` is "the full domain name used to invoke the API", the Host header.
- Events captured from a live REST API (hotsock/voker, vokerhttp/testdata/apigwv1-request.json and
  ingress-paths.json, and LocalStack's recordings against AWS): `path` and `requestContext.path` keep
  the client's percent-encoding (`%2F`, `%20`, `%25`, UTF-8 stay encoded; `path` without the stage,
  `requestContext.path` with it), and so do path parameters (`proxy`: `capture/space%20value`);
  query values arrive decoded, `+` as a space (`a%2Bb` → `a+b`, `a+b` → `a b`); the values of a
  repeated key keep their order; X-Forwarded-Port/-Proto are set; header names keep the client's case.
- Custom domains (reports from aws-serverless-express #86, serverless-java-container #34,
  serverless-wsgi #28): behind a base path mapping `path` carries the base path (`/ping1/ping`), and
  the client's URL has no stage. Whether `requestContext.path` always does too is not documented:
  `reported="like-execute-api"` builds the other reading (`/{stage}/<route>`, `path` the route).

`Deployment` says how the API is reached; `rest_event` makes the event for one request;
`official_client_through` routes the `taskcluster` client's own requests (its own signing) through
the same events.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

import mohawk
import pytest
import requests
import slugid
import taskcluster
from chalice.app import Request
from requests.structures import CaseInsensitiveDict
from taskcluster.exceptions import TaskclusterAuthFailure

from app import app
from chalicelib.domain.model import format_date
from chalicelib.handlers import http
from tests.harness import AUTH, Harness, hawk_header, make_client, task_def

REGION = "us-east-1"
API_ID = "abc123defg"
STAGE = "api"  # .chalice/config.json: the dev stage's api_gateway_stage
QUEUE = "/api/queue/v1"
CURRENT_SCOPES = f"{AUTH}/scopes/current"
JSON = {"Content-Type": "application/json"}


# --- the fixture builder ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Deployment:
    """How clients reach the API: `root_url` is what they are configured with."""

    host: str
    base_path: str  # what comes before /api/...: the stage on execute-api, the mapping's base path
    custom_domain: bool
    stage: str = STAGE

    @property
    def root_url(self) -> str:
        return f"https://{self.host}{self.base_path}"

    def url(self, route: str) -> str:
        return self.root_url + route


EXECUTE_API = Deployment(f"{API_ID}.execute-api.{REGION}.amazonaws.com", f"/{STAGE}", custom_domain=False)
CUSTOM_DOMAIN = Deployment("tc.example.com", "", custom_domain=True)  # base path mapping "(none)"
BASE_PATH = Deployment("tc.example.com", "/queue-stage", custom_domain=True)  # base path "queue-stage"
DEPLOYMENTS = pytest.mark.parametrize(
    "deployment", [EXECUTE_API, CUSTOM_DOMAIN, BASE_PATH], ids=["execute-api", "custom-domain", "base-path"]
)


def match_resource(method: str, route: str) -> tuple[str, dict[str, str]]:
    """The app's resource API Gateway matches `route` (raw: `%2F` never splits a segment) to, and
    its path parameters as raw segments; literal segments win over parameters, as on API Gateway."""
    segments = route.split("/")
    best: tuple[int, str, dict[str, str]] | None = None
    for resource, methods in app.routes.items():
        template = resource.split("/")
        if method not in methods or len(template) != len(segments):
            continue
        params: dict[str, str] = {}
        for want, have in zip(template, segments, strict=True):
            if want.startswith("{") and want.endswith("}"):
                params[want[1:-1]] = have
            elif want != have:
                break
        else:
            literals = len(template) - len(params)
            if best is None or literals > best[0]:
                best = (literals, resource, params)
    assert best is not None, f"no resource for {method} {route}"
    return best[1], best[2]


def rest_event(
    deployment: Deployment,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    reported: str = "as-requested",
    forwarded: tuple[str, ...] = ("Port", "Proto"),
    lower_case_headers: bool = False,
    decoded_path_parameters: bool = False,
) -> dict[str, Any]:
    """The event API Gateway hands the function for `method url` (the URL the client used).

    The query is parsed as API Gateway does (`+` a space, percent-decoded), its keys put in
    another order than the client's (reversed), each key's values kept in order. `forwarded`:
    which X-Forwarded-* headers arrive; `lower_case_headers`: names as an HTTP/2 client or a proxy
    sends them; `decoded_path_parameters`: path parameters decoded (AWS passes them raw).
    `reported`: "as-requested" puts the path as the client requested it in `requestContext.path`
    (and, on a custom domain, in `path`); "like-execute-api" puts `/{stage}/<route>` there and
    the route in `path`, as if the base path were lost.
    """
    parts = urlsplit(url)
    method = method.upper()
    assert parts.scheme == "https" and parts.port in (None, 443), "API Gateway answers HTTPS on 443 only"
    assert parts.hostname == deployment.host, url
    requested = parts.path  # still percent-encoded, as sent
    assert requested.startswith(deployment.base_path + "/"), url
    route = requested[len(deployment.base_path) :]
    resource, raw_params = match_resource(method, route)
    params = {k: unquote(v) for k, v in raw_params.items()} if decoded_path_parameters else raw_params
    multi: dict[str, list[str]] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        multi.setdefault(key, []).append(value)
    multi = dict(reversed(multi.items()))  # "the order of the request parameters is not preserved"
    if deployment.custom_domain and reported == "as-requested":
        context_path, event_path = requested, requested
    elif reported in ("as-requested", "like-execute-api"):
        context_path, event_path = f"/{deployment.stage}{route}", route
    else:
        raise ValueError(reported)
    sent = {
        "Host": deployment.host,
        "User-Agent": "python-requests/2.32",
        "Accept": "*/*",
        "Via": "2.0 0123456789abcdef0123456789abcdef.cloudfront.net (CloudFront)",
        "X-Amz-Cf-Id": "pn-PWIJc6thYnZm5P0NMgOUglL1DYtl0gdeJky8tqsg8iS_sgsKD1A==",
        "X-Amzn-Trace-Id": "Root=1-6a5145a8-536f3e792f6be9b44c1f46fa",
        "X-Forwarded-For": "203.0.113.9, 130.176.0.1",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
        "CloudFront-Forwarded-Proto": "https",
        "CloudFront-Viewer-Country": "DE",
        **(headers or {}),
    }
    sent = {k: v for k, v in sent.items() if not k.startswith("X-Forwarded-") or k[12:] in forwarded + ("For",)}
    if lower_case_headers:
        sent = {k.lower(): v for k, v in sent.items()}
    return {
        "resource": resource,
        "path": event_path,
        "httpMethod": method,
        "headers": sent,
        "multiValueHeaders": {k: [v] for k, v in sent.items()},
        "queryStringParameters": {k: v[-1] for k, v in multi.items()} or None,
        "multiValueQueryStringParameters": multi or None,
        "pathParameters": params or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": API_ID,
            "domainName": deployment.host,
            "domainPrefix": deployment.host.split(".")[0],
            "extendedRequestId": "ATfSdF7nPHcErRA=",
            "httpMethod": method,
            "identity": {"sourceIp": "203.0.113.9", "userAgent": "python-requests/2.32", "user": None},
            "path": context_path,
            "protocol": "HTTP/1.1",
            "requestId": "7c2af7db-31f3-42b5-8a6d-9ffc74e3b9e0",
            "requestTime": "10/Jul/2026:19:19:04 +0000",
            "requestTimeEpoch": 1783711144836,
            "resourceId": "al6gqb",
            "resourcePath": resource,
            "stage": deployment.stage,
        },
        "body": body.decode() if body else None,
        "isBase64Encoded": False,
    }


def app_request(event: dict[str, Any]) -> Request:
    """The Chalice request the app makes of `event`."""
    return Request(event)


def invoke(event: dict[str, Any]) -> tuple[int, Any]:
    """The app's answer to `event`, as Lambda runs it: status and JSON body (None when empty)."""
    response = app(event, None)
    return response["statusCode"], json.loads(response["body"]) if response["body"] else None


def official_client_through(
    monkeypatch: pytest.MonkeyPatch, deployment: Deployment, **event_options: Any
) -> list[dict[str, Any]]:
    """Send every request of the `taskcluster` client (signed by the client itself) through
    `rest_event` and the app instead of the network; the events it made, for inspection."""
    return client_through_events(
        monkeypatch,
        lambda method, url, headers, body: rest_event(
            deployment, method, url, headers=headers, body=body, **event_options
        ),
    )


def client_through_events(
    monkeypatch: pytest.MonkeyPatch, make_event: Callable[[str, str, dict[str, str], bytes], dict[str, Any]]
) -> list[dict[str, Any]]:
    """The `taskcluster` client's requests made into events by `make_event` and answered by the app
    as Lambda runs it; the events, for inspection."""
    events: list[dict[str, Any]] = []

    def send(method: str, url: str, payload: Any, headers: dict[str, str], session: Any = None) -> requests.Response:
        body = payload.encode() if isinstance(payload, str) else payload or b""
        events.append(make_event(method, url, headers, body))
        answer = app(events[-1], None)
        response = requests.Response()
        response.status_code = answer["statusCode"]
        response._content = answer["body"].encode()
        response.headers = CaseInsensitiveDict(answer.get("headers") or {})
        response.url = url
        return response

    monkeypatch.setattr(taskcluster.utils, "makeSingleHttpRequest", send)
    return events


# --- signing ---------------------------------------------------------------------------------------
def sign(stack: Harness, credentials: dict[str, str], method: str, url: str, body: bytes = b"") -> dict[str, str]:
    """Headers of a request signed with mohawk (as Taskcluster's Python client signs) for `url`."""
    headers = {"Content-Type": "application/json"} if body else {}
    now = stack.clock.now().timestamp()
    return {**headers, "Authorization": hawk_header(credentials, method, url, body, headers, now)}


def bewit_url(stack: Harness, credentials: dict[str, str], url: str, expires_in: int = 600) -> str:
    """`url` with a bewit appended, as mohawk (and so the official client) makes one."""
    expiry = int(stack.clock.now().timestamp()) + expires_in
    resource = mohawk.base.Resource(
        credentials={"id": credentials["clientId"], "key": credentials["accessToken"], "algorithm": "sha256"},
        method="GET",
        url=url,
        timestamp=expiry,
        nonce="",
        ext="",
    )
    bewit = mohawk.bewit.get_bewit(resource).rstrip("=")
    return f"{url}{'&' if '?' in url else '?'}bewit={bewit}"


# How clients write a query string: (key, value) → text.
ENCODINGS: dict[str, Callable[[str], str]] = {
    "python-urlencode": lambda s: quote_plus(s, safe=""),  # Taskcluster's Python client, Go's url.Values
    "rfc3986": lambda s: quote(s, safe=""),  # spaces as %20
    "node-querystring": lambda s: quote(s, safe="!'()*"),  # Taskcluster's JS client
    "whatwg-form": lambda s: quote_plus(s, safe="*").replace("~", "%7E"),  # URLSearchParams, Rust's url
}


def query(pairs: list[tuple[str, str]], encode: Callable[[str], str] = ENCODINGS["python-urlencode"]) -> str:
    return "&".join(f"{encode(k)}={encode(v)}" for k, v in pairs)


# --- fixtures --------------------------------------------------------------------------------------
SCOPES = [
    "queue:claim-work:proj/linux",
    "queue:get-artifact:private/logs/*",
    "queue:list-workers:proj/linux",
    "queue:pending-list:proj/linux",
    "queue:worker-id:wg/*",
]


@pytest.fixture
def tester(stack: Harness, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A client holding SCOPES only (so an answer shows whose signature was accepted), with the
    official client's clock following the stack's."""
    stack.client_clock_follows_stack(monkeypatch)
    return make_client(stack, "gateway/tester", SCOPES)


def current_scopes(stack: Harness, deployment: Deployment, url: str, credentials: dict[str, str], **opts: Any) -> Any:
    """currentScopes for a GET of `url` (on CURRENT_SCOPES, any query) signed by `credentials`."""
    return invoke(rest_event(deployment, "GET", url, headers=sign(stack, credentials, "GET", url), **opts))


def assert_tester(answer: tuple[int, Any]) -> None:
    status, body = answer
    assert status == 200, body
    assert body == {"scopes": SCOPES}


def assert_refused(answer: tuple[int, Any]) -> None:
    status, body = answer
    assert (status, (body or {}).get("code")) == (401, "AuthenticationFailed"), body


def pending_task(stack: Harness) -> str:
    task_id = stack.create()
    stack.pump.step()  # the task's hint reaches its queue
    return task_id


# --- the query: order, repeats, encodings ---------------------------------------------------------
@DEPLOYMENTS
def test_query_parameters_in_another_order_than_the_client_s_verify(
    stack: Harness, tester: dict[str, str], deployment: Deployment
) -> None:
    pairs = [("zeta", "1"), ("alpha", "2"), ("mid", "3"), ("limit", "5")]
    url = deployment.url(f"{CURRENT_SCOPES}?{query(pairs)}")
    event = rest_event(deployment, "GET", url, headers=sign(stack, tester, "GET", url))
    assert list(event["multiValueQueryStringParameters"]) == ["limit", "mid", "alpha", "zeta"]  # not the client's
    assert_tester(invoke(event))


def test_repeated_and_interleaved_keys_verify(stack: Harness, tester: dict[str, str]) -> None:
    pairs = [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4"), ("b", "5")]
    url = EXECUTE_API.url(f"{CURRENT_SCOPES}?{query(pairs)}")
    event = rest_event(EXECUTE_API, "GET", url, headers=sign(stack, tester, "GET", url))
    assert event["multiValueQueryStringParameters"] == {"c": ["4"], "b": ["2", "5"], "a": ["1", "3"]}
    assert_tester(invoke(event))


def test_a_signature_for_repeated_values_in_another_order_is_refused(stack: Harness, tester: dict[str, str]) -> None:
    # The handler reads a key's last value: a=1&a=3 means 3, a=3&a=1 means 1. A signature for one
    # must not pass for the other, though both give the same pairs.
    sent = EXECUTE_API.url(f"{QUEUE}/provisioners/proj/worker-types/linux/workers?limit=1&limit=3")
    signed = EXECUTE_API.url(f"{QUEUE}/provisioners/proj/worker-types/linux/workers?limit=3&limit=1")
    assert_refused(invoke(rest_event(EXECUTE_API, "GET", sent, headers=sign(stack, tester, "GET", signed))))
    status, body = invoke(rest_event(EXECUTE_API, "GET", sent, headers=sign(stack, tester, "GET", sent)))
    assert status == 200 and body["workers"] == [], body


def test_beyond_six_pairs_the_map_s_order_and_the_key_sorted_order_verify(
    stack: Harness, tester: dict[str, str]
) -> None:
    pairs = [(f"k{i}", str(i)) for i in (3, 1, 4, 5, 9, 2, 6, 8)]
    for order, verifies in (
        (sorted(pairs), True),  # Go's url.Values.Encode
        (list(reversed(pairs)), True),  # the order the multi-value map has them in
        (pairs, False),  # any other order of more than 6 pairs: beyond the bound
    ):
        signed = EXECUTE_API.url(f"{CURRENT_SCOPES}?{query(order)}")
        sent = EXECUTE_API.url(f"{CURRENT_SCOPES}?{query(pairs)}")  # the same pairs, hence the same event
        event = rest_event(EXECUTE_API, "GET", sent, headers=sign(stack, tester, "GET", signed))
        (assert_tester if verifies else assert_refused)(invoke(event))


def test_every_order_of_six_pairs_verifies_within_the_bound(stack: Harness, tester: dict[str, str]) -> None:
    # Six distinct keys: 720 orders, each a candidate; the client's is the least likely one.
    pairs = [("f", "6"), ("e", "5"), ("d", "4"), ("c", "3"), ("b", "2"), ("a", "1")]
    client_order = [pairs[i] for i in (1, 3, 5, 0, 2, 4)]
    url = BASE_PATH.url(f"{CURRENT_SCOPES}?{query(client_order)}")
    event = rest_event(BASE_PATH, "GET", url, headers=sign(stack, tester, "GET", url))
    assert_tester(invoke(event))
    request = app_request(event)
    resources = http.signed_request(request, b"").resources
    assert len(resources) <= http.MAX_CANDIDATES
    assert sum(map(len, resources)) <= http.MAX_CANDIDATE_BYTES


def test_the_candidates_stay_within_the_bound_whatever_the_query(stack: Harness, tester: dict[str, str]) -> None:
    # Values that every encoding writes differently, on a custom domain: the most candidates there are.
    pairs = [(f"k{i}", f"{i} ~*/+λ") for i in range(6)]
    url = CUSTOM_DOMAIN.url(f"{CURRENT_SCOPES}?{query(pairs)}")
    event = rest_event(CUSTOM_DOMAIN, "GET", url, headers=sign(stack, tester, "GET", url), reported="like-execute-api")
    resources = http.signed_request(app_request(event), b"").resources
    assert len(resources) == http.MAX_CANDIDATES
    long = [(f"k{i}", "x" * 1200) for i in range(6)]
    url = CUSTOM_DOMAIN.url(f"{CURRENT_SCOPES}?{query(long)}")
    event = rest_event(CUSTOM_DOMAIN, "GET", url, headers=sign(stack, tester, "GET", url))
    resources = http.signed_request(app_request(event), b"").resources
    assert sum(map(len, resources)) <= http.MAX_CANDIDATE_BYTES < sum(map(len, resources)) + len(resources[0])
    assert_tester(invoke(event))  # the client's order (key-sorted) is among the first tried


VALUES = [("q", "a b/c+d"), ("u", "λ-世界"), ("marks", "~*!'()"), ("empty", ""), ("eq", "x=y&z")]


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_values_needing_percent_encoding_verify_as_each_client_writes_them(
    stack: Harness, tester: dict[str, str], encoding: str
) -> None:
    url = EXECUTE_API.url(f"{CURRENT_SCOPES}?{query(VALUES, ENCODINGS[encoding])}")
    event = rest_event(EXECUTE_API, "GET", url, headers=sign(stack, tester, "GET", url))
    assert event["queryStringParameters"] == dict(VALUES)  # decoded, as API Gateway passes them
    assert_tester(invoke(event))


def test_a_query_typed_unencoded_verifies(stack: Harness, tester: dict[str, str]) -> None:
    url = EXECUTE_API.url(f"{CURRENT_SCOPES}?next=https://tc.example.com/a/b:c&limit=5")
    assert_tester(current_scopes(stack, EXECUTE_API, url, tester))


def test_a_changed_query_value_is_refused(stack: Harness, tester: dict[str, str]) -> None:
    signed = EXECUTE_API.url(f"{CURRENT_SCOPES}?{query(VALUES)}")
    sent = EXECUTE_API.url(f"{CURRENT_SCOPES}?{query([*VALUES[:-1], ('eq', 'x=y&w')])}")
    assert_refused(invoke(rest_event(EXECUTE_API, "GET", sent, headers=sign(stack, tester, "GET", signed))))


def test_the_official_client_s_query_verifies(
    stack: Harness, tester: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    events = official_client_through(monkeypatch, BASE_PATH)
    queue = taskcluster.Queue({"rootUrl": BASE_PATH.root_url, "credentials": tester, "maxRetries": 0})
    answer = queue.listWorkers("proj", "linux", query={"quarantined": "false", "limit": 5})
    assert answer["workers"] == []
    assert list(events[-1]["multiValueQueryStringParameters"]) == ["limit", "quarantined"]  # reordered


# --- the path: encoded slashes, stage, custom domains ---------------------------------------------
@DEPLOYMENTS
def test_an_encoded_slash_in_a_task_queue_id_verifies(
    stack: Harness, tester: dict[str, str], deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = pending_task(stack)
    events = official_client_through(monkeypatch, deployment)
    queue = taskcluster.Queue({"rootUrl": deployment.root_url, "credentials": tester, "maxRetries": 0})
    pending = queue.listPendingTasks("proj/linux", query={"limit": 10})
    assert [t["taskId"] for t in pending["tasks"]] == [task_id]
    claimed = queue.claimWork("proj/linux", {"workerGroup": "wg", "workerId": "w1", "tasks": 1})
    assert [c["status"]["taskId"] for c in claimed["tasks"]] == [task_id]
    assert events[-1]["requestContext"]["path"].endswith("/api/queue/v1/claim-work/proj%2Flinux")
    assert events[-1]["pathParameters"] == {"taskQueueId": "proj%2Flinux"}


def test_a_signature_for_another_task_queue_is_refused(stack: Harness, tester: dict[str, str]) -> None:
    body = json.dumps({"workerGroup": "wg", "workerId": "w1", "tasks": 1}).encode()
    sent = EXECUTE_API.url(f"{QUEUE}/claim-work/proj%2Flinux")
    for signed in (
        EXECUTE_API.url(f"{QUEUE}/claim-work/proj%2Fother"),
        EXECUTE_API.url(f"{QUEUE}/claim-work/proj/linux"),
    ):
        event = rest_event(EXECUTE_API, "POST", sent, headers=sign(stack, tester, "POST", signed, body), body=body)
        assert_refused(invoke(event))


@pytest.mark.parametrize("decoded", [False, True], ids=["raw-path-parameters", "decoded-path-parameters"])
@DEPLOYMENTS
def test_an_encoded_slash_in_an_artifact_name_verifies(
    stack: Harness, tester: dict[str, str], deployment: Deployment, decoded: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = pending_task(stack)
    stack.claim()
    worker = make_client(stack, "gateway/worker", [f"queue:create-artifact:{task_id}/0"])
    events = official_client_through(monkeypatch, deployment, decoded_path_parameters=decoded)
    queue = taskcluster.Queue({"rootUrl": deployment.root_url, "credentials": worker, "maxRetries": 0})
    link = {
        "storageType": "reference",
        "url": "https://example.com/live.log",
        "contentType": "text/plain",
        "expires": format_date(stack.clock.now() + timedelta(hours=1)),
    }
    assert queue.createArtifact(task_id, "0", "private/logs/live.log", link) == {"storageType": "reference"}
    assert events[-1]["requestContext"]["path"].endswith("/runs/0/artifacts/private%2Flogs%2Flive.log")
    url = deployment.url(f"{QUEUE}/task/{task_id}/runs/0/artifacts/private%2Flogs%2Flive.log")
    event = rest_event(deployment, "GET", url, headers=sign(stack, tester, "GET", url), decoded_path_parameters=decoded)
    status, body = invoke(event)
    assert (status, body) == (303, {"storageType": "reference", "url": "https://example.com/live.log"})
    other = url.replace("private%2Flogs%2Flive.log", "private%2Flogs%2Fother.log")
    assert_refused(invoke(rest_event(deployment, "GET", other, headers=sign(stack, tester, "GET", url))))


def test_the_stage_prefix_on_execute_api_is_part_of_what_is_signed(stack: Harness, tester: dict[str, str]) -> None:
    url = EXECUTE_API.url(CURRENT_SCOPES)
    event = rest_event(EXECUTE_API, "GET", url, headers=sign(stack, tester, "GET", url))
    assert (event["path"], event["requestContext"]["path"]) == (CURRENT_SCOPES, f"/{STAGE}{CURRENT_SCOPES}")
    assert_tester(invoke(event))
    for signed in (
        f"https://{EXECUTE_API.host}{CURRENT_SCOPES}",  # the path without its stage: what `path` says
        f"https://{EXECUTE_API.host}/prod{CURRENT_SCOPES}",  # another stage
    ):
        assert_refused(invoke(rest_event(EXECUTE_API, "GET", url, headers=sign(stack, tester, "GET", signed))))


@pytest.mark.parametrize("reported", ["as-requested", "like-execute-api"])
def test_a_custom_domain_without_a_base_path_verifies(stack: Harness, tester: dict[str, str], reported: str) -> None:
    url = CUSTOM_DOMAIN.url(CURRENT_SCOPES)
    assert url == f"https://tc.example.com{CURRENT_SCOPES}"
    assert_tester(current_scopes(stack, CUSTOM_DOMAIN, url, tester, reported=reported))
    refused = [EXECUTE_API.url(CURRENT_SCOPES), f"https://tc.example.com/other{CURRENT_SCOPES}"]
    if reported == "as-requested":  # (else AWS would have reported that path itself)
        refused.append(f"https://tc.example.com/{STAGE}{CURRENT_SCOPES}")  # no stage in a custom domain's URLs
    for signed in refused:
        event = rest_event(CUSTOM_DOMAIN, "GET", url, headers=sign(stack, tester, "GET", signed), reported=reported)
        assert_refused(invoke(event))


def test_a_custom_domain_with_a_base_path_mapping_verifies(stack: Harness, tester: dict[str, str]) -> None:
    url = BASE_PATH.url(CURRENT_SCOPES)
    assert url == f"https://tc.example.com/queue-stage{CURRENT_SCOPES}"
    event = rest_event(BASE_PATH, "GET", url, headers=sign(stack, tester, "GET", url))
    assert event["requestContext"]["path"] == event["path"] == f"/queue-stage{CURRENT_SCOPES}"
    assert_tester(invoke(event))
    for signed in (
        f"https://tc.example.com{CURRENT_SCOPES}",  # without the base path
        f"https://tc.example.com/other-stage{CURRENT_SCOPES}",  # another mapping's
        f"https://tc.example.com/queue-stage/{STAGE}{CURRENT_SCOPES}",
    ):
        assert_refused(invoke(rest_event(BASE_PATH, "GET", url, headers=sign(stack, tester, "GET", signed))))


def test_a_base_path_the_event_does_not_carry_comes_from_the_public_root_url(
    stack: Harness, tester: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = BASE_PATH.url(CURRENT_SCOPES)
    opts = {"reported": "like-execute-api"}  # requestContext.path `/api/api/...`, path `/api/...`
    assert_refused(current_scopes(stack, BASE_PATH, url, tester, **opts))
    for root, verifies in (
        ("https://tc.example.com/queue-stage", True),
        ("https://TC.example.com/queue-stage/", True),
        ("https://other.example.com/queue-stage", False),  # another host's base path
        ("https://tc.example.com/other-stage", False),
    ):
        monkeypatch.setattr(stack.c, "settings", replace(stack.c.settings, public_root_url=root))
        (assert_tester if verifies else assert_refused)(current_scopes(stack, BASE_PATH, url, tester, **opts))


# --- host and port ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "forwarded, lower_case",
    [(("Port", "Proto"), False), (("Port", "Proto"), True), (("Proto",), False), ((), False), ((), True)],
    ids=["x-forwarded-port", "lower-cased-names", "proto-only", "neither", "neither-lower-cased"],
)
@DEPLOYMENTS
def test_the_port_is_443_with_or_without_x_forwarded_port(
    stack: Harness, tester: dict[str, str], deployment: Deployment, forwarded: tuple[str, ...], lower_case: bool
) -> None:
    url = deployment.url(f"{CURRENT_SCOPES}?limit=5&b=x")
    opts: dict[str, Any] = {"forwarded": forwarded, "lower_case_headers": lower_case}
    assert_tester(current_scopes(stack, deployment, url, tester, **opts))
    for signed in (url.replace("https://", "http://"), url.replace(deployment.host, f"{deployment.host}:8443")):
        event = rest_event(deployment, "GET", url, headers=sign(stack, tester, "GET", signed), **opts)
        assert_refused(invoke(event))


@DEPLOYMENTS
def test_a_signature_for_another_host_method_or_body_is_refused(
    stack: Harness, tester: dict[str, str], deployment: Deployment
) -> None:
    url = deployment.url(CURRENT_SCOPES)
    other_host = url.replace(deployment.host, "evil.example.com")
    assert_refused(invoke(rest_event(deployment, "GET", url, headers=sign(stack, tester, "GET", other_host))))
    assert_refused(invoke(rest_event(deployment, "GET", url, headers=sign(stack, tester, "DELETE", url))))
    pending_task(stack)
    claim = deployment.url(f"{QUEUE}/claim-work/proj%2Flinux")
    body = json.dumps({"workerGroup": "wg", "workerId": "w1", "tasks": 1}).encode()
    tampered = body.replace(b'"tasks": 1', b'"tasks": 2')
    headers = sign(stack, tester, "POST", claim, body)
    assert_refused(invoke(rest_event(deployment, "POST", claim, headers=headers, body=tampered)))
    status, answer = invoke(rest_event(deployment, "POST", claim, headers=headers, body=body))
    assert status == 200 and len(answer["tasks"]) == 1, answer


# --- bewits ----------------------------------------------------------------------------------------
@DEPLOYMENTS
def test_a_bewit_with_other_query_parameters_verifies(
    stack: Harness, tester: dict[str, str], deployment: Deployment
) -> None:
    task_id = pending_task(stack)
    queue = taskcluster.Queue({"rootUrl": deployment.root_url, "credentials": tester})
    url = queue.buildSignedUrl("listPendingTasks", "proj/linux", query={"limit": 5}, expiration=600)
    assert f"{QUEUE}/task-queues/proj%2Flinux/pending?limit=5&bewit=" in url
    event = rest_event(deployment, "GET", url)
    assert list(event["multiValueQueryStringParameters"]) == ["bewit", "limit"]  # not the client's order
    status, body = invoke(event)
    assert status == 200, body
    assert [t["taskId"] for t in body["tasks"]] == [task_id]
    signed = bewit_url(
        stack, tester, deployment.url(f"{QUEUE}/provisioners/proj/worker-types/linux/workers?limit=2&quarantined=true")
    )
    status, body = invoke(rest_event(deployment, "GET", signed))
    assert (status, body["workers"]) == (200, []), body


@DEPLOYMENTS
def test_a_bewit_for_another_path_or_query_is_refused(
    stack: Harness, tester: dict[str, str], deployment: Deployment
) -> None:
    url = bewit_url(stack, tester, deployment.url(f"{QUEUE}/task-queues/proj%2Flinux/pending?limit=5"))
    bewit = url.split("bewit=", 1)[1]
    for sent in (
        deployment.url(f"{QUEUE}/task-queues/proj%2Fother/pending?limit=5&bewit={bewit}"),
        deployment.url(f"{QUEUE}/task-queues/proj%2Flinux/pending?limit=6&bewit={bewit}"),
        deployment.url(f"{QUEUE}/task-queues/proj%2Flinux/pending?limit=5&limit=5&bewit={bewit}"),
        deployment.url(f"{QUEUE}/task-queues/proj%2Flinux/pending?bewit={bewit}"),
    ):
        assert_refused(invoke(rest_event(deployment, "GET", sent)))
    # A bewit is for GET only.
    claim = deployment.url(f"{QUEUE}/claim-work/proj%2Flinux")
    bewit = bewit_url(stack, tester, claim).split("bewit=", 1)[1]
    body = json.dumps({"workerGroup": "wg", "workerId": "w1", "tasks": 1}).encode()
    event = rest_event(deployment, "POST", f"{claim}?bewit={bewit}", headers=JSON, body=body)
    assert_refused(invoke(event))


def test_the_official_client_is_refused_with_a_wrong_token(
    stack: Harness, tester: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    official_client_through(monkeypatch, BASE_PATH)
    wrong = {**tester, "accessToken": base64.b64encode(b"not the token").decode()}
    auth = taskcluster.Auth({"rootUrl": BASE_PATH.root_url, "credentials": wrong, "maxRetries": 0})
    with pytest.raises(TaskclusterAuthFailure):
        auth.currentScopes()
    right = taskcluster.Auth({"rootUrl": BASE_PATH.root_url, "credentials": tester, "maxRetries": 0})
    assert right.currentScopes() == {"scopes": SCOPES}


# --- the function URL front door (handlers/function_url.py) ----------------------------------------
# Events as a Lambda function URL hands them over (payload format 2.0). What they are made of, and
# where it is known from: AWS's developer guide ("Invoking Lambda function URLs": the request
# payload follows API Gateway's payload format 2.0: `rawPath`, `rawQueryString`, `cookies`,
# lower-case `headers` with repeated ones comma-joined, `requestContext.http.method/path`,
# `domainName`, `body`, `isBase64Encoded`) and a request captured from a live function URL in July
# 2026 (hotsock/voker, vokerhttp/testdata/functionurl-request.json: `rawPath` keeps the client's
# percent-encoding, `/capture/space%20value`, while `requestContext.http.path` is decoded;
# `rawQueryString` is the query as sent, `+` and order kept; X-Forwarded-Port 443, -Proto https).
# That `%2F` and `%25` stay encoded in `rawPath` as `%20` does is assumed (docs/limits.md).
FUNCTION_URL = Deployment("2cxn22odiwguak4feg4jtt7cwm0ziblr.lambda-url.us-east-1.on.aws", "", custom_domain=False)


def function_url_event(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    base64_body: bool = False,
    cookies: list[str] | None = None,
) -> dict[str, Any]:
    """The event a function URL hands the function for `method url` (the URL the client used)."""
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.hostname == FUNCTION_URL.host, url
    sent: dict[str, str] = {}
    for name, value in {
        "Host": FUNCTION_URL.host,
        "User-Agent": "python-requests/2.32",
        "Accept": "*/*",
        "X-Amzn-Trace-Id": "Root=1-6a5145aa-290a323a5de9a2e0636377d4",
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
        **(headers or {}),
    }.items():
        key = name.lower()  # lower case, repeated headers comma-joined
        sent[key] = f"{sent[key]},{value}" if key in sent else value
    if cookies:
        sent["cookie"] = "; ".join(cookies)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        **({"cookies": cookies} if cookies else {}),
        "headers": sent,
        "queryStringParameters": {k: v for k, v in parse_qsl(parts.query, keep_blank_values=True)} or None,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": FUNCTION_URL.host.split(".")[0],
            "domainName": FUNCTION_URL.host,
            "domainPrefix": FUNCTION_URL.host.split(".")[0],
            "http": {
                "method": method.upper(),
                "path": unquote(parts.path),
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "python-requests/2.32",
            },
            "requestId": "d16a6b55-dea9-4b23-8499-eb85c3d2d904",
            "routeKey": "$default",
            "stage": "$default",
            "time": "10/Jul/2026:19:19:06 +0000",
            "timeEpoch": 1783711146671,
        },
        "body": (base64.b64encode(body).decode() if base64_body else body.decode()) if body else None,
        "isBase64Encoded": base64_body,
        "pathParameters": None,
        "stageVariables": None,
    }


def invoke_url(event: dict[str, Any]) -> tuple[int, Any]:
    """The app's answer to a function URL event, checked to be in payload format 2.0."""
    response = app(event, None)
    assert set(response) <= {"statusCode", "headers", "body", "isBase64Encoded", "cookies"}, response
    assert all(isinstance(v, str) for v in response["headers"].values()), response["headers"]
    body = base64.b64decode(response["body"]) if response["isBase64Encoded"] else response["body"]
    return response["statusCode"], json.loads(body) if body else None


def official_client_through_function_url(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The `taskcluster` client's requests (signed by the client itself) as function URL events."""
    return client_through_events(
        monkeypatch, lambda method, url, headers, body: function_url_event(method, url, headers=headers, body=body)
    )


def same_answer(rest: tuple[int, Any], function_url: tuple[int, Any]) -> None:
    """The same status and body (an error body's `code`: its time and message differ)."""
    assert rest[0] == function_url[0], (rest, function_url)
    if rest[0] < 400:
        assert rest[1] == function_url[1]
    else:
        assert (rest[1] or {}).get("code") == (function_url[1] or {}).get("code"), (rest, function_url)


def twins(
    stack: Harness, credentials: dict[str, str] | None, method: str, route: str, body: bytes = b""
) -> tuple[tuple[int, Any], tuple[int, Any]]:
    """The answers to one request (`route`: path and query, percent-encoded) through the REST API
    on execute-api and through the function URL, each signed for the URL it is sent to."""
    answers = []
    for deployment in (EXECUTE_API, FUNCTION_URL):
        url = deployment.url(route)
        headers = sign(stack, credentials, method, url, body) if credentials else (JSON if body else {})
        if deployment is FUNCTION_URL:
            answers.append(invoke_url(function_url_event(method, url, headers=headers, body=body)))
        else:
            answers.append(invoke(rest_event(deployment, method, url, headers=headers, body=body)))
    return answers[0], answers[1]


@pytest.mark.parametrize(
    "route",
    [
        CURRENT_SCOPES,
        f"{CURRENT_SCOPES}?{query([('zeta', '1'), ('alpha', '2'), ('mid', 'x y'), ('limit', '5')])}",
        f"{CURRENT_SCOPES}?{query([('a', '1'), ('b', '2'), ('a', '3'), ('c', '4'), ('b', '5')])}",
        f"{CURRENT_SCOPES}?{query([('q', '~!*()/?&=+%')], ENCODINGS['node-querystring'])}",
        f"{QUEUE}/task-queues/proj%2Flinux/pending?limit=5",
        f"{QUEUE}/task-queues/proj%2Flinux",
        f"{QUEUE}/provisioners/proj/worker-types/linux/workers?limit=2&quarantined=true",
        f"{QUEUE}/task-queues/proj%2Flinux%2Fextra/pending",  # InvalidRequestArguments
        f"{QUEUE}/task/not-a-slug/status",
    ],
)
def test_a_function_url_event_gets_what_its_rest_twin_gets(stack: Harness, tester: dict[str, str], route: str) -> None:
    pending_task(stack)
    rest, function_url = twins(stack, tester, "GET", route)
    same_answer(rest, function_url)


def test_more_than_six_query_pairs_in_any_order_verify_through_a_function_url(
    stack: Harness, tester: dict[str, str]
) -> None:
    pairs = [("k", "9"), ("b", "2"), ("a", "1"), ("k", "3"), ("z", "8"), ("c", "4"), ("y", "7"), ("d", "5")]
    pairs += [("x", "6"), ("b", "0")]
    route = f"{CURRENT_SCOPES}?{query(pairs)}"
    rest, function_url = twins(stack, tester, "GET", route)
    assert_tester(function_url)
    # Through the REST API the query arrives parsed: beyond six pairs only two orders are tried.
    assert_refused(rest)


def test_a_function_url_query_is_verified_exactly_as_sent(stack: Harness, tester: dict[str, str]) -> None:
    url = FUNCTION_URL.url(f"{CURRENT_SCOPES}?a=1&a=3")
    headers = sign(stack, tester, "GET", url)
    assert_tester(invoke_url(function_url_event("GET", url, headers=headers)))
    for sent in ("?a=3&a=1", "?a=1&a=3&a=3", "?a=1", "?a=1&a=3&b=", "?a=1%26a%3D3"):
        event = function_url_event("GET", FUNCTION_URL.url(CURRENT_SCOPES + sent), headers=headers)
        assert_refused(invoke_url(event))
    # A `+` handed over as a space (reported of function URLs in 2024) still verifies.
    url = FUNCTION_URL.url(f"{CURRENT_SCOPES}?q=a+b")
    event = function_url_event("GET", url, headers=sign(stack, tester, "GET", url))
    event["rawQueryString"] = "q=a b"
    assert_tester(invoke_url(event))


def test_the_official_client_works_through_a_function_url(
    stack: Harness, tester: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = pending_task(stack)
    events = official_client_through_function_url(monkeypatch)
    queue = taskcluster.Queue({"rootUrl": FUNCTION_URL.root_url, "credentials": tester, "maxRetries": 0})
    assert [t["taskId"] for t in queue.listPendingTasks("proj/linux", query={"limit": 10})["tasks"]] == [task_id]
    claimed = queue.claimWork("proj/linux", {"workerGroup": "wg", "workerId": "w1", "tasks": 1})
    assert [c["status"]["taskId"] for c in claimed["tasks"]] == [task_id]
    assert events[-1]["rawPath"] == f"{QUEUE}/claim-work/proj%2Flinux"
    worker = make_client(stack, "gateway/worker", [f"queue:create-artifact:{task_id}/0"])
    queue = taskcluster.Queue({"rootUrl": FUNCTION_URL.root_url, "credentials": worker, "maxRetries": 0})
    expires = format_date(stack.clock.now() + timedelta(hours=1))
    for name in ("private/logs/live.log", "private/logs/100%.log"):
        link = {
            "storageType": "reference",
            "url": "https://example.com/x",
            "contentType": "text/plain",
            "expires": expires,
        }
        assert queue.createArtifact(task_id, "0", name, link) == {"storageType": "reference"}
    assert events[-1]["rawPath"].endswith("/runs/0/artifacts/private%2Flogs%2F100%25.log")
    auth = taskcluster.Auth({"rootUrl": FUNCTION_URL.root_url, "credentials": tester, "maxRetries": 0})
    assert auth.currentScopes() == {"scopes": SCOPES}
    wrong = {**tester, "accessToken": base64.b64encode(b"not the token").decode()}
    with pytest.raises(TaskclusterAuthFailure):
        taskcluster.Auth({"rootUrl": FUNCTION_URL.root_url, "credentials": wrong, "maxRetries": 0}).currentScopes()


@pytest.mark.parametrize("name", ["private%2Flogs%2Flive.log", "private%2Flogs%2F100%25.log"])
def test_artifact_names_with_encoded_slashes_and_percents_route_as_on_rest(
    stack: Harness, tester: dict[str, str], name: str
) -> None:
    task_id = pending_task(stack)
    stack.claim()
    worker = make_client(stack, "gateway/worker", [f"queue:create-artifact:{task_id}/0"])
    link = {
        "storageType": "reference",
        "url": "https://example.com/live.log",
        "contentType": "text/plain",
        "expires": format_date(stack.clock.now() + timedelta(hours=1)),
    }
    route = f"{QUEUE}/task/{task_id}/runs/0/artifacts/{name}"
    url = FUNCTION_URL.url(route)
    body = json.dumps(link).encode()
    created = invoke_url(function_url_event("POST", url, headers=sign(stack, worker, "POST", url, body), body=body))
    assert created == (200, {"storageType": "reference"})
    rest, function_url = twins(stack, tester, "GET", route)
    assert function_url == (303, {"storageType": "reference", "url": "https://example.com/live.log"})
    same_answer(rest, function_url)
    # The name a signature covers is the name read.
    other = FUNCTION_URL.url(route.replace("live", "other").replace("100%25", "101%25"))
    assert_refused(invoke_url(function_url_event("GET", other, headers=sign(stack, tester, "GET", url))))


def test_a_bewit_verifies_through_a_function_url(stack: Harness, tester: dict[str, str]) -> None:
    task_id = pending_task(stack)
    queue = taskcluster.Queue({"rootUrl": FUNCTION_URL.root_url, "credentials": tester})
    url = queue.buildSignedUrl("listPendingTasks", "proj/linux", query={"limit": 5}, expiration=600)
    status, body = invoke_url(function_url_event("GET", url))
    assert status == 200, body
    assert [t["taskId"] for t in body["tasks"]] == [task_id]
    bewit = url.split("bewit=", 1)[1]
    first = FUNCTION_URL.url(f"{QUEUE}/task-queues/proj%2Flinux/pending?bewit={bewit}&limit=5")
    assert invoke_url(function_url_event("GET", first))[0] == 200  # where the bewit is does not matter
    for sent in (
        f"{QUEUE}/task-queues/proj%2Fother/pending?limit=5&bewit={bewit}",
        f"{QUEUE}/task-queues/proj%2Flinux/pending?limit=6&bewit={bewit}",
        f"{QUEUE}/task-queues/proj%2Flinux/pending?bewit={bewit}",
    ):
        assert_refused(invoke_url(function_url_event("GET", FUNCTION_URL.url(sent))))
    rest = EXECUTE_API.url(f"{QUEUE}/task-queues/proj%2Flinux/pending?limit=5&bewit={bewit}")
    assert_refused(invoke(rest_event(EXECUTE_API, "GET", rest)))  # signed for the function URL's host


def test_a_base64_body_and_cookies_reach_the_handler(stack: Harness, tester: dict[str, str]) -> None:
    task_id = pending_task(stack)
    url = FUNCTION_URL.url(f"{QUEUE}/claim-work/proj%2Flinux")
    body = json.dumps({"workerGroup": "wg", "workerId": "w1", "tasks": 1}).encode()
    headers = sign(stack, tester, "POST", url, body)
    event = function_url_event("POST", url, headers=headers, body=body, base64_body=True, cookies=["a=1", "b=2"])
    status, answer = invoke_url(event)
    assert status == 200, answer
    assert [c["status"]["taskId"] for c in answer["tasks"]] == [task_id]


def test_an_oversized_definition_is_taskcluster_s_413_through_either_door(stack: Harness) -> None:
    root = {"clientId": stack.settings.root_client_id, "accessToken": stack.settings.root_access_token}
    task = task_def(stack.clock, payload={"filler": "x" * (stack.settings.max_definition_bytes + 1)})
    body = json.dumps(task).encode()
    rest, function_url = twins(stack, root, "PUT", f"{QUEUE}/task/{slugid.nice()}", body)
    assert function_url[0] == 413 and function_url[1]["code"] == "InputTooLarge", function_url
    same_answer(rest, function_url)


def test_a_path_no_route_matches_is_taskcluster_s_404(stack: Harness) -> None:
    for path in (f"{QUEUE}/no-such-method", f"{QUEUE}/task-queues/proj/linux/pending", "/", f"{QUEUE}//ping"):
        status, body = invoke_url(function_url_event("GET", FUNCTION_URL.url(path)))
        assert (status, body["code"]) == (404, "ResourceNotFound"), (path, body)
    status, body = invoke_url(function_url_event("GET", FUNCTION_URL.url(f"{QUEUE}/ping/")))  # REST drops it too
    assert status == 200, body


def test_a_method_the_route_lacks_is_answered_as_rest_answers_it(stack: Harness) -> None:
    response = app(function_url_event("DELETE", FUNCTION_URL.url(f"{QUEUE}/ping")), None)
    assert response["statusCode"] == 403
    assert json.loads(response["body"]) == {"message": "Missing Authentication Token"}
    preflight = app(function_url_event("OPTIONS", FUNCTION_URL.url(f"{QUEUE}/task-queues/proj%2Flinux")), None)
    assert preflight["statusCode"] == 200
    assert preflight["headers"]["Access-Control-Allow-Methods"] == "GET,OPTIONS"
    assert preflight["headers"]["Access-Control-Allow-Origin"] == "*"
    answer = app(function_url_event("GET", FUNCTION_URL.url(f"{QUEUE}/ping")), None)
    assert answer["headers"]["Access-Control-Allow-Origin"] == "*"  # CORS as the REST API has it


def test_chalice_s_answers_convert_to_payload_format_2() -> None:
    from chalice import Response

    from chalicelib.handlers.function_url import to_function_url_response

    png = Response(body=b"\x89PNG\x00\xff", headers={"Content-Type": "image/png"}).to_dict(app.api.binary_types)
    answer = to_function_url_response(png)
    assert answer["isBase64Encoded"] is True and base64.b64decode(answer["body"]) == b"\x89PNG\x00\xff"
    multi = Response(body="", headers={"X-A": ["1", "2"], "Set-Cookie": ["a=1", "b=2"]}).to_dict()
    answer = to_function_url_response(multi)
    assert answer["headers"] == {"X-A": "1, 2", "Content-Type": "application/json"}
    assert answer["cookies"] == ["a=1", "b=2"] and answer["isBase64Encoded"] is False


@pytest.mark.parametrize("value", ["plain", "proj%2Flinux", "100%25%2F..%2Fx", "a%20b%3Fc%23d"])
def test_every_route_matches_through_a_function_url_as_on_rest(value: str) -> None:
    from chalicelib.handlers.function_url import RouteTable

    table = RouteTable(app.routes)
    for resource, methods in app.routes.items():
        path = "/".join(value if s.startswith("{") and s.endswith("}") else s for s in resource.split("/"))
        method = next(iter(methods))
        assert table.match(path) == match_resource(method, path), path
        assert table.match(path + "/") == match_resource(method, path)  # a trailing slash dropped, as on REST
    assert table.match(f"{QUEUE}/task-queues/proj/linux") is None  # a raw `/` is never inside a parameter


@pytest.mark.parametrize(
    ("path", "raw_query"),
    [
        (f"{QUEUE}/task-queues/%ZZ/pending", ""),
        (f"{QUEUE}/task-queues/proj%00linux/pending", "limit=%ZZ"),
        (f"{QUEUE}/task-queues/pr%C3%B6j%2Flinux/pending", "&&=&limit&limit=1&limit=2"),
        (f"{QUEUE}/task/AAAAAAAAAAAAAAAAAAAAAA/runs/0/artifacts/%2E%2E%2Fsecret", "bewit=%ZZ"),
        (f"{QUEUE}/task/AAAAAAAAAAAAAAAAAAAAAA/runs/0/artifacts/" + "a%2F" * 400, "continuationToken=" + "x" * 5000),
        (f"{QUEUE}/ping", "bewit=" + base64.urlsafe_b64encode(b"a\\b\\c\\d").decode()),
        ("/" + "/".join(["x"] * 300), ""),
    ],
)
def test_hostile_function_url_requests_get_a_4xx_never_a_500(stack: Harness, path: str, raw_query: str) -> None:
    event = function_url_event("GET", FUNCTION_URL.url(path))
    event["rawQueryString"] = raw_query
    status, body = invoke_url(event)
    assert 200 <= status < 500, (status, body)
    if status >= 400 and body and "message" in body and "code" not in body:
        assert body == {"message": "Missing Authentication Token"}
