"""Taskcluster's HTTP conventions on Chalice: one place for parsing, validation and errors.

Mirrors Taskcluster's libraries/api middleware order: parse body → route
parameters → query parameters → input schema → handler. Every failure becomes Taskcluster's
error body `{code, message, requestInfo}`; domain errors map to status codes in one table
(`QueueError.code/status`), never by message text.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit

from chalice import CORSConfig, Response

from ..clock import SystemClock
from ..domain.credentials import CLIENT_ID, MAX_ID_CHARS
from ..domain.errors import (
    AuthenticationFailed,
    InputError,
    QueueError,
)
from ..domain.model import EARLIEST_DATE, LATEST_DATE, format_date
from ..domain.scopes import ScopeExpr
from ..services.auth import Auth, Caller, SignedRequest

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024
# JSON nested deeper than this is refused before it is parsed: Python's parser recurses (a few
# thousand levels crash it) and so do schema validation and serialisation. Real task payloads
# nest a handful of levels; Taskcluster sets no limit, 100 leaves room for any real document.
MAX_JSON_DEPTH = 100
SLUGID = r"^[A-Za-z0-9_-]{8}[Q-T][A-Za-z0-9_-][CGKOSWaeimquy26-][A-Za-z0-9_-]{10}[AQgw]$"
PARAM_PATTERNS: dict[str, re.Pattern[str]] = {
    name: re.compile(pattern)
    for name, pattern in {
        "taskId": SLUGID,
        "taskGroupId": SLUGID,
        "taskQueueId": r"^[a-zA-Z0-9-_]{1,38}/[a-z]([-a-z0-9]{0,36}[a-z0-9])?$",
        "workerPoolId": r"^[a-zA-Z0-9-_]{1,38}/[a-z]([-a-z0-9]{0,36}[a-z0-9])?$",
        "provisionerId": r"^[a-zA-Z0-9-_]{1,38}$",
        "workerType": r"^[a-zA-Z0-9-_]{1,38}$",
        "workerGroup": r"^[a-zA-Z0-9-_]{1,38}$",
        "workerId": r"^[a-zA-Z0-9-_]{1,38}$",
        # Taskcluster's pattern; at most 4 digits: a run is 0..1000, and longer digit strings
        # only cost (Python refuses to parse over 4,300 digits at all).
        "runId": r"^(?=[0-9]{1,4}$)[1-9]*[0-9]+$",
        "name": r"^[\x20-\x7e]+$",  # an artifact name: printable ASCII, `/` included
        # Taskcluster's patterns, with a length that fits a DynamoDB sort key (1,024 bytes)
        "clientId": CLIENT_ID.pattern,
        "roleId": rf"^[\x20-\x7e]{{1,{MAX_ID_CHARS}}}$",
    }.items()
}
# A continuation token is opaque but never long (an encoded key of a few short ids); limit is
# Taskcluster's digits, at most 9 of them (any page size above 1,000 is capped anyway).
MAX_TOKEN_CHARS = 4096
QUERY_PATTERNS = {
    "continuationToken": re.compile(rf"^.{{1,{MAX_TOKEN_CHARS}}}$", re.DOTALL),
    "limit": re.compile(r"^[0-9]{1,9}$"),
}
HEADERS: dict[str, str | list[str]] = {"Cache-Control": "no-store no-cache must-revalidate"}
CORS = CORSConfig(
    allow_origin="*",
    max_age=900,
    allow_headers=["X-Requested-With", "Content-Type", "Authorization", "Accept", "Origin", "Cache-Control"],
)
_clock = SystemClock()  # only for the `time` of error bodies
DATE_RULE = f"an RFC 3339 date-time from {format_date(EARLIEST_DATE)} up to, not including, {format_date(LATEST_DATE)}"


@dataclass
class Call:
    """One API call as a handler sees it: decoded route params, query, validated body."""

    method: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any = None
    raw_json: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    caller: Caller | None = None
    # A deferred scope expression: the handler calls authorize() with what only it knows.
    deferred: ScopeExpr | None = None
    authorized: bool = True

    def authorize(self, **values: Any) -> None:
        """Check the endpoint's deferred scope expression with `values` added to the route parameters."""
        if self.deferred is None or self.caller is None:
            return
        Auth.authorize(self.caller, self.deferred, {**self.params, **values})
        self.authorized = True

    def limit(self, default: int = 1000, maximum: int = 1000) -> int:
        """The page size asked for (`limit` is already known to be digits), capped as Taskcluster caps it."""
        limit = int(self.query.get("limit", default))  # at most 9 digits (QUERY_PATTERNS)
        if limit < 1:
            raise InputError("limit must be at least 1")
        return min(limit, maximum)

    @property
    def continuation(self) -> str | None:
        return self.query.get("continuationToken") or None


