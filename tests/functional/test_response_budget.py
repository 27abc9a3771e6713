"""Responses fit Lambda's 6 MB: listings end early with a token, claimWork claims only what it returns.

Most tests lower RESPONSE_BUDGET (to keep them fast); the claimWork and `POST /tasks` tests run at
the real budget with items of ~200 KB.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import slugid

from chalicelib.handlers import api as endpoints
from tests.harness import AUTH, Harness, error_artifact, make_client, quote_name

TQ = "proj%2Flinux"
KB = 1024


def envelope_bytes(body: bytes) -> int:
    """The body's size as Lambda counts it: a JSON string inside the proxy response."""
    return len(json.dumps(body.decode()))


def big(stack: Harness, size: int, **overrides: Any) -> str:
    """A task whose definition is about `size` bytes."""
    payload = {"command": [["echo", "hi"]], "env": {"BLOB": "x" * size}}
    return stack.create(payload=payload, **overrides)


def pages(
    fetch: Callable[[str | None], Any], key: str, budget: int, max_pages: int = 200
) -> tuple[list[Any], list[int]]:
    """Every item of a listing, and each page's body bytes; each page checked against `budget`."""
    items: list[Any] = []
    sizes: list[int] = []
    token = None
    for _ in range(max_pages):
        r = fetch(token)
        assert r.status_code == 200, r.body[:500]
        sizes.append(len(r.body))
        assert envelope_bytes(r.body) <= budget, (len(sizes), envelope_bytes(r.body), budget)
        body = r.json_body
        assert body[key], "a page is never empty while more follows"
        items += body[key]
        token = body.get("continuationToken")
        if not token:
            return items, sizes
    raise AssertionError("pagination never ended")


def query(token: str | None, limit: int | None = None) -> str:
    parts = [f"limit={limit}"] if limit else []
    if token:
        parts.append(f"continuationToken={token}")
    return "?" + "&".join(parts) if parts else ""


@pytest.fixture
def budget(monkeypatch: pytest.MonkeyPatch) -> int:
    value = 300 * KB
    monkeypatch.setattr(endpoints, "RESPONSE_BUDGET", value)
    return value


def test_list_pending_tasks_pages_within_budget(stack: Harness, budget: int) -> None:
    ids = [big(stack, 40 * KB) for _ in range(20)]  # ~800 KB in one page without the cut
    items, sizes = pages(lambda t: stack.call("GET", f"/task-queues/{TQ}/pending" + query(t)), "tasks", budget)
    got = [i["taskId"] for i in items]
    assert sorted(got) == sorted(ids)  # complete, no duplicates
    assert len(sizes) >= 3
    assert max(sizes) <= budget


