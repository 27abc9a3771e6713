"""A worker-manager stand-in on loopback for the worker's tests: registerWorker and
shouldWorkerTerminate as the contract says, every request recorded; anything else is forwarded to
an upstream queue (the embedded stack) with its Host header kept, so Hawk signatures made for this
server still verify there, or, without an upstream, claimWork answers "no tasks" after a moment.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

PREFIX = "/api/worker-manager/v1"
IDLE_CLAIM = 0.2  # seconds an upstream-less claimWork waits before answering "no tasks"


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None
    body: Any


@dataclass
class FakeWorkerManager:
    upstream: str | None = None  # the queue's root URL; None: claimWork answers no tasks
    credentials: dict[str, str] = field(default_factory=lambda: {"clientId": "worker/x", "accessToken": "t"})
    lifetime: timedelta = timedelta(hours=1)  # of the credentials register hands out
    register_status: int = 200
    terminate: bool = False
    reason: str = ""
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def root_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def calls(self, suffix: str) -> list[Seen]:
        return [s for s in list(self.seen) if s.path.startswith(PREFIX) and s.path.endswith(suffix)]

    def start(self) -> FakeWorkerManager:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

            def do_PUT(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        body = json.loads(raw) if raw and h.headers.get("Content-Type", "").startswith("application/json") else None
        self.seen.append(Seen(h.command, h.path, h.headers.get("Authorization"), body))
        if h.path == f"{PREFIX}/worker/register" and h.command == "POST":
            if self.register_status != 200:
                return _answer(h, self.register_status, {"code": "InputError", "message": "refused"})
            expires = datetime.now(UTC) + self.lifetime
            stamp = expires.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            return _answer(h, 200, {"expires": stamp, "credentials": self.credentials, "workerConfig": {"a": 1}})
        if h.path.startswith(f"{PREFIX}/workers/") and h.path.endswith("/should-terminate"):
            return _answer(h, 200, {"terminate": self.terminate, "reason": self.reason or None})
        if self.upstream is None:
            if "/claim-work/" in h.path:
                time.sleep(IDLE_CLAIM)
                return _answer(h, 200, {"tasks": []})
            return _answer(h, 404, {"code": "ResourceNotFound", "message": h.path})
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("content-length", "accept-encoding")}
        r = requests.request(h.command, self.upstream + h.path, headers=headers, data=raw, timeout=60)
        h.send_response(r.status_code)
        h.send_header("Content-Type", r.headers.get("Content-Type", "application/json"))
        h.send_header("Content-Length", str(len(r.content)))
        h.end_headers()
        h.wfile.write(r.content)


def _answer(h: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)
