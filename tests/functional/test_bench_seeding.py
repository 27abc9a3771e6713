"""The depth benchmark's bulk seeding (bench/depth.py `seed_pending`) must make tasks that the API
cannot tell from tasks created through it: the same task and status, the same events, a hint
each (claimable), members of their group."""

from __future__ import annotations

import json
import re
from typing import Any

import slugid

from bench.depth import seed_pending
from bench.workload import task_def
from tests.harness import Harness

DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z")


def _shape(stack: Harness, task_id: str) -> Any:
    """The task and its status as the API answers them, its id and dates left out."""
    task = stack.call("GET", f"/task/{task_id}")
    status = stack.call("GET", f"/task/{task_id}/status")
    assert task.status_code == status.status_code == 200
    text = json.dumps([task.json_body, status.json_body], sort_keys=True)
    return json.loads(DATE.sub("<date>", text.replace(task_id, "<taskId>")))


def test_seeded_tasks_are_what_create_task_makes_and_can_be_claimed(stack: Harness) -> None:
    tq, group = "bench/seeded", slugid.nice()
    seeded = seed_pending(tq, group, 3, batch=2)  # two bulk writes
    made = slugid.nice()
    assert stack.call("PUT", f"/task/{made}", task_def(tq, group)).status_code == 200
    stack.pump.step()  # the stream: hints and events, as for any new task

    assert _shape(stack, made)[1]["status"]["state"] == "pending"
    for task_id in seeded:
        assert _shape(stack, task_id) == _shape(stack, made)
    published = [(kind, e["status"]["taskId"]) for kind, e in stack.events() if "status" in e]
    for task_id in [*seeded, made]:
        assert [kind for kind, t in published if t == task_id] == [k for k, t in published if t == made], task_id
    listed = stack.call("GET", f"/task-group/{group}/list").json_body["tasks"]
    assert sorted(t["status"]["taskId"] for t in listed) == sorted([*seeded, made])

    claimed = stack.claim(tq, tasks=10)
    assert sorted(c["status"]["taskId"] for c in claimed) == sorted([*seeded, made])
    # The seeded tasks are unresolved members of their group: it resolves with the last of them.
    stack.events()
    for task_id in [made, *seeded]:
        assert stack.call("POST", f"/task/{task_id}/runs/0/completed").status_code == 200
        stack.pump.step()
        resolved = [e for kind, e in stack.events() if kind == "task-group-resolved"]
        assert len(resolved) == (1 if task_id == seeded[-1] else 0), task_id
