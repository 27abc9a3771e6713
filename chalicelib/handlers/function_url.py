"""The Lambda function URL front door: its events (payload format 2.0) as the REST events Chalice routes.

A stage may serve the API through a function URL on the API function instead of (beside) the REST
API (`front_door` in `.chalice/config.json`, infra/README.md). Lambda then hands the function
payload-2.0 events; `App.__call__` converts each one here, in one place, to the REST (proxy, 1.0)
event Chalice and the handlers know, and converts the answer back:

- routing (`RouteTable`): the encoded `rawPath` is split on `/` before anything is decoded, as API
  Gateway REST routes, so `%2F` in a taskQueueId or artifact name stays inside its segment; each
  segment is matched against the app's routes (literal segments before `{param}`s). The path
  parameters are the raw segments, as REST gives them (`proj%2Flinux`; handlers/api.py decodes
  them once). A trailing `/` is dropped, as REST drops it. No route: Taskcluster's 404 body. A
  method the route lacks: what API Gateway REST answers (403 "Missing Authentication Token"); an
  OPTIONS preflight on a CORS route: what Chalice's REST API answers (200 with the CORS headers).
- the query: `multiValueQueryStringParameters` parsed from `rawQueryString` (`+` a space,
  percent-decoded, repeated keys in order), as REST parses it.
- headers: function URLs give names in lower case and repeated headers comma-joined, cookies apart
  in `cookies` (put back into `cookie`).
- `rawPath` and `rawQueryString` stay in the event: the request target exactly as the client sent
  it, which Hawk verifies (handlers/http.py `signed_request`), whatever the order of the query.
- the answer: Chalice's `headers` and `multiValueHeaders` as payload-2.0 `headers` (a multi-value
  header joined with ", ", `Set-Cookie` into `cookies`), `application/json` when Chalice names no
  content type (REST's default), base64 bodies kept as such.

What is known of function URL events and where from: docs/limits.md, "The front door".
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from chalice import Chalice
from chalice.app import RouteEntry

from ..domain.errors import ResourceNotFound
from .http import error_response

# API Gateway REST's answer for a method a resource lacks (and for a path no resource matches).
MISSING_TOKEN = {
    "statusCode": 403,
    "headers": {"Content-Type": "application/json", "x-amzn-ErrorType": "MissingAuthenticationTokenException"},
    "body": '{"message":"Missing Authentication Token"}',
}


def is_function_url_event(event: Any) -> bool:
    """A request from a Lambda function URL (payload format 2.0), not yet converted."""
    return (
        isinstance(event, dict)
        and event.get("version") == "2.0"
        and isinstance(event.get("rawPath"), str)
        and isinstance((event.get("requestContext") or {}).get("http"), dict)
        and "resourcePath" not in (event.get("requestContext") or {})
    )


@dataclass
class _Node:
    """One level of the routes: literal segments, then at most one `{param}` segment."""

    literals: dict[str, _Node] = field(default_factory=dict)
    param: tuple[str, _Node] | None = None
    resource: str | None = None  # the route ending here


class RouteTable:
    """The app's routes as API Gateway REST's resource tree."""

    def __init__(self, routes: Mapping[str, Mapping[str, RouteEntry]]) -> None:
        self.routes = routes
        self.root = _Node()
        for resource in routes:
            node = self.root
            for segment in resource.strip("/").split("/"):
                if segment.startswith("{") and segment.endswith("}"):
                    if node.param is None:
                        node.param = (segment[1:-1], _Node())
                    node = node.param[1]
                else:
                    node = node.literals.setdefault(segment, _Node())
            node.resource = resource

    def match(self, raw_path: str) -> tuple[str, dict[str, str]] | None:
        """The resource the encoded `raw_path` matches, and its path parameters as raw segments."""
        if raw_path != "/" and raw_path.endswith("/"):
            raw_path = raw_path[:-1]
        if not raw_path.startswith("/"):
            return None
        return self._match(self.root, raw_path[1:].split("/"), {})

    def _match(self, node: _Node, segments: list[str], params: dict[str, str]) -> tuple[str, dict[str, str]] | None:
        if not segments:
            return (node.resource, params) if node.resource is not None else None
        head, rest = segments[0], segments[1:]
        literal = node.literals.get(head)
        if literal is not None:
            found = self._match(literal, rest, params)
            if found is not None:
                return found
        if node.param is not None and head:  # a parameter is never empty
            name, child = node.param
            return self._match(child, rest, {**params, name: head})
        return None


def _query(raw: str) -> dict[str, list[str]] | None:
    multi: dict[str, list[str]] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        multi.setdefault(key, []).append(value)
    return multi or None


def _preflight(entries: Mapping[str, RouteEntry]) -> dict[str, Any] | None:
    """Chalice's REST API answer to OPTIONS on a route with CORS (a mock integration), else None."""
    cors = next((e.cors for e in entries.values() if e.cors is not None), None)
    if cors is None:
        return None
    methods = [m for m, e in entries.items() if e.cors is not None] + ["OPTIONS"]
    headers = {"Access-Control-Allow-Methods": ",".join(methods), **cors.get_access_control_headers()}
    return {"statusCode": 200, "headers": {"Content-Type": "application/json", **headers}, "body": ""}


