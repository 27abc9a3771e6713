"""Dispatch hints (chalicelib/domain/dispatch.py): SQS queue naming and when a hint is needed.

SQS queue names: at most 80 characters of [A-Za-z0-9_-], case-sensitive. One queue per
(taskQueueId, priority); two different pairs must never share a queue, or a worker polling one
task queue would be handed hints for another.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace
from datetime import UTC, datetime
from itertools import product

import pytest

from chalicelib.domain.dispatch import (
    SQS_NAME_MAX,
    WORST_CLAIM_BYTES,
    Hint,
    claim_bytes,
    escaped_json_bytes,
    hint_needed,
    pending_hint,
    queue_name,
    queue_names,
)
from chalicelib.domain.model import PRIORITIES, ReasonCreated, ReasonResolved, Run, Task, TaskState

SQS_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
TASK_QUEUE_ID = re.compile(r"^[a-zA-Z0-9-_]{1,38}/[a-z]([-a-z0-9]{0,36}[a-z0-9])?$")  # Taskcluster's pattern
DEFAULT_PREFIX = "taskqueue-"  # chalicelib/config.py
SAFE_PREFIXES = ["", "tq-", DEFAULT_PREFIX, "taskqueue-x"]
LONG_PREFIXES = ["taskqueue-ab", "taskqueue-dev-", "taskqueue-staging-", "taskqueue-production-"]

P38, W38 = "p" * 38, "w" * 38
TRICKY_IDS = [
    "proj/linux",
    "a/b",
    "a-b/c",
    "a/b-c",
    "a_b/c",
    "a/bc",
    "ab/c",
    "a_1/b",
    "a/b1",
    "A/b",
    "Proj/linux",
    "proj/linux-1",
    "proj-linux/x",
    "proj_linux/x",
    "-/a",
    "_/a",
    "a-/b",
    # the longest ids, and ids differing only past any truncation point
    f"{P38}/{W38}",
    f"{P38[:-1]}q/{W38}",
    f"{P38}/{W38[:-1]}x",
    f"{P38[:-1]}q/{W38[:-1]}x",
    f"{'p' * 37}/{W38}",
    f"{P38}/{'w' * 37}",
    f"{'p' * 30}-{'q' * 7}/{W38}",
    f"{'p' * 30}_{'q' * 7}/{W38}",
    # around the 80-character limit of the default prefix (10 + p + 1 + w + 2)
    f"{'p' * 29}/{W38}",  # 80 characters, kept whole
    f"{'p' * 30}/{W38}",  # 81: shortened
    f"{'p' * 30}/{'w' * 37}",  # 80 again
    f"{'p' * 29}/{'w' * 37}z",
]


def all_names(prefix: str, ids: list[str]) -> dict[str, tuple[str, str]]:
    names: dict[str, tuple[str, str]] = {}
    for tq, priority in product(ids, PRIORITIES):
        name = queue_name(prefix, tq, priority)
        assert name not in names, f"{(tq, priority)} and {names[name]} share {name}"
        names[name] = (tq, priority)
    return names


def test_a_short_task_queue_keeps_its_readable_name() -> None:
    assert queue_name("tq-", "proj/linux", "lowest") == "tq-proj_linux_1"
    assert queue_name(DEFAULT_PREFIX, "proj/linux", "highest") == "taskqueue-proj_linux_7"


def test_each_priority_level_has_its_own_queue_listed_highest_first() -> None:
    assert queue_names(DEFAULT_PREFIX, "proj/linux") == [f"taskqueue-proj_linux_{n}" for n in range(7, 0, -1)]
    assert queue_names(DEFAULT_PREFIX, "proj/linux") == [
        queue_name(DEFAULT_PREFIX, "proj/linux", p) for p in PRIORITIES
    ]


@pytest.mark.parametrize("prefix", SAFE_PREFIXES + LONG_PREFIXES)
def test_every_name_is_a_valid_sqs_queue_name(prefix: str) -> None:
    for name in all_names_unchecked(prefix, TRICKY_IDS):
        assert SQS_NAME.match(name), name
        assert len(name) <= SQS_NAME_MAX == 80


def all_names_unchecked(prefix: str, ids: list[str]) -> list[str]:
    return [queue_name(prefix, tq, p) for tq, p in product(ids, PRIORITIES)]


def test_the_longest_ids_fill_but_do_not_exceed_80_characters() -> None:
    name = queue_name(DEFAULT_PREFIX, f"{P38}/{W38}", "lowest")
    assert len(name) == 80
    assert name.startswith(DEFAULT_PREFIX + "p") and name.endswith("_1")


def test_a_shortened_name_is_stable_across_releases() -> None:
    # changing the scheme would strand hints in queues nobody polls any more
    assert queue_name(DEFAULT_PREFIX, f"{P38}/{W38}", "highest") == (
        "taskqueue-ppppppppppppppppppppppppp_wwwwwwwwwwwwwwwwwwwwwwwwwH1544b3270218cf3f_7"
    )


def test_a_name_that_fits_is_not_shortened() -> None:
    tq = f"{'p' * 29}/{W38}"
    assert queue_name(DEFAULT_PREFIX, tq, "lowest") == f"{DEFAULT_PREFIX}{'p' * 29}_{W38}_1"


@pytest.mark.parametrize("prefix", SAFE_PREFIXES)
def test_distinct_task_queues_and_priorities_get_distinct_names(prefix: str) -> None:
    assert len(all_names(prefix, TRICKY_IDS)) == len(TRICKY_IDS) * len(PRIORITIES)


def random_ids(rng: random.Random, n: int) -> list[str]:
    prov_chars = "abcAB01-_"
    wt_inner = "ab0-"
    ids: set[str] = set()
    while len(ids) < n:
        p_len = rng.choice([1, 2, 20, 29, 30, 37, 38])
        w_len = rng.choice([1, 2, 20, 29, 37, 38])
        prov = "".join(rng.choice(prov_chars) for _ in range(p_len))
        wt = "a" if w_len == 1 else "w" + "".join(rng.choice(wt_inner) for _ in range(w_len - 2)) + "z"
        ids.add(f"{prov}/{wt}")
    return sorted(ids)


@pytest.mark.parametrize("prefix", SAFE_PREFIXES)
def test_thousands_of_random_long_and_short_ids_never_share_a_queue(prefix: str) -> None:
    ids = random_ids(random.Random(20300101), 1500)
    assert all(TASK_QUEUE_ID.match(tq) for tq in ids)
    assert len(all_names(prefix, ids)) == len(ids) * len(PRIORITIES)


def crafted_twin(prefix: str, tq: str) -> str | None:
    """A different, valid taskQueueId whose *unshortened* name equals `tq`'s shortened one, if any."""
    name = queue_name(prefix, tq, "lowest")
    body = name[len(prefix) : -len("_1")]
    prov, _, wt = body.rpartition("_")  # a workerType never contains '_'
    twin = f"{prov}/{wt}"
    if twin == tq or not TASK_QUEUE_ID.match(twin):
        return None
    return twin


