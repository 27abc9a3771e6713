"""The embedded stack: taskqueue's AWS shape on one machine, with no AWS account.

- the AWS stand-in: moto, in a child process (`standin`): over HTTP for other processes (workers),
  over a Unix socket, without HTTP, for this one's;
- the Chalice app serving HTTP (chalice's local server, threaded);
- the event pump feeding the tasks stream (and any SQS sources) into the app's handlers, and
  running the sweeper every TASKQUEUE_SWEEP_INTERVAL seconds and the provisioner every
  TASKQUEUE_PROVISION_INTERVAL seconds;
- the local provider (`provider.py`) in place of EC2: worker pools with providerId `local` get
  reference-worker processes of this machine, ended when the stack stops.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import standin

PROJECT_DIR = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}") from None
            if time.monotonic() > end:
                raise TimeoutError(f"{url} did not answer within {timeout:.0f}s") from None
            time.sleep(0.05)


def local_server(app: Any, config: Any, host: str, port: int, on_write: Callable[[], None] | None = None) -> Any:
    """Chalice's local HTTP server, with its access log only when TASKQUEUE_ACCESS_LOG=1.
    `on_write` is called after each request that may have written (any method but GET, HEAD, OPTIONS)."""
    from chalice.local import ChaliceRequestHandler, CustomLocalChalice, LocalChalice, LocalDevServer

    class Handler(ChaliceRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            if os.environ.get("TASKQUEUE_ACCESS_LOG") == "1":
                super().log_message(format, *args)

        def _handle_write(self) -> None:
            try:
                self._generic_handle()
            finally:
                if on_write is not None:
                    on_write()

        do_PUT = do_POST = do_DELETE = do_PATCH = _handle_write

    # As chalice.local.create_local_server does: per-thread current_request for a threaded server.
    if not isinstance(app, LocalChalice):
        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice
    return LocalDevServer(app, config, host, port, handler_cls=Handler)


# What callers without credentials may do on the embedded stack (a machine-local sandbox): read
# everything, and create lowest-priority tasks on `sandbox/*` task queues (so plain curl can).
# TASKQUEUE_ANONYMOUS_SCOPES (space-separated) replaces the list; empty: none. On AWS, no
# anonymous role exists until an operator creates one.
ANONYMOUS_SCOPES = (
    "queue:get-task:*",
    "queue:status:*",
    "queue:list-task-group:*",
    "queue:list-dependent-tasks:*",
    "queue:list-artifacts:*",
    "queue:pending-count:*",
    "queue:claimed-count:*",
    "queue:pending-list:*",
    "queue:claimed-list:*",
    "queue:list-task-queues",
    "queue:get-task-queue:*",
    "queue:list-workers:*",
    "queue:get-worker:*",
    "worker-manager:list-worker-pools",
    "worker-manager:get-worker-pool:*",
    "worker-manager:list-worker-pool-errors:*",
    "worker-manager:list-workers:*",
    "worker-manager:get-worker:*",
    "queue:create-task:lowest:sandbox/*",
    "queue:create-task:project:none",
    "queue:scheduler-id:-",
)


def grant_anonymous(auth: Any, configured: str | None) -> None:
    scopes = list(ANONYMOUS_SCOPES) if configured is None else configured.split()
    if scopes:
        body = {"description": "embedded stack: what requests without credentials may do", "scopes": scopes}
        from ..domain.errors import RequestConflict

        try:
            auth.create_role("anonymous", body)
        except RequestConflict:  # already there: make it what this run configures
            auth.update_role("anonymous", body)


@dataclass
class EmbeddedStack:
    port: int
    host: str = "127.0.0.1"
    moto_port: int = 0
    _moto: Any = None  # standin.StandIn
    _server: Any = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _pump: Any = None
    provider: Any = None  # the local provider (after start())

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def credentials(self) -> dict[str, str]:
        """The root client's credentials, as the taskcluster clients take them (after start())."""
        return {
            "clientId": os.environ.get("TASKQUEUE_ROOT_CLIENT_ID", "root"),
            "accessToken": os.environ["TASKQUEUE_ROOT_ACCESS_TOKEN"],
        }

    @property
    def stand_in_pid(self) -> int | None:
        """The stand-in's process (after start())."""
        return self._moto.pid if self._moto is not None else None

    @property
    def aws_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    def start(self) -> None:
        self.moto_port = self.moto_port or free_port()
        # The stand-in runs in a process of its own (a core of its own): served over HTTP to other
        # processes, and to this one's AWS clients over a Unix socket (standin.py). It starts empty.
        self._moto = standin.StandIn(self.moto_port)
        self._moto.start()
        # Every AWS client this process (and its children) makes talks to the stand-in.
        os.environ.update(
            AWS_ENDPOINT_URL=self.aws_endpoint,
            AWS_ACCESS_KEY_ID="embedded",
            AWS_SECRET_ACCESS_KEY="embedded",
            AWS_DEFAULT_REGION=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        )
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.pop("AWS_PROFILE", None)
        if not os.environ.get("TASKQUEUE_ROOT_ACCESS_TOKEN"):
            # No token configured: generate one for this run (`serve` prints it).
            os.environ["TASKQUEUE_ROOT_ACCESS_TOKEN"] = secrets.token_urlsafe(33)

        from chalice.cli.factory import CLIFactory

        from app import app
        from chalicelib import container
        from chalicelib.adapters import aws
        from chalicelib.config import Settings

        from .bootstrap import create_resources
        from .provider import LocalProvider
        from .pump import EventPump

        # botocore's data read, and its sessions made, once for the process (and thread).
        aws.share_loader()
        aws.share_sessions()
        settings = Settings.from_env()
        # Launched workers reach the API where this stack serves it, unless configured otherwise.
        settings = replace(settings, public_root_url=settings.public_root_url or self.root_url)
        region = settings.region
        ddb = aws.client("dynamodb", region_name=region)
        sqs = aws.client("sqs", region_name=region)
        streams = aws.client("dynamodbstreams", region_name=region)
        create_resources(settings, ddb, sqs, aws.client("events", region_name=settings.region))
        # Workers find work through the SQS hints. A stopping one waits out its long poll (to give
        # back what it brings): 5 s, not AWS's 20, keeps scale-in and Ctrl-C quick here, where
        # empty receives cost nothing.
        self.provider = LocalProvider(
            Path(tempfile.mkdtemp(prefix="taskqueue-workers-")), claim_mode="sqs", worker_args=("--poll-seconds", "5")
        )
        container.configure(container.build(settings, providers={self.provider.provider_id: self.provider}))
        grant_anonymous(container.get().auth_admin, os.environ.get("TASKQUEUE_ANONYMOUS_SCOPES"))

        pump = EventPump(
            app,
            ddb,
            streams,
            sqs,
            region,
            table_for_stream=lambda arn: settings.tasks_table,
            schedule_every=settings.sweep_interval,
            schedule_intervals={"provisioner": settings.provision_interval},
            failure_queue=settings.stream_failure_queue,
        )
        self._pump = pump
        config = CLIFactory(str(PROJECT_DIR)).create_config_obj(chalice_stage_name="dev")
        # The pump backs off while idle; a request that may have written wakes it (dispatch latency).
        self._server = local_server(app, config, self.host, self.port, on_write=pump.wake)
        self._threads = [
            threading.Thread(target=self._server.server.serve_forever, name="http", daemon=True),
            threading.Thread(target=pump.run, args=(self._stop,), name="pump", daemon=True),
        ]
        for t in self._threads:
            t.start()
        wait_for(f"{self.root_url}/api/queue/v1/ping", 30)

    def pump_idle_since(self) -> float:
        """When the event pump last found nothing to deliver (time.monotonic())."""
        return float(self._pump.idle_since) if self._pump is not None else 0.0

    def wait(self) -> None:
        """Block until stop() is called (e.g. from a signal handler)."""
        while not self._stop.wait(0.5):
            pass

    def stop(self) -> None:
        """Stop in order: the pump, the workers (they report their runs through the API), the API, the stand-in."""
        self._stop.set()
        if self._pump is not None:
            self._pump.wake()  # out of its idle wait: it sees the stop at once
        if self.provider is not None:
            # First, while the API still answers: workers report their running tasks as they end.
            self.provider.close()
        if self._server is not None:
            self._server.server.shutdown()
            self._server.server.server_close()
            self._server = None
        for t in self._threads:
            t.join(timeout=5)
        if self._moto is not None:
            self._moto.stop()
        self._moto = None
