"""Scope satisfaction, expressions, role expansion and the endpoint table (domain/scopes.py)."""

from __future__ import annotations

import random
import re
import time
import tracemalloc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pytest

from chalicelib.domain.model import PRIORITIES
from chalicelib.domain.scopes import (
    MAX_EXPANDED_CHARS,
    MAX_EXPANDED_SCOPES,
    MAX_EXPANSION_ROUNDS,
    MAX_SCOPE_LENGTH,
    MAX_SCOPES_PER_SET,
    ExpansionTooLarge,
    MissingParameter,
    ScopeExpr,
    ScopeExpressionError,
    ScopeSet,
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
from chalicelib.schemas import load

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
    expr = render(DECLARED["getArtifact"] or "", {"names": ["public/logs/live.log"]})
    assert unsatisfied(expr, held) is None
    assert unsatisfied_leaves(render(DECLARED["getArtifact"] or "", {"names": ["private/x"]}), held) == [
        "queue:get-artifact:private/x"
    ]


def test_normalize_drops_what_a_star_covers_even_where_plain_order_puts_it_before_the_star() -> None:
    # ' ' and '!' sort before '*': in plain order `a` and `a!x` come before `a*`, which covers them
    assert normalize(["a", "a!x", "a *", "a*", "b"]) == ["a*", "b"]
    assert normalize(["a!*", "a!b", "a*"]) == ["a*"]
    assert normalize(["ab*", "a", "abc", "a:*", "a:b"]) == ["a", "a:*", "ab*"]


def test_of_two_star_scopes_covering_each_other_the_shorter_is_kept() -> None:
    # `a*` and `a**` each satisfy the other: dropping both (as comparing all pairs did) lost the scope,
    # and with it a `*` whose role granted `**`.
    assert normalize(["a**", "a*"]) == ["a*"]
    assert expand(["*"], {"*": ["*<..>"]}) == ["*"]
    assert expand(["q**", "assume:r"], {"r": ["q*"]}) == ["assume:r", "q*"]  # q** satisfies q*, covers less


def test_a_prepared_scope_set_answers_as_satisfied_does() -> None:
    held = ScopeSet(["a", "b:*", "b:c:*", "c*", "*x"])
    for required in ["a", "b:", "b:c", "b:c:d", "c", "cc*", "*x", "*", "b", "a*", "x"]:
        assert held.satisfies(required) is any(satisfies(h, required) for h in ["a", "b:*", "b:c:*", "c*", "*x"])
    assert ScopeSet(["*"]).satisfies("anything") and not ScopeSet([]).satisfies("")
    # as a held scope, `p*` grants what `p**` does not
    assert ScopeSet(["p**"]).satisfies("p*") and not ScopeSet(["p**"]).covers("p*")
    assert ScopeSet(["p*"]).covers("p**") and ScopeSet(["p*"]).covers("pq*") and ScopeSet(["p"]).covers("p")


def test_role_lookup_finds_nested_star_roles_and_the_plain_roles_under_a_star() -> None:
    roles = {"r*": ["x:<..>"], "r/a*": ["y:<..>"], "r/a/b*": ["z:<..>"], "r/ab": ["w"], "q*": ["no"]}
    assert expand(["assume:r/a/bc"], roles) == ["assume:r/a/bc", "x:/a/bc", "y:/bc", "z:c"]
    assert expand(["assume:r/a*"], roles) == ["assume:r/a*", "w", "x:/a*", "y:*", "z:*"]
    assert expand(["assume:r/ab"], roles) == ["assume:r/ab", "w", "x:/ab", "y:b"]
    assert expand(["assume:*"], roles) == ["assume:*", "no", "w", "x:*", "y:*", "z:*"]
    assert expand(["assume:s"], roles) == ["assume:s"]


# The definitions the fast paths must agree with: every scope against every star, every role tried.
def reference_normalize(scopes: Iterable[str]) -> list[str]:
    unique = sorted(set(scopes))
    stars = [s for s in unique if s.endswith("*")]

    def covered(s: str) -> bool:
        return any(t != s and satisfies(t, s) and (not satisfies(s, t) or len(t) < len(s)) for t in stars)

    return [s for s in unique if not covered(s)]


def reference_grants(scope: str, roles: Mapping[str, Sequence[str]]) -> Iterator[str]:
    for role_id, role_scopes in roles.items():
        target = "assume:" + role_id
        if not role_id.endswith("*"):
            if not satisfies(scope, target):
                continue
            parameter = ""
        elif scope.startswith(target[:-1]):
            parameter = scope[len(target) - 1 :]
        elif scope.endswith("*") and target[:-1].startswith(scope[:-1]):
            parameter = "*"
        else:
            continue
        for s in role_scopes:
            if "<..>" in s and parameter.endswith("*"):
                yield s[: s.index("<..>")] + parameter
            else:
                yield s.replace("<..>", parameter)


def reference_expand(scopes: list[str], roles: Mapping[str, Sequence[str]]) -> list[str] | None:
    result = reference_normalize(scopes)
    for _ in range(8):
        grown = reference_normalize([*result, *(g for s in result for g in reference_grants(s, roles))])
        if grown == result:
            return result
        if any(len(s) > 200 for s in grown):
            return None
        result = grown
    return None  # still growing: the bounds' business, tested below


def test_normalize_satisfaction_and_expansion_agree_with_their_definitions_on_random_sets() -> None:
    rng = random.Random(7)
    parts = ["a", "b", "ab", ":", "*", "<..>", " "]

    def scope(star: float = 0.4) -> str:
        s = rng.choice(["assume:", "assume:", "assu", "", "x:"]) + "".join(
            rng.choice(parts) for _ in range(rng.randint(0, 4))
        )
        return s + "*" if rng.random() < star else s

    compared = 0
    for _ in range(2000):
        held = [scope() for _ in range(rng.randint(0, 8))]
        assert normalize(held) == reference_normalize(held), held
        prepared = ScopeSet(held)
        for required in [scope() for _ in range(5)]:
            assert prepared.satisfies(required) is any(satisfies(h, required) for h in held), (held, required)
        roles = {scope(0.5).removeprefix("assume:"): [scope() for _ in range(rng.randint(0, 3))] for _ in range(5)}
        expected = reference_expand(held, roles)
        if expected is not None:
            assert expand(held, roles) == expected, (held, roles)
            compared += 1
    assert compared > 1500


# --- bounds ---------------------------------------------------------------------------------------
def test_a_role_doubling_its_parameter_is_refused_before_it_takes_the_memory() -> None:
    # `assume:a<x>` grants `assume:a<x><x>`, which grants `assume:a<x><x><x><x>`…
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ExpansionTooLarge, match="characters"):
            expand(["assume:a<..><..>"], {"a*": ["assume:a<..><..>"]})
        with pytest.raises(ExpansionTooLarge, match="characters"):
            expand(["assume:ax"], {"a*": ["assume:a" + "<..>" * 1000]})  # one round, 1000 copies
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 5
    assert peak < 10 * MAX_EXPANDED_CHARS  # bytes: no string beyond the bound was ever built


