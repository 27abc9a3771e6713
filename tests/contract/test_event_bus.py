"""EventBus and ReleaseQueue: what is published or enqueued is what a subscriber receives."""

from __future__ import annotations

from chalicelib.domain.events import Event, group_event
from tests.contract.backends import Releases, Subscribed


def event(n: int) -> Event:
    return Event(f"task-{n}", {"version": 1, "n": n, "nested": {"list": [1, "two"]}}, f"primary.{n}._", ("r.a", "r.b"))


def test_a_subscriber_receives_each_event_with_its_name_and_detail(events: Subscribed) -> None:
    sealed = group_event("task-group-sealed", "g", "sched", "2030-01-01T00:00:00.000Z", "2029-12-31T00:00:00.000Z")
    events.bus.publish([event(1), sealed])
    received = sorted(events.received())
    assert received == sorted([("task-1", event(1).detail()), ("task-group-sealed", sealed.detail())])
    assert dict(received)["task-1"]["routes"] == ["route.r.a", "route.r.b"]
    assert dict(received)["task-1"]["exchange"] == "exchange/taskcluster-queue/v1/task-1"


def test_more_events_than_one_put_takes_are_all_delivered(events: Subscribed) -> None:
    events.bus.publish([event(n) for n in range(23)])
    assert sorted(d["n"] for _, d in events.received()) == list(range(23))


def test_publishing_nothing_delivers_nothing(events: Subscribed) -> None:
    events.bus.publish([])
    assert events.received() == []


def test_enqueued_release_jobs_are_received_as_they_were_sent(releases: Releases) -> None:
    jobs = [
        {"taskId": f"t{n:02}", "resolved": "completed", "continuation": None if n % 2 else "tok"} for n in range(23)
    ]
    releases.queue.enqueue(jobs)
    assert sorted(releases.received(), key=lambda j: j["taskId"]) == jobs
    assert releases.received() == []