@pytest.mark.parametrize("limit", [None, 7])
def test_list_task_group_pages_within_budget_with_any_limit(stack: Harness, budget: int, limit: int | None) -> None:
    group = slugid.nice()
    ids = {big(stack, 50 * KB, taskGroupId=group) for _ in range(16)}
    items, sizes = pages(lambda t: stack.call("GET", f"/task-group/{group}/list" + query(t, limit)), "tasks", budget)
    got = [i["status"]["taskId"] for i in items]
    assert len(got) == len(set(got)) and set(got) == ids
    assert len(sizes) >= (3 if limit is None else 16 // limit)
    if limit:
        assert all(n <= limit for n in per_page(stack, f"/task-group/{group}/list", limit))


def per_page(stack: Harness, path: str, limit: int) -> list[int]:
    counts, token = [], None
    while True:
        body = stack.call("GET", path + query(token, limit)).json_body
        counts.append(len(body["tasks"]))
        token = body.get("continuationToken")
        if not token:
            return counts


def test_list_claimed_tasks_pages_within_budget(stack: Harness, budget: int) -> None:
    ids = {big(stack, 40 * KB) for _ in range(10)}
    claimed = []
    for _ in range(20):
        claimed += stack.claim(tasks=10)
        if len(claimed) == 10:
            break
    assert len(claimed) == 10
    items, sizes = pages(lambda t: stack.call("GET", f"/task-queues/{TQ}/claimed" + query(t)), "tasks", budget)
    assert sorted(i["taskId"] for i in items) == sorted(ids)
    assert len(sizes) >= 2


def test_tasks_and_statuses_by_ids_page_within_budget(stack: Harness, budget: int) -> None:
    ids = [big(stack, 40 * KB) for _ in range(12)]
    asked = [*ids, slugid.nice()]  # an unknown id is left out
    items, sizes = pages(lambda t: stack.call("POST", "/tasks" + query(t, 5), {"taskIds": asked}), "tasks", budget)
    assert [i["taskId"] for i in items] == ids
    assert len(sizes) >= 3
    # Statuses are small: a tiny budget cuts them too.
    endpoints.RESPONSE_BUDGET = 2 * KB  # undone by the fixture's monkeypatch
    items, sizes = pages(
        lambda t: stack.call("POST", "/tasks/status" + query(t), {"taskIds": asked}), "statuses", 2 * KB
    )
    assert [i["taskId"] for i in items] == ids
    assert len(sizes) >= 3


def test_cut_token_is_checked(stack: Harness, budget: int) -> None:
    for token in ("~x~", "~1", "~-1~", "~1~not-a-token", "~1~", "~0.0000abcd~", "~1.XYZ~", "~1.0000abcd"):
        r = stack.call("GET", f"/task-queues/{TQ}/pending?continuationToken={token}")
        assert r.status_code == 400, (token, r.status_code)


def test_cut_page_resumes_after_its_last_item_when_earlier_items_come_in_between(stack: Harness, budget: int) -> None:
    """A member that sorts first joins the group between two cut pages: nothing is repeated."""
    group = slugid.nice()
    ids = {big(stack, 50 * KB, taskGroupId=group, task_id="z" + slugid.nice()[1:]) for _ in range(12)}
    first = stack.call("GET", f"/task-group/{group}/list").json_body
    token = first["continuationToken"]
    assert token.startswith("~") and 0 < len(first["tasks"]) < 12
    early = big(stack, 50 * KB, taskGroupId=group, task_id="A" + slugid.nice()[1:])  # sorts before all
    rest, _ = pages(lambda t: stack.call("GET", f"/task-group/{group}/list" + query(t or token)), "tasks", budget)
    got = [i["status"]["taskId"] for i in first["tasks"] + rest]
    assert len(got) == len(set(got)), "an item was repeated"
    assert set(got) == ids  # the newcomer sorted before the resumption point: not part of this pass
    assert early not in got


def test_cut_page_resumes_after_its_last_item_when_earlier_items_leave(stack: Harness, budget: int) -> None:
    """Pending tasks already returned are cancelled between two cut pages: nothing is skipped."""
    ids = [big(stack, 40 * KB) for _ in range(20)]
    first = stack.call("GET", f"/task-queues/{TQ}/pending").json_body
    seen = [i["taskId"] for i in first["tasks"]]
    assert 2 < len(seen) < 20
    for task_id in seen[:2]:
        assert stack.call("POST", f"/task/{task_id}/cancel").status_code == 200
    rest, _ = pages(
        lambda t: stack.call("GET", f"/task-queues/{TQ}/pending" + query(t or first["continuationToken"])),
        "tasks",
        budget,
    )
    got = seen + [i["taskId"] for i in rest]
    assert len(got) == len(set(got)) and sorted(got) == sorted(ids), "an item was skipped or repeated"


def test_cut_page_whose_last_item_is_gone_resumes_at_its_position(stack: Harness, budget: int) -> None:
    ids = [big(stack, 40 * KB) for _ in range(20)]
    first = stack.call("GET", f"/task-queues/{TQ}/pending").json_body
    seen = [i["taskId"] for i in first["tasks"]]
    assert stack.call("POST", f"/task/{seen[-1]}/cancel").status_code == 200
    rest, _ = pages(
        lambda t: stack.call("GET", f"/task-queues/{TQ}/pending" + query(t or first["continuationToken"])),
        "tasks",
        budget,
    )
    got = [i["taskId"] for i in rest]
    assert not set(got) & set(seen) and set(got) <= set(ids)
    assert len(got) >= 20 - len(seen) - 1  # at most the one item after the gone mark is missed


def test_tasks_at_the_real_budget(stack: Harness) -> None:
    """At RESPONSE_BUDGET (5 MB): 32 definitions of ~200 KB (6.5 MB in one page before the cut)."""
    real = endpoints.RESPONSE_BUDGET
    assert real == 5 * 1024 * 1024
    ids = [big(stack, 200 * KB) for _ in range(32)]
    items, sizes = pages(lambda t: stack.call("POST", "/tasks" + query(t), {"taskIds": ids}), "tasks", real)
    assert [i["taskId"] for i in items] == ids
    assert len(sizes) == 2
    assert max(sizes) <= real


def test_claim_work_claims_only_what_fits(stack: Harness) -> None:
    """32 tasks of ~200 KB (6.5 MB of claims) at the real budget: what is claimed is returned."""
    real = endpoints.RESPONSE_BUDGET
    ids = [big(stack, 200 * KB) for _ in range(32)]
    stack.pump.step()
    r = stack.call("POST", f"/claim-work/{TQ}", {"workerGroup": "wg", "workerId": "w1", "tasks": 32})
    assert r.status_code == 200
    assert envelope_bytes(r.body) <= real
    first = r.json_body["tasks"]
    assert 0 < len(first) < 32
    for claim in first:
        status = stack.status(claim["status"]["taskId"])
        assert status["state"] == "running"
        assert status["runs"][claim["runId"]]["workerId"] == "w1"
    claimed = {c["status"]["taskId"] for c in first}
    rest = [stack.status(t)["state"] for t in ids if t not in claimed]
    assert rest == ["pending"] * (32 - len(first))
    # The hints of the rest are on the queue again: the next calls claim them.
    for _ in range(5):
        if len(claimed) == 32:
            break
        r = stack.call("POST", f"/claim-work/{TQ}", {"workerGroup": "wg", "workerId": "w2", "tasks": 32})
        assert r.status_code == 200 and envelope_bytes(r.body) <= real
        more = {c["status"]["taskId"] for c in r.json_body["tasks"]}
        assert not more & claimed
        claimed |= more
    assert claimed == set(ids)


def test_list_artifacts_and_latest_pages_within_budget(stack: Harness, budget: int) -> None:
    task_id = stack.create()
    claim = stack.claim()[0]
    assert claim["status"]["taskId"] == task_id
    names = {f"public/a{i:02}" for i in range(20)}
    for name in names:
        r = stack.call("POST", f"/task/{task_id}/runs/0/artifacts/{quote_name(name)}", error_artifact(stack))
        assert r.status_code == 200, r.body
    endpoints.RESPONSE_BUDGET = 2 * KB  # undone by the fixture's monkeypatch
    for path in (f"/task/{task_id}/runs/0/artifacts", f"/task/{task_id}/artifacts"):

        def fetch(token: str | None, path: str = path) -> Any:
            return stack.call("GET", path + query(token))

        items, sizes = pages(fetch, "artifacts", 2 * KB)
        got = [a["name"] for a in items]
        assert len(got) == len(set(got)) and set(got) == names
        assert len(sizes) >= 2


def test_list_clients_pages_within_budget(stack: Harness, budget: int) -> None:
    ids = {f"project/c{i:02}" for i in range(15)}
    for client_id in ids:
        make_client(stack, client_id, [f"queue:status:{'x' * 200}"])
    endpoints.RESPONSE_BUDGET = 2 * KB  # undone by the fixture's monkeypatch
    items, sizes = pages(lambda t: stack.call("GET", f"{AUTH}/clients" + query(t)), "clients", 2 * KB)
    got = [c["clientId"] for c in items]
    assert len(got) == len(set(got)) and ids <= set(got)
    assert len(sizes) >= 3


def test_roles_stay_within_list_roles_answer(stack: Harness, budget: int) -> None:
    """listRoles is unpaged (as Taskcluster defines it): a role that would take its answer over the
    budget is refused, with nothing stored; so is one that grows another role's expansion past it."""
    endpoints.RESPONSE_BUDGET = 8 * KB  # undone by the fixture's monkeypatch
    created = []
    for i in range(40):
        scopes = [f"queue:status:{'x' * 100}-{i}-{j}" for j in range(2)]
        r = stack.call("PUT", f"{AUTH}/roles/project:r{i}", {"description": "", "scopes": scopes})
        if r.status_code != 200:
            assert r.status_code == 400 and r.json_body["code"] == "InputError", r.body
            assert "listRoles" in r.json_body["message"]
            break
        created.append(f"project:r{i}")
    assert 1 < len(created) < 40
    listed = stack.call("GET", f"{AUTH}/roles")
    assert listed.status_code == 200 and envelope_bytes(listed.body) <= 8 * KB
    assert {r["roleId"] for r in listed.json_body} >= set(created)
    assert f"project:r{len(created)}" not in {r["roleId"] for r in listed.json_body}
    # Room for a small role again; but not for one whose expansion takes in every other role's scopes.
    assert stack.call("DELETE", f"{AUTH}/roles/{created[-1]}").status_code == 204
    tiny = stack.call("PUT", f"{AUTH}/roles/project:tiny", {"description": "", "scopes": ["queue:x"]})
    assert tiny.status_code == 200, tiny.body
    r = stack.call("PUT", f"{AUTH}/roles/project:all", {"description": "", "scopes": ["assume:project:r*"]})
    assert r.status_code == 400 and "listRoles" in r.json_body["message"], r.body
    assert stack.call("GET", f"{AUTH}/roles/project:all").status_code == 404
