"""`python -m taskqueue submit`'s file format (taskqueue/graph.py), what `watch` concludes from a
group's tasks (taskqueue/cli.py) and how its table fits a terminal (taskqueue/progress.py): pure,
no stack."""

from __future__ import annotations

import io
import itertools
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskqueue.cli import blocked, labels
from taskqueue.graph import GraphError, load, plan
from taskqueue.progress import Progress

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
OWNER = {"owner": "me@example.com", "source": "https://example.com/g"}


def ids() -> Any:
    counter = itertools.count()
    return lambda: f"id-{next(counter)}"


def graph(*tasks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"defaults": {"taskQueueId": "p/w", "payload": {}, "metadata": OWNER}, "tasks": list(tasks), **extra}


def test_a_single_task_gets_defaults_and_a_fresh_id_or_its_own() -> None:
    [one] = plan({"taskQueueId": "p/w", "payload": {}, "metadata": OWNER}, "hello", ids(), NOW)
    assert (one.name, one.task_id) == ("hello", "id-0")
    assert one.definition["metadata"] == {**OWNER, "name": "hello", "description": ""}
    assert (one.definition["created"], one.definition["deadline"]) == ("2026-12-02T12:00:00Z",
                                                                       "2026-12-02T13:00:00Z")  # fmt: skip
    [own] = plan({"taskId": "mine", "taskQueueId": "p/w", "payload": {}, "metadata": {**OWNER, "name": "n"}},
                 "file", ids(), NOW)  # fmt: skip
    assert (own.name, own.task_id) == ("n", "mine") and "taskId" not in own.definition


def test_a_graph_maps_local_names_to_fresh_ids_and_creates_dependencies_first() -> None:
    planned = plan(
        graph(
            {"name": "report", "dependencies": ["test"]},
            {"name": "test", "dependencies": ["build", "TS2pkt6VT_-wqqAuP8cckA"]},
            {"name": "build", "metadata": {"description": "compiles"}},
            taskGroupId="group-1",
        ),
        "file",
        ids(),
        NOW,
    )
    assert [p.name for p in planned] == ["build", "test", "report"]
    by_name = {p.name: p for p in planned}
    assert by_name["report"].definition["dependencies"] == [by_name["test"].task_id]
    assert by_name["test"].definition["dependencies"] == [by_name["build"].task_id, "TS2pkt6VT_-wqqAuP8cckA"]
    assert {p.definition["taskGroupId"] for p in planned} == {"group-1"}
    assert by_name["build"].definition["metadata"] == {**OWNER, "name": "build", "description": "compiles"}


def test_task_references_become_task_ids() -> None:
    planned = plan(
        graph(
            {"name": "build"},
            {"name": "use", "payload": {"env": {"BUILD": {"task-reference": "<build>/x <build>"}}}},
        ),
        "file",
        ids(),
        NOW,
    )
    build = planned[0].task_id
    assert planned[1].definition["payload"] == {"env": {"BUILD": f"{build}/x {build}"}}


def test_dates_may_be_relative_iso_or_read_by_yaml_as_datetimes() -> None:
    doc = yaml.safe_load("deadline: 2 hours\nexpires: 2027-01-01T00:00:00Z\ntaskQueueId: p/w\npayload: {}")
    [one] = plan({**doc, "metadata": OWNER}, "f", ids(), NOW)
    assert one.definition["deadline"] == "2026-12-02T14:00:00Z"
    assert one.definition["expires"] == "2027-01-01T00:00:00Z"
    [two] = plan({"deadline": "2026-12-02T12:30:00Z", "taskQueueId": "p/w", "payload": {}, "metadata": OWNER},
                 "f", ids(), NOW)  # fmt: skip
    assert two.definition["deadline"] == "2026-12-02T12:30:00Z"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([1], "expected a mapping"),
        ({"tasks": [], "x": 1}, "unknown key(s) beside `tasks`: x"),
        ({"tasks": []}, "non-empty list"),
        (graph({"payload": {}}), "tasks[0]: each task needs a `name`"),
        (graph({"name": "a"}, {"name": "a"}), "the name 'a' is used twice"),
        (graph({"name": "a", "dependencies": ["nope"]}), "dependency 'nope' is neither"),
        (graph({"name": "a", "dependencies": "b"}), "`dependencies` must be a list"),
        (graph({"name": "a", "dependencies": ["b"]}, {"name": "b", "dependencies": ["a"]}), "form a cycle"),
        (graph({"name": "a", "payload": {"x": {"task-reference": "<zzz>"}}}), "<zzz> names no task of this file"),
        (graph({"name": "a", "deadline": "soonish"}), "`deadline` 'soonish' is neither a date nor"),
        (graph({"name": "a", "deadline": 5}), "`deadline` must be a date"),
        ({"tasks": [{"name": "a"}]}, "a: missing metadata.owner, metadata.source, taskQueueId, payload"),
        ({"payload": {}, "metadata": "x"}, "`metadata` must be a mapping"),
    ],
)
def test_what_cannot_be_submitted_is_said_before_anything_is_created(doc: Any, message: str) -> None:
    with pytest.raises(GraphError) as raised:
        plan(doc, "f", ids(), NOW)
    assert message in str(raised.value)


