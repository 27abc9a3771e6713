"""The claim loop: keep up to `capacity` runs going, exit when idle too long, shut down cleanly.

Two ways to end: a *shutdown* (signal, spot notice, refused credentials) aborts the running
tasks; *finishing* (a registered worker whose credentials are about to expire, or whom
worker-manager told to terminate) only stops claiming and exits 0 once the running tasks end.

Threads: the claim loop, one per run (each with its reclaim and live-log threads), the
spot-notice watcher; the main thread waits for a stop (signal handlers run there) and then shuts
down in an order that costs each task at most one run (see `_shut_down`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import metadata
from .claiming import Claimer
from .config import Config
from .queue import QueueCalls, TaskclusterFailure, brief, status_code
from .rules import Ending
from .task_run import TaskRun

log = logging.getLogger(__name__)
MAX_BACKOFF = 30.0
CLAIM_WAIT = 60.0  # longest wait at shutdown for a claim or poll in flight (claimWork, SQS: ≤ 20 s)
# A registered worker stops claiming this long before its credentials expire: a claim call (claimWork
# long-polls up to 20 s) started just before must still be signed with valid credentials, clock skew
# included. Runs use their claims' own credentials, so they may go on past the expiry.
CREDENTIALS_MARGIN = 60.0


class WorkerManager(Protocol):
    """What the claim loop asks worker-manager (manager.WorkerManagerCalls)."""

    def should_terminate(self, worker_pool_id: str, worker_group: str, worker_id: str) -> tuple[bool, str]: ...


@dataclass
class Worker:
    config: Config
    queue: QueueCalls
    claimer: Claimer
    docker: bool = False
    manager: WorkerManager | None = None  # a registered worker: asks shouldWorkerTerminate
    claim_until: float | None = None  # time.monotonic() after which it claims nothing (credentials expire)
    stopping: threading.Event = field(default_factory=threading.Event)
    stop_reason: str = ""
    exit_code: int = 0
    _claim_lock: threading.Lock = field(default_factory=threading.Lock)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _runs: dict[threading.Thread, TaskRun] = field(default_factory=dict)
    _slot_free: threading.Event = field(default_factory=threading.Event)
    _last_busy: float = field(default_factory=time.monotonic)
    _finishing: str = ""  # set: claim nothing more, stop once the running tasks end
    _asked_at: float | None = None  # the last shouldWorkerTerminate call (time.monotonic())
    _idle: bool = False  # no run since the last "worker-idle" line

    # --- stopping ------------------------------------------------------------------------------
    def stop(self, reason: str, exit_code: int = 0) -> None:
        """Stop claiming at once; `run` then aborts every run (they report exception/worker-shutdown)."""
        with self._lock:
            if self.stopping.is_set():
                return
            self.stop_reason, self.exit_code = reason, exit_code
            self.stopping.set()
            running = len(self._runs)
        log.info("worker-stopping reason=%s running=%d", reason, running)
        self._slot_free.set()  # wake the claim loop: it ends

    def finish(self, reason: str) -> None:
        """Stop claiming; exit 0 once the running tasks have ended (a shutdown still aborts them)."""
        with self._lock:
            if self._finishing or self.stopping.is_set():
                return
            self._finishing = reason
            running = len(self._runs)
        log.info("worker-finishing reason=%s running=%d", reason, running)
        self._slot_free.set()

    def run(self) -> int:
        # A daemon: a claim loop stuck beyond CLAIM_WAIT must not keep the process alive.
        claim_loop = threading.Thread(target=self._claim_loop, name="claim", daemon=True)
        claim_loop.start()
        if self.config.spot_notice_url:
            threading.Thread(target=self._watch_spot_notice, name="spot", daemon=True).start()
        while not self.stopping.wait(0.5):
            pass
        self._shut_down(claim_loop)
        return self.exit_code

    def _shut_down(self, claim_loop: threading.Thread) -> None:
        """After a stop: no new poll, then the claim in flight, then the runs, then the poll in flight.

        1. The claim loop starts no poll or claim once `stopping` is set (it looks before each wait,
           and under the claim lock before each claim). The stops it makes itself (idle timeout,
           refused credentials, the end of finishing) come between its calls: nothing is in flight.
        2. A claim call in flight is waited for first. claimWork long-polls up to 20 s on the
           queue: resolving our runs while it waits would make their retries pending, and it would
           claim them, only to abort them as well (two runs lost to one stop). What it does bring
           is aborted at once (`_start`).
        3. The runs are aborted: each reports exception/worker-shutdown and the queue retries it
           at once, for other workers.
        4. In sqs mode the long poll is not a claim: the runs need not wait for it, but the worker
           must, so that the claim loop gives back (`release`) what it brings instead of leaving
           those hints hidden for their visibility timeout after the process is gone.
        """
        acquired = self._claim_lock.acquire(blocking=False)
        if not acquired:
            log.info("waiting-for-claim-in-flight")
            acquired = self._claim_lock.acquire(timeout=CLAIM_WAIT)
        if acquired:
            self._claim_lock.release()  # the claim loop takes it once more, to give back what its poll brings
        else:
            log.warning("claim-in-flight-abandoned (its runs will expire and be retried)")
        with self._lock:
            runs = dict(self._runs)
        for run in runs.values():
            run.abort(Ending.SHUTDOWN)
        for thread in runs:
            thread.join()
        if claim_loop.is_alive():  # sqs: a long poll in flight (≤ --poll-seconds)
            log.info("waiting-for-poll-in-flight")
            claim_loop.join(CLAIM_WAIT)
            if claim_loop.is_alive():
                log.warning("poll-in-flight-abandoned (its hints come back after their visibility timeout)")

    # --- claiming ------------------------------------------------------------------------------
    def _claim_loop(self) -> None:
        backoff = 0.0
        while not self.stopping.is_set():
            self._slot_free.clear()
            with self._lock:
                free = self.config.capacity - len(self._runs)
                idle_for = time.monotonic() - self._last_busy if not self._runs else 0.0
                finishing, running = self._finishing, len(self._runs)
            if finishing and not running:
                self.stop(finishing)
                return
            if not finishing and self.claim_until is not None and time.monotonic() >= self.claim_until:
                self.finish("credentials-expiring")
                continue
            if free <= 0 or finishing:
                self._slot_free.wait(1.0)
                continue
            if self.config.idle_timeout and idle_for > self.config.idle_timeout:
                self.stop("idle-timeout")
                return
            try:
                started = self._claim(free)
                backoff = 0.0
                if not started and not self.stopping.is_set():
                    self._ask_whether_to_terminate()
            except Exception as e:
                if isinstance(e, TaskclusterFailure) and status_code(e) in (401, 403):
                    log.error("credentials-refused status=%s error=%s", status_code(e), brief(e))
                    self.stop("credentials-refused", exit_code=1)
                    return
                backoff = min(MAX_BACKOFF, max(1.0, backoff * 2))
                log.warning("claim-error retry_in=%.0fs error=%s", backoff, brief(e))
                self.stopping.wait(backoff)

    def _claim(self, free: int) -> int:
        """Claim up to `free` runs and start them; how many were started."""
        offers = self.claimer.wait_for_work(free, self.stopping)
        with self._claim_lock:
            if self.stopping.is_set():
                self.claimer.release(offers)
                return 0
            self._say_when_idle()
            claims = self._new(self.claimer.take(offers, self.stopping) if offers else [])
            for claim in claims:
                self._start(claim)
            return len(claims)

    def _say_when_idle(self) -> None:
        """Log "worker-idle" once when the worker, running nothing, claims (at start, and after its
        last run ended). Said under the claim lock: the claim it goes on to make is sent even if a
        stop comes next (a stop then waits for that claim in flight)."""
        with self._lock:
            became = not self._runs and not self._idle
            self._idle = self._idle or became
        if became:
            log.info("worker-idle claiming")

    def _new(self, claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The claims of runs this worker is not running yet. A run's hint may come twice (SQS
        delivers at least once; the sweeper re-announces), and the queue answers a claim by the worker
        that holds the run with that claim again: a second copy would share the first's work directory."""
        with self._lock:
            held = {(r.task_id, r.run_id) for r in self._runs.values()}
        new = []
        for claim in claims:
            key = (claim["status"]["taskId"], int(claim["runId"]))
            if key in held:
                log.info("claimed-again task=%s run=%d (already running here)", *key)
                continue
            held.add(key)
            new.append(claim)
        return new

    def _ask_whether_to_terminate(self) -> None:
        """With a free slot and nothing claimed: ask worker-manager (at most every interval)."""
        now = time.monotonic()
        if self.manager is None or (
            self._asked_at is not None and now - self._asked_at < self.config.should_terminate_interval
        ):
            return
        self._asked_at = now
        c = self.config
        try:
            terminate, reason = self.manager.should_terminate(c.task_queue_id, c.worker_group, c.worker_id)
        except Exception as e:  # worker-manager unreachable: keep working, ask again later
            log.warning("should-terminate-failed error=%s", brief(e))
            return
        if terminate:
            log.info("worker-manager-says-terminate reason=%s", reason or "(none given)")
            self.finish("worker-manager-terminate")

    def _start(self, claim: dict[str, Any]) -> None:
        run = TaskRun(self.config, claim, self.queue, self.docker)
        log.info("claimed %s taken_until=%s", run, claim["takenUntil"])
        thread = threading.Thread(target=self._run, args=(run,), name=f"task-{run.task_id}")
        with self._lock:
            self._runs[thread] = run
            self._idle = False
            if self.stopping.is_set():
                # Claimed by a call in flight when the stop came (claimWork's long poll, mostly).
                # That cannot be avoided: the queue claims before it answers, and dropping the
                # connection would leave the run claimed until it expires (a lost run all the
                # same, and a long wait). So report worker-shutdown now: the queue retries it at
                # once, for another worker.
                run.abort(Ending.SHUTDOWN)
        thread.start()

    def _run(self, run: TaskRun) -> None:
        try:
            run.run()
        finally:
            with self._lock:
                self._runs.pop(threading.current_thread(), None)
                self._last_busy = time.monotonic()
            self._slot_free.set()

    # --- spot interruption ---------------------------------------------------------------------
    def _watch_spot_notice(self) -> None:
        """Poll the instance metadata for a spot interruption notice (200 = notice, 404 = none)."""
        url = self.config.spot_notice_url
        while not self.stopping.wait(self.config.spot_poll_interval):
            notice = spot_notice(url)
            if notice is not None:
                log.info("spot-interruption-notice notice=%s", notice.strip()[:200])
                self.stop("spot-interruption")
                return


def spot_notice(url: str) -> str | None:
    """The notice's body, or None (404: no notice; an unanswered poll counts as none)."""
    try:
        return metadata.read(url)
    except metadata.MetadataError as e:
        log.debug("spot-notice-poll-failed error=%s", brief(e))
        return None
