"""The AWS stand-in: moto, in a process of its own, served over HTTP to every process and to the
process that started it over a Unix socket, without HTTP.

    python -m chalicelib.local.standin --port 5000 --socket NAME   # stdin: a pipe from its parent

The stand-in runs in a child of the embedded stack, so that the stack's API and event pump and
moto each have a core (one process shares one, through the GIL). The stack makes most of the
stand-in's requests; sent over HTTP, each would pay a TCP connection and an HTTP exchange on both
sides, and moto's WSGI and Flask dispatch, which together cost more CPU than most of moto's own
work. So botocore still builds and parses every request and response as it does against AWS; only
the transport differs: a `before-send` handler (the hook moto's own in-process mock uses) sends a
request of the SERVICES addressed to the stand-in over a Unix socket (a pool of connections, one
request at a time on each), the child hands it to moto's handler for its service, and the answer
comes back as the HTTP response botocore would have read. Those requests are not signed
(`unsigned`): moto checks no signature of theirs. Requests of other services (S3, EC2: not on the
hot path) and every request from other processes (workers, `events`) reach the same moto over
HTTP: one state, wherever a request comes from.

The socket's messages are JSON and bytes, never pickles: any process of the machine may connect
to it (as to the HTTP port), and may do no more there than over HTTP. The child runs until its
stdin reaches its end: when its parent closes the pipe, or dies (even by SIGKILL), so it never
outlives the stack.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import secrets
import select
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import traceback
from io import BufferedIOBase, BytesIO
from pathlib import Path
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
_SIZES = struct.Struct("!II")  # a message: the lengths of its JSON head and of its body, then both
READY = "ready"  # what the child prints once it serves
PROJECT_DIR = Path(__file__).resolve().parents[2]  # where `python -m chalicelib...` finds this module
REGION = "taskqueue_stand_in_region"  # where `unsigned` leaves the client's region in a request's context


def _send(out: BufferedIOBase, head: Any, body: bytes) -> None:
    data = json.dumps(head).encode()
    out.write(_SIZES.pack(len(data), len(body)) + data + body)
    out.flush()


def _receive(source: BufferedIOBase) -> tuple[Any, bytes] | None:
    """A message's head and body; None at the end of the stream."""
    sizes = source.read(_SIZES.size)
    if len(sizes) < _SIZES.size:
        return None
    head_size, body_size = _SIZES.unpack(sizes)
    head, body = source.read(head_size), source.read(body_size)
    if len(head) < head_size or len(body) < body_size:
        return None
    return json.loads(head), body


# --- the child: moto, over HTTP and the socket ------------------------------------------------------


class _Dispatch:
    """A request of one of the SERVICES to moto's handler for it, in this process."""

    def __init__(self) -> None:
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

    def __call__(self, service: str, region: str, method: str, path: str, headers: Any, body: bytes) -> Any:
        """(status, headers, body) of moto's answer to `method` `path` (with its query) of `service`."""
        from botocore.awsrequest import AWSPreparedRequest
        from moto.core.exceptions import HTTPException
        from moto.core.request import normalize_request

        url, module = SERVICES[service]
        base = url.format(region=region)
        handler = next((h for p, h in self._handlers(module, base) if p.match(base + path.split("?", 1)[0])), None)
        if handler is None:
            return 404, {}, f"no route for {method} {path} of {service}".encode()
        normalized = normalize_request(AWSPreparedRequest(method, base + path, headers, body, False))
        try:
            status, answer_headers, answer = handler(normalized, normalized.raw_url, normalized.headers)
        except HTTPException as e:
            status, answer_headers, answer = e.code, e.get_headers(), e.get_body()
        return status, answer_headers, answer.encode() if isinstance(answer, str) else answer


class _Connection(socketserver.StreamRequestHandler):
    """One connection of the parent's pool: its requests, one at a time, on this thread."""

    dispatch = _Dispatch()

    def handle(self) -> None:
        while (message := _receive(self.rfile)) is not None:
            (service, region, method, path, headers), body = message
            try:
                status, answer_headers, answer = self.dispatch(service, region, method, path, headers, body)
                head: Any = [status, {str(k): str(v) for k, v in dict(answer_headers).items()}]
            except Exception:  # moto's own failure: raised in the caller, as moto in its process would
                head, answer = ["error", traceback.format_exc()], b""
            _send(self.wfile, head, answer)


class _SocketServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(port: int, address: str, host: str = "127.0.0.1") -> None:
    """moto with motofast's patches, empty, over HTTP on `host`:`port` and on the Unix socket at
    `address` (abstract: a leading NUL), until stdin ends."""
    from . import motofast

    motofast.apply()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per AWS call
    for module in PRELOAD:  # now, not while the first request of each kind waits
        importlib.import_module(module)
    from moto.server import ThreadedMotoServer

    sockets = _SocketServer(address, _Connection)
    threading.Thread(target=sockets.serve_forever, name="socket", daemon=True).start()
    http = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    http.start()
    print(READY, flush=True)  # both listen: the parent goes on (and reads no more of stdout)
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    while sys.stdin.buffer.read(65536):  # until the parent closes the pipe or dies
        pass
    http.stop()
    sockets.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.local.standin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--socket", required=True, help="the Unix socket's abstract name (without its leading NUL)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is its parent's to handle: it stops this last
    serve(args.port, "\0" + args.socket, args.host)
    return 0