def to_rest_event(event: dict[str, Any], table: RouteTable) -> dict[str, Any]:
    """The REST event for a function URL event, or (under the key "answer") the front door's own answer."""
    context = event.get("requestContext") or {}
    method = str(context["http"].get("method", "")).upper()
    raw_path: str = event["rawPath"]
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    if event.get("cookies") and "cookie" not in headers:
        headers["cookie"] = "; ".join(event["cookies"])
    matched = table.match(raw_path)
    if matched is None:
        err = ResourceNotFound(f"No API method answers {method} {raw_path}")
        return {"answer": error_response(err, method, {}, None).to_dict()}
    resource, params = matched
    entries = table.routes[resource]
    if method not in entries:
        preflight = _preflight(entries) if method == "OPTIONS" else None
        return {"answer": preflight or dict(MISSING_TOKEN)}
    query = _query(event.get("rawQueryString") or "")
    return {
        "resource": resource,
        "path": raw_path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
        "multiValueQueryStringParameters": query,
        "pathParameters": params or None,
        "stageVariables": None,
        "requestContext": {
            "httpMethod": method,
            "resourcePath": resource,
            "path": raw_path,
            "domainName": context.get("domainName", ""),
            "requestId": context.get("requestId", ""),
            "stage": context.get("stage", "$default"),
            "frontDoor": "function_url",
        },
        "body": event.get("body"),
        "isBase64Encoded": bool(event.get("isBase64Encoded")),
        # The request target as the client sent it: what its Hawk signature covers.
        "rawPath": raw_path,
        "rawQueryString": event.get("rawQueryString") or "",
    }


def to_function_url_response(response: dict[str, Any]) -> dict[str, Any]:
    """Chalice's (REST) response dict in payload format 2.0."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    merged: dict[str, list[str]] = {}
    for name, value in (response.get("headers") or {}).items():
        merged.setdefault(str(name), []).append(str(value))
    for name, values in (response.get("multiValueHeaders") or {}).items():
        merged.setdefault(str(name), []).extend(str(v) for v in values)
    for name, values in merged.items():
        if name.lower() == "set-cookie":
            cookies.extend(values)
        else:
            headers[name] = ", ".join(values)
    if not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/json"
    body = response.get("body")
    if isinstance(body, bytes):
        body = base64.b64encode(body).decode("ascii")
        response = {**response, "isBase64Encoded": True}
    answer: dict[str, Any] = {
        "statusCode": response.get("statusCode", 200),
        "headers": headers,
        "body": body if body is not None else "",
        "isBase64Encoded": bool(response.get("isBase64Encoded")),
    }
    if cookies:
        answer["cookies"] = cookies
    return answer


class App(Chalice):
    """Chalice, taking function URL events as well as REST API events (see the module's doc)."""

    _route_table: RouteTable | None = None

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        if not is_function_url_event(event):
            return super().__call__(event, context)
        if self._route_table is None:  # every route is registered when app.py is imported
            self._route_table = RouteTable(self.routes)
        converted = to_rest_event(event, self._route_table)
        if "answer" in converted:
            return to_function_url_response(converted["answer"])
        return to_function_url_response(super().__call__(converted, context))