def test_a_growth_only_some_parameters_start_is_still_bounded() -> None:
    # `ab*` re-enters itself only when the parameter starts with `b`: `assume:abb` doubles, `assume:ac` does not.
    roles = {"ab*": ["assume:a<..><..>"]}
    assert expand(["assume:ab"], roles) == ["assume:a", "assume:ab"]
    with pytest.raises(ExpansionTooLarge):
        expand(["assume:abbb"], roles)


def test_expansion_is_bounded_by_its_count_of_scopes_and_characters_and_rounds() -> None:
    many = {"many": [f"s:{i}" for i in range(MAX_EXPANDED_SCOPES)]}
    with pytest.raises(ExpansionTooLarge, match=f"{MAX_EXPANDED_SCOPES} scopes"):
        expand(["assume:many"], many)
    assert len(expand(["assume:many"], many, max_scopes=MAX_EXPANDED_SCOPES + 1)) == MAX_EXPANDED_SCOPES + 1
    assert expand(["assume:many", "s:*"], many) == ["assume:many", "s:*"]  # what a star covers is not counted
    wide = {"wide": [f"{i}:" + "x" * 999 for i in range(MAX_EXPANDED_CHARS // 1000)]}
    with pytest.raises(ExpansionTooLarge, match=f"{MAX_EXPANDED_CHARS} characters"):
        expand(["assume:wide"], wide)
    with pytest.raises(ExpansionTooLarge, match=f"after {MAX_EXPANSION_ROUNDS} rounds"):
        expand(["assume:ab"], {"a*": ["assume:a<..>x"]})  # one character longer each round
    with pytest.raises(ExpansionTooLarge):
        expand([f"s:{i}" for i in range(MAX_EXPANDED_SCOPES + 1)], {})  # the input counts too


# --- cost: O(n log n), whoever chooses the scopes -------------------------------------------------
def bench_roles() -> dict[str, list[str]]:
    roles = {f"project:{j:05d}/ci": [f"queue:create-task:project:{j}", "assume:worker"] for j in range(1000)}
    roles.update({f"repo:{j}/*": ["queue:route:index.<..>.*", "secrets:get:repo/<..>"] for j in range(100)})
    return {**roles, "worker": ["queue:claim-work:*"]}


def test_20000_distinct_star_scopes_expand_in_seconds_not_minutes() -> None:
    scopes = [f"assume:project:{i:05d}/*" for i in range(20_000)]
    started = time.perf_counter()
    expanded = expand(scopes, bench_roles(), max_scopes=10**6)
    assert time.perf_counter() - started < 5  # all pairs: minutes
    assert len(expanded) == 20_000 + 1000 + 2  # each project's create-task scope; assume:worker and its scope


def test_normalizing_and_checking_100000_scopes_is_quick() -> None:
    scopes = [f"queue:get-artifact:{i // 10:06d}/*" if i % 10 == 0 else f"queue:x:{i}" for i in range(100_000)]
    started = time.perf_counter()
    assert len(normalize(scopes)) == 100_000
    held = ScopeSet(scopes)
    assert all(held.satisfies(f"queue:get-artifact:{i:06d}/a") for i in range(10_000))
    assert unsatisfied({"AllOf": [f"queue:x:{i}" for i in range(1, 100_000, 10)]}, held) is None
    assert time.perf_counter() - started < 5


def test_the_request_schemas_carry_the_scope_caps() -> None:
    for name in ("scopeset", "create-client-request", "create-role-request"):
        scopes = load(name)["properties"]["scopes"]
        assert (scopes["maxItems"], scopes["items"]["maxLength"]) == (MAX_SCOPES_PER_SET, MAX_SCOPE_LENGTH), name


# --- createTask -----------------------------------------------------------------------------------
def test_priorities_at_or_above_run_from_highest_down_to_the_given_one() -> None:
    assert priorities_at_or_above("highest") == ["highest"]
    assert priorities_at_or_above("high") == ["highest", "very-high", "high"]
    assert priorities_at_or_above("lowest") == list(PRIORITIES)


def definition(**fields: Any) -> dict[str, Any]:
    return {"taskQueueId": "prov/wt", "schedulerId": "-", "projectId": "none", "priority": "high", **fields}


def create_task_needs(d: dict[str, Any]) -> ScopeExpr:
    return render(DECLARED["createTask"] or "", create_task_parameters(d))


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


# --- the declared expressions ---------------------------------------------------------------------
def declared_scopes() -> dict[str, ScopeExpr | None]:
    """Every endpoint's expression as its route declares it, by name (a name several services
    share, `ping`, is public in each)."""
    import app  # noqa: F401  (declares every endpoint)
    from chalicelib.handlers.api import ENDPOINTS

    found: dict[str, ScopeExpr | None] = {}
    for (_, name), endpoint in ENDPOINTS.items():
        assert found.get(name, endpoint.scopes) == endpoint.scopes, f"{name} means different scopes in two services"
        found[name] = endpoint.scopes
    return found


DECLARED = declared_scopes()


def registered_endpoints() -> dict[str, set[str]]:
    """Every route name the app registers, with the route parameters its paths carry."""
    from app import app

    names: dict[str, set[str]] = {}
    for path, methods in app.routes.items():
        for entry in methods.values():
            params = {p.split("__")[0] for p in re.findall(r"{(\w+)}", path)}
            names.setdefault(entry.view_function.__name__, set()).update(params)
    return names


# public documents and the web inspector's files, not API methods
DOCUMENTS = {"reference_manifest", "reference_api", "reference_schema", "inspector_index", "inspector_file"}


def test_every_view_of_the_app_is_a_declared_endpoint_or_a_reference_document() -> None:
    assert set(registered_endpoints()) == set(DECLARED) | DOCUMENTS


def test_an_endpoint_cannot_be_declared_without_saying_its_scopes() -> None:
    from chalice import Blueprint

    from chalicelib.handlers.api import Api

    api = Api(Blueprint("undeclared"), "/api/undeclared/v1")
    with pytest.raises(TypeError, match="scopes"):
        api.route("GET", "/x", "x", category="Monitoring")  # type: ignore[call-arg]


def test_only_monitoring_and_read_only_auth_endpoints_are_public() -> None:
    public = {name for name, expr in DECLARED.items() if expr is None}
    monitoring = {"ping", "lbheartbeat", "heartbeat", "version"}
    auth_reads = {"listClients", "client", "listRoles", "role", "expandScopes"}  # as Taskcluster's auth service
    assert monitoring | auth_reads <= public
    registration = {"registerWorker"}  # as Taskcluster's worker-manager: the identity proof is the credential
    assert not public - monitoring - auth_reads - registration


# What deferred expressions need beyond route parameters, per endpoint.
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
    for name, expr in DECLARED.items():
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
    expr = DECLARED[name]
    assert expr is not None
    assert render(expr, params) == expected


def test_a_client_with_exactly_an_endpoints_scopes_passes_and_missing_any_one_fails() -> None:
    for name, expr in DECLARED.items():
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
