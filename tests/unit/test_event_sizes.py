"""How an event too big for an EventBridge entry is cut down (domain/events.py trim_tags)."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.events import TRUNCATED, detail_json, trim_tags


def test_tags_are_cut_by_at_least_the_excess_keeping_the_smallest_in_their_order() -> None:
    tags = {"kind": "build", "huge": "x" * 4000, "owner": "me", "more": "y" * 3000, "last": "z"}
    detail: dict[str, Any] = {"version": 1, "status": {"taskId": "t"}, "task": {"tags": tags}, "routes": []}
    cut = trim_tags(detail, 1000)
    assert len(detail_json(cut)) <= len(detail_json(detail)) - 1000
    kept = [("kind", "build"), ("owner", "me"), ("more", "y" * 3000), ("last", "z")]
    assert list(cut["task"]["tags"].items()) == kept
    assert cut[TRUNCATED] == ["task.tags"]
    assert detail["task"]["tags"] is tags and len(tags) == 5  # the event's own detail is left alone


def test_the_cut_is_no_larger_than_it_must_be() -> None:
    tags = {f"t{i:02}": "x" * 100 for i in range(50)}
    detail = {"task": {"tags": tags}}
    for excess in (1, 500, 2_000, 4_999):
        cut = trim_tags(detail, excess)
        saved = len(detail_json(detail)) - len(detail_json(cut))
        assert excess <= saved < excess + 140  # at most one tag (108 bytes) and the marker more than needed


def test_a_detail_without_tags_or_without_excess_is_unchanged() -> None:
    detail = {"version": 1, "taskGroupId": "g"}
    assert trim_tags(detail, 10_000) is detail
    tagged = {"task": {"tags": {"a": "b"}}}
    assert trim_tags(tagged, 0) is tagged
