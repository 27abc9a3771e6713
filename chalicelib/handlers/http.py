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
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlencode

from chalice import Blueprint, CORSConfig, Response
from fastjsonschema import JsonSchemaException

from ..clock import SystemClock
from ..domain.credentials import CLIENT_ID, MAX_ID_CHARS
from ..domain.errors import (
    AuthenticationFailed,
    InputError,
    InputTooLarge,
    InputValidationError,
    InvalidRequestArguments,
    MalformedPayload,
    QueueError,
)
from ..domain.model import EARLIEST_DATE, LATEST_DATE, format_date
from ..domain.scopes import ENDPOINT_SCOPES, ScopeExpr, parameters
from ..schemas import schema_url, validator
from ..services.auth import Auth, Caller, SignedRequest

log = logging.getLogger("taskqueue.api")

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
# A splat parameter (Taskcluster's `{*name}`, which may contain raw `/`) is registered as
# `{name}` plus routes with up to SPLAT_SEGMENTS - 1 more segments `{name__1}`, `{name__2}` …:
# Chalice (and its local server) has no greedy parameter. `%2F`-encoded slashes, which the
# official clients send, need none of this: they stay within the one `{name}` segment.
SPLAT_SEGMENTS = 8
SPLAT_SEP = "__"
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
DATE_RULE = (
    f"an RFC 3339 date-time from {format_date(EARLIEST_DATE)} up to, not including, {format_date(LATEST_DATE)}"
)


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

    The path is the raw one the client sent (`requestContext.path`: percent-encoding kept, and
    behind API Gateway the stage prefix too). The query arrives parsed, so each faithful
    re-encoding of it (as the Python client's urlencode, strict percent-encoding, and none for
    values sent unencoded) is a candidate: all decode to the parameters the handler acts on.
    Host and port are the ones the client addressed: X-Forwarded-Port/-Proto behind a proxy or
    API Gateway, else the Host header.
    """
    headers = request.headers
    path = (request.context or {}).get("path") or quote(request.path)
    query = request.query_params
    pairs = [(k, v) for k in (query or {}) for v in query.getlist(k) if k != "bewit"]
    bewit = query.get("bewit") if query is not None else None
    resources = [path]
    if pairs:
        encodings = (urlencode(pairs), urlencode(pairs, quote_via=quote), "&".join(f"{k}={v}" for k, v in pairs))
        resources = list(dict.fromkeys(f"{path}?{query}" for query in encodings))
    host_header = headers.get("host", "")
    host, _, host_port = host_header.rpartition(":") if host_header.count(":") == 1 else (host_header, "", "")
    forwarded_port = headers.get("x-forwarded-port", "")
    if PORT.fullmatch(forwarded_port):
        port = int(forwarded_port)
    elif headers.get("x-forwarded-proto", "").lower() == "https":
        port = 443
    else:
        port = int(host_port) if PORT.fullmatch(host_port) else 80
    return SignedRequest(
        method=request.method,
        resources=tuple(resources),
        host=host,
        port=port,
        authorization=headers.get("authorization"),
        bewit=bewit,
        content_type=headers.get("content-type", ""),
        body=body,
    )


PORT = re.compile(r"[0-9]{1,5}")  # ASCII digits only: str.isdigit() also takes "²", which int() refuses
API_PREFIX = re.compile(r"^/api/(?P<service>[a-z][a-z0-9_-]*)/(?P<version>v[0-9]+)$")


@dataclass(frozen=True)
class Endpoint:
    """One endpoint as an `Api` registered it: what the API reference (chalicelib/reference) is made of."""

    service: str
    api_version: str
    method: str  # upper case, as registered
    path: str  # Taskcluster's form, relative to the service's prefix: /task/<taskId>
    name: str
    handler: Callable[[Call], Any]  # its docstring is the entry's title and description
    scopes: ScopeExpr | None = None  # the expression the dispatcher enforces (None: public)
    input: str | None = None  # schema names (chalicelib/schemas)
    output: str | None = None
    query: tuple[str, ...] = ()
    stability: str | None = None
    category: str | None = None
    splat: bool = False


# Every endpoint of every Api instance, by (service, name), in registration order: one registry, so
# an Api added for another service appears in the reference without further wiring.
ENDPOINTS: dict[tuple[str, str], Endpoint] = {}


class Api:
    """Registers Taskcluster-style endpoints on a Blueprint under `prefix` (`/api/<service>/<version>`)."""

    def __init__(self, blueprint: Blueprint, prefix: str) -> None:
        self.bp = blueprint
        self.prefix = prefix
        m = API_PREFIX.match(prefix)
        self.service, self.api_version = (m["service"], m["version"]) if m else (prefix.strip("/"), "v1")

    def route(
        self,
        method: str,
        path: str,
        name: str,
        *,
        input: str | None = None,
        parse_body: bool = False,
        splat: bool = False,
        output: str | None = None,
        query: tuple[str, ...] = (),
        stability: str | None = None,
        category: str | None = None,
    ) -> Callable[[Callable[[Call], Any]], Callable[[Call], Any]]:
        """Register `fn` as endpoint `name`; with `splat`, the path's last parameter may span
        several raw segments (see SPLAT_SEGMENTS). `output`, `query`, `stability` and `category`
        only describe the endpoint in the API reference (ENDPOINTS)."""
        paths = [path]
        if splat:
            param = path.rsplit("/", 1)[1].strip("{}")
            tail = [f"/{{{param}{SPLAT_SEP}{i}}}" for i in range(1, SPLAT_SEGMENTS)]
            paths += [path + "".join(tail[:n]) for n in range(1, SPLAT_SEGMENTS)]

        if name not in ENDPOINT_SCOPES:
            raise KeyError(f"endpoint {name} has no scope expression in domain/scopes.py ENDPOINT_SCOPES")
        scopes = ENDPOINT_SCOPES[name]

        def register(fn: Callable[[Call], Any]) -> Callable[[Call], Any]:
            def view(**raw_params: str) -> Response:
                return self._dispatch(name, fn, raw_params, input, parse_body, scopes)

            view.__name__ = name
            for p in paths:
                self.bp.route(self.prefix + p, methods=[method], content_types=["*/*"], cors=CORS)(view)
            ENDPOINTS[(self.service, name)] = Endpoint(
                service=self.service,
                api_version=self.api_version,
                method=method.upper(),
                path=re.sub(r"\{([A-Za-z0-9_]+)\}", r"<\1>", path),
                name=name,
                handler=fn,
                scopes=scopes,
                input=input,
                output=output,
                query=tuple(query),
                stability=stability,
                category=category,
                splat=splat,
            )
            return fn

        return register

    def _dispatch(
        self,
        name: str,
        fn: Callable[[Call], Any],
        raw_params: dict[str, str],
        input: str | None,
        parse_body: bool,
        scopes: ScopeExpr | None,
    ) -> Response:
        request = self.bp.current_request
        # API Gateway hands path parameters decoded; chalice local does not. Identifiers never
        # contain '%', so decoding is safe either way (an artifact name may: behind API Gateway,
        # a literal '%' in a name would be decoded twice — check on deployment).
        params = {k: unquote(v) for k, v in raw_params.items()}
        for key in sorted((k for k in params if SPLAT_SEP in k), key=lambda k: int(k.rsplit(SPLAT_SEP, 1)[1])):
            base = key.rsplit(SPLAT_SEP, 1)[0]
            params[base] = f"{params[base]}/{params.pop(key)}"
        payload: Any = None
        try:
            raw = request.raw_body or b""
            if isinstance(raw, str):
                raw = raw.encode()
            if len(raw) > MAX_BODY_BYTES:
                raise InputTooLarge(f"Request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}")
            if input or parse_body:
                payload = self._parse_body(request.headers.get("content-type", ""), raw, required=bool(input))
            caller, deferred = None, None
            if scopes is not None:
                # Taskcluster's order: authenticate (401), then authorize (403) before any parameter
                # or schema check — unless the expression needs what only the handler knows.
                caller = self._auth().authenticate(signed_request(request, raw))
                if parameters(scopes) <= set(params):
                    Auth.authorize(caller, scopes, params)
                else:
                    deferred = scopes
            for key, value in params.items():
                pattern = PARAM_PATTERNS.get(key)
                if pattern and not pattern.match(value):
                    raise InvalidRequestArguments(
                        f"Invalid request parameter {key}: {value!r} does not match {pattern.pattern}"
                    )
            query = dict(request.query_params or {})
            for key, value in query.items():
                pattern = QUERY_PATTERNS.get(key)
                if pattern and not pattern.match(value):
                    raise InvalidRequestArguments(
                        f"Invalid query parameter {key}: {value!r} does not match {pattern.pattern}"
                    )
            call = Call(method=name, params=params, query=query, raw_json=payload, caller=caller, deferred=deferred)
            call.authorized = deferred is None
            if input:
                call.body = self._validate(input, payload)
            result = fn(call)
            if not call.authorized:
                raise QueueError(f"{name} did not check its deferred scopes")
        except QueueError as err:
            return error_response(err, name, params, payload)
        except Exception:
            incident = str(uuid.uuid4())
            log.exception("internal error in %s (incidentId %s)", name, incident)
            internal = QueueError(f"Internal Server Error, incidentId {incident}.", incidentId=incident)
            return error_response(internal, name, params, payload)
        if isinstance(result, Response):
            result.headers = {**HEADERS, **(result.headers or {})}
            return result
        if result is None:
            return Response(body="", status_code=204, headers=HEADERS)
        return Response(body=result, status_code=200, headers=HEADERS)

    @staticmethod
    def _auth() -> Auth:
        from .. import container

        return container.get().auth

    @staticmethod
    def _parse_body(content_type: str, raw: bytes, required: bool) -> Any:
        if not raw:
            if required:
                raise MalformedPayload("Request body must be JSON; it is empty")
            return None
        if content_type.split(";")[0].strip().lower() != "application/json":
            if required:
                raise MalformedPayload(
                    f"Request body must be sent with Content-Type: application/json, not {content_type!r}"
                )
            return None
        try:
            value = parse_json(raw)
        except (ValueError, UnicodeDecodeError) as e:
            if required:
                raise MalformedPayload(f"Request body is not valid JSON: {e}") from None
            return None
        if required and not isinstance(value, (dict, list)):
            raise MalformedPayload("Request body must be a JSON object")
        return value

    @staticmethod
    def _validate(schema: str, payload: Any) -> Any:
        try:
            return validator(schema)(payload)
        except JsonSchemaException as e:
            hint = f" ({DATE_RULE})" if str(e).endswith("must be date-time") else ""
            raise InputValidationError(
                f"Schema Validation Failed!\nRejecting Schema: {schema_url(schema)}\nErrors:\n  * {e}{hint}"
            ) from None