def test_files_are_json_by_name_and_yaml_otherwise(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"tasks": []}')
    (tmp_path / "a.yml").write_text("tasks: []\n")
    assert load(tmp_path / "a.json") == load(tmp_path / "a.yml") == {"tasks": []}
    (tmp_path / "bad.json").write_text("tasks: []")
    with pytest.raises(GraphError, match="is not valid JSON"):
        load(tmp_path / "bad.json")
    with pytest.raises(GraphError, match="cannot read"):
        load(tmp_path / "missing.yaml")


def entry(task_id: str, name: str, state: str, deps: list[str] | None = None, requires: str = "all-completed") -> Any:
    return {"status": {"taskId": task_id, "state": state},
            "task": {"metadata": {"name": name}, "dependencies": deps or [], "requires": requires}}  # fmt: skip


def test_watch_knows_a_task_blocked_by_a_dependency_that_did_not_complete() -> None:
    tasks = [
        entry("b", "build", "failed"),
        entry("t", "test", "unscheduled", ["b"]),
        entry("r", "report", "unscheduled", ["b"], requires="all-resolved"),  # will run
        entry("x", "other", "unscheduled", ["elsewhere"]),  # a dependency outside the group: unknown
        entry("c", "cleanup", "unscheduled", ["e"]),
        entry("e", "deploy", "exception"),
        entry("n", "notify", "unscheduled", ["rep"], requires="all-resolved"),  # after a blocked one: blocked too
        entry("rep", "report", "unscheduled", ["t"]),
    ]
    assert blocked(tasks) == {
        "t": "blocked: build failed",
        "c": "blocked: deploy exception",
        "rep": "blocked: test blocked",
        "n": "blocked: report blocked",
    }


def test_watch_labels_tasks_by_name_and_tells_equal_names_apart() -> None:
    known = {"build": "b"}
    labels([entry("b", "build", "pending"), entry("c", "build", "pending"), entry("d", "test", "pending")], known)
    assert known == {"build": "b", "build#c": "c", "test": "d"}


def test_the_redrawn_table_fits_the_terminal_showing_unfinished_tasks_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.get_terminal_size", lambda: os.terminal_size((80, 8)))  # room for 3 rows
    out = io.StringIO()
    progress = Progress({f"t{i}": f"id{i}" for i in range(5)}, out, fancy=True, pool=False)
    done = {"state": "completed", "runs": [{"runId": 0, "state": "completed", "reasonResolved": "completed"}]}
    statuses = {f"id{i}": done if i < 3 else {"state": "pending", "runs": []} for i in range(5)}
    progress.update(statuses, {}, notes={"id4": "blocked: t0 failed"})
    rows = [line.removeprefix("\x1b[2K") for line in out.getvalue().split("\n")]
    assert rows[:3] == ["  t3      pending    ", "  t4      pending      (blocked: t0 failed)", "  ... and 3 more"]
    assert rows[3].startswith("  [##################............] 3/5 done")
    progress.update(statuses, {})  # drawn again in place: up over the 4 lines, then cleared below
    assert "\x1b[4F" in out.getvalue() and out.getvalue().count("\x1b[J") == 2
