"""The local provider: the embedded stack's EC2. A worker is a reference-worker process here.

`launch()` starts `launch.instances` processes of `python -m worker --user-data <file>
--worker-id local-<8 hex>`, the user data written (owner-only: it holds the registration token)
to `<work dir>/<worker id>/user-data.json` and the process's output to `worker.log` beside it. The
worker registers and claims as it would on EC2. The worker group is the launch config's region;
the launch specification (ImageId, InstanceType, ...) means nothing here and is ignored.

- `observe()`: `running` while the process lives, `terminated` once it exited, `not-found` for a
  worker this provider did not start (e.g. before a restart of the stack); `census()` the same of
  every worker it started in the regions asked for.
- `terminate()`: SIGTERM (the worker reports its running tasks exception/worker-shutdown, so they
  retry at once), then SIGKILL from a background thread if it is still there after the grace period:
  the provisioner is never held up.
- A launch token seen before answers with the same workers and starts nothing (tokens are kept in
  memory: a restarted stack has forgotten them, as it has forgotten its processes).
- `close()` ends every process it started and waits for them: nothing outlives the stack.
- A worker gets SIGTERM if the thread that started it ends (Linux: PR_SET_PDEATHSIG), so the stack
  dying without a `close()` (kill -9, OOM) leaves no worker behind. That thread is the pump's or one
  of the provisioner's pool threads, which live as long as the stack.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..domain.pools import PoolWorker, WorkerPool
from ..domain.provisioning import CloudState, Launch, WorkerKey
from ..services.ports import Launched, LaunchFailed

log = logging.getLogger(__name__)
PROJECT_DIR = Path(__file__).resolve().parents[2]  # where `python -m worker` is importable
GRACE = 30.0  # seconds between SIGTERM and SIGKILL (a worker reports its runs, then exits)
PR_SET_PDEATHSIG = 1  # prctl option, from <linux/prctl.h>


def worker_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without TASKCLUSTER_* (a provisioned worker registers for its
    credentials), unbuffered so each worker's log is current."""
    base = os.environ if env is None else env
    clean = {k: v for k, v in base.items() if not k.startswith("TASKCLUSTER_")}
    clean["PYTHONUNBUFFERED"] = "1"
    return clean