def error_response(err: QueueError, method: str, params: dict[str, str], payload: Any) -> Response:
    now = format_date(_clock.now())
    message = (
        f"{err.message}\n\n---\n\n* method:     {method}\n* errorCode:  {err.code}\n"
        f"* statusCode: {err.status}\n* time:       {now}"
    )
    body: dict[str, Any] = {
        "code": err.code,
        "message": message,
        "requestInfo": {
            "method": method,
            "params": params,
            "payload": payload if payload is not None else {},
            "time": now,
        },
    }
    if err.details:
        body["details"] = err.details
    headers = {**HEADERS, "WWW-Authenticate": "hawk"} if isinstance(err, AuthenticationFailed) else HEADERS
    return Response(body=body, status_code=err.status, headers=headers)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: JSON allows it, nothing can store or return it
        raise ValueError(f"number {text[:40]} is out of range")
    return value


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(rb"[^\[\]{}]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_DEPTH = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_depth(raw: bytes) -> int:
    """How deeply `raw` nests arrays and objects, found without recursion (strings skipped)."""
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", raw))
    return max(itertools.accumulate(map(_DEPTH.__getitem__, brackets)), default=0)


def parse_json(raw: bytes) -> Any:
    """Strict JSON: no NaN or Infinity (DynamoDB cannot store them), nesting at most MAX_JSON_DEPTH."""
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and json_depth(raw) > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    value = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    if _SURROGATE_ESCAPE.search(raw):
        try:  # a lone surrogate (\ud800 alone) is JSON but not Unicode: nothing could store it
            json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise ValueError("a string holds a lone UTF-16 surrogate (\\ud800-\\udfff): not valid Unicode") from None
    return value


def signed_request(request: Any, body: bytes) -> SignedRequest:
    """What a Hawk signature covers, rebuilt from the request as the front door hands it over.

    A signature covers the method, the URI path and query exactly as the client wrote them, and
    the host and port it addressed. Behind API Gateway (REST, proxy integration, payload 1.0)
    the path arrives raw but the query only parsed, in no particular order; so the request is
    rebuilt as a list of candidate URIs, most likely first, and the MAC must match one of them:

    - paths (`_signed_paths`): `requestContext.path`, the path as the client requested it
      (percent-encoding kept: `%2F` in a taskQueueId or artifact name stays `%2F`; the stage
      prefix on the execute-api domain; the base path on a custom domain). On a custom domain
      also the event's `path`, and TASKQUEUE_PUBLIC_ROOT_URL's path + the route when that root
      URL names this host (the base path its clients use);
    - queries (`_query_orders`, `_candidates`): the (key, value) pairs in every order the
      multi-value map allows (the values of one key keep their order: it decides which one the
      handler reads), each written as the clients write queries (`QUERY_ENCODINGS`).

    At most MAX_CANDIDATES URIs and MAX_CANDIDATE_BYTES of them (one HMAC each, ~3 µs): every
    order of up to PERMUTED_PAIRS pairs while that lasts, beyond it the map's order and the
    key-sorted one (Go's client). With no credentials nothing is rebuilt.
    Behind a Lambda function URL (handlers/function_url.py) the request target arrives as sent
    (`rawPath`, `rawQueryString`): that, without its bewit, is the one candidate
    (`_function_url_target`), so any number of query pairs in any order verifies.
    Host and port are the ones the client addressed: X-Forwarded-Port/-Proto behind a proxy or
    API Gateway, else the Host header (on API Gateway and function URLs, HTTPS only: 443).
    """
    headers = request.headers
    context = request.context or {}
    query = request.query_params
    pairs = [(k, v) for k in (query or {}) for v in query.getlist(k) if k != "bewit"]
    bewit = query.get("bewit") if query is not None else None
    authorization = headers.get("authorization")
    host_header = headers.get("host", "") or context.get("domainName", "")
    host, _, host_port = host_header.rpartition(":") if host_header.count(":") == 1 else (host_header, "", "")
    forwarded_port = headers.get("x-forwarded-port", "")
    forwarded_proto = headers.get("x-forwarded-proto", "").lower()
    if PORT.fullmatch(forwarded_port):
        port = int(forwarded_port)
    elif forwarded_proto == "https":
        port = 443
    elif PORT.fullmatch(host_port):
        port = int(host_port)
    else:  # API Gateway answers HTTPS only
        port = 443 if forwarded_proto != "http" and _from_api_gateway(context) else 80
    resources: tuple[str, ...] = ()
    target = _function_url_target(request)
    if target is not None and not forwarded_port and not forwarded_proto:
        port = 443  # function URLs answer HTTPS only
    if authorization or bewit is not None:
        resources = target if target is not None else tuple(_candidates(_signed_paths(request, host), pairs))
    return SignedRequest(
        method=request.method,
        resources=resources,
        host=host,
        port=port,
        authorization=authorization,
        bewit=bewit,
        content_type=headers.get("content-type", ""),
        body=body,
    )


PORT = re.compile(r"[0-9]{1,5}")  # ASCII digits only: str.isdigit() also takes "²", which int() refuses
# The bound on what one request may cost to verify: candidate URIs (one HMAC each) and their bytes.
MAX_CANDIDATES = 2000
MAX_CANDIDATE_BYTES = 1024 * 1024
# Up to this many query pairs, every order the multi-value map allows is tried (6 pairs: 720).
PERMUTED_PAIRS = 6
# How clients write a query, as (key, value) → text: the Python client's urlencode (and Go's
# url.Values), strict RFC 3986, Node's querystring (JS client: `!'()*` kept), the WHATWG form
# encoding (URLSearchParams, Rust's url: `*` kept, `~` encoded), and none (a URL typed into curl).
QUERY_ENCODINGS: tuple[Callable[[str], str], ...] = (
    lambda s: quote_plus(s, safe=""),
    lambda s: quote(s, safe=""),
    lambda s: quote(s, safe="!'()*"),
    lambda s: quote_plus(s, safe="*").replace("~", "%7E"),
    lambda s: s,
)
_EXECUTE_API_HOST = re.compile(r"\.execute-api\.", re.IGNORECASE)


def _function_url_target(request: Any) -> tuple[str, ...] | None:
    """The request target a client of a function URL signed: `rawPath` and `rawQueryString` as the
    client sent them, the bewit's pairs taken out (as Hawk takes them out), or None for other events.

    Were a `+` in the query ever handed over as a space (reported of function URLs in 2024, not
    seen in captures of 2026), the target with `+` in its place is tried too: a space cannot be in a
    request target, so nothing else could have been signed."""
    event = request.to_original_event() if hasattr(request, "to_original_event") else {}
    if (event.get("requestContext") or {}).get("frontDoor") != "function_url":
        return None
    path, query = str(event.get("rawPath", "")), str(event.get("rawQueryString", ""))
    pairs = query.split("&") if query else []
    kept = [pair for pair in pairs if unquote_plus(pair.partition("=")[0]) != "bewit"]
    target = path + ("?" + "&".join(kept) if kept else "")
    return (target, target.replace(" ", "+")) if " " in target else (target,)


def _from_api_gateway(context: dict[str, Any]) -> bool:
    """A REST proxy event from API Gateway (Chalice's local server and test client name no stage)."""
    return "stage" in context


def _signed_paths(request: Any, host: str) -> list[str]:
    """The raw paths the client may have signed, most likely first (see `signed_request`)."""
    context = request.context or {}
    event = request.to_original_event() if hasattr(request, "to_original_event") else {}
    event_path = event.get("path") if isinstance(event.get("path"), str) else None
    requested = context.get("path") or event_path or quote(request.path)
    paths = [requested]
    if _from_api_gateway(context) and not _EXECUTE_API_HOST.search(host):
        # A custom domain: the client's URL has no stage, and its base path (if any) is the
        # mapping's. AWS reports the path as requested in requestContext.path; `path` is the
        # same behind a base path mapping, the route itself without one.
        root_host, root_path = _public_root()
        route = _route(requested, context.get("resourcePath"))
        if route and root_host and root_host == host.lower():
            paths.append(root_path + route)
        if event_path:
            paths.append(event_path)
    return list(dict.fromkeys(paths))


def _public_root() -> tuple[str, str]:
    """TASKQUEUE_PUBLIC_ROOT_URL's host (lower case) and path (the base path clients put before
    `/api/...`), or empty strings when it is not configured."""
    from .. import container  # imported when used, as Api._auth does

    root = urlsplit(container.get().settings.public_root_url)
    return (root.hostname or "").lower(), root.path.rstrip("/")


def _route(path: str | None, resource: str | None) -> str | None:
    """The route API Gateway matched to `resource` (`/api/queue/v1/task/{taskId}`): as many of raw
    `path`'s last segments as `resource` has (raw: `%2F` never splits a segment)."""
    if not path or not resource:
        return None
    segments = path.split("/")
    count = resource.count("/")
    return "/" + "/".join(segments[-count:]) if len(segments) > count else None


def _query_orders(pairs: list[tuple[str, str]]) -> Iterator[tuple[int, ...]]:
    """Orders (of indexes into `pairs`) the client may have written them in, most likely first: the
    map's, the key-sorted one, then (up to PERMUTED_PAIRS pairs) every other interleaving of the
    keys. The values of one key keep their order: API Gateway keeps it, and the handler reads the
    last one, so a signature for `a=3&a=1` must not pass for `a=1&a=3`."""
    given = tuple(range(len(pairs)))
    yield given
    yield tuple(sorted(given, key=lambda i: pairs[i][0]))
    if len(pairs) > PERMUTED_PAIRS:
        return
    positions: dict[str, list[int]] = {}
    for i, (key, _) in enumerate(pairs):
        positions.setdefault(key, []).append(i)
    seen: set[tuple[str, ...]] = set()
    for keys in itertools.permutations([key for key, _ in pairs]):
        if keys in seen:
            continue
        seen.add(keys)
        nexts = {key: iter(at) for key, at in positions.items()}
        yield tuple(next(nexts[key]) for key in keys)


def _candidates(paths: list[str], pairs: list[tuple[str, str]]) -> Iterator[str]:
    """Each path with each order and encoding of the query, without repeats, within the bound."""
    if not pairs:
        yield from paths[:MAX_CANDIDATES]
        return
    # Each pair as each encoding writes it; encodings that write every pair alike count once.
    written = list(dict.fromkeys(tuple(f"{enc(k)}={enc(v)}" for k, v in pairs) for enc in QUERY_ENCODINGS))
    seen: set[str] = set()
    size = 0
    for order in _query_orders(pairs):
        for path in paths:
            for parts in written:
                resource = f"{path}?" + "&".join(parts[i] for i in order)
                if resource in seen:
                    continue
                seen.add(resource)
                size += len(resource)
                if len(seen) > MAX_CANDIDATES or size > MAX_CANDIDATE_BYTES:
                    return
                yield resource
