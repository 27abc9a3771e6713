"""The embedded stack's pump runs each of the app's schedules at its own interval."""

from __future__ import annotations

from app import app
from chalicelib.local.pump import EventPump


def test_each_schedule_runs_at_its_own_interval_counted_from_the_pumps_start() -> None:
    pump = EventPump(app, None, None, None, "us-east-1", lambda arn: "", 5.0, {"provisioner": 1.0})
    assert pump.due_schedules(100.0) == []  # the start: each schedule's first run is an interval away
    assert pump.due_schedules(100.9) == []
    assert pump.due_schedules(101.0) == ["provisioner"]
    assert pump.due_schedules(101.5) == []
    assert set(pump.due_schedules(105.0)) == {"sweeper", "provisioner"}
    assert pump.due_schedules(105.5) == []
    assert pump.due_schedules(106.0) == ["provisioner"]
    assert pump.due_schedules(109.9) == ["provisioner"]  # a late look runs it once, not once per missed second
    assert set(pump.due_schedules(110.0)) == {"sweeper"}  # the sweeper: 5 s after its last run