class LocalProvider:
    provider_id = "local"

    def __init__(
        self,
        work_dir: Path,
        claim_mode: str = "claim-work",
        worker_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        grace: float = GRACE,
        command: Sequence[str] = (sys.executable, "-m", "worker"),
    ) -> None:
        """`worker_args` are added to every worker's command line (e.g. `--capacity 2`); `env` is
        the workers' environment (default: worker_environment())."""
        self.work_dir = work_dir
        self.claim_mode = claim_mode
        self.worker_args = tuple(worker_args)
        self.env = dict(env) if env is not None else worker_environment()
        self.grace = grace
        self.command = tuple(command)
        self._lock = threading.Lock()
        self._procs: dict[WorkerKey, subprocess.Popen[bytes]] = {}  # by (worker group, worker id)
        self._launches: dict[str, list[Launched]] = {}  # by launch token
        self._closed = False

    # --- Provider ------------------------------------------------------------------------------
    def launch(self, pool: WorkerPool, launch: Launch, user_data: dict[str, Any], token: str) -> list[Launched]:
        with self._lock:
            if self._closed:
                raise LaunchFailed("ProviderClosed", "the embedded stack is shutting down")
            if token in self._launches:
                return list(self._launches[token])
            started: list[tuple[Launched, subprocess.Popen[bytes]]] = []
            try:
                for _ in range(launch.instances):
                    started.append(self._start(launch.launch_config.region, user_data))
            except OSError as err:
                for _, proc in started:  # all or none
                    _end(proc, 0.0)
                raise LaunchFailed("ProcessStartFailed", f"cannot start a worker process: {err}") from err
            for launched, proc in started:
                self._procs[(launched.worker_group, launched.worker_id)] = proc
            self._launches[token] = [launched for launched, _ in started]
            return list(self._launches[token])

    def observe(self, workers: Sequence[PoolWorker]) -> dict[WorkerKey, str]:
        with self._lock:
            procs = {(w.worker_group, w.worker_id): self._procs.get((w.worker_group, w.worker_id)) for w in workers}
        return {k: _state(proc) for k, proc in procs.items()}

    def census(self, regions: Collection[str]) -> dict[WorkerKey, str]:
        with self._lock:
            procs = {k: proc for k, proc in self._procs.items() if k[0] in regions}
        return {k: _state(proc) for k, proc in procs.items()}

    def terminate(self, workers: Sequence[PoolWorker]) -> None:
        with self._lock:
            procs = [p for p in (self._procs.get((w.worker_group, w.worker_id)) for w in workers) if p is not None]
        alive = [p for p in procs if _signal(p, signal.SIGTERM)]
        if alive:
            threading.Thread(target=_reap, args=(alive, self.grace), name="local-provider-reaper", daemon=True).start()

    # --- the embedded stack's end --------------------------------------------------------------
    def close(self) -> None:
        """SIGTERM every worker still running, SIGKILL those that outlast the grace period; waits."""
        with self._lock:
            self._closed = True
            procs = list(self._procs.values())
        for p in procs:
            _signal(p, signal.SIGTERM)
        _reap(procs, self.grace)

    # --- processes -----------------------------------------------------------------------------
    def _start(self, region: str, user_data: dict[str, Any]) -> tuple[Launched, subprocess.Popen[bytes]]:
        worker_id = f"local-{secrets.token_hex(4)}"
        home = self.work_dir / worker_id
        home.mkdir(parents=True, exist_ok=True)
        user_data_path = home / "user-data.json"
        fd = os.open(user_data_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(user_data, f)
        log_path = home / "worker.log"
        argv = [*self.command, "--user-data", str(user_data_path), "--worker-id", worker_id]
        argv += ["--claim-mode", self.claim_mode, "--work-dir", str(home / "work"), *self.worker_args]
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                cwd=PROJECT_DIR,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches the stack, which ends its workers itself
                preexec_fn=_terminated_with_parent(),
            )
        log.info("started worker %s/%s: pid %d, log %s", region, worker_id, proc.pid, log_path)
        launched = Launched(
            worker_group=region,
            worker_id=worker_id,
            provider_data={"pid": proc.pid, "logPath": str(log_path)},
        )
        return launched, proc


def _state(proc: subprocess.Popen[bytes] | None) -> str:
    if proc is None:
        return CloudState.NOT_FOUND
    return CloudState.RUNNING if proc.poll() is None else CloudState.TERMINATED


def _terminated_with_parent() -> Callable[[], None] | None:
    """For Popen's preexec_fn (Linux): the child gets SIGTERM when the thread starting it ends."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork: the child only calls it
    parent = os.getpid()

    def in_child() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl: no signal would come
            os._exit(1)

    return in_child


def _signal(proc: subprocess.Popen[bytes], sig: int) -> bool:
    """Send `sig` unless the process has exited; whether it was still running."""
    if proc.poll() is not None:
        return False
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        return False
    return True


def _reap(procs: Sequence[subprocess.Popen[bytes]], grace: float) -> None:
    """Wait for the processes until `grace` seconds from now, then SIGKILL the rest and wait."""
    deadline = time.monotonic() + grace
    for proc in procs:
        _end(proc, max(0.0, deadline - time.monotonic()))


def _end(proc: subprocess.Popen[bytes], grace: float) -> None:
    try:
        proc.wait(timeout=grace)
        return
    except subprocess.TimeoutExpired:
        pass
    if _signal(proc, signal.SIGKILL):
        log.warning("worker pid %d outlasted %.0fs after SIGTERM: killed", proc.pid, grace)
    proc.wait()
