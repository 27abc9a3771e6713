"""The pure artifact rules (domain/artifacts.py): which names exist, createArtifact's checks in
Taskcluster's order, compatible repeats, where bytes live and when a row may be purged."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.artifacts import (
    MAX_NAME_LENGTH,
    PUT_URL_SIGNED_FOR,
    S3_MAX_KEY_BYTES,
    Artifact,
    StorageType,
    check_artifact_name,
    check_create,
    compatible,
    name_problem,
    new_artifact,
    reference_url_problem,
    repeated,
    s3_key,
)
from chalicelib.domain.errors import InputError, InvalidRequestArguments, QueueError
from chalicelib.domain.model import MAX_RUNS, ReasonCreated, ReasonResolved, Run, Task, TaskState, format_date

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


# --- names ----------------------------------------------------------------------------------------
PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=MAX_NAME_LENGTH)


@pytest.mark.parametrize(
    "name",
    [
        "public/build/target.tar.gz",
        "private/x",
        "a",
        "public/build dir/a+b%20c~(1).txt",  # odd characters and literal escapes that decode harmlessly
        ".hidden/..x/x../.../x.",  # dots that are not `.` or `..` segments
        "100%/%zz/%",  # `%` that is no escape
        "public/" + "x" * (MAX_NAME_LENGTH - 7),
    ],
)
def test_names_taskcluster_allows_and_that_cannot_alias_another_are_accepted(name: str) -> None:
    assert name_problem(name) is None
    check_artifact_name(name)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "printable ASCII"),
        ("caf\u00e9", "printable ASCII"),
        ("new\nline", "printable ASCII"),
        ("nul\x00", "printable ASCII"),
        ("del\x7f", "printable ASCII"),
        ("x" * (MAX_NAME_LENGTH + 1), f"at most {MAX_NAME_LENGTH}"),
        ("public/../../A/0/private/x", "`..` segment"),
        ("..", "`..` segment"),
        ("public/./x", "`.` or `..` segment"),
        ("public/x/.", "`.` or `..` segment"),
        ("/public/x", "empty segment"),
        ("public/x/", "empty segment"),
        ("public//x", "empty segment"),
        ("public\\..\\x", "backslash"),
        ("public/%2E%2E/x", "segment after percent-decoding"),
        ("public/%2e./x", "segment after percent-decoding"),
        ("public%2F..%2Fx", "segment after percent-decoding"),
        ("public/%252E%252E/x", "segment after percent-decoding"),  # decoded twice
        ("public%2F%2Fx", "empty segment"),
        ("public/x%2F", "empty segment"),
        ("public%5C..", "backslash after percent-decoding"),
        ("public/x%00", "control character after percent-decoding"),
        ("public/x%0A", "control character after percent-decoding"),
    ],
)
def test_names_that_could_alias_another_or_never_fit_are_invalid_request_arguments(name: str, problem: str) -> None:
    found = name_problem(name)
    assert found is not None and problem in found, found
    with pytest.raises(InvalidRequestArguments, match="Invalid artifact name"):
        check_artifact_name(name)
    with pytest.raises(InvalidRequestArguments):  # createArtifact checks the name before anything else
        artifact("reference", name=name)


def test_the_longest_name_fits_every_key_built_from_it() -> None:
    longest_run = MAX_RUNS - 1
    # `%` is the costliest character (escaped as %25): the worst S3 key there is.
    worst = "%" * MAX_NAME_LENGTH
    assert name_problem(worst) is None
    assert len(s3_key("x" * 22, longest_run, worst).encode()) <= S3_MAX_KEY_BYTES
    assert len(s3_key("x" * 22, longest_run, "." * MAX_NAME_LENGTH).encode()) <= S3_MAX_KEY_BYTES
    assert len(f"{longest_run}/{worst}".encode()) <= 1024  # the artifacts table's sort key, runName


def test_ordinary_names_keep_taskclusters_s3_key_and_others_are_escaped() -> None:
    assert s3_key("t", 3, "public/build/target.zip") == "t/3/public/build/target.zip"
    assert s3_key("t", 0, "a b/c+d%20e") == "t/0/a b/c+d%2520e"
    assert s3_key("t", 0, "a\\b") == "t/0/a%5Cb"
    assert s3_key("t", 0, "../x/./.../y") == "t/0/%2E%2E/x/%2E/%2E%2E%2E/y"


@given(PRINTABLE)
def test_any_name_gives_a_key_under_its_run_without_dot_segments_that_decodes_back(name: str) -> None:
    # Even a name the rules refuse: the encoding alone keeps keys unambiguous.
    key = s3_key("T", 0, name)
    assert key.startswith("T/0/")
    segments = key.split("/")[2:]
    assert "." not in segments and ".." not in segments and "\\" not in key
    assert unquote(key.removeprefix("T/0/")) == name  # so the mapping is injective


@given(PRINTABLE, PRINTABLE)
def test_distinct_names_have_distinct_keys(a: str, b: str) -> None:
    assert (s3_key("T", 0, a) == s3_key("T", 0, b)) == (a == b)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "data:text/html,<script>alert(1)</script>",
        "ftp://example.com/x",
        "https://",
        "//example.com/x",
        "/relative",
        "https://exa mple.com/x",
        "https://example.com/caf\u00e9",
        "https://example.com/\r\nSet-Cookie:x",
        "http://[::1",
    ],
)
def test_reference_urls_must_be_absolute_http_urls_of_printable_ascii(url: str) -> None:
    assert reference_url_problem(url) is not None
    with pytest.raises(InputError, match="Invalid reference url"):
        artifact("reference", url=url)


@pytest.mark.parametrize("url", ["https://example.com/a?b=c#d", "http://127.0.0.1:8080/x", "HTTPS://EXAMPLE.COM/"])
def test_absolute_http_and_https_references_are_accepted(url: str) -> None:
    assert reference_url_problem(url) is None
    assert artifact("reference", url=url).details == {"url": url}


@pytest.mark.parametrize("target", ["../x", "public/../../A/0/private/x", "a//b", "/x", "x/", "a\\b", "", "x" * 321])
def test_a_links_target_must_be_a_valid_name(target: str) -> None:
    with pytest.raises(InputError, match="Invalid link target"):
        artifact("link", artifact=target)


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
