"""The in-memory artifact storage: MemoryBlobStore (the bucket) and MemoryArtifactStore (the table).

They stand for adapters/s3.py and adapters/artifact_store.py: objects by (bucket, key) behind
`memory://` URLs, and artifact rows by (taskId, "<runId>/<name>") with a sharded purge index.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

from ...domain.artifacts import Artifact
from ...domain.errors import InputError
from ...domain.model import format_date
from ...services.ports import PurgeableArtifact
from ..pagination import decode_token
from .common import Key, _ms, _query, _shard, _token


class MemoryBlobStore:
    """The artifact bucket: objects by (bucket, key). URLs are `memory://` ones nobody fetches."""

    def __init__(self, buckets: Iterable[str] = ()) -> None:
        self.buckets = set(buckets)
        self.objects: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    def put(self, bucket: str, key: str, body: bytes = b"") -> None:
        """An upload through a put URL."""
        with self._lock:
            self.buckets.add(bucket)
            self.objects[(bucket, key)] = body

    def put_url(self, bucket: str, key: str, content_type: str, expires_in: timedelta) -> str:
        query = urlencode(
            {"method": "PUT", "content-type": content_type, "expires-in": int(expires_in.total_seconds())}
        )
        return f"memory://{bucket}/{quote(key)}?{query}"

    def get_url(self, bucket: str, key: str, expires_in: timedelta) -> str:
        return f"memory://{bucket}/{quote(key)}?{urlencode({'expires-in': int(expires_in.total_seconds())})}"

    def delete(self, bucket: str, keys: Sequence[str]) -> list[str]:
        with self._lock:
            if bucket not in self.buckets:  # S3: NoSuchBucket, so nothing was deleted
                return list(dict.fromkeys(keys))
            for key in keys:
                self.objects.pop((bucket, key), None)
        return []


_DETAILS = ("bucket", "url", "artifact", "reason", "message")  # what the artifacts table keeps of `details`


def _stored_artifact(a: Artifact) -> Artifact:
    details = {k: str(v) for k in _DETAILS if (v := a.details.get(k)) is not None}
    return replace(a, expires=_ms(a.expires), created=_ms(a.created), purge_at=_ms(a.purge_at), details=details)


class MemoryArtifactStore:
    """The artifacts table (adapters/artifact_store.py): rows by (taskId, "<runId>/<name>")."""

    def __init__(self, shards: int = 4) -> None:
        self._shards = shards
        self._rows: dict[tuple[str, str], Artifact] = {}
        self._lock = threading.Lock()

    def get(self, task_id: str, run_id: int, name: str) -> Artifact | None:
        with self._lock:
            return self._rows.get((task_id, f"{run_id}/{name}"))

    def create(self, artifact: Artifact) -> Artifact | None:
        key = (artifact.task_id, f"{artifact.run_id}/{artifact.name}")
        with self._lock:
            existing = self._rows.get(key)
            if existing is not None:
                return existing
            self._rows[key] = _stored_artifact(artifact)
        return None

    def replace(self, artifact: Artifact, expected: Artifact) -> bool:
        key = (artifact.task_id, f"{artifact.run_id}/{artifact.name}")
        with self._lock:
            row = self._rows.get(key)
            if row is None or not (
                row.storage_type is expected.storage_type
                and row.expires == _ms(expected.expires)
                and row.purge_at == _ms(expected.purge_at)
                and all(row.details.get(k) == expected.details.get(k) for k in _DETAILS)
            ):
                return False
            self._rows[key] = _stored_artifact(artifact)
        return True

    def page(
        self, task_id: str, run_id: int, limit: int, continuation: str | None
    ) -> tuple[list[Artifact], str | None]:
        prefix = f"{run_id}/"
        start: Key | None = None
        if continuation:
            key = decode_token(continuation) or {}
            try:
                ok = key["taskId"]["S"] == task_id and key["runName"]["S"].startswith(prefix)
            except (TypeError, KeyError):
                ok = False
            if not ok:
                raise InputError(f"Invalid continuationToken {continuation!r}")
            start = (key["runName"]["S"],)
        with self._lock:
            rows = [((rn,), a) for (t, rn), a in self._rows.items() if t == task_id and rn.startswith(prefix)]
        artifacts, last = _query(rows, start, limit)
        return artifacts, _token(("taskId", "runName"), (task_id, *last) if last else None)

    def purgeable(self, now: datetime, limit: int) -> list[PurgeableArtifact]:
        at = _ms(now)
        found: list[PurgeableArtifact] = []
        with self._lock:
            rows = list(self._rows.values())
        for shard in range(self._shards):
            due = [
                (
                    (format_date(a.purge_at), a.task_id, f"{a.run_id}/{a.name}"),
                    PurgeableArtifact(a.task_id, a.run_id, a.name, a.purge_at, a.details.get("bucket")),
                )
                for a in rows
                if a.purge_at <= at and _shard(a.task_id, self._shards) == str(shard)
            ]
            found += _query(due, None, limit - len(found))[0]
            if len(found) >= limit:
                break
        return found

    def purge(self, artifacts: Sequence[PurgeableArtifact]) -> None:
        with self._lock:
            for a in artifacts:
                key = (a.task_id, f"{a.run_id}/{a.name}")
                row = self._rows.get(key)
                if row is not None and row.purge_at == _ms(a.purge_at):
                    del self._rows[key]
