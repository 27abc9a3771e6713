"""Artifacts: createArtifact, downloads (following links), listings and expiry.

The task row is only read (a run's state and worker decide whether it may create artifacts);
each artifact is one small item of its own table, written conditionally; s3 artifacts' bytes
never pass through here: clients upload to and download from S3 with presigned URLs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..clock import Clock
from ..config import Settings
from ..domain.artifacts import (
    GET_URL_SIGNED_FOR,
    MAX_LINK_HOPS,
    PUT_URL_LIFETIME,
    PUT_URL_SIGNED_FOR,
    Artifact,
    StorageType,
    check_artifact_name,
    check_create,
    check_s3_lifetime,
    compatible,
    conflict,
    new_artifact,
    repeated,
    s3_key,
)
from ..domain.errors import InputError, RequestConflict, ResourceExpired, ResourceNotFound
from ..domain.model import Task, format_date
from .ports import ArtifactStore, BlobStore, PurgeableArtifact, TaskStore

MAX_ATTEMPTS = 10


@dataclass(frozen=True)
class Content:
    """Where an artifact's content is, once links are followed: a URL (s3, reference) or the
    error an error artifact stands for."""

    storage_type: StorageType
    url: str | None = None
    reason: str | None = None
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.storage_type is StorageType.ERROR:
            return {"storageType": "error", "reason": self.reason, "message": self.message}
        return {"storageType": self.storage_type.value, "url": self.url}


class ArtifactService:
    def __init__(
        self, tasks: TaskStore, artifacts: ArtifactStore, blobs: BlobStore, clock: Clock, settings: Settings
    ) -> None:
        self.tasks = tasks
        self.artifacts = artifacts
        self.blobs = blobs
        self.clock = clock
        self.settings = settings

    # --- createArtifact ------------------------------------------------------------------------
    def create(self, task_id: str, run_id: int, name: str, body: dict[str, Any]) -> dict[str, Any]:
        now = self.clock.now()
        artifact = new_artifact(task_id, run_id, name, body, self.settings.artifact_bucket, now)
        task = self.tasks.get(task_id)
        check_create(task, artifact, now, self.settings.artifact_max_days)
        stored = self._store(artifact, now)
        # events: artifact-created — the one call site. Taskcluster publishes it for present
        # non-s3 artifacts (reference, link, error), on repeats too: {version: 1, status:
        # task.status_json(), artifact: stored.to_json(), workerGroup, workerId, runId}, routed by
        # the task's routes. Not published yet (the EventBus wiring is another change).
        if stored.storage_type is StorageType.S3:
            return {
                "storageType": "s3",
                "contentType": stored.content_type,
                "expires": format_date(now + PUT_URL_LIFETIME),
                "putUrl": self.blobs.put_url(
                    stored.details["bucket"], stored.s3_key, stored.content_type, PUT_URL_SIGNED_FOR
                ),
            }
        return {"storageType": artifact.storage_type.value}

    def _store(self, artifact: Artifact, now: datetime) -> Artifact:
        """Insert the artifact, or apply a compatible repeat to the one stored (invariant 3)."""
        for _ in range(MAX_ATTEMPTS):
            existing = self.artifacts.create(artifact)
            if existing is None:
                return artifact
            if not compatible(existing, artifact):
                raise conflict(existing)
            updated = repeated(existing, artifact, now)
            check_s3_lifetime(updated, self.settings.artifact_max_days)
            if updated == existing or self.artifacts.replace(updated, existing):
                return updated
        raise RequestConflict(f"Artifact {artifact.name} is changing too fast; try again")

    # --- downloads -----------------------------------------------------------------------------
    def content(
        self, task_id: str, run_id: int | None, name: str, authorize: Callable[[list[str]], None] = lambda names: None
    ) -> Content:
        """getArtifact / artifact (run_id given) and their latest-run variants (run_id None).

        `authorize` is called with the names read so far (the requested one, then each link's
        target) before each read; `public/` names need no scope. A name that can
        never exist is refused (400) before anything is read or authorized."""
        check_artifact_name(name)
        authorize(_private([name]))
        if run_id is None:
            run_id = self._task_with_runs(task_id).runs[-1].run_id
        artifact = self._follow_links(task_id, run_id, name, authorize)
        if artifact.storage_type is StorageType.S3:
            # Signed even under public/: the bucket stays private (README, "Artifacts").
            url = self.blobs.get_url(artifact.details["bucket"], artifact.s3_key, GET_URL_SIGNED_FOR)
            return Content(StorageType.S3, url=url)
        if artifact.storage_type is StorageType.REFERENCE:
            return Content(StorageType.REFERENCE, url=artifact.details["url"])
        return Content(StorageType.ERROR, reason=artifact.details["reason"], message=artifact.details["message"])

    def _follow_links(
        self, task_id: str, run_id: int, name: str, authorize: Callable[[list[str]], None]
    ) -> Artifact:
        now = self.clock.now()
        names: list[str] = []
        while True:
            names.append(name)
            # Authorized before each read, so a 403 names every artifact the links led through.
            authorize(_private(names))
            artifact = self.artifacts.get(task_id, run_id, name)
            if artifact is None:
                raise ResourceNotFound("Artifact not found", taskId=task_id, runId=run_id, name=name)
            if artifact.expired(now):
                raise ResourceExpired("Artifact expired", taskId=task_id, runId=run_id, name=name)
            if artifact.storage_type is not StorageType.LINK:
                return artifact
            target = artifact.details["artifact"]
            if target in names:
                raise InputError("Artifact leads to a link cycle", names=[*names, target])
            if len(names) >= MAX_LINK_HOPS:
                raise InputError(f"Artifact leads through more than {MAX_LINK_HOPS} links")
            name = target

    # --- listings ------------------------------------------------------------------------------
    def listing(
        self, task_id: str, run_id: int | None, limit: int, continuation: str | None
    ) -> tuple[list[Artifact], str | None]:
        """listArtifacts (run_id given) and listLatestArtifacts (None): every row of the run,
        expired ones too until they are purged."""
        task = self._task_with_runs(task_id)
        latest = task.runs[-1].run_id
        if run_id is None:
            run_id = latest
        elif run_id > latest:
            raise ResourceNotFound(
                f"Task with taskId: `{task_id}` has no run with runId: {run_id}", taskId=task_id, runId=run_id
            )
        return self.artifacts.page(task_id, run_id, limit, continuation)

    def info(self, task_id: str, run_id: int | None, name: str) -> Artifact:
        """artifactInfo / latestArtifactInfo (and finishArtifact's lookup): the artifact itself,
        links not followed."""
        check_artifact_name(name)
        if run_id is None:
            run_id = self._task_with_runs(task_id).runs[-1].run_id
        artifact = self.artifacts.get(task_id, run_id, name)
        if artifact is None:
            raise ResourceNotFound("Artifact not found", taskId=task_id, runId=run_id, name=name)
        return artifact

    def _task_with_runs(self, task_id: str) -> Task:
        task = self.tasks.get(task_id)
        if task is None:
            raise ResourceNotFound("Task not found", taskId=task_id)
        if not task.runs:
            raise ResourceNotFound("Task doesn't have any runs", taskId=task_id)
        return task

    # --- expiry (the sweeper) ------------------------------------------------------------------
    def expire(self, limit: int) -> int:
        """Delete up to `limit` artifacts past their purge time: s3 objects first, then the rows
        whose objects are gone (a row is the only record of its object). Idempotent; two sweeps
        at once delete each thing at most once, the second finding it gone."""
        due = self.artifacts.purgeable(self.clock.now(), limit)
        by_bucket: dict[str, list[PurgeableArtifact]] = defaultdict(list)
        for a in due:
            if a.bucket:
                by_bucket[a.bucket].append(a)
        kept: set[tuple[str, str]] = set()
        for bucket, items in by_bucket.items():
            failed = self.blobs.delete(bucket, [s3_key(a.task_id, a.run_id, a.name) for a in items])
            kept.update((bucket, key) for key in failed)
        purge = [a for a in due if not a.bucket or (a.bucket, s3_key(a.task_id, a.run_id, a.name)) not in kept]
        self.artifacts.purge(purge)
        return len(purge)


def _private(names: list[str]) -> list[str]:
    """The names whose reading needs `queue:get-artifact:<name>`: all but `public/` ones."""
    return [n for n in names if not n.startswith("public/")]
