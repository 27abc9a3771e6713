"""GraphStore: task groups, their unresolved members, and dependency edges named by their link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.errors import InputError
from chalicelib.domain.graph import TaskGroup
from chalicelib.services.ports import GraphStore

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LATER = T0 + timedelta(days=2)


def all_dependents(graph: GraphStore, required_id: str, limit: int) -> list[tuple[str, str, str, int | None]]:
    edges: list[tuple[str, str, str, int | None]] = []
    token: str | None = None
    while True:
        page, token = graph.dependents(required_id, limit, token)
        assert len(page) <= limit
        edges += page
        if token is None:
            return edges


# --- groups ---------------------------------------------------------------------------------------
def test_an_unknown_group_is_none(graph: GraphStore) -> None:
    assert graph.group("g") is None
    assert graph.group("g", consistent=True) is None


def test_ensure_group_creates_the_group(graph: GraphStore) -> None:
    assert graph.ensure_group("g", "sched", T0) == TaskGroup("g", "sched", T0)
    assert graph.group("g", consistent=True) == TaskGroup("g", "sched", T0)


def test_ensure_group_extends_the_expiry_of_its_schedulers_group(graph: GraphStore) -> None:
    graph.ensure_group("g", "sched", T0)
    assert graph.ensure_group("g", "sched", LATER) == TaskGroup("g", "sched", LATER)
    assert graph.group("g", consistent=True) == TaskGroup("g", "sched", LATER)


def test_ensure_group_returns_none_when_the_group_lives_long_enough_already(graph: GraphStore) -> None:
    graph.ensure_group("g", "sched", LATER)
    assert graph.ensure_group("g", "sched", T0) is None
    assert graph.ensure_group("g", "sched", LATER) is None
    assert graph.group("g", consistent=True) == TaskGroup("g", "sched", LATER)


def test_ensure_group_returns_none_for_another_scheduler(graph: GraphStore) -> None:
    graph.ensure_group("g", "sched", T0)
    assert graph.ensure_group("g", "intruder", LATER) is None
    assert graph.group("g", consistent=True) == TaskGroup("g", "sched", T0)


def test_a_sealed_group_is_sealed_once_and_no_longer_extended(graph: GraphStore) -> None:
    graph.ensure_group("g", "sched", T0)
    first = T0 - timedelta(hours=1)
    graph.seal_group(TaskGroup("g", "sched", T0, first))
    graph.seal_group(TaskGroup("g", "sched", T0, first + timedelta(minutes=5)))
    assert graph.group("g", consistent=True) == TaskGroup("g", "sched", T0, first)
    assert graph.ensure_group("g", "sched", LATER) is None


# --- unresolved members ---------------------------------------------------------------------------
def test_a_group_has_members_until_the_last_is_removed(graph: GraphStore) -> None:
    assert not graph.has_members("g")
    graph.add_member("g", "a", LATER)
    graph.add_member("g", "b", LATER)
    graph.add_member("h", "c", LATER)
    graph.remove_members([("g", "a"), ("g", "a")])
    assert graph.has_members("g")
    graph.remove_members([("g", "b"), ("g", "never-added")])
    assert not graph.has_members("g")
    assert graph.has_members("h")


# --- dependency edges -----------------------------------------------------------------------------
def test_edges_are_listed_from_both_ends(graph: GraphStore) -> None:
    graph.add_edges("dep", "L1", "all-completed", ["r2", "r1", "r2"], 2, LATER)
    assert graph.requirements("dep", "L1") == ["r1", "r2"]
    assert graph.dependents("r1", 10, None) == ([("dep", "L1", "all-completed", 2)], None)
    assert graph.dependents("r2", 10, None) == ([("dep", "L1", "all-completed", 2)], None)


def test_requirements_are_cut_at_the_limit(graph: GraphStore) -> None:
    graph.add_edges("dep", "L1", "all-resolved", ["r1", "r2", "r3"], 3, LATER)
    assert graph.requirements("dep", "L1", limit=1) == ["r1"]


def test_satisfying_an_edge_removes_the_requirement_and_keeps_the_dependent_listed(graph: GraphStore) -> None:
    graph.add_edges("dep", "L1", "all-completed", ["r1", "r2"], 2, LATER)
    graph.satisfy([("dep", "L1", "r1")])
    graph.satisfy([("dep", "L1", "r1")])  # idempotent
    assert graph.requirements("dep", "L1") == ["r2"]
    assert graph.dependents("r1", 10, None)[0] == [("dep", "L1", "all-completed", 2)]
    graph.satisfy([("dep", "L1", "r2"), ("dep", "L1", "r2")])
    assert graph.requirements("dep", "L1") == []


def test_satisfy_takes_more_edges_than_a_batch_holds(graph: GraphStore) -> None:
    required = [f"r{i:02}" for i in range(30)]
    graph.add_edges("dep", "L1", "all-completed", required, 30, LATER)
    graph.satisfy([("dep", "L1", r) for r in required[:27]])
    assert graph.requirements("dep", "L1") == required[27:]


def test_edges_of_two_links_of_one_task_are_apart(graph: GraphStore) -> None:
    graph.add_edges("dep", "L1", "all-completed", ["r1"], 1, LATER)
    graph.add_edges("dep", "L2", "all-resolved", ["r1", "r2"], 2, LATER)
    graph.delete_edges("dep", "L2", ["r1", "r2"])
    assert graph.requirements("dep", "L2") == []
    assert graph.requirements("dep", "L1") == ["r1"]
    assert graph.dependents("r1", 10, None)[0] == [("dep", "L1", "all-completed", 1)]
    assert graph.dependents("r2", 10, None)[0] == []


def test_edges_without_a_link_are_the_older_form(graph: GraphStore) -> None:
    graph.add_edges("dep", "", "all-completed", ["r1"], 1, LATER)
    assert graph.requirements("dep", "") == ["r1"]
    assert graph.dependents("r1", 10, None)[0] == [("dep", "", "all-completed", 1)]


def test_dependents_page_through_every_edge_in_dependent_order(graph: GraphStore) -> None:
    names = [f"d{i:02}" for i in range(11)]
    for name in reversed(names):
        graph.add_edges(name, "L", "all-completed", ["root"], 1, LATER)
    edges = all_dependents(graph, "root", 4)
    assert [e[0] for e in edges] == names


def test_dependents_refuse_a_token_of_another_task(graph: GraphStore) -> None:
    for name in ["a", "b"]:
        graph.add_edges(name, "L", "all-completed", ["root"], 1, LATER)
    _, token = graph.dependents("root", 1, None)
    assert token is not None
    with pytest.raises(InputError):
        graph.dependents("other", 1, token)