# --- the parent: its requests over the socket --------------------------------------------------------


class _Body(BytesIO):
    """A response body as botocore reads it from urllib3."""

    def stream(self, **kwargs: Any) -> Any:
        data = self.read()
        if data:
            yield data


class SocketTransport:
    """A botocore `before-send` handler: requests of the SERVICES to `endpoint` go to the stand-in's
    socket at `address`, each on a connection of a pool (one per request in flight)."""

    def __init__(self, endpoint: str, address: str, region: str) -> None:
        self.endpoint, self.address, self.region = endpoint.rstrip("/"), address, region
        self.active = False  # while a stand-in of this process runs
        self._idle: list[tuple[socket.socket, BufferedIOBase]] = []

    def close(self) -> None:
        self.active = False
        while self._idle:
            self._idle.pop()[0].close()

    def _exchange(self, head: Any, body: bytes) -> tuple[Any, bytes]:
        try:
            conn, stream = self._idle.pop()  # atomic: no two threads get the same connection
        except IndexError:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.connect(self.address)
            stream = conn.makefile("rwb")
        try:
            _send(stream, head, body)
            answer = _receive(stream)
            if answer is None:
                raise ConnectionError(f"the AWS stand-in closed its socket ({self.endpoint})")
        except BaseException:
            conn.close()
            raise
        self._idle.append((conn, stream))
        return answer

    def __call__(self, request: Any, event_name: str = "", **kwargs: Any) -> Any:
        url: str = request.url
        if not self.active or not url.startswith(self.endpoint):
            return None
        service = event_name.split(".")[1] if event_name.count(".") >= 1 else ""
        if service not in SERVICES:
            return None  # over HTTP, to the same moto
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        scope = _SCOPE.search(headers.get("Authorization", ""))
        region = scope.group(1) if scope else (request.context or {}).get(REGION, self.region)
        body = request.body
        if body is None:
            body = b""
        elif isinstance(body, str):
            body = body.encode()
        elif not isinstance(body, bytes | bytearray):
            body = body.read()
        (status, answer_headers), answer = self._exchange(
            [service, region, request.method, url[len(self.endpoint) :] or "/", headers], bytes(body)
        )
        if status == "error":
            raise RuntimeError(f"the AWS stand-in failed:\n{answer_headers}")
        from botocore.awsrequest import AWSResponse

        return AWSResponse(url, status, answer_headers, _Body(answer))


_transport: SocketTransport | None = None


def unsigned(signature_version: Any = None, region_name: str = "", context: Any = None, **kwargs: Any) -> Any:
    """A `choose-signer` handler: while this process's stand-in runs, requests of the SERVICES are not
    signed (moto checks no signature of theirs; every AWS client of the process talks to the stand-in),
    except presigned URLs, which their users hand to others. The region goes in the request's context."""
    if _transport is None or not _transport.active or str(signature_version).endswith(("-query", "-presign-post")):
        return None
    if isinstance(context, dict):
        context[REGION] = region_name
    return botocore.UNSIGNED


def install(endpoint: str, address: str, region: str) -> SocketTransport:
    """Send this process's requests to the stand-in at `endpoint` over its socket at `address`, from
    every botocore session made from now on (a session registers botocore's built-in handlers when
    made). Once per process: a later call points the same handler at its stand-in."""
    global _transport
    if _transport is None:
        from botocore.handlers import BUILTIN_HANDLERS

        _transport = SocketTransport(endpoint, address, region)
        BUILTIN_HANDLERS.append(("before-send", _transport))
        BUILTIN_HANDLERS.extend((f"choose-signer.{service}", unsigned) for service in SERVICES)
    else:
        _transport.close()
        _transport.endpoint, _transport.address, _transport.region = endpoint.rstrip("/"), address, region
    _transport.active = True
    return _transport


class StandIn:
    """The stand-in's process, started empty, serving HTTP on `host`:`port`, and this process's
    requests over its socket (`install`)."""

    def __init__(self, port: int, host: str = "127.0.0.1", region: str | None = None) -> None:
        self.port, self.host = port, host
        self.region = region or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 60) -> None:
        name = f"taskqueue-stand-in-{secrets.token_hex(8)}"
        self._proc = proc = subprocess.Popen(
            [sys.executable, "-m", __name__, "--host", self.host, "--port", str(self.port), "--socket", name],
            cwd=PROJECT_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        try:
            ready = select.select([proc.stdout], [], [], timeout)[0]
            if not ready or proc.stdout.readline().decode().strip() != READY:
                raise RuntimeError(f"the AWS stand-in did not start on port {self.port} within {timeout:.0f}s")
        except BaseException:
            self.stop()
            raise
        finally:
            proc.stdout.close()
        install(self.endpoint, "\0" + name, self.region)

    def stop(self, timeout: float = 10) -> None:
        if _transport is not None:
            _transport.close()
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()  # its end: the child stops
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
