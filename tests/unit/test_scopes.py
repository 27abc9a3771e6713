"""Scope satisfaction, expressions, role expansion and the endpoint table (domain/scopes.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chalicelib.domain.model import PRIORITIES
from chalicelib.domain.scopes import (
    ENDPOINT_SCOPES,
    MissingParameter,
    ScopeExpr,
    ScopeExpressionError,
    create_task_parameters,
    expand,
    leaves,
    normalize,
    parameters,
    priorities_at_or_above,
    render,
    satisfied,
    satisfies,
    unsatisfied,
    unsatisfied_leaves,
)

TASK_ID = "fN1SbArXTPa-PUVL8YyHEg"


# --- satisfaction ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("held", "required", "expected"),
    [
        ("queue:get-task:abc", "queue:get-task:abc", True),
        ("queue:get-task:abc", "queue:get-task:abcd", False),
        ("queue:get-task:abcd", "queue:get-task:abc", False),
        ("queue:get-task:*", "queue:get-task:abc", True),
        ("queue:get-task:*", "queue:get-task:", True),
        ("queue:get-task*", "queue:get-task:abc", True),
        ("queue:*", "queue:get-task:abc", True),
        ("*", "anything:at:all", True),
        ("*", "", True),
        ("queue:get-task:*", "queue:get-tas", False),
        ("queue:get-task:*", "queue:status:abc", False),
        ("queue:get-task:a*c", "queue:get-task:abc", False),  # `*` only means something at the end
        ("queue:get-task:a*c", "queue:get-task:a*c", True),
        ("queue:get-task:abc", "queue:get-task:*", False),  # a required star is literal
        ("queue:get-task:*", "queue:get-task:*", True),
        ("", "", True),
        ("", "a", False),
    ],
)
def test_a_held_scope_satisfies_equal_scopes_and_prefixes_of_its_trailing_star(
    held: str, required: str, expected: bool
) -> None:
    assert satisfies(held, required) is expected


def test_any_held_scope_may_satisfy_a_required_one() -> None:
    assert satisfied(["a", "b:*"], "b:c")
    assert not satisfied(["a", "b:c"], "b:d")
    assert not satisfied([], "a")


# --- expressions ----------------------------------------------------------------------------------
def test_an_empty_all_of_is_satisfied_and_an_empty_any_of_never_is() -> None:
    assert unsatisfied({"AllOf": []}, []) is None
    assert unsatisfied({"AnyOf": []}, ["*"]) == {"AnyOf": []}


def test_a_missing_scope_is_its_own_remainder() -> None:
    assert unsatisfied("a", []) == "a"
    assert unsatisfied("a", ["a"]) is None


def test_all_of_keeps_only_the_missing_parts_and_a_single_one_stands_alone() -> None:
    expr: ScopeExpr = {"AllOf": ["a", "b", "c"]}
    assert unsatisfied(expr, ["a", "b", "c"]) is None
    assert unsatisfied(expr, ["a", "c"]) == "b"
    assert unsatisfied(expr, ["a"]) == {"AllOf": ["b", "c"]}
    assert unsatisfied(expr, []) == expr


def test_any_of_is_satisfied_by_one_branch_and_otherwise_reports_every_branch() -> None:
    expr: ScopeExpr = {"AnyOf": ["a", {"AllOf": ["b", "c"]}]}
    assert unsatisfied(expr, ["a"]) is None
    assert unsatisfied(expr, ["b", "c"]) is None
    assert unsatisfied(expr, ["b"]) == {"AnyOf": ["a", "c"]}
    assert unsatisfied(expr, []) == expr
    assert unsatisfied({"AnyOf": ["a"]}, []) == "a"


def test_nested_expressions_report_their_unsatisfied_leaves() -> None:
    expr: ScopeExpr = {"AllOf": ["x", {"AnyOf": ["a", {"AllOf": ["b", "c"]}]}, {"AllOf": ["d", "x"]}]}
    assert unsatisfied_leaves(expr, ["x", "b", "d"]) == ["a", "c"]
    assert unsatisfied_leaves(expr, ["x", "a", "d"]) == []
    assert unsatisfied_leaves(expr, ["*"]) == []
    assert unsatisfied_leaves(expr, []) == ["x", "a", "b", "c", "d"]  # each scope once


def test_leaves_of_nothing_are_empty() -> None:
    assert leaves(None) == []
    assert leaves("a") == ["a"]


def test_star_scopes_satisfy_expressions() -> None:
    expr: ScopeExpr = {"AllOf": ["queue:claim-work:p/w", "queue:worker-id:g/w1"]}
    assert unsatisfied(expr, ["queue:*"]) is None
    assert unsatisfied(expr, ["queue:claim-work:p/*"]) == "queue:worker-id:g/w1"


@pytest.mark.parametrize(
    "bad",
    [
        {"AllOf": "a"},
        {"AllOf": ["a"], "AnyOf": ["b"]},
        {"OneOf": ["a"]},
        {},
    ],
)
def test_malformed_expressions_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ScopeExpressionError):
        unsatisfied(bad, [])
    with pytest.raises(ScopeExpressionError):
        render(bad, {})


def test_render_fills_placeholders_from_parameters() -> None:
    assert render("queue:status:<taskId>", {"taskId": TASK_ID}) == f"queue:status:{TASK_ID}"
    assert render("queue:resolve-task:<taskId>/<runId>", {"taskId": "t", "runId": 0}) == "queue:resolve-task:t/0"
    assert render({"AnyOf": ["a:<x>", {"AllOf": ["b:<y>"]}]}, {"x": 1, "y": 2}) == {
        "AnyOf": ["a:1", {"AllOf": ["b:2"]}]
    }


def test_render_leaves_a_filled_value_alone_even_if_it_looks_like_a_placeholder() -> None:
    assert render("a:<x>", {"x": "<y>"}) == "a:<y>"


def test_render_without_a_parameter_says_which_is_missing() -> None:
    with pytest.raises(MissingParameter) as missing:
        render({"AllOf": ["a:<taskId>", "b:<schedulerId>"]}, {"taskId": "t"})
    assert missing.value.args == ("schedulerId",)


def test_for_each_expands_into_its_parent_list() -> None:
    expr: ScopeExpr = {"AllOf": ["first", {"for": "n", "in": "names", "each": "get:<n>:<suffix>"}, "last"]}
    assert render(expr, {"names": ["a", "b"], "suffix": "s"}) == {"AllOf": ["first", "get:a:s", "get:b:s", "last"]}
    assert render(expr, {"names": [], "suffix": "s"}) == {"AllOf": ["first", "last"]}


def test_for_each_needs_a_list_and_a_parent() -> None:
    with pytest.raises(ScopeExpressionError):
        render({"AllOf": [{"for": "n", "in": "names", "each": "<n>"}]}, {"names": "ab"})
    with pytest.raises(ScopeExpressionError):
        render({"for": "n", "in": "names", "each": "<n>"}, {"names": ["a"]})
    with pytest.raises(MissingParameter):
        render({"AllOf": [{"for": "n", "in": "names", "each": "<n>"}]}, {})


def test_parameters_lists_what_an_expression_needs_but_not_loop_variables() -> None:
    assert parameters("a:<x>/<y>") == {"x", "y"}
    assert parameters({"AllOf": ["a:<x>", {"for": "n", "in": "names", "each": "b:<n>:<z>"}]}) == {"x", "names", "z"}
    assert parameters({"AnyOf": []}) == set()


# --- roles ----------------------------------------------------------------------------------------
def test_assume_grants_the_roles_scopes_transitively() -> None:
    roles = {"a": ["x", "assume:b"], "b": ["y", "assume:c"], "c": ["z"], "unrelated": ["nope"]}
    assert expand(["assume:a"], roles) == ["assume:a", "assume:b", "assume:c", "x", "y", "z"]


def test_role_cycles_reach_a_fixed_point() -> None:
    roles = {"a": ["assume:b", "x"], "b": ["assume:a", "y"]}
    assert expand(["assume:b"], roles) == ["assume:a", "assume:b", "x", "y"]


def test_no_roles_means_the_scopes_themselves_normalized() -> None:
    assert expand(["b", "a", "a"], {}) == ["a", "b"]
    assert expand([], {"anonymous": ["x"]}) == []


def test_a_star_scope_assumes_every_role_it_covers() -> None:
    roles = {"project:a": ["pa"], "project:b": ["pb"], "other": ["o"]}
    assert expand(["assume:project:*"], roles) == ["assume:project:*", "pa", "pb"]
    assert "o" in expand(["assume:*"], roles)
    assert expand(["*"], roles) == ["*"]  # everything is already covered


def test_a_star_role_is_assumed_by_every_scope_with_its_prefix() -> None:
    roles = {"repo:github.com/*": ["queue:route:index.<..>", "secrets:get:<..>/token", "plain"]}
    assert expand(["assume:repo:github.com/org/proj"], roles) == [
        "assume:repo:github.com/org/proj",
        "plain",
        "queue:route:index.org/proj",
        "secrets:get:org/proj/token",
    ]
    assert expand(["assume:repo:gitlab.com/x"], roles) == ["assume:repo:gitlab.com/x"]


def test_a_star_parameter_truncates_the_scope_to_a_star() -> None:
    roles = {"repo:github.com/*": ["secrets:get:<..>/token", "plain"]}
    # assume:repo:* covers the role's prefix, so <..> can be anything: the scope ends in *.
    assert expand(["assume:repo:*"], roles) == ["assume:repo:*", "plain", "secrets:get:*"]
    assert expand(["assume:repo:github.com/org*"], roles) == [
        "assume:repo:github.com/org*",
        "plain",
        "secrets:get:org*",
    ]


def test_normalize_drops_duplicates_and_scopes_covered_by_a_star() -> None:
    assert normalize(["b", "a:*", "a:x", "a:*", "a", "c*", "c*d"]) == ["a", "a:*", "b", "c*"]
    assert normalize(["*", "anything"]) == ["*"]


def test_the_anonymous_role_gives_requests_without_credentials_their_scopes() -> None:
    roles = {"anonymous": ["queue:get-artifact:public/*"]}
    held = expand(["assume:anonymous"], roles)
    expr = render(ENDPOINT_SCOPES["getArtifact"] or "", {"names": ["public/logs/live.log"]})
    assert unsatisfied(expr, held) is None
    assert unsatisfied_leaves(render(ENDPOINT_SCOPES["getArtifact"] or "", {"names": ["private/x"]}), held) == [
        "queue:get-artifact:private/x"
    ]


# --- createTask -----------------------------------------------------------------------------------
def test_priorities_at_or_above_run_from_highest_down_to_the_given_one() -> None:
    assert priorities_at_or_above("highest") == ["highest"]
    assert priorities_at_or_above("high") == ["highest", "very-high", "high"]
    assert priorities_at_or_above("lowest") == list(PRIORITIES)


def definition(**fields: Any) -> dict[str, Any]:
    return {"taskQueueId": "prov/wt", "schedulerId": "-", "projectId": "none", "priority": "high", **fields}


def create_task_needs(d: dict[str, Any]) -> ScopeExpr:
    return render(ENDPOINT_SCOPES["createTask"] or "", create_task_parameters(d))


def test_create_task_requires_the_tasks_scopes_routes_project_scheduler_and_priority() -> None:
    d = definition(scopes=["secrets:get:x"], routes=["index.a"], schedulerId="sched", projectId="proj")
    assert create_task_needs(d) == {
        "AllOf": [
            "secrets:get:x",
            "queue:route:index.a",
            "queue:create-task:project:proj",
            "queue:scheduler-id:sched",
            {
                "AnyOf": [
                    "queue:create-task:highest:prov/wt",
                    "queue:create-task:very-high:prov/wt",
                    "queue:create-task:high:prov/wt",
                ]
            },
        ]
    }


def test_create_task_accepts_a_higher_priority_scope_and_refuses_a_lower_one() -> None:
    base = ["queue:create-task:project:none", "queue:scheduler-id:-"]
    needs = create_task_needs(definition(priority="high"))
    assert unsatisfied(needs, [*base, "queue:create-task:very-high:prov/wt"]) is None
    assert unsatisfied(needs, [*base, "queue:create-task:high:prov/*"]) is None
    assert unsatisfied_leaves(needs, [*base, "queue:create-task:medium:prov/wt"]) == [
        "queue:create-task:highest:prov/wt",
        "queue:create-task:very-high:prov/wt",
        "queue:create-task:high:prov/wt",
    ]


def test_a_task_cannot_carry_scopes_its_creator_lacks() -> None:
    creator = ["queue:create-task:*", "queue:scheduler-id:-", "secrets:get:a"]
    assert unsatisfied_leaves(create_task_needs(definition(scopes=["secrets:get:a", "secrets:get:b"])), creator) == [
        "secrets:get:b"
    ]
    assert unsatisfied_leaves(create_task_needs(definition(routes=["index.x"])), creator) == ["queue:route:index.x"]


def test_create_task_parameters_apply_taskclusters_defaults() -> None:
    params = create_task_parameters({"taskQueueId": "p/w"})
    assert params == {
        "scopes": [],
        "routes": [],
        "projectId": "none",
        "schedulerId": "-",
        "priorities": list(PRIORITIES),
        "provisionerId": "p",
        "workerType": "w",
    }


# --- the endpoint table ---------------------------------------------------------------------------
def registered_endpoints() -> dict[str, set[str]]:
    """Every route name the app registers, with the route parameters its paths carry."""
    from app import app

    names: dict[str, set[str]] = {}
    for path, methods in app.routes.items():
        for entry in methods.values():
            params = {p.split("__")[0] for p in re.findall(r"{(\w+)}", path)}
            names.setdefault(entry.view_function.__name__, set()).update(params)
    return names


def test_every_endpoint_has_an_expression_and_no_expression_lacks_an_endpoint() -> None:
    assert set(ENDPOINT_SCOPES) == set(registered_endpoints())


def test_only_monitoring_and_read_only_auth_endpoints_are_public() -> None:
    public = {name for name, expr in ENDPOINT_SCOPES.items() if expr is None}
    monitoring = {"ping", "lbheartbeat", "heartbeat", "version"}
    auth_reads = {"listClients", "client", "listRoles", "role", "expandScopes"}  # as Taskcluster's auth service
    assert monitoring | auth_reads <= public
    registration = {"registerWorker"}  # as Taskcluster's worker-manager: the identity proof is the credential
    assert not {n for n in public - monitoring - auth_reads - registration if not n.startswith(("reference", "schema"))}


# What deferred expressions need beyond route parameters, per endpoint (reference §1.2–§1.5).
DEFERRED = {
    "tasks": {"taskIds"},
    "statuses": {"taskIds"},
    "createTask": {"scopes", "routes", "projectId", "schedulerId", "priorities", "provisionerId", "workerType"},
    "scheduleTask": {"schedulerId", "taskGroupId", "projectId"},
    "rerunTask": {"schedulerId", "taskGroupId", "projectId"},
    "cancelTask": {"schedulerId", "taskGroupId", "projectId"},
    "changeTaskPriority": {"taskQueueId"},
    "claimWork": {"workerGroup", "workerId"},
    "claimTask": {"provisionerId", "workerType", "workerGroup", "workerId"},
    "sealTaskGroup": {"schedulerId"},
    "cancelTaskGroup": {"schedulerId"},
    "changeTaskGroupPriority": {"schedulerId"},
    "declareWorker": {"properties"},  # one scope per property of the body
    "createClient": {"scopes"},
    "updateClient": {"scopes"},
    "createRole": {"scopes"},
    "updateRole": {"scopes"},
    "createWorkerPool": {"providerId"},  # from the body
    "updateWorkerPool": {"providerId"},
    "reportWorkerError": {"workerGroup", "workerId"},  # the reporting worker, from the body
    "reregisterWorker": {"workerPoolId", "workerGroup", "workerId"},  # the worker, from the body
    **{
        name: {"names"}
        for name in ("getArtifact", "getLatestArtifact", "artifact", "latestArtifact")  # the name and those linked
    },
}


def test_expressions_need_only_route_parameters_unless_documented_as_deferred() -> None:
    routes = registered_endpoints()
    for name, expr in ENDPOINT_SCOPES.items():
        if expr is None:
            continue
        assert parameters(expr) - routes[name] == DEFERRED.get(name, set()), name


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("task", {"taskId": TASK_ID}, f"queue:get-task:{TASK_ID}"),
        ("status", {"taskId": TASK_ID}, f"queue:status:{TASK_ID}"),
        ("tasks", {"taskIds": ["a", "b"]}, {"AllOf": ["queue:get-task:a", "queue:get-task:b"]}),
        ("statuses", {"taskIds": ["a"]}, {"AllOf": ["queue:status:a"]}),
        (
            "scheduleTask",
            {"schedulerId": "s", "taskGroupId": "g", "taskId": "t", "projectId": "p"},
            {
                "AnyOf": [
                    "queue:schedule-task:s/g/t",
                    "queue:schedule-task-in-project:p",
                    {"AllOf": ["queue:schedule-task", "assume:scheduler-id:s/g"]},
                ]
            },
        ),
        (
            "rerunTask",
            {"schedulerId": "s", "taskGroupId": "g", "taskId": "t", "projectId": "p"},
            {
                "AnyOf": [
                    "queue:rerun-task:s/g/t",
                    "queue:rerun-task-in-project:p",
                    {"AllOf": ["queue:rerun-task", "assume:scheduler-id:s/g"]},
                ]
            },
        ),
        (
            "cancelTask",
            {"schedulerId": "s", "taskGroupId": "g", "taskId": "t", "projectId": "p"},
            {
                "AnyOf": [
                    "queue:cancel-task:s/g/t",
                    "queue:cancel-task-in-project:p",
                    {"AllOf": ["queue:cancel-task", "assume:scheduler-id:s/g"]},
                ]
            },
        ),
        (
            "changeTaskPriority",
            {"taskId": "t", "taskQueueId": "p/w"},
            {"AnyOf": ["queue:change-task-priority:t", "queue:change-task-priority-in-queue:p/w"]},
        ),
        (
            "claimWork",
            {"taskQueueId": "p/w", "workerGroup": "g", "workerId": "w1"},
            {"AllOf": ["queue:claim-work:p/w", "queue:worker-id:g/w1"]},
        ),
        (
            "claimTask",
            {"provisionerId": "p", "workerType": "w", "workerGroup": "g", "workerId": "w1"},
            {"AllOf": ["queue:claim-task:p/w", "queue:worker-id:g/w1"]},
        ),
        ("reclaimTask", {"taskId": "t", "runId": "0"}, "queue:reclaim-task:t/0"),
        ("reportCompleted", {"taskId": "t", "runId": "1"}, "queue:resolve-task:t/1"),
        ("reportFailed", {"taskId": "t", "runId": "1"}, "queue:resolve-task:t/1"),
        ("reportException", {"taskId": "t", "runId": "1"}, "queue:resolve-task:t/1"),
        ("pendingTasks", {"taskQueueId": "p/w"}, "queue:pending-count:p/w"),
        (
            "taskQueueCounts",
            {"taskQueueId": "p/w"},
            {"AllOf": ["queue:pending-count:p/w", "queue:claimed-count:p/w"]},
        ),
        ("listPendingTasks", {"taskQueueId": "p/w"}, "queue:pending-list:p/w"),
        ("listClaimedTasks", {"taskQueueId": "p/w"}, "queue:claimed-list:p/w"),
        ("getTaskGroup", {"taskGroupId": "g"}, "queue:list-task-group:g"),
        ("listTaskGroup", {"taskGroupId": "g"}, "queue:list-task-group:g"),
        ("sealTaskGroup", {"taskGroupId": "g", "schedulerId": "s"}, "queue:seal-task-group:s/g"),
        ("cancelTaskGroup", {"taskGroupId": "g", "schedulerId": "s"}, "queue:cancel-task-group:s/g"),
        (
            "changeTaskGroupPriority",
            {"taskGroupId": "g", "schedulerId": "s"},
            "queue:change-task-group-priority:s/g",
        ),
        ("listDependentTasks", {"taskId": "t"}, "queue:list-dependent-tasks:t"),
        ("createArtifact", {"taskId": "t", "runId": "0"}, "queue:create-artifact:t/0"),
        ("finishArtifact", {"taskId": "t", "runId": "0"}, "queue:create-artifact:t/0"),
        (
            "getArtifact",
            {"names": ["public/a", "b"]},
            {"AllOf": ["queue:get-artifact:public/a", "queue:get-artifact:b"]},
        ),
        ("getLatestArtifact", {"names": ["a"]}, {"AllOf": ["queue:get-artifact:a"]}),
        ("artifact", {"names": ["a"]}, {"AllOf": ["queue:get-artifact:a"]}),
        ("latestArtifact", {"names": ["a"]}, {"AllOf": ["queue:get-artifact:a"]}),
        ("listArtifacts", {"taskId": "t", "runId": "2"}, "queue:list-artifacts:t:2"),  # a colon, as Taskcluster's
        ("listLatestArtifacts", {"taskId": "t"}, "queue:list-artifacts:t"),
        ("artifactInfo", {"taskId": "t", "runId": "2"}, "queue:list-artifacts:t:2"),
        ("latestArtifactInfo", {"taskId": "t"}, "queue:list-artifacts:t"),
        ("listProvisioners", {}, "queue:list-provisioners"),
        ("getProvisioner", {"provisionerId": "p"}, "queue:get-provisioner:p"),
        ("listWorkerTypes", {"provisionerId": "p"}, "queue:list-worker-types:p"),
        ("getWorkerType", {"provisionerId": "p", "workerType": "w"}, "queue:get-worker-type:p/w"),
        ("listTaskQueues", {}, "queue:list-task-queues"),
        ("getTaskQueue", {"taskQueueId": "p/w"}, "queue:get-task-queue:p/w"),
        ("listWorkers", {"provisionerId": "p", "workerType": "w"}, "queue:list-workers:p/w"),
        (
            "getWorker",
            {"provisionerId": "p", "workerType": "w", "workerGroup": "g", "workerId": "w1"},
            "queue:get-worker:p/w/g/w1",
        ),
        (
            "quarantineWorker",
            {"provisionerId": "p", "workerType": "w", "workerGroup": "g", "workerId": "w1"},
            {"AllOf": ["queue:quarantine-worker:p/w/g/w1"]},
        ),
        (
            "declareWorker",
            {"provisionerId": "p", "workerType": "w", "workerGroup": "g", "workerId": "w1", "properties": ["expires"]},
            {"AllOf": ["queue:declare-worker:p/w/g/w1#expires"]},
        ),
    ],
)
def test_each_endpoint_requires_taskclusters_scopes(name: str, params: dict[str, Any], expected: ScopeExpr) -> None:
    expr = ENDPOINT_SCOPES[name]
    assert expr is not None
    assert render(expr, params) == expected


def test_a_client_with_exactly_an_endpoints_scopes_passes_and_missing_any_one_fails() -> None:
    for name, expr in ENDPOINT_SCOPES.items():
        if expr is None:
            continue
        needs = {
            p: ["x", "y"] if p in ("taskIds", "names", "scopes", "routes", "priorities", "properties") else "v"
            for p in parameters(expr)
        }
        rendered = render(expr, needs)
        exact = leaves(rendered)
        assert unsatisfied(rendered, exact) is None, name
        for scope in exact:
            rest = [s for s in exact if s != scope]
            required = unsatisfied(rendered, rest)
            # An AnyOf may be satisfied by another branch; otherwise the missing scope is reported.
            if "AnyOf" not in repr(expr):
                assert required is not None, (name, scope)
            if required is not None:
                assert scope in leaves(required), (name, scope)
