"""The embedded stack as a user runs it: `python -m chalicelib.local serve` in its own process.

One stack serves the whole file (module-scoped fixture, always stopped at the end). The official
`taskcluster` client talks to it over HTTP with the real clock; claims last 2 s and the sweeper
ticks every 0.2 s, so claim expiry and deadlines happen within seconds. Anything time-driven is
awaited by polling with a bound, never by a fixed sleep, and no test asserts on durations.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import slugid
import taskcluster
import taskcluster.exceptions

PROJECT_DIR = Path(__file__).resolve().parents[2]
MOTO_MODULE = "chalicelib.local.motoserver"
READY_TIMEOUT = 60.0  # the stack (moto server child + app + pump) answering ping
POLL_TIMEOUT = 20.0  # a time-driven change (claim expiry, deadline) showing in status()
POLL_EVERY = 0.1
EXIT_TIMEOUT = 15.0  # SIGTERM to exit
ROOT_TOKEN = "e2e-root-token"
ENV = {
    "TASKQUEUE_CLAIM_TIMEOUT": "2",
    "TASKQUEUE_SWEEP_INTERVAL": "0.2",
    "TASKQUEUE_REDISPATCH_AFTER": "1",
    "TASKQUEUE_ROOT_ACCESS_TOKEN": ROOT_TOKEN,
}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

T = TypeVar("T")


# --- processes ------------------------------------------------------------------------------------
def _proc_entry(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, command line) of a process, from /proc; None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may contain spaces and parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], cmdline


def _proc_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state, command line) for every process we can see."""
    entries = {int(p.name): _proc_entry(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()}
    return {pid: e for pid, e in entries.items() if e is not None}


def alive(pid: int, cmdline: str) -> bool:
    """Is this very process (same pid *and* command line: pids get reused) still running?"""
    entry = _proc_entry(pid)
    return entry is not None and entry[1] != "Z" and entry[2] == cmdline


def descendants(pid: int) -> dict[int, str]:
    """Every live process below `pid`: pid -> command line."""
    try:
        import psutil  # optional: used when installed
    except ImportError:
        table = _proc_table()
        found: dict[int, str] = {}
        frontier = [pid]
        while frontier:
            parent = frontier.pop()
            for child, (ppid, state, cmdline) in table.items():
                if ppid == parent and child not in found and state != "Z":
                    found[child] = cmdline
                    frontier.append(child)
        return found
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return {}
    return {c.pid: " ".join(c.cmdline()) for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE}


def running(matching: Callable[[str], bool]) -> dict[int, str]:
    """Every live (non-zombie) process whose command line satisfies `matching`."""
    return {pid: cmd for pid, (_, state, cmd) in _proc_table().items() if state != "Z" and matching(cmd)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def eventually(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `check` every POLL_EVERY seconds until it returns something truthy (bounded)."""
    end = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL_EVERY)


# --- the served stack -----------------------------------------------------------------------------
@dataclass
class Served:
    proc: subprocess.Popen[str]
    port: int
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None
    children: dict[int, str] = field(default_factory=dict)  # seen once the stack was up

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return "".join(self.output)

    def queue(self) -> taskcluster.Queue:
        credentials = {"clientId": "root", "accessToken": ROOT_TOKEN}
        return taskcluster.Queue({"rootUrl": self.root_url, "maxRetries": 0, "credentials": credentials})


def _read_output(served: Served) -> None:
    assert served.proc.stdout is not None
    for line in served.proc.stdout:
        served.output.append(line)


def _pings(served: Served) -> bool:
    if served.proc.poll() is not None:
        pytest.fail(f"the stack exited with {served.proc.returncode} before answering:\n{served.text()}")
    try:
        with urllib.request.urlopen(f"{served.root_url}/api/queue/v1/ping", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _stop(served: Served) -> None:
    """Stop the stack and whatever it started, however the tests went (only processes we started)."""
    proc = served.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pid, cmdline in served.children.items():
        if alive(pid, cmdline):  # left behind by a failed stop: end it, by its id
            os.kill(pid, signal.SIGKILL)
    if served.reader is not None:
        served.reader.join(timeout=5)


@contextmanager
def serving(settings: dict[str, str], own_group: bool = False) -> Iterator[Served]:
    """`python -m chalicelib.local serve` with these TASKQUEUE_* settings (and other environment),
    answering; always stopped. `own_group`: the leader of its own process group, as a terminal's
    foreground job is."""
    env = {**os.environ, **settings, "PYTHONUNBUFFERED": "1"}
    env.pop("AWS_ENDPOINT_URL", None)  # the stack points its clients at its own moto server
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.local", "serve", "--port", str(port)],
        cwd=PROJECT_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=own_group,
    )
    served = Served(proc, port)
    served.reader = threading.Thread(target=_read_output, args=(served,), name="serve-output", daemon=True)
    served.reader.start()
    try:
        eventually(lambda: _pings(served), READY_TIMEOUT, f"GET {served.root_url}/api/queue/v1/ping")
        eventually(lambda: "AWS stand-in: " in served.text(), 10, "the stand-in's URL")
        served.children = descendants(proc.pid)
        yield served
    finally:
        _stop(served)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving(ENV) as s:
        yield s


# --- helpers --------------------------------------------------------------------------------------
def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def definition(task_queue_id: str, deadline_in: timedelta = timedelta(hours=1)) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "taskQueueId": task_queue_id,
        "created": iso(now),
        "deadline": iso(now + deadline_in),
        "payload": {"command": [["echo", "hi"]]},
        "metadata": {
            "name": "e2e",
            "description": "a task for the embedded stack's end-to-end test",
            "owner": "me@example.com",
            "source": "https://example.com/e2e",
        },
    }


def claim(queue: taskcluster.Queue, task_queue_id: str, task_id: str) -> dict[str, Any]:
    """claimWork until it hands out this task (claimWork itself long-polls; bounded overall)."""

    def attempt() -> dict[str, Any] | None:
        claims = queue.claimWork(task_queue_id, {"workerGroup": "e2e", "workerId": "w1", "tasks": 1})["tasks"]
        assert [c["status"]["taskId"] for c in claims] in ([], [task_id]), claims
        return claims[0] if claims else None

    return eventually(attempt, POLL_TIMEOUT, f"claimWork to hand out {task_id}")


def runs(status: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(r["runId"], r["state"], r["reasonCreated"], r.get("reasonResolved")) for r in status["runs"]]


def status_when(queue: taskcluster.Queue, task_id: str, done: Callable[[dict[str, Any]], bool], what: str) -> Any:
    def check() -> dict[str, Any] | None:
        status: dict[str, Any] = queue.status(task_id)["status"]
        return status if done(status) else None

    return eventually(check, POLL_TIMEOUT, what)


# --- tests (in file order: the last one stops the stack) ------------------------------------------
def test_serve_prints_its_root_url_and_answers_ping(served: Served) -> None:
    eventually(lambda: f"root URL:  {served.root_url}" in served.text(), 10, "the root URL on stdout")
    result = served.queue().ping()
    assert result["alive"] is True


def test_without_credentials_curl_reads_and_creates_sandbox_tasks_only(served: Served) -> None:
    """The embedded stack's anonymous role: plain HTTP (no Hawk) may create on sandbox/*, read anything."""
    task_id = slugid.nice()
    url = f"{served.root_url}/api/queue/v1/task/{task_id}"
    created = requests.put(url, json=definition("sandbox/curl"), timeout=30)
    assert created.status_code == 200, created.text
    assert requests.get(f"{url}/status", timeout=30).json()["status"]["state"] == "pending"
    refused = requests.put(f"{served.root_url}/api/queue/v1/task/{slugid.nice()}", json=definition("e2e/x"), timeout=30)
    assert refused.status_code == 403 and refused.json()["code"] == "InsufficientScopes"
    wrong = served.queue()
    wrong.options["credentials"] = {"clientId": "root", "accessToken": "not-the-token"}
    with pytest.raises(taskcluster.exceptions.TaskclusterAuthFailure):
        wrong.status(task_id)


def test_task_is_claimed_reclaimed_and_completed(served: Served) -> None:
    queue = served.queue()
    task_id = slugid.nice()
    status = queue.createTask(task_id, definition("e2e/lifecycle"))["status"]
    assert (status["state"], runs(status)) == ("pending", [(0, "pending", "scheduled", None)])

    claimed = claim(queue, "e2e/lifecycle", task_id)
    assert (claimed["runId"], claimed["workerGroup"], claimed["workerId"]) == (0, "e2e", "w1")
    assert claimed["task"] == queue.task(task_id)
    assert DATE.match(claimed["takenUntil"])

    reclaimed = queue.reclaimTask(task_id, 0)
    assert (reclaimed["runId"], reclaimed["workerId"], reclaimed["status"]["state"]) == (0, "w1", "running")
    assert reclaimed["takenUntil"] >= claimed["takenUntil"]  # a lease never moves backwards (same format)

    status = queue.reportCompleted(task_id, 0)["status"]
    assert (status["state"], runs(status)) == ("completed", [(0, "completed", "scheduled", "completed")])
    assert queue.status(task_id) == {"status": status}


def test_an_unreclaimed_claim_expires_and_the_task_is_retried(served: Served) -> None:
    queue = served.queue()
    task_id = slugid.nice()
    queue.createTask(task_id, definition("e2e/expiry"))
    claimed = claim(queue, "e2e/expiry", task_id)
    assert claimed["runId"] == 0

    status = status_when(queue, task_id, lambda s: s["runs"][0]["state"] != "running", "the claim to expire")
    assert status["state"] == "pending"
    assert runs(status) == [(0, "exception", "scheduled", "claim-expired"), (1, "pending", "retry", None)]
    assert status["retriesLeft"] == 4
    assert status["runs"][0]["takenUntil"] == claimed["takenUntil"]
    queue.cancelTask(task_id)  # nobody will claim the retry


def test_a_task_never_claimed_is_resolved_at_its_deadline(served: Served) -> None:
    queue = served.queue()
    task_id = slugid.nice()
    queue.createTask(task_id, definition("e2e/deadline", deadline_in=timedelta(seconds=3)))

    status = status_when(queue, task_id, lambda s: s["state"] != "pending", "the deadline to pass")
    assert status["state"] == "exception"
    assert runs(status) == [(0, "exception", "scheduled", "deadline-exceeded")]
    assert DATE.match(status["runs"][0]["resolved"])


def test_sigterm_stops_the_stack_and_its_moto_server(served: Served) -> None:
    moto = {pid: cmd for pid, cmd in descendants(served.proc.pid).items() if MOTO_MODULE in cmd}
    assert moto, f"no {MOTO_MODULE} child of the stack: {served.children}"
    stand_in = re.search(r"AWS stand-in: http://127\.0\.0\.1:(\d+)", served.text())
    assert stand_in, served.text()
    moto_port = stand_in.group(1)
    assert all(f"--port {moto_port}" in cmd for cmd in moto.values()), moto

    served.proc.send_signal(signal.SIGTERM)
    try:
        returncode = served.proc.wait(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the stack did not exit within {EXIT_TIMEOUT:.0f}s of SIGTERM:\n{served.text()}")
    assert returncode == 0, served.text()

    def moto_gone() -> bool:
        return not running(lambda cmd: MOTO_MODULE in cmd and f"--port {moto_port}" in cmd)

    eventually(moto_gone, 5, f"the {MOTO_MODULE} child on port {moto_port} to be gone")
    assert not [pid for pid, cmd in served.children.items() if alive(pid, cmd)], served.children
    # Nothing the stack started still holds its stdout: the output reaches its end.
    assert served.reader is not None
    served.reader.join(timeout=5)
    assert not served.reader.is_alive()
    assert "stopped" in served.text()