@pytest.mark.parametrize("prefix", SAFE_PREFIXES)
def test_with_a_short_prefix_no_valid_id_spells_out_another_ids_shortened_name(prefix: str) -> None:
    for tq in TRICKY_IDS + random_ids(random.Random(7), 300):
        twin = crafted_twin(prefix, tq)
        if twin is not None:
            assert queue_name(prefix, twin, "lowest") != queue_name(prefix, tq, "lowest"), (tq, twin)


@pytest.mark.parametrize("prefix", LONG_PREFIXES)
def test_with_a_long_prefix_no_valid_id_spells_out_another_ids_shortened_name(prefix: str) -> None:
    tq = f"{P38}/{W38}"
    twin = crafted_twin(prefix, tq)
    assert twin is None or queue_name(prefix, twin, "lowest") != queue_name(prefix, tq, "lowest"), (tq, twin)


# --- hints ----------------------------------------------------------------------------------------------
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TASK_ID = "fN1SbArXTPSVFNUvaOlinQ"


def task(*runs: Run, priority: str = "low", hint_seq: int = 0) -> Task:
    definition = {"taskQueueId": "proj/linux", "deadline": "2030-01-01T13:00:00.000Z", "priority": "lowest"}
    return Task(TASK_ID, definition, priority=priority, retries_left=5, runs=runs, hint_seq=hint_seq)


