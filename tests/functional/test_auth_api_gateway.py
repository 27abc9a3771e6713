"""Hawk behind API Gateway: the app sees a REST (v1) proxy event, not the client's request.

The client signed `https://<api-id>.execute-api.<region>.amazonaws.com/api/api/queue/v1/...` (the
stage `api` in the path, port 443); the event carries the path without the stage, the stage-ful
one in `requestContext.path`, the query parsed, and the port in X-Forwarded-Port. The MAC must
still match what the client signed — and nothing else.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import mohawk

from app import app
from tests.harness import Harness

HOST = "abc123.execute-api.us-east-1.amazonaws.com"
STAGE = "api"


def gateway_event(
    method: str, url: str, resource: str, params: dict[str, str], headers: dict[str, str]
) -> dict[str, Any]:
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True) or None
    return {
        "resource": resource,
        "path": parts.path.removeprefix(f"/{STAGE}"),
        "httpMethod": method,
        "headers": {"Host": HOST, "X-Forwarded-Port": "443", "X-Forwarded-Proto": "https", **headers},
        "multiValueHeaders": {},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
        "multiValueQueryStringParameters": query,
        "pathParameters": params,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": parts.path,  # API Gateway: the path as requested, stage included
            "stage": STAGE,
            "identity": {"sourceIp": "203.0.113.9"},
        },
        "body": None,
        "isBase64Encoded": False,
    }


def sign(stack: Harness, method: str, url: str, key: str | None = None) -> str:
    header: str = mohawk.Sender(
        credentials={"id": "root", "key": key or stack.settings.root_access_token, "algorithm": "sha256"},
        url=url,
        method=method,
        content="",
        content_type="",
        _timestamp=str(int(stack.clock.now().timestamp())),
    ).request_header
    return header


def call(event: dict[str, Any]) -> tuple[int, Any]:
    response = app(event, None)
    return response["statusCode"], json.loads(response["body"])


def test_a_request_signed_for_the_execute_api_url_is_accepted(stack: Harness) -> None:
    task_id = stack.create()
    url = f"https://{HOST}/{STAGE}/api/queue/v1/task/{task_id}/status"
    resource = "/api/queue/v1/task/{taskId}/status"
    event = gateway_event("GET", url, resource, {"taskId": task_id}, {"Authorization": sign(stack, "GET", url)})
    status, body = call(event)
    assert status == 200, body
    assert body["status"]["taskId"] == task_id


def test_the_query_as_the_python_client_encodes_it_is_accepted(stack: Harness) -> None:
    task_id = stack.create()
    token = "eyJhIjogMX0="  # `=` is percent-encoded by the client, decoded in the event
    url = f"https://{HOST}/{STAGE}/api/queue/v1/task-group/{task_id}/list?limit=1&continuationToken=eyJhIjogMX0%3D"
    resource = "/api/queue/v1/task-group/{taskGroupId}/list"
    event = gateway_event("GET", url, resource, {"taskGroupId": task_id}, {"Authorization": sign(stack, "GET", url)})
    assert event["multiValueQueryStringParameters"]["continuationToken"] == [token]
    status, body = call(event)
    # Authenticated: the made-up token is then judged on its own (a clear 400, never a 500).
    assert (status, body["code"]) == (400, "InputError"), body


def test_signatures_for_another_stage_port_or_host_are_refused(stack: Harness) -> None:
    task_id = stack.create()
    resource = "/api/queue/v1/task/{taskId}/status"
    url = f"https://{HOST}/{STAGE}/api/queue/v1/task/{task_id}/status"
    for signed_url in (
        f"https://{HOST}/prod/api/queue/v1/task/{task_id}/status",  # another stage
        f"http://{HOST}/{STAGE}/api/queue/v1/task/{task_id}/status",  # port 80
        f"https://other.example.com/{STAGE}/api/queue/v1/task/{task_id}/status",  # another host
    ):
        event = gateway_event(
            "GET", url, resource, {"taskId": task_id}, {"Authorization": sign(stack, "GET", signed_url)}
        )
        status, body = call(event)
        assert (status, body["code"]) == (401, "AuthenticationFailed"), signed_url
