"""ArtifactStore: one row per artifact of a run, written conditionally, purged when due."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.artifacts import Artifact, StorageType
from chalicelib.domain.errors import InputError
from chalicelib.services.ports import ArtifactStore, PurgeableArtifact

T0 = datetime(2030, 1, 1, tzinfo=UTC)
BUCKET = "bucket"


def s3(task_id: str, name: str, run_id: int = 0, expires: datetime = T0 + timedelta(days=1)) -> Artifact:
    return Artifact(task_id, run_id, name, StorageType.S3, "text/plain", expires, T0, expires, {"bucket": BUCKET}, None)


def reference(task_id: str, name: str, url: str = "https://example.com/a", run_id: int = 0) -> Artifact:
    expires = T0 + timedelta(days=2)
    return Artifact(task_id, run_id, name, StorageType.REFERENCE, "text/html", expires, T0, expires, {"url": url})


def every_page(artifacts: ArtifactStore, task_id: str, run_id: int, limit: int) -> list[str]:
    names: list[str] = []
    token: str | None = None
    while True:
        page, token = artifacts.page(task_id, run_id, limit, token)
        assert len(page) <= limit
        names += [a.name for a in page]
        if token is None:
            return names


def test_an_unknown_artifact_is_none(artifacts: ArtifactStore) -> None:
    assert artifacts.get("t", 0, "public/x") is None


def test_a_created_artifact_reads_back_as_it_was_written(artifacts: ArtifactStore) -> None:
    error = Artifact(
        "t",
        0,
        "public/err",
        StorageType.ERROR,
        "application/binary",
        T0,
        T0,
        T0,
        {"reason": "file-missing-on-worker", "message": "gone"},
        12,
    )
    for artifact in (s3("t", "public/a"), reference("t", "public/b"), error):
        assert artifacts.create(artifact) is None
        assert artifacts.get("t", 0, artifact.name) == artifact


def test_dates_are_kept_to_the_millisecond_and_foreign_details_dropped(artifacts: ArtifactStore) -> None:
    odd = replace(s3("t", "a"), expires=T0 + timedelta(microseconds=1500), details={"bucket": BUCKET, "extra": "x"})
    artifacts.create(odd)
    stored = artifacts.get("t", 0, "a")
    assert stored is not None
    assert stored.expires == T0 + timedelta(milliseconds=1) and stored.details == {"bucket": BUCKET}


def test_create_returns_the_stored_artifact_when_the_name_is_taken(artifacts: ArtifactStore) -> None:
    first = reference("t", "public/a", "https://example.com/first")
    artifacts.create(first)
    assert artifacts.create(reference("t", "public/a", "https://example.com/second")) == first
    assert artifacts.create(reference("t", "public/a", run_id=1)) is None  # another run's name


def test_replace_writes_over_the_row_it_was_compared_with(artifacts: ArtifactStore) -> None:
    first = s3("t", "a")
    artifacts.create(first)
    longer = replace(first, expires=first.expires + timedelta(days=1), purge_at=first.purge_at + timedelta(days=1))
    assert artifacts.replace(longer, first)
    assert artifacts.get("t", 0, "a") == longer


def test_replace_refuses_when_the_row_changed_meanwhile(artifacts: ArtifactStore) -> None:
    first = reference("t", "a")
    artifacts.create(first)
    moved = replace(first, details={"url": "https://example.com/moved"})
    assert artifacts.replace(moved, first)
    assert not artifacts.replace(replace(first, content_type="x/y"), first)
    assert not artifacts.replace(first, replace(moved, expires=T0))
    assert artifacts.get("t", 0, "a") == moved


def test_replace_refuses_an_artifact_that_does_not_exist(artifacts: ArtifactStore) -> None:
    ghost = reference("t", "ghost")
    assert not artifacts.replace(ghost, ghost)
    assert artifacts.get("t", 0, "ghost") is None


def test_a_runs_artifacts_are_listed_by_name_page_by_page(artifacts: ArtifactStore) -> None:
    names = [f"public/{c}" for c in "gfedcba"]
    for name in names:
        artifacts.create(reference("t", name, run_id=1))
    artifacts.create(reference("t", "public/other-run", run_id=10))
    artifacts.create(reference("t", "public/run-0", run_id=0))
    artifacts.create(reference("u", "public/other-task", run_id=1))
    assert every_page(artifacts, "t", 1, 3) == sorted(names)
    assert every_page(artifacts, "t", 10, 3) == ["public/other-run"]
    assert artifacts.page("t", 2, 3, None) == ([], None)


def test_a_page_token_is_refused_by_another_task_or_run(artifacts: ArtifactStore) -> None:
    for name in "ab":
        artifacts.create(reference("t", name))
    _, token = artifacts.page("t", 0, 1, None)
    assert token is not None
    for task_id, run_id in (("u", 0), ("t", 1)):
        with pytest.raises(InputError):
            artifacts.page(task_id, run_id, 1, token)
    with pytest.raises(InputError):
        artifacts.page("t", 0, 1, "garbage")


def test_purgeable_finds_the_rows_due_with_their_bucket(artifacts: ArtifactStore) -> None:
    artifacts.create(s3("t1", "old", expires=T0))
    artifacts.create(reference("t2", "older"))
    artifacts.create(s3("t3", "young", expires=T0 + timedelta(days=9)))
    at = T0 + timedelta(days=3)
    found = sorted(artifacts.purgeable(at, 10), key=lambda p: p.task_id)
    assert found == [
        PurgeableArtifact("t1", 0, "old", T0, BUCKET),
        PurgeableArtifact("t2", 0, "older", T0 + timedelta(days=2), None),
    ]
    assert len(artifacts.purgeable(at, 1)) == 1
    assert artifacts.purgeable(T0 - timedelta(seconds=1), 10) == []


def test_purge_deletes_rows_unless_their_purge_time_moved(artifacts: ArtifactStore) -> None:
    for name in ("a", "b"):
        artifacts.create(s3("t", name, expires=T0))
    found = artifacts.purgeable(T0, 10)
    b = s3("t", "b", expires=T0)
    artifacts.replace(replace(b, expires=T0 + timedelta(days=1), purge_at=T0 + timedelta(days=1)), b)
    artifacts.purge(found)
    artifacts.purge(found)  # twice: the rows are gone, nothing fails
    assert artifacts.get("t", 0, "a") is None
    kept = artifacts.get("t", 0, "b")
    assert kept is not None and kept.purge_at == T0 + timedelta(days=1)