PENDING0 = Run(0, TaskState.PENDING, ReasonCreated.SCHEDULED, NOW)
RUNNING0 = replace(PENDING0, state=TaskState.RUNNING, worker_group="g", worker_id="w", started=NOW, taken_until=NOW)
FAILED0 = replace(RUNNING0, state=TaskState.EXCEPTION, reason_resolved=ReasonResolved.WORKER_SHUTDOWN, resolved=NOW)
PENDING1 = Run(1, TaskState.PENDING, ReasonCreated.RETRY, NOW)


def test_a_hint_body_is_compact_json_and_parses_back() -> None:
    hint = Hint(TASK_ID, 3, "proj/linux", "high")
    assert hint.body() == '{"taskId":"fN1SbArXTPSVFNUvaOlinQ","runId":3,"priority":"high"}'
    assert Hint.parse(hint.body(), "proj/linux") == hint


def test_a_hint_carries_the_bound_of_its_claims_size_so_claim_work_needs_no_read() -> None:
    big = replace(task(PENDING0), definition={**task().definition, "payload": {"blob": 'x"' * 50_000}, "scopes": ["a"]})
    hint = hint_needed(None, big)
    assert hint is not None and hint.claim_bytes == claim_bytes(big)
    status = {"taskId": TASK_ID, "state": "pending", "retriesLeft": 5, "runs": [r.to_json() for r in big.runs]}
    claim = {"status": status, "task": {**big.definition, "priority": "low"}, "runId": 0, "workerGroup": "g"}
    assert escaped_json_bytes(claim) < hint.claim_bound  # a bound, escaping included (each `"` doubled)
    assert Hint.parse(hint.body(), "proj/linux") == hint and Hint.parse(hint.body(), "proj/linux").claim_bytes  # type: ignore[union-attr]
    legacy = Hint.parse('{"taskId":"fN1SbArXTPSVFNUvaOlinQ","runId":0,"priority":"low"}', "proj/linux")
    assert legacy is not None and legacy.claim_bound == WORST_CLAIM_BYTES  # a hint sent before bounds existed


@pytest.mark.parametrize(
    "body",
    ["", "not json", "[]", "null", "42", '{"taskId":"x"}', '{"taskId":"x","runId":"one","priority":"low"}', "{"],
)
def test_a_message_that_is_not_a_hint_parses_to_none(body: str) -> None:
    assert Hint.parse(body, "proj/linux") is None


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (task(), None),
        (task(PENDING0), Hint(TASK_ID, 0, "proj/linux", "low")),
        (task(RUNNING0), None),
        (task(FAILED0), None),
        (task(FAILED0, PENDING1, priority="high"), Hint(TASK_ID, 1, "proj/linux", "high")),
    ],
    ids=["unscheduled", "pending", "running", "resolved", "retry-pending"],
)
def test_only_a_pending_latest_run_has_a_hint_carrying_the_current_priority(t: Task, expected: Hint | None) -> None:
    assert pending_hint(t) == expected


@pytest.mark.parametrize(
    ("old", "new", "needed"),
    [
        (None, task(PENDING0), True),  # created pending
        (None, task(), False),  # created unscheduled
        (task(), task(PENDING0), True),  # scheduled
        (task(PENDING0), task(PENDING0), False),  # nothing changed
        (task(PENDING0), task(PENDING0, priority="high"), True),  # re-announced at the new priority
        (task(PENDING0, hint_seq=0), task(PENDING0, hint_seq=1), True),  # sweeper asked again
        (task(PENDING0), task(RUNNING0), False),  # claimed
        (task(RUNNING0), task(FAILED0, PENDING1), True),  # retried
        (task(RUNNING0), task(FAILED0), False),  # resolved without retry
        (task(RUNNING0), task(RUNNING0, priority="high"), False),  # running runs keep going
    ],
    ids=["created-pending", "created-unscheduled", "scheduled", "unchanged", "priority", "redispatch", "claimed",
         "retried", "resolved", "running-priority"],
)  # fmt: skip
def test_a_hint_is_sent_exactly_when_a_change_makes_or_reannounces_a_pending_run(
    old: Task | None, new: Task, needed: bool
) -> None:
    assert hint_needed(old, new) == (pending_hint(new) if needed else None)
    if needed:
        assert hint_needed(old, new) is not None


def test_other_changes_to_a_pending_task_send_no_hint() -> None:
    old = task(PENDING0)
    assert hint_needed(old, replace(old, version=old.version + 1, retries_left=4)) is None
