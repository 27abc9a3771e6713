"""The pure artifact rules (domain/artifacts.py): createArtifact's checks in Taskcluster's order,
compatible repeats, where bytes live and when a row may be purged."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain.artifacts import (
    PUT_URL_SIGNED_FOR,
    Artifact,
    StorageType,
    check_create,
    compatible,
    new_artifact,
    repeated,
    s3_key,
)
from chalicelib.domain.errors import InputError, QueueError
from chalicelib.domain.model import ReasonCreated, ReasonResolved, Run, Task, TaskState, format_date

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
TASK_ID = "fN1SbArXTPa-PUVL8YyHEg"
BUCKET = "artifacts"


def task(*runs: Run, expires: datetime = NOW + timedelta(days=30)) -> Task:
    definition = {
        "provisionerId": "proj",
        "workerType": "linux",
        "taskQueueId": "proj/linux",
        "schedulerId": "-",
        "projectId": "none",
        "taskGroupId": TASK_ID,
        "deadline": format_date(NOW),
        "expires": format_date(expires),
    }
    return Task(TASK_ID, definition, "lowest", 5, runs)


def run(state: TaskState, *, claimed: bool = True, resolved: datetime | None = None) -> Run:
    reason = {
        TaskState.COMPLETED: ReasonResolved.COMPLETED,
        TaskState.FAILED: ReasonResolved.FAILED,
        TaskState.EXCEPTION: ReasonResolved.WORKER_SHUTDOWN,
    }.get(state)
    return Run(
        0,
        state,
        ReasonCreated.SCHEDULED,
        NOW,
        reason_resolved=reason,
        worker_group="wg" if claimed else None,
        worker_id="w1" if claimed else None,
        resolved=resolved,
    )


def body(storage_type: str = "s3", expires: datetime = NOW + timedelta(days=1), **fields: Any) -> dict[str, Any]:
    defaults: dict[str, dict[str, Any]] = {
        "s3": {"contentType": "text/plain"},
        "object": {"contentType": "text/plain"},
        "reference": {"contentType": "text/html", "url": "https://example.com/a"},
        "link": {"artifact": "public/target"},
        "error": {"reason": "file-missing-on-worker", "message": "no such file"},
    }
    return {"storageType": storage_type, "expires": format_date(expires), **defaults[storage_type], **fields}


def artifact(storage_type: str = "s3", name: str = "public/a.txt", **fields: Any) -> Artifact:
    return new_artifact(TASK_ID, 0, name, body(storage_type, **fields), BUCKET, NOW)


def error_of(t: Task | None, a: Artifact, now: datetime = NOW, max_days: int = 400) -> tuple[str, str] | None:
    try:
        check_create(t, a, now, max_days)
    except QueueError as e:
        return e.code, e.message
    return None


# --- new artifacts --------------------------------------------------------------------------------
def test_s3_artifacts_live_at_task_run_name_in_the_configured_bucket() -> None:
    a = artifact("s3", name="public/logs/live.log")
    assert (a.details, a.s3_key) == ({"bucket": BUCKET}, f"{TASK_ID}/0/public/logs/live.log")
    assert s3_key("t", 3, "x/y") == "t/3/x/y"


def test_each_storage_type_keeps_its_own_details_and_a_default_content_type() -> None:
    assert artifact("reference").details == {"url": "https://example.com/a"}
    assert artifact("link").details == {"artifact": "public/target"}
    assert artifact("error").details == {"reason": "file-missing-on-worker", "message": "no such file"}
    assert artifact("link").content_type == artifact("error").content_type == "application/binary"
    assert artifact("link", contentType="text/plain").content_type == "text/plain"


def test_object_artifacts_are_refused_as_input_errors_naming_the_missing_object_service() -> None:
    with pytest.raises(InputError, match="object service"):
        artifact("object")


def test_an_s3_key_longer_than_s3_allows_is_an_input_error() -> None:
    with pytest.raises(InputError, match="1024 bytes"):
        artifact("s3", name="x" * 1000)
    assert artifact("reference", name="x" * 1000).name == "x" * 1000  # no key, no limit


def test_json_shows_content_length_only_when_it_is_known() -> None:
    assert "contentLength" not in artifact("s3").to_json()
    assert artifact("s3", contentLength=0).to_json() == {
        "storageType": "s3",
        "name": "public/a.txt",
        "expires": format_date(NOW + timedelta(days=1)),
        "contentType": "text/plain",
        "contentLength": 0,
    }


def test_an_s3_artifact_is_not_purged_while_its_put_url_still_works() -> None:
    soon = artifact("s3", expires=NOW + timedelta(minutes=1))
    assert soon.purge_at == NOW + PUT_URL_SIGNED_FOR
    assert artifact("s3").purge_at == NOW + timedelta(days=1)
    assert artifact("reference", expires=NOW + timedelta(minutes=1)).purge_at == NOW + timedelta(minutes=1)


# --- createArtifact's checks, in order ------------------------------------------------------------
def test_checks_run_in_taskclusters_order() -> None:
    past = artifact(expires=NOW - timedelta(minutes=16))
    late = artifact(expires=NOW + timedelta(days=31))
    running = task(run(TaskState.RUNNING))
    # Each case also fails every later check: only the first one may be reported.
    assert error_of(None, past) == ("InputError", "Expires must be in the future")
    assert error_of(None, late) == ("InputError", "Task not found")
    assert error_of(task(), late) == ("InputError", "Run not found")
    unclaimed = task(run(TaskState.PENDING, claimed=False))
    assert error_of(unclaimed, late) == ("InputError", "Run was not claimed by a worker and so no artifacts can exist")
    completed = task(run(TaskState.COMPLETED))
    code, message = error_of(completed, late) or ("", "")
    assert (code, message.startswith("Artifact expires")) == ("InputError", True)
    code, _ = error_of(completed, artifact()) or ("", "")
    assert code == "RequestConflict"
    assert error_of(running, artifact()) is None


def test_expires_may_lie_up_to_15_minutes_in_the_past() -> None:
    running = task(run(TaskState.RUNNING))
    assert error_of(running, artifact(expires=NOW - timedelta(minutes=15))) is None
    assert error_of(running, artifact(expires=NOW - timedelta(minutes=15, milliseconds=1))) is not None


def test_an_artifact_may_expire_with_its_task_but_not_after() -> None:
    running = task(run(TaskState.RUNNING))
    assert error_of(running, artifact(expires=running.expires)) is None
    assert error_of(running, artifact(expires=running.expires + timedelta(milliseconds=1))) is not None


@pytest.mark.parametrize(
    ("resolved_ago", "allowed"), [(timedelta(minutes=24, seconds=59), True), (timedelta(minutes=25), False)]
)
def test_artifacts_may_follow_report_exception_for_25_minutes(resolved_ago: timedelta, allowed: bool) -> None:
    t = task(run(TaskState.EXCEPTION, resolved=NOW - resolved_ago))
    assert (error_of(t, artifact()) is None) is allowed


@pytest.mark.parametrize("state", [TaskState.COMPLETED, TaskState.FAILED])
def test_no_artifacts_after_completed_or_failed(state: TaskState) -> None:
    code, message = error_of(task(run(state, resolved=NOW)), artifact()) or ("", "")
    assert code == "RequestConflict" and "only up to 25 min past resolution" in message


def test_s3_artifacts_may_not_outlive_the_buckets_lifecycle_backstop() -> None:
    running = task(run(TaskState.RUNNING), expires=NOW + timedelta(days=1000))
    assert error_of(running, artifact(expires=NOW + timedelta(days=400))) is None
    code, message = error_of(running, artifact(expires=NOW + timedelta(days=400, seconds=1))) or ("", "")
    assert code == "InputError" and "at most 400 days" in message
    assert error_of(running, artifact("reference", expires=NOW + timedelta(days=999))) is None
    assert error_of(running, artifact(expires=NOW + timedelta(days=999)), max_days=0) is None


# --- repeats --------------------------------------------------------------------------------------
def test_an_identical_repeat_is_compatible_for_every_storage_type() -> None:
    for storage_type in ("s3", "reference", "link", "error"):
        assert compatible(artifact(storage_type), artifact(storage_type))


def test_a_repeat_may_extend_expiry_but_not_shorten_it() -> None:
    a = artifact()
    assert compatible(a, artifact(expires=a.expires + timedelta(days=1)))
    assert not compatible(a, artifact(expires=a.expires - timedelta(milliseconds=1)))


def test_content_type_may_not_change_except_by_becoming_a_link() -> None:
    assert not compatible(artifact("s3"), artifact("s3", contentType="application/json"))
    assert compatible(artifact("reference"), artifact("link", contentType="application/json"))


def test_details_may_not_change_except_a_references_url() -> None:
    assert compatible(artifact("reference"), artifact("reference", url="https://example.com/b"))
    assert not compatible(artifact("link"), artifact("link", artifact="public/other"))
    assert not compatible(artifact("error"), artifact("error", message="other"))
    assert not compatible(artifact("s3"), replace(artifact("s3"), details={"bucket": "elsewhere"}))


def test_storage_type_may_only_change_from_reference_to_link() -> None:
    types = ("s3", "reference", "link", "error")
    changes = {
        (a, b)
        for a in types
        for b in types
        if a != b and compatible(artifact(a, contentType="text/html"), artifact(b, contentType="text/html"))
    }
    assert changes == {("reference", "link")}


def test_a_repeat_keeps_name_content_type_and_creation_and_takes_type_details_and_expiry() -> None:
    original = artifact("reference")
    later = NOW + timedelta(hours=1)
    again = replace(artifact("link", expires=NOW + timedelta(days=2)), created=later)
    result = repeated(original, again, later)
    assert result.storage_type is StorageType.LINK
    assert (result.details, result.expires) == (again.details, again.expires)
    assert (result.content_type, result.created) == (original.content_type, NOW)
    assert result.purge_at == again.expires


def test_an_s3_repeat_moves_the_purge_time_past_its_fresh_put_url() -> None:
    original = artifact("s3", expires=NOW + timedelta(minutes=1))
    later = NOW + timedelta(minutes=30)
    assert repeated(original, artifact("s3", expires=NOW + timedelta(minutes=1)), later).purge_at == (
        later + PUT_URL_SIGNED_FOR
    )
