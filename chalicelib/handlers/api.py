"""Endpoints, declared once: `Api.route` registers a handler as a Taskcluster-style endpoint.

One declaration says everything about an endpoint: method, path and name, the scope expression the
dispatcher enforces, the input and output schemas, its query parameters, whether it pages, its
category and stability — and the handler's docstring is its reference text (first line: the
title; the rest: the description). `ENDPOINTS` collects them for the dispatcher, the API reference
(chalicelib/reference) and the tests; nothing else lists endpoints.

Adding an endpoint is one change, in the handler's module:

    @api.route("GET", "/task/{taskId}/status", "status", scopes="queue:status:<taskId>",
               output="task-status-response", category="Tasks")
    def status(call: Call) -> dict[str, Any]:
        '''Get task status

        The task's status: its state, retries left and runs.'''
        return {"status": _queue().task(call.params["taskId"]).status_json()}
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from chalice import Blueprint, Response
from fastjsonschema import JsonSchemaException

from ..domain.dispatch import DEFAULT_RESPONSE_BUDGET, escaped_json_bytes
from ..domain.errors import (
    InputError,
    InputTooLarge,
    InputValidationError,
    InvalidRequestArguments,
    MalformedPayload,
    QueueError,
)
from ..domain.scopes import ScopeExpr, parameters
from ..schemas import schema_url, validator
from ..services.auth import Auth
from .http import (
    CORS,
    DATE_RULE,
    HEADERS,
    MAX_BODY_BYTES,
    PARAM_PATTERNS,
    QUERY_PATTERNS,
    Call,
    error_response,
    parse_json,
    signed_request,
)

log = logging.getLogger(__name__)

# A splat parameter (Taskcluster's `{*name}`, which may contain raw `/`) is registered as
# `{name}` plus routes with up to SPLAT_SEGMENTS - 1 more segments `{name__1}`, `{name__2}` …:
# Chalice (and its local server) has no greedy parameter. `%2F`-encoded slashes, which the
# official clients send, need none of this: they stay within the one `{name}` segment.
SPLAT_SEGMENTS = 8
SPLAT_SEP = "__"

API_PREFIX = re.compile(r"^/api/(?P<service>[a-z][a-z0-9_-]*)/(?P<version>v[0-9]+)$")


PAGED = ("continuationToken", "limit")
PAGING = (
    "Results come in pages of at most `limit` (default and maximum 1000); a `continuationToken` in"
    " the answer means more may follow: call again with it until none is returned."
)


@dataclass(frozen=True)
class Endpoint:
    """One endpoint as declared: what the dispatcher enforces and the API reference is made of."""

    service: str
    api_version: str
    method: str  # upper case, as registered
    path: str  # Taskcluster's form, relative to the service's prefix: /task/<taskId>
    name: str
    handler: Callable[[Call], Any]  # its docstring is the entry's title and description
    scopes: ScopeExpr | None = None  # the expression the dispatcher enforces (None: public)
    input: str | None = None  # schema names (chalicelib/schemas)
    output: str | None = None
    query: tuple[str, ...] = ()  # every query parameter, PAGED included when it pages
    paged: bool = False
    stability: str = "stable"
    category: str = "General"
    splat: bool = False


# Every endpoint of every Api instance, by (service, name), in registration order: one registry, so
# an Api added for another service appears in the reference without further wiring.
ENDPOINTS: dict[tuple[str, str], Endpoint] = {}


RESPONSE_BUDGET = DEFAULT_RESPONSE_BUDGET  # every listing and claimWork answer fits it; tests lower it
# A page cut short for the budget resumes with `~<n>.<mark>~<token>`: the listing's own token (empty
# for its start), how many of the items it leads to were already returned, and a mark of the last of
# them (`mark`). The next call re-reads that page and resumes after the marked item, wherever it
# now is, so items added or removed before it in between are neither repeated nor skipped; only if
# the marked item itself is gone does it resume at position n. Tokens the stores make (base64url
# keys, decimal offsets) never start with `~`.
CUT = "~"
# Fields that name a listed item (at its top level or in its `status`): its mark hashes these.
IDENTITY = (
    "taskId",
    "clientId",
    "roleId",
    "workerPoolId",
    "errorId",
    "provisionerId",
    "workerType",
    "taskQueueId",
    "workerGroup",
    "workerId",
    "name",
)


def response_budget() -> int:
    """RESPONSE_BUDGET as it is now (tests lower it)."""
    return RESPONSE_BUDGET


response_bytes = escaped_json_bytes  # what a value adds to Lambda's serialized response


class Listing(dict[str, Any]):
    """A page as `page` makes it: the dispatcher fits it into RESPONSE_BUDGET (see `fit`)."""

    key: str = ""


def page(key: str, items: Iterable[Any], token: str | None, **fields: Any) -> dict[str, Any]:
    """A page of a listing as Taskcluster answers it: `fields`, `{key: items}`, and a
    `continuationToken` when more may follow. The dispatcher ends it early, with a token for the
    first item left out, when it would not fit RESPONSE_BUDGET."""
    out = Listing({**fields, key: list(items)})
    out.key = key
    if token:
        out["continuationToken"] = token
    return out


@dataclass(frozen=True)
class Cut:
    """Where a cut page resumes: after `skip` items of the page `inner` leads to, the last of which
    has the mark `mark`."""

    inner: str | None = None
    skip: int = 0
    mark: str = ""


def mark(item: Any) -> str:
    """8 hex digits naming a listed item by its identifying fields (all of it if it has none)."""
    named: dict[str, Any] = item if isinstance(item, dict) else {}
    status: dict[str, Any] = named["status"] if isinstance(named.get("status"), dict) else {}
    ident = {f: named.get(f, status.get(f)) for f in IDENTITY if f in named or f in status}
    text = json.dumps(ident or item, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


CUT_FORM = re.compile(r"^~(?P<skip>[0-9]{1,9})\.(?P<mark>[0-9a-f]{8})~(?P<inner>.*)$", re.DOTALL)


def parse_cut(token: str | None) -> Cut:
    """The resumption point of a token: a cut page's, or a listing's own (skip 0)."""
    if not token or not token.startswith(CUT):
        return Cut(token)
    form = CUT_FORM.match(token)
    if form is None or form["skip"] == "0":
        raise InputError(f"Invalid continuationToken {token!r}")
    return Cut(form["inner"] or None, int(form["skip"]), form["mark"])


def _resume_at(items: list[Any], cut: Cut) -> int:
    """The index after the marked item nearest to its old position; the old position if it is gone."""
    marked = [i for i, item in enumerate(items) if mark(item) == cut.mark] if cut.mark else []
    if not marked:
        return min(cut.skip, len(items))
    return min(marked, key=lambda i: abs(i - (cut.skip - 1))) + 1


def fit(listing: Listing, cut: Cut, budget: int) -> Listing:
    """`listing` from where `cut` resumes, ended before the first item that would take its
    response over `budget` (but with at least one), with a token that resumes after the last kept."""
    start = _resume_at(listing[listing.key], cut)
    items = listing[listing.key][start:]
    used = response_bytes({k: v for k, v in listing.items() if k != listing.key})
    used += response_bytes({listing.key: [], "continuationToken": f"{CUT}{'9' * 9}.{'f' * 8}{CUT}{cut.inner or ''}"})
    kept = 0
    for item in items:
        used += response_bytes(item) + 1  # the comma
        if used > budget and kept:
            break
        kept += 1
    out = Listing(listing)
    out.key = listing.key
    out[listing.key] = items[:kept]
    if kept < len(items):
        out["continuationToken"] = f"{CUT}{start + kept}.{mark(items[kept - 1])}{CUT}{cut.inner or ''}"
    return out


class PagedCall(Call):
    """A call resuming a cut page: its listing re-reads the page from the listing's own token, with
    `skip` more items, and the dispatcher leaves out the `skip` already returned."""

    skip: int = 0

    def limit(self, default: int = 1000, maximum: int = 1000) -> int:
        return super().limit(default, maximum) + self.skip


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
        scopes: ScopeExpr | None,
        category: str,
        input: str | None = None,
        parse_body: bool = False,
        splat: bool = False,
        output: str | None = None,
        query: tuple[str, ...] = (),
        paged: bool = False,
        stability: str = "stable",
    ) -> Callable[[Callable[[Call], Any]], Callable[[Call], Any]]:
        """Register `fn` as endpoint `name`, enforcing `scopes` (None: public; an expression whose
        parameters are not all route parameters is checked by the handler through
        `call.authorize(...)`, once it knows them). With `splat`, the path's last parameter may span
        several raw segments (see SPLAT_SEGMENTS); `paged` adds PAGED to `query`. `output`, `query`,
        `stability` and `category` only describe the endpoint in the API reference."""
        paths = [path]
        if splat:
            param = path.rsplit("/", 1)[1].strip("{}")
            tail = [f"/{{{param}{SPLAT_SEP}{i}}}" for i in range(1, SPLAT_SEGMENTS)]
            paths += [path + "".join(tail[:n]) for n in range(1, SPLAT_SEGMENTS)]

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
                query=(*query, *PAGED) if paged else tuple(query),
                paged=paged,
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
        # Path parameters arrive percent-encoded as the client sent them, from API Gateway REST and
        # from chalice local alike (`proj%2Flinux`): decoded here, once.
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
            cut = parse_cut(query.get("continuationToken"))
            if cut.inner is None:
                query.pop("continuationToken", None)
            else:
                query["continuationToken"] = cut.inner
            call = PagedCall(
                method=name, params=params, query=query, raw_json=payload, caller=caller, deferred=deferred
            )
            call.skip = cut.skip
            call.authorized = deferred is None
            if input:
                call.body = self._validate(input, payload)
            result = fn(call)
            if not call.authorized:
                raise QueueError(f"{name} did not check its deferred scopes")
            if isinstance(result, Listing):
                result = fit(result, cut, RESPONSE_BUDGET)
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
