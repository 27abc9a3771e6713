"""The artifacts table (tables.py): one small item per artifact, every write conditional.

A create is a put on a name not yet taken; a compatible repeat replaces the row only if it is
still what the caller compared against; the sweeper deletes a row only if its purgeAt is still
the one it found. A failed condition is reported, never retried here: the service re-reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import DeleteError, PutError

from ..domain.artifacts import Artifact, StorageType
from ..domain.errors import InputError
from ..domain.model import format_date, parse_date
from ..services.ports import PurgeableArtifact
from .pagination import decode_token, next_token
from .tables import ArtifactRow

CONDITION_FAILED = "ConditionalCheckFailedException"
S3_ROW_TTL_GRACE = timedelta(days=7)  # DynamoDB's TTL must leave the sweeper time to delete the object first
_DETAILS = ("bucket", "url", "artifact", "reason", "message")


def run_name(run_id: int, name: str) -> str:
    return f"{run_id}/{name}"


def artifact_from_row(row: ArtifactRow) -> Artifact:
    run_id, name = row.runName.split("/", 1)
    details = {key: value for key in _DETAILS if (value := getattr(row, key)) is not None}
    return Artifact(
        task_id=row.taskId,
        run_id=int(run_id),
        name=name,
        storage_type=StorageType(row.storageType),
        content_type=row.contentType,
        expires=parse_date(row.expires),
        created=parse_date(row.created),
        purge_at=parse_date(row.purgeAt),
        details=details,
        content_length=int(row.contentLength) if row.contentLength is not None else None,
    )


class DynamoArtifactStore:
    def __init__(self, model: type[ArtifactRow], shards: int) -> None:
        self._model = model
        self._shards = shards

    def _shard(self, task_id: str) -> str:
        return str(int(hashlib.sha256(task_id.encode()).hexdigest()[:8], 16) % self._shards)

    def _row(self, artifact: Artifact) -> ArtifactRow:
        ttl_at = artifact.purge_at + (S3_ROW_TTL_GRACE if artifact.storage_type is StorageType.S3 else timedelta())
        row = self._model(
            artifact.task_id,
            run_name(artifact.run_id, artifact.name),
            storageType=artifact.storage_type.value,
            contentType=artifact.content_type,
            contentLength=artifact.content_length,
            expires=format_date(artifact.expires),
            created=format_date(artifact.created),
            purgeShard=self._shard(artifact.task_id),
            purgeAt=format_date(artifact.purge_at),
            ttl=int(ttl_at.timestamp()),
        )
        for key in _DETAILS:
            setattr(row, key, artifact.details.get(key))
        return row

    # --- reads ---------------------------------------------------------------------------------
    def get(self, task_id: str, run_id: int, name: str) -> Artifact | None:
        try:
            row = self._model.get(task_id, run_name(run_id, name), consistent_read=True)
        except self._model.DoesNotExist:
            return None
        return artifact_from_row(row)

    def page(
        self, task_id: str, run_id: int, limit: int, continuation: str | None
    ) -> tuple[list[Artifact], str | None]:
        prefix = run_name(run_id, "")
        start = _decode(continuation, task_id, prefix) if continuation else None
        result = self._model.query(
            task_id,
            self._model.runName.startswith(prefix),
            limit=limit,
            page_size=limit,
            last_evaluated_key=start,
        )
        artifacts = [artifact_from_row(r) for r in result]
        last = result.last_evaluated_key
        token = next_token(last, len(artifacts), limit)
        return artifacts, token

    # --- writes --------------------------------------------------------------------------------
    def create(self, artifact: Artifact) -> Artifact | None:
        try:
            self._row(artifact).save(condition=self._model.taskId.does_not_exist(), add_version_condition=False)
        except PutError as e:
            if e.cause_response_code != CONDITION_FAILED:
                raise
            existing = self.get(artifact.task_id, artifact.run_id, artifact.name)
            if existing is None:  # purged in between: try once more
                return self.create(artifact)
            return existing
        return None

    def replace(self, artifact: Artifact, expected: Artifact) -> bool:
        m = self._model
        condition = (
            (m.storageType == expected.storage_type.value)
            & (m.expires == format_date(expected.expires))
            & (m.purgeAt == format_date(expected.purge_at))
        )
        for key in _DETAILS:
            value = expected.details.get(key)
            attr = getattr(m, key)
            condition &= attr.does_not_exist() if value is None else attr == value
        try:
            self._row(artifact).save(condition=condition, add_version_condition=False)
        except PutError as e:
            if e.cause_response_code == CONDITION_FAILED:
                return False
            raise
        return True

    # --- expiry --------------------------------------------------------------------------------
    def purgeable(self, now: datetime, limit: int) -> list[PurgeableArtifact]:
        found: list[PurgeableArtifact] = []
        for shard in range(self._shards):
            for row in self._model.byPurge.query(
                str(shard), self._model.purgeAt <= format_date(now), limit=limit - len(found)
            ):
                run_id, name = row.runName.split("/", 1)
                found.append(PurgeableArtifact(row.taskId, int(run_id), name, parse_date(row.purgeAt), row.bucket))
            if len(found) >= limit:
                break
        return found

    def purge(self, artifacts: Sequence[PurgeableArtifact]) -> None:
        m = self._model
        for a in artifacts:
            try:
                m(a.task_id, run_name(a.run_id, a.name)).delete(condition=m.purgeAt == format_date(a.purge_at))
            except DeleteError as e:
                # Gone already (another sweep), or repeated since with a later expiry: keep it.
                if e.cause_response_code != CONDITION_FAILED:
                    raise


def _decode(token: str, task_id: str, prefix: str) -> dict[str, Any]:
    """A continuation token back into the Query's start key — only one of this very listing."""
    start = decode_token(token) or {}
    try:
        ok = start["taskId"]["S"] == task_id and start["runName"]["S"].startswith(prefix)
    except (TypeError, KeyError):
        ok = False
    if not ok:
        raise InputError(f"Invalid continuationToken {token!r}")
    return start
