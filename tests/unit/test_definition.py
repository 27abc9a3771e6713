"""createTask's checks and normalisation (chalicelib/domain/definition.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain.definition import new_task, normalize, resolve_task_queue, same_definition
from chalicelib.domain.errors import InputError
from chalicelib.domain.model import TaskState, format_date, parse_date

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TASK_ID = "fN1SbArXTPSVFNUvaOlinQ"
MAX_DAYS = 5
METADATA = {"name": "t", "description": "a task", "owner": "me@example.com", "source": "https://example.com/t"}

# the stored definition always has exactly these fields
DEFINITION_FIELDS = {
    "provisionerId", "workerType", "taskQueueId", "schedulerId", "projectId", "taskGroupId", "dependencies",
    "requires", "routes", "priority", "retries", "created", "deadline", "expires", "scopes", "payload",
    "metadata", "tags", "extra",
}  # fmt: skip


def iso(dt: datetime) -> str:
    return format_date(dt)


def body(**overrides: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "taskQueueId": "proj/linux",
        "created": iso(NOW),
        "deadline": iso(NOW + timedelta(days=1)),
        "payload": {"command": ["true"]},
        "metadata": METADATA,
    }
    b.update(overrides)
    return {k: v for k, v in b.items() if v is not None}


def norm(b: dict[str, Any], now: datetime = NOW, max_days: int = MAX_DAYS) -> dict[str, Any]:
    return normalize(TASK_ID, b, now, max_days)


# --- defaults ------------------------------------------------------------------------------------------
def test_a_minimal_definition_gets_every_default_filled_in() -> None:
    assert norm(body()) == {
        "provisionerId": "proj",
        "workerType": "linux",
        "taskQueueId": "proj/linux",
        "schedulerId": "-",
        "projectId": "none",
        "taskGroupId": TASK_ID,
        "dependencies": [],
        "requires": "all-completed",
        "routes": [],
        "priority": "lowest",
        "retries": 5,
        "created": "2030-01-01T12:00:00.000Z",
        "deadline": "2030-01-02T12:00:00.000Z",
        "expires": "2031-01-02T12:00:00.000Z",
        "scopes": [],
        "payload": {"command": ["true"]},
        "metadata": METADATA,
        "tags": {},
        "extra": {},
    }


def test_a_full_definition_round_trips_unchanged() -> None:
    full = {
        "provisionerId": "prov-1",
        "workerType": "wt-2",
        "taskQueueId": "prov-1/wt-2",
        "schedulerId": "sched",
        "projectId": "proj.a/b",
        "taskGroupId": "dSlITZ4yQgmvxxAi4A8fHQ",
        "dependencies": ["dSlITZ4yQgmvxxAi4A8fHQ"],
        "requires": "all-resolved",
        "routes": ["index.a.b"],
        "priority": "very-high",
        "retries": 0,
        "created": "2030-01-01T11:50:00.001Z",
        "deadline": "2030-01-03T00:00:00.999Z",
        "expires": "2030-02-01T00:00:00.000Z",
        "scopes": ["queue:x", "secrets:get:*"],
        "payload": {"a": [1, 2]},
        "metadata": METADATA,
        "tags": {"k": "v"},
        "extra": {"e": {"f": 1}},
    }
    assert norm(dict(full)) == full


def test_the_stored_definition_has_exactly_the_task_fields() -> None:
    assert set(norm(body())) == DEFINITION_FIELDS
    assert set(norm(body(provisionerId="p", workerType="w", taskQueueId=None, tags={"a": "b"}))) == DEFINITION_FIELDS


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("schedulerId", "my-scheduler"),
        ("projectId", "proj/x"),
        ("taskGroupId", "dSlITZ4yQgmvxxAi4A8fHQ"),
        ("requires", "all-resolved"),
        ("priority", "highest"),
        ("retries", 0),
        ("retries", 49),
        ("routes", ["a", "b"]),
        ("dependencies", ["dSlITZ4yQgmvxxAi4A8fHQ"]),
        ("scopes", ["a", "a"]),
        ("tags", {"x": "y"}),
        ("extra", {"x": 1}),
    ],
)
def test_a_given_optional_field_is_kept_instead_of_its_default(field: str, value: Any) -> None:
    assert norm(body(**{field: value}))[field] == value


# --- provisionerId / workerType / taskQueueId ---------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"taskQueueId": "proj/linux"}, ("proj", "linux", "proj/linux")),
        ({"provisionerId": "proj", "workerType": "linux"}, ("proj", "linux", "proj/linux")),
        (
            {"provisionerId": "proj", "workerType": "linux", "taskQueueId": "proj/linux"},
            ("proj", "linux", "proj/linux"),
        ),
        ({"taskQueueId": "a-b_C/x-1"}, ("a-b_C", "x-1", "a-b_C/x-1")),
        ({"taskQueueId": "p" * 38 + "/" + "w" * 38}, ("p" * 38, "w" * 38, "p" * 38 + "/" + "w" * 38)),
    ],
    ids=["queue-only", "pair-only", "all-agree", "dashes-underscores", "longest"],
)
def test_the_task_queue_and_the_provisioner_worker_type_pair_are_derived_from_each_other(
    given: dict[str, str], expected: tuple[str, str, str]
) -> None:
    assert resolve_task_queue(given) == expected
    d = norm(body(**({"taskQueueId": None} | given)))
    assert (d["provisionerId"], d["workerType"], d["taskQueueId"]) == expected


@pytest.mark.parametrize(
    "given",
    [
        {},
        {"provisionerId": "proj"},
        {"workerType": "linux"},
        {"provisionerId": "proj", "workerType": "linux", "taskQueueId": "proj/mac"},
        {"provisionerId": "other", "workerType": "linux", "taskQueueId": "proj/linux"},
        {"provisionerId": "proj", "taskQueueId": "proj/linux"},
        {"workerType": "linux", "taskQueueId": "proj/linux"},
        {"provisionerId": "proj/linux", "workerType": "x", "taskQueueId": "proj/linux"},
    ],
    ids=["none", "provisioner-only", "worker-type-only", "wt-disagrees", "prov-disagrees", "queue-and-prov",
         "queue-and-wt", "slash-in-provisioner"],
)  # fmt: skip
def test_missing_or_disagreeing_task_queue_identifiers_are_an_input_error(given: dict[str, str]) -> None:
    with pytest.raises(InputError) as e:
        norm(body(**({"taskQueueId": None} | given)))
    assert (e.value.status, e.value.code) == (400, "InputError")


def test_identifiers_are_checked_before_dates() -> None:
    with pytest.raises(InputError, match="taskQueueId"):
        norm(body(taskQueueId=None, created=iso(NOW - timedelta(days=1))))


# --- created / deadline / expires ---------------------------------------------------------------------
SKEW = timedelta(minutes=15)
MS = timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("created", "ok"),
    [
        (NOW, True),
        (NOW - SKEW, True),
        (NOW + SKEW, True),
        (NOW - SKEW - MS, False),
        (NOW + SKEW + MS, False),
        (NOW - timedelta(days=1), False),
        (NOW + timedelta(hours=1), False),
    ],
    ids=["now", "15min-ago", "15min-ahead", "15min1ms-ago", "15min1ms-ahead", "a-day-ago", "an-hour-ahead"],
)
def test_created_must_be_within_15_minutes_of_now(created: datetime, ok: bool) -> None:
    b = body(created=iso(created), deadline=iso(NOW + timedelta(hours=2)))
    if ok:
        assert norm(b)["created"] == iso(created)
    else:
        with pytest.raises(InputError, match=r"[Cc]reated"):
            norm(b)


LIMIT = timedelta(days=MAX_DAYS, minutes=15)


@pytest.mark.parametrize(
    ("created", "deadline", "ok"),
    [
        (NOW, NOW, True),
        (NOW - SKEW, NOW, True),
        (NOW - SKEW, NOW - MS, False),  # in the past
        (NOW - SKEW, NOW - timedelta(minutes=1), False),
        (NOW, NOW + LIMIT, True),  # 5 days + 15 min slack
        (NOW, NOW + LIMIT + MS, False),
        (NOW, NOW + timedelta(days=6), False),
        (NOW + timedelta(minutes=10), NOW + timedelta(minutes=5), False),  # before created
        (NOW + timedelta(minutes=10), NOW + timedelta(minutes=10), True),
    ],
    ids=["now", "now-created-earlier", "1ms-ago", "1min-ago", "5d15m", "5d15m1ms", "6d", "before-created",
         "equal-created"],
)  # fmt: skip
def test_deadline_must_be_between_now_and_5_days_15_minutes_and_not_before_created(
    created: datetime, deadline: datetime, ok: bool
) -> None:
    b = body(created=iso(created), deadline=iso(deadline))
    if ok:
        assert norm(b)["deadline"] == iso(deadline)
    else:
        with pytest.raises(InputError, match=r"[Dd]eadline"):
            norm(b)


@pytest.mark.parametrize(("max_days", "ok"), [(1, False), (2, True), (10, True)])
def test_the_deadline_limit_follows_the_configured_maximum(max_days: int, ok: bool) -> None:
    b = body(deadline=iso(NOW + timedelta(days=1, hours=1)))
    if ok:
        norm(b, max_days=max_days)
    else:
        with pytest.raises(InputError):
            norm(b, max_days=max_days)


@pytest.mark.parametrize(
    ("expires", "ok"),
    [
        (timedelta(0), True),
        (timedelta(milliseconds=1), True),
        (timedelta(days=400), True),
        (-timedelta(milliseconds=1), False),
        (-timedelta(hours=1), False),
    ],
    ids=["equal", "1ms-after", "400d-after", "1ms-before", "1h-before"],
)
def test_expires_must_not_be_before_the_deadline(expires: timedelta, ok: bool) -> None:
    deadline = NOW + timedelta(days=1)
    b = body(deadline=iso(deadline), expires=iso(deadline + expires))
    if ok:
        assert norm(b)["expires"] == iso(deadline + expires)
    else:
        with pytest.raises(InputError, match=r"[Ee]xpires"):
            norm(b)


@pytest.mark.parametrize(
    ("now", "deadline", "expires"),
    [
        (NOW, "2030-01-02T12:00:00.000Z", "2031-01-02T12:00:00.000Z"),
        (datetime(2027, 12, 30, tzinfo=UTC), "2027-12-31T23:59:59.999Z", "2028-12-31T23:59:59.999Z"),
        (datetime(2028, 2, 27, tzinfo=UTC), "2028-02-28T00:00:00.000Z", "2029-02-28T00:00:00.000Z"),
        (datetime(2027, 2, 28, tzinfo=UTC), "2027-03-01T00:00:00.000Z", "2028-03-01T00:00:00.000Z"),
        (datetime(2027, 2, 27, tzinfo=UTC), "2027-02-28T10:00:00.000Z", "2028-02-28T10:00:00.000Z"),
    ],
    ids=["plain", "new-years-eve", "leap-year-feb-28", "into-a-leap-year", "feb-28-before-leap-year"],
)
def test_expires_defaults_to_the_deadline_plus_one_calendar_year(now: datetime, deadline: str, expires: str) -> None:
    b = body(created=iso(now), deadline=deadline)
    assert norm(b, now=now)["expires"] == expires


# upstream api.js does expires.setFullYear(year + 1): JavaScript rolls 29 February over to 1 March
def test_expires_default_for_a_29_february_deadline_is_1_march_as_upstream() -> None:
    now = datetime(2028, 2, 28, 12, 0, tzinfo=UTC)
    b = body(created=iso(now), deadline="2028-02-29T06:00:00.000Z")
    assert norm(b, now=now)["expires"] == "2029-03-01T06:00:00.000Z"


def test_expires_default_for_a_29_february_deadline_stays_in_february_or_march_of_next_year() -> None:
    now = datetime(2028, 2, 28, 12, 0, tzinfo=UTC)
    expires = norm(body(created=iso(now), deadline="2028-02-29T06:00:00.000Z"), now=now)["expires"]
    assert expires in ("2029-02-28T06:00:00.000Z", "2029-03-01T06:00:00.000Z")


def test_time_checks_come_before_the_scope_check() -> None:
    with pytest.raises(InputError, match=r"[Cc]reated"):
        norm(body(created=iso(NOW - timedelta(hours=1)), scopes=["a:**"]))


# --- dates are re-serialised with millisecond precision ------------------------------------------------
@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2030-01-01T12:00:00.123456789Z", "2030-01-01T12:00:00.123Z"),
        ("2030-01-01T12:00:00.999999999Z", "2030-01-01T12:00:00.999Z"),
        ("2030-01-01T12:00:00.1Z", "2030-01-01T12:00:00.100Z"),
        ("2030-01-01T12:00:00Z", "2030-01-01T12:00:00.000Z"),
        ("2030-01-01T14:00:00.000+02:00", "2030-01-01T12:00:00.000Z"),
        ("2030-01-01T14:00:00.123456789+02:00", "2030-01-01T12:00:00.123Z"),
        ("2030-01-01T06:30:00-05:30", "2030-01-01T12:00:00.000Z"),
        ("2030-01-01T12:00:00.000+00:00", "2030-01-01T12:00:00.000Z"),
        ("2030-01-02T00:10:00+12:00", "2030-01-01T12:10:00.000Z"),
    ],
)
def test_created_is_stored_as_utc_with_exactly_three_fractional_digits(given: str, stored: str) -> None:
    assert norm(body(created=given))["created"] == stored


def test_deadline_and_expires_given_with_offsets_and_nanoseconds_are_normalised() -> None:
    d = norm(body(deadline="2030-01-02T14:00:00.123456789+02:00", expires="2030-06-01T00:00:00.5-01:00"))
    assert (d["deadline"], d["expires"]) == ("2030-01-02T12:00:00.123Z", "2030-06-01T01:00:00.500Z")


def test_default_expires_is_computed_from_the_normalised_deadline() -> None:
    d = norm(body(deadline="2030-01-02T01:00:00.123456+02:00"))
    assert d["expires"] == "2031-01-01T23:00:00.123Z"


def test_two_spellings_of_the_same_instants_give_the_same_definition() -> None:
    a = norm(body(created="2030-01-01T12:00:00.000Z", deadline="2030-01-02T12:00:00.000Z"))
    b = norm(body(created="2030-01-01T13:00:00.000456789+01:00", deadline="2030-01-02T12:00:00.0009Z"))
    assert a == b
    assert same_definition(new_task(TASK_ID, a), b)


@pytest.mark.parametrize("text", ["2030-01-01", "2030-01-01T12:00:00", "yesterday", "2030-01-01T12:00:00.000+2"])
def test_a_string_that_is_not_an_rfc3339_date_time_is_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_date(text)


# --- scopes ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "scopes",
    [["a:**"], ["**"], ["ok", "queue:route:**"], ["a:*", "b:**", "c"]],
)
def test_a_scope_ending_in_double_star_is_an_input_error(scopes: list[str]) -> None:
    with pytest.raises(InputError) as e:
        norm(body(scopes=scopes))
    assert e.value.details["scopes"] == [s for s in scopes if s.endswith("**")]


@pytest.mark.parametrize("scopes", [["*"], ["a:*"], ["a**b"], ["a:* "], ["a:*", "a:*"], []])
def test_other_scopes_are_accepted_as_given(scopes: list[str]) -> None:
    assert norm(body(scopes=scopes))["scopes"] == scopes


# --- helpers ----------------------------------------------------------------------------------------------
def test_a_new_task_is_unscheduled_with_all_its_retries_and_its_creation_priority() -> None:
    d = norm(body(retries=7, priority="high"))
    t = new_task(TASK_ID, d)
    assert (t.state, t.runs, t.retries_left, t.priority, t.hint_seq) == (TaskState.UNSCHEDULED, (), 7, "high", 0)
    assert t.task_json() == d
    assert t.deadline == NOW + timedelta(days=1)


def test_a_different_definition_is_not_the_same_definition() -> None:
    d = norm(body())
    t = new_task(TASK_ID, d)
    assert same_definition(t, dict(d))
    assert not same_definition(t, {**d, "retries": 4})
    assert not same_definition(t, {**d, "payload": {}})
