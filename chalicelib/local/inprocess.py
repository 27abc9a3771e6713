"""The AWS stand-in in the embedded stack's own process: moto, served to other processes over
HTTP and to this one without it.

The stack's API and event pump make most of the stand-in's requests. Sent over HTTP, each paid
a TCP connection and an HTTP exchange on both sides, and moto's WSGI and Flask dispatch, which
together cost more CPU than most of moto's own work. Here botocore still builds and parses every
request and response as it does against AWS; only the transport differs: a `before-send`
handler (the hook moto's own in-process mock uses) hands a request addressed to the stand-in to
moto's handler for its service in this process, and returns moto's answer as the HTTP response
botocore would have read. Those requests are not signed (`unsigned`): moto checks no signature
of theirs. Requests of other services (S3, EC2: not on the hot
path) and every request from other processes (workers, `events`) reach the same moto over HTTP:
one state, wherever a request comes from.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
from io import BytesIO
from typing import Any

import botocore

# botocore's service id (as in its event names) -> moto's AWS URL for it ({region}) and moto's module.
SERVICES = {
    "dynamodb": ("https://dynamodb.{region}.amazonaws.com", "dynamodb"),
    "dynamodb-streams": ("https://streams.dynamodb.{region}.amazonaws.com", "dynamodbstreams"),
    "sqs": ("https://sqs.{region}.amazonaws.com", "sqs"),
    "eventbridge": ("https://events.{region}.amazonaws.com", "events"),
}
# moto's modules for what the stack uses, imported by moto on first use otherwise (S3 for
# artifacts; Lambda's for the first stream record: moto looks for event source mappings).
PRELOAD = (
    *(f"moto.{module}.urls" for _, module in SERVICES.values()),
    "moto.s3.urls",
    "moto.awslambda.utils",
)
_SCOPE = re.compile(r"Credential=[^/,]*/[0-9]{8}/([a-z0-9-]+)/")


class _Body(BytesIO):
    """A response body as botocore reads it from urllib3."""

    def stream(self, **kwargs: Any) -> Any:
        data = self.read()
        if data:
            yield data


class InProcessTransport:
    """A botocore `before-send` handler: requests to `endpoint` of the SERVICES go to moto here."""

    def __init__(self, endpoint: str, region: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.active = False  # while a stand-in of this process runs
        self._routes: dict[tuple[str, str], list[tuple[re.Pattern[str], Any]]] = {}

    def _handlers(self, module: str, base: str) -> list[tuple[re.Pattern[str], Any]]:
        key = (module, base)
        found = self._routes.get(key)
        if found is None:
            urls = importlib.import_module(f"moto.{module}.urls")
            found = []
            for url_base in urls.url_bases:
                if re.match(url_base, base):
                    found += [(re.compile(path.format(url_base)), h) for path, h in urls.url_paths.items()]
            self._routes[key] = found
        return found

    def __call__(self, request: Any, event_name: str = "", **kwargs: Any) -> Any:
        url: str = request.url
        if not self.active or not url.startswith(self.endpoint):
            return None
        service = event_name.split(".")[1] if event_name.count(".") >= 1 else ""
        known = SERVICES.get(service)
        if known is None:
            return None  # over HTTP, to the same moto
        authorization = request.headers.get("Authorization", b"")
        if isinstance(authorization, bytes):
            authorization = authorization.decode()
        scope = _SCOPE.search(authorization)
        region = scope.group(1) if scope else (request.context or {}).get(REGION, self.region)
        base = known[0].format(region=region)
        aws_url = base + url[len(self.endpoint) :]
        path = aws_url.split("?", 1)[0]
        handler = next((h for pattern, h in self._handlers(known[1], base) if pattern.match(path)), None)
        if handler is None:
            return None
        from botocore.awsrequest import AWSPreparedRequest, AWSResponse
        from moto.core.exceptions import HTTPException
        from moto.core.request import normalize_request

        moved = AWSPreparedRequest(request.method, aws_url, request.headers, request.body, False)
        normalized = normalize_request(moved)
        try:
            status, headers, body = handler(normalized, normalized.raw_url, normalized.headers)
        except HTTPException as e:
            status, headers, body = e.code, e.get_headers(), e.get_body()
        if isinstance(body, str):
            body = body.encode()
        return AWSResponse(url, status, headers, _Body(body))


_transport: InProcessTransport | None = None
REGION = "taskqueue_stand_in_region"  # where `unsigned` leaves the client's region in a request's context


def unsigned(signature_version: Any = None, region_name: str = "", context: Any = None, **kwargs: Any) -> Any:
    """A `choose-signer` handler: while this process's stand-in runs, requests of the SERVICES are not
    signed (moto checks no signature of theirs; every AWS client of the process talks to the stand-in),
    except presigned URLs, which their users hand to others. The region goes in the request's context."""
    if _transport is None or not _transport.active or str(signature_version).endswith(("-query", "-presign-post")):
        return None
    if isinstance(context, dict):
        context[REGION] = region_name
    return botocore.UNSIGNED


def install(endpoint: str, region: str) -> InProcessTransport:
    """Serve this process's requests to the stand-in at `endpoint` in-process, from every botocore
    session made from now on (a session registers botocore's built-in handlers when made). Once
    per process: a later call points the same handler at its `endpoint`."""
    global _transport
    if _transport is None:
        from botocore.handlers import BUILTIN_HANDLERS

        _transport = InProcessTransport(endpoint, region)
        BUILTIN_HANDLERS.append(("before-send", _transport))
        BUILTIN_HANDLERS.extend((f"choose-signer.{service}", unsigned) for service in SERVICES)
    else:
        _transport.endpoint, _transport.region = endpoint.rstrip("/"), region
    _transport.active = True
    return _transport


class StandIn:
    """moto with motofast's patches, empty, serving HTTP on 127.0.0.1:`port` from a thread of this
    process, and this process's requests in it (`install`)."""

    def __init__(self, port: int, host: str = "127.0.0.1", region: str | None = None) -> None:
        self.port, self.host = port, host
        self.region = region or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        self._server: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        from . import motofast

        motofast.apply()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per AWS call
        from moto.moto_api._internal.models import moto_api_backend
        from moto.server import ThreadedMotoServer

        moto_api_backend.reset()  # what an earlier stack of this process left (as a new server would)
        for module in PRELOAD:  # now, not while the first request of each kind waits (and holds the GIL)
            importlib.import_module(module)
        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        install(self.endpoint, self.region)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if _transport is not None:
            _transport.active = False
