"""One claimed run, from claim to report: validate the payload, run its commands in a fresh task
directory with a live log, keep the claim alive, upload the artifacts, report the outcome.

Each run has its own thread (the worker's) plus a reclaim thread; `abort()` may come from
either the reclaim thread (409: the queue resolved the run) or the worker (shutdown), and kills
the running command's whole process group.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import rules
from .config import Config
from .livelog import LiveLog
from .payload import (
    ArtifactSpec,
    MalformedPayload,
    Payload,
    content_type,
    docker_command,
    parse_payload,
    task_environment,
)
from .queue import QueueCalls, TaskclusterFailure, brief, status_code, upload
from .rules import Ending, Outcome

log = logging.getLogger(__name__)


def parse_date(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class ArtifactFailure(Exception):
    """An artifact could not be stored; `reason` is the exception to report (Taskcluster's mapping)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class TaskRun:
    def __init__(self, config: Config, claim: Mapping[str, Any], own_queue: QueueCalls, docker: bool) -> None:
        self.config = config
        self.task_id: str = claim["status"]["taskId"]
        self.run_id = int(claim["runId"])
        self.task: Mapping[str, Any] = claim["task"]
        self.docker = docker
        self._own = own_queue
        self.queue = own_queue.with_credentials(claim.get("credentials"))
        self.taken_until = parse_date(claim["takenUntil"])
        self.dir_name = f"task_{self.task_id}_{self.run_id}"
        self.task_dir = config.work_dir / self.dir_name
        self.livelog = LiveLog(
            config.work_dir / f"{self.dir_name}.log",
            self.task_id,
            self.run_id,
            self.task["expires"],
            config.live_log_interval,
        )
        self.ending: Ending | None = None  # set once, by abort()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._finished = threading.Event()

    def __str__(self) -> str:
        return f"task={self.task_id} run={self.run_id}"

    # --- stopping ------------------------------------------------------------------------------
    def abort(self, ending: Ending) -> None:
        """Stop the task code now: cancelled by the queue, or the worker is shutting down."""
        with self._lock:
            if self.ending is not None or self._finished.is_set():
                return
            self.ending = ending
            proc = self._proc
        log.info("task-aborting %s why=%s", self, ending.value)
        if proc is not None:
            self._kill(proc)

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the whole process tree
        if self.docker:
            subprocess.run(["docker", "rm", "-f", self.dir_name], capture_output=True, check=False)

    # --- the run -------------------------------------------------------------------------------
    def run(self) -> Outcome:
        meta = self.task.get("metadata", {})
        log.info("task-started %s name=%r", self, meta.get("name", ""))
        self.livelog.line(
            f"task {self.task_id} run {self.run_id} ({meta.get('name', '')!r}) on worker "
            f"{self.config.worker_group}/{self.config.worker_id}, task queue {self.config.task_queue_id}"
        )
        reclaimer = threading.Thread(target=self._keep_claim, name=f"reclaim-{self.task_id}", daemon=True)
        reclaimer.start()
        self.livelog.start(self.queue)
        try:
            outcome = self._execute()
        except Exception as e:  # a worker bug must still resolve the run, not leave it to expire
            log.exception("task-internal-error %s", self)
            self.livelog.line(f"internal error in the worker: {e!r}")
            outcome = rules.exception("internal-error")
        self.livelog.line(
            f"result: {outcome if outcome is not rules.NOTHING else 'none reported (run resolved by the queue)'}"
        )
        if not self.livelog.close():
            log.warning("live-log-incomplete %s", self)
        try:
            self._report(outcome)
        finally:
            with self._lock:
                self._finished.set()
            reclaimer.join()
            if not self.config.keep_task_dirs:
                shutil.rmtree(self.task_dir, ignore_errors=True)
                self.livelog.path.unlink(missing_ok=True)
        return outcome

    def _execute(self) -> Outcome:
        try:
            payload = parse_payload(self.task.get("payload"), self.config.max_run_time_limit)
        except MalformedPayload as e:
            self.livelog.line(f"malformed payload: {e}")
            return rules.exception("malformed-payload")
        if payload.image and not self.docker:
            self.livelog.line(
                f"payload.image is {payload.image!r}, but this worker has no Docker engine; "
                "refusing to run the commands on the host"
            )
            return rules.exception("resource-unavailable")
        shutil.rmtree(self.task_dir, ignore_errors=True)  # left by an earlier worker (--keep-task-dirs)
        self.task_dir.mkdir(parents=True)
        env = self._environment(payload)
        deadline = time.monotonic() + payload.max_run_time
        ending: Ending = Ending.EXITED
        code: int | None = 0
        for i, argv in enumerate(payload.commands or ((),)):
            if self.ending is not None:
                ending = self.ending
                break
            command = (
                docker_command(payload.image, argv, str(self.task_dir), env, self.dir_name)
                if payload.image
                else list(argv)
            )
            self.livelog.line(f"command {i + 1}/{len(payload.commands) or 1}: {shlex.join(command)}")
            ending, code = self._run_command(command, env, deadline)
            if ending is Ending.TIMED_OUT:
                self.livelog.line(f"maxRunTime of {payload.max_run_time}s exceeded: process tree killed")
            elif ending is not Ending.EXITED:
                self.livelog.line(
                    f"stopped: {'cancelled by the queue' if ending is Ending.CANCELLED else 'worker shutting down'}"
                )
            else:
                self.livelog.line(
                    f"exit status {code}" if code is not None else "exit status: the command could not start"
                )
            if ending is not Ending.EXITED or code != 0:
                break
        log.info("task-code-ended %s ending=%s exit=%s", self, ending.value, code)
        if ending in (Ending.CANCELLED, Ending.SHUTDOWN):
            return rules.outcome(ending, code, payload.retry_codes, False)
        try:
            missing = self._artifacts(payload)
        except ArtifactFailure as e:
            self.livelog.line(f"artifact upload failed: {e}")
            return rules.exception(e.reason)
        return rules.outcome(ending, code, payload.retry_codes, missing)

    def _environment(self, payload: Payload) -> dict[str, str]:
        injected = {
            "TASK_ID": self.task_id,
            "RUN_ID": str(self.run_id),
            "TASK_GROUP_ID": str(self.task.get("taskGroupId", self.task_id)),
            "TASK_WORKDIR": str(self.task_dir),
            "TASKCLUSTER_ROOT_URL": self.config.root_url,
        }
        return task_environment(payload.env, os.environ, injected)

    def _run_command(self, argv: list[str], env: dict[str, str], deadline: float) -> tuple[Ending, int | None]:
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.task_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as e:
            self.livelog.line(f"cannot start {argv[0]!r}: {e.strerror or e}")
            return Ending.EXITED, None
        with self._lock:
            self._proc = proc
            already = self.ending
        if already is not None:
            self._kill(proc)
        reader = threading.Thread(target=self._copy_output, args=(proc,), daemon=True)
        reader.start()
        timed_out = False
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
        # Whatever ended it, nothing it started may outlive it (nor hold its output open).
        self._kill(proc)
        proc.wait()
        reader.join()
        with self._lock:
            self._proc = None
            ending = self.ending
        if ending is not None:
            return ending, proc.returncode
        return (Ending.TIMED_OUT, None) if timed_out else (Ending.EXITED, proc.returncode)

    def _copy_output(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            self.livelog.write(chunk)
        proc.stdout.close()

    # --- artifacts -----------------------------------------------------------------------------
    def _artifacts(self, payload: Payload) -> bool:
        """Upload every artifact; True when one that is not optional is missing."""
        missing = False
        root = self.task_dir.resolve()
        for spec in payload.artifacts:
            expires = spec.expires or self.task["expires"]
            path = self.task_dir / spec.path
            found = path.is_file() if spec.type == "file" else path.is_dir()
            if found and not path.resolve().is_relative_to(root):
                self._error_artifact(
                    spec, expires, "invalid-resource-on-worker", f"{spec.path} is outside the task directory"
                )
                missing = missing or not spec.optional
            elif not found:
                self._error_artifact(
                    spec, expires, "file-missing-on-worker", f"no {spec.type} {spec.path} in the task directory"
                )
                missing = missing or not spec.optional
            elif spec.type == "file":
                self._upload(spec.name, path, spec.content_type or content_type(spec.name), expires)
            else:
                for f in sorted(p for p in path.rglob("*") if p.is_file()):
                    if f.resolve().is_relative_to(root):
                        name = f"{spec.name.rstrip('/')}/{f.relative_to(path).as_posix()}"
                        self._upload(name, f, spec.content_type or content_type(name), expires)
        return missing

    def _upload(self, name: str, path: Path, ctype: str, expires: str) -> None:
        size = path.stat().st_size
        try:
            answer = self.queue.create_s3_artifact(self.task_id, self.run_id, name, expires, ctype, size)
            upload(answer["putUrl"], path, ctype)
        except TaskclusterFailure as e:
            # generic-worker's mapping: 409 (same name, other content) is the payload's fault.
            reason = "malformed-payload" if status_code(e) in (400, 409) else "resource-unavailable"
            raise ArtifactFailure(reason, f"{name}: {brief(e)}") from e
        except OSError as e:
            raise ArtifactFailure("resource-unavailable", f"{name}: {brief(e)}") from e
        self.livelog.line(f"artifact {name} uploaded ({size} bytes, {ctype})")
        log.info("artifact-uploaded %s name=%s bytes=%d", self, name, size)

    def _error_artifact(self, spec: ArtifactSpec, expires: str, reason: str, message: str) -> None:
        self.livelog.line(f"artifact {spec.name}: {message}{' (optional)' if spec.optional else ''}")
        try:
            self.queue.create_error_artifact(self.task_id, self.run_id, spec.name, expires, reason, message)
        except TaskclusterFailure as e:
            raise ArtifactFailure("resource-unavailable", f"{spec.name}: {brief(e)}") from e

    # --- claim and report ----------------------------------------------------------------------
    def _keep_claim(self) -> None:
        delay = rules.reclaim_delay(self.taken_until, datetime.now(UTC))
        while not self._finished.wait(delay):
            try:
                answer = self.queue.reclaim(self.task_id, self.run_id)
            except TaskclusterFailure as e:
                if status_code(e) == 409:  # resolved by the queue: cancelled, deadline, claim expired
                    log.info("reclaim-refused %s (the queue resolved the run)", self)
                    self.abort(Ending.CANCELLED)
                    return
                log.warning("reclaim-failed %s error=%s", self, brief(e))
                delay = rules.retry_delay(self.taken_until, datetime.now(UTC))
                continue
            self.taken_until = parse_date(answer["takenUntil"])
            if answer.get("credentials"):
                self.queue = self._own.with_credentials(answer["credentials"])
                self.livelog.queue = self.queue
            log.info("reclaimed %s until=%s", self, answer["takenUntil"])
            delay = rules.reclaim_delay(self.taken_until, datetime.now(UTC))

    def _report(self, outcome: Outcome) -> None:
        if outcome is rules.NOTHING:
            log.info("task-resolved-by-queue %s (nothing to report)", self)
            return
        try:
            self.queue.report(self.task_id, self.run_id, outcome.resolution, outcome.reason)
        except TaskclusterFailure as e:
            log.warning("report-failed %s outcome=%s error=%s", self, outcome, brief(e))
            return
        log.info("task-resolved %s outcome=%s", self, outcome)
