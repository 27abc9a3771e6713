"""Artifacts (services/artifacts.py) on the in-memory fakes: creating them on a running run,
repeats, downloads through links, listings, and expiry by the sweeper (objects first)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.adapters.memory import MemoryFakes, memory_container, memory_fakes, pump
from chalicelib.clock import FakeClock
from chalicelib.container import Container
from chalicelib.domain.artifacts import StorageType, s3_key
from chalicelib.domain.errors import InputError, RequestConflict, ResourceExpired, ResourceNotFound
from chalicelib.domain.model import ReasonResolved, Worker, format_date
from tests.harness import TEST_SETTINGS

T0 = datetime(2030, 1, 1, tzinfo=UTC)
BUCKET = TEST_SETTINGS.artifact_bucket


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def fakes(clock: FakeClock) -> MemoryFakes:
    return memory_fakes(TEST_SETTINGS, clock)


@pytest.fixture
def c(clock: FakeClock, fakes: MemoryFakes) -> Container:
    """A container with task `t` claimed: run 0 may create artifacts."""
    c = memory_container(TEST_SETTINGS, clock, fakes=fakes)
    c.queue.create_task(
        "t",
        {
            "taskQueueId": "proj/linux",
            "created": format_date(T0),
            "deadline": format_date(T0 + timedelta(hours=1)),
            "payload": {},
            "metadata": {"name": "t", "description": "", "owner": "me@example.com", "source": "https://x.org"},
        },
    )
    c.queue.claim_task("t", 0, Worker("wg", "w1"))
    pump(c)
    return c


def expires(days: float = 1) -> str:
    return format_date(T0 + timedelta(days=days))


def s3(content_type: str = "text/plain", days: float = 1) -> dict[str, Any]:
    return {"storageType": "s3", "contentType": content_type, "expires": expires(days)}


def test_an_s3_artifact_answers_with_a_put_url_for_its_key(c: Container) -> None:
    answer = c.artifacts.create("t", 0, "public/build/app.txt", s3())
    assert answer["storageType"] == "s3" and answer["contentType"] == "text/plain"
    assert "t/0/public/build/app.txt" in answer["putUrl"]
    assert c.artifacts.info("t", 0, "public/build/app.txt").storage_type is StorageType.S3


def test_a_compatible_repeat_succeeds_and_an_incompatible_one_conflicts(c: Container) -> None:
    c.artifacts.create("t", 0, "public/a", s3())
    c.artifacts.create("t", 0, "public/a", s3(days=2))
    assert c.artifacts.info("t", 0, "public/a").expires == T0 + timedelta(days=2)
    with pytest.raises(RequestConflict):
        c.artifacts.create("t", 0, "public/a", s3(content_type="text/html"))


def test_a_completed_run_takes_no_more_artifacts_and_an_unclaimed_one_none(c: Container) -> None:
    c.queue.resolve("t", 0, ReasonResolved.COMPLETED)
    with pytest.raises(RequestConflict):
        c.artifacts.create("t", 0, "public/late", s3())
    c.queue.rerun_task("t")
    with pytest.raises(InputError):
        c.artifacts.create("t", 1, "public/early", s3())


def test_a_run_resolved_exception_takes_artifacts_for_25_minutes(c: Container, clock: FakeClock) -> None:
    c.queue.report_exception("t", 0, ReasonResolved.MALFORMED_PAYLOAD)
    clock.advance(24 * 60)
    c.artifacts.create("t", 0, "public/log", s3())
    clock.advance(2 * 60)
    with pytest.raises(RequestConflict):
        c.artifacts.create("t", 0, "public/later", s3())


def test_downloads_follow_links_to_the_content(c: Container) -> None:
    c.artifacts.create(
        "t", 0, "public/real", {"storageType": "reference", "url": "https://example.com/x", "expires": expires()}
    )
    c.artifacts.create("t", 0, "public/alias", {"storageType": "link", "artifact": "public/real", "expires": expires()})
    c.artifacts.create(
        "t",
        0,
        "public/gone",
        {"storageType": "error", "reason": "file-missing-on-worker", "message": "no", "expires": expires()},
    )
    assert c.artifacts.content("t", 0, "public/alias").url == "https://example.com/x"
    assert c.artifacts.content("t", None, "public/gone").reason == "file-missing-on-worker"
    with pytest.raises(ResourceNotFound):
        c.artifacts.content("t", 0, "public/nothing")


def test_a_runs_artifacts_are_listed_by_name(c: Container) -> None:
    for name in ["public/c", "public/a", "private/b"]:
        c.artifacts.create("t", 0, name, s3())
    first, token = c.artifacts.listing("t", 0, 2, None)
    rest, end = c.artifacts.listing("t", None, 2, token)
    assert [a.name for a in first + rest] == ["private/b", "public/a", "public/c"] and end is None


def test_the_sweeper_deletes_expired_artifacts_and_their_objects(
    c: Container, clock: FakeClock, fakes: MemoryFakes
) -> None:
    c.artifacts.create("t", 0, "public/old", s3(days=0.5))
    c.artifacts.create("t", 0, "public/new", s3(days=3))
    for name in ("public/old", "public/new"):
        fakes.blobs.put(BUCKET, s3_key("t", 0, name), b"bytes")  # the worker's uploads
    clock.advance(timedelta(days=1).total_seconds())
    with pytest.raises(ResourceExpired):
        c.artifacts.content("t", 0, "public/old")
    assert c.sweeper.sweep().artifacts_purged == 1
    assert (BUCKET, s3_key("t", 0, "public/old")) not in fakes.blobs.objects
    assert (BUCKET, s3_key("t", 0, "public/new")) in fakes.blobs.objects
    with pytest.raises(ResourceNotFound):
        c.artifacts.info("t", 0, "public/old")


def test_rows_stay_while_their_objects_cannot_be_deleted(c: Container, clock: FakeClock, fakes: MemoryFakes) -> None:
    c.artifacts.create("t", 0, "public/old", s3(days=0.5))
    fakes.blobs.buckets.clear()  # the bucket is out of reach: nothing can be deleted
    clock.advance(timedelta(days=1).total_seconds())
    assert c.sweeper.sweep().artifacts_purged == 0
    assert c.artifacts.info("t", 0, "public/old").name == "public/old"
