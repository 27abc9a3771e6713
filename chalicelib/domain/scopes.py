"""Scopes: what a caller holds, what an endpoint requires, and whether the first satisfies the second.

Taskcluster's rules (libraries/scopes): a held scope ending in `*` satisfies every
required scope with that prefix; an endpoint requires a *scope expression* — a scope string,
`{"AllOf": [...]}`, `{"AnyOf": [...]}`, with `{"for": var, "in": param, "each": template}` items that
expand over a list inside either — whose `<param>` placeholders are filled from route parameters or
from values the handler knows (the task's scopes, its schedulerId …). Roles: holding
`assume:<roleId>` grants the role's scopes, to a fixed point; a roleId ending in `*` matches every
`assume:` scope with that prefix and its scopes may use `<..>` for the matched part (Taskcluster's
parameterized roles).

Callers choose the scopes (an expandScopes body, authorizedScopes, a certificate), so no work here
grows faster than n log n in them: sets are normalized by sorting, held sets answer by bisection
(ScopeSet), roles are found by bisection (RoleIndex), and an expansion is bounded by the scopes and
characters it produces (docs/limits.md), since a role may multiply its parameter every round.

Pure: no I/O. Each endpoint's expression is declared with its route (handlers/api.py).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeAlias

from .model import PRIORITIES

# A scope expression: a scope, {"AllOf": [...]}, {"AnyOf": [...]}; lists may hold for-each templates.
ScopeExpr: TypeAlias = str | dict[str, Any]

PLACEHOLDER = re.compile(r"<([A-Za-z][A-Za-z0-9_]*)>")
ROLE_PARAMETER = "<..>"
ASSUME = "assume:"


class ScopeExpressionError(ValueError):
    """The expression is malformed (a programming error in a table, never a caller's fault)."""


class MissingParameter(KeyError):
    """Rendering needs a parameter that is not known yet: the expression must be deferred to the handler."""


# --- satisfaction ---------------------------------------------------------------------------------
def satisfies(held: str, required: str) -> bool:
    """One held scope grants one required scope: equal, or a trailing-`*` prefix of it."""
    if held == required:
        return True
    return held.endswith("*") and required.startswith(held[:-1])


class ScopeSet:
    """Held scopes prepared for many checks: each costs O(log n), not one `satisfies` per held scope.

    Once normalized no held star covers another, so the star prefixes are prefix-free: the only one
    that can be a prefix of a required scope is the greatest one not above it.
    """

    __slots__ = ("_exact", "_stars")

    def __init__(self, scopes: Iterable[str], *, normalized: bool = False) -> None:
        """`normalized`: the scopes already are (as expand's), so it is not done again."""
        held = list(scopes) if normalized else normalize(scopes)
        self._exact = frozenset(held)
        self._stars = sorted(s[:-1] for s in held if s.endswith("*"))

    def satisfies(self, required: str) -> bool:
        return required in self._exact or self._under_a_star(required)

    def covers(self, scope: str) -> bool:
        """Holding `scope` too would grant nothing more. Not quite `satisfies`: `p**` satisfies the
        scope `p*` (a string starting with `p*`), yet grants less than `p*` held."""
        return scope in self._exact or self._under_a_star(_walk_order(scope)[0])

    def _under_a_star(self, text: str) -> bool:
        i = bisect_right(self._stars, text)
        return i > 0 and text.startswith(self._stars[i - 1])


def satisfied(held: Iterable[str] | ScopeSet, required: str) -> bool:
    return _scope_set(held).satisfies(required)


def _scope_set(held: Iterable[str] | ScopeSet) -> ScopeSet:
    return held if isinstance(held, ScopeSet) else ScopeSet(held)


# --- expressions ----------------------------------------------------------------------------------
def parameters(expr: ScopeExpr) -> set[str]:
    """The placeholders an expression needs (for-each variables are bound by the template itself)."""
    if isinstance(expr, str):
        return set(PLACEHOLDER.findall(expr))
    if "for" in expr:
        return {expr["in"]} | (parameters(expr["each"]) - {expr["for"]})
    return set().union(*(parameters(e) for e in _children(expr)))


def render(expr: ScopeExpr, params: Mapping[str, Any]) -> ScopeExpr:
    """Fill placeholders and expand for-each templates; raises MissingParameter when one is unknown."""
    if isinstance(expr, str):
        return _fill(expr, params)
    if "for" in expr:
        raise ScopeExpressionError("a for-each template must be an item of AllOf or AnyOf")
    key = _operator(expr)
    items: list[ScopeExpr] = []
    for child in expr[key]:
        if isinstance(child, dict) and "for" in child:
            values = _param(params, child["in"])
            if isinstance(values, str) or not isinstance(values, Sequence):
                raise ScopeExpressionError(f"for-each over {child['in']!r} needs a list")
            items += [render(child["each"], {**params, child["for"]: v}) for v in values]
        else:
            items.append(render(child, params))
    return {key: items}


def unsatisfied(expr: ScopeExpr, held: Iterable[str] | ScopeSet) -> ScopeExpr | None:
    """What `held` still lacks of a rendered expression, simplified (None: nothing, it is satisfied).

    As Taskcluster's `removeGivenScopes`: satisfied parts of an AllOf go away; an AnyOf with any
    satisfied branch is satisfied; a one-item remainder stands alone. An empty AnyOf is never
    satisfied, an empty AllOf always is.
    """
    return _unsatisfied(expr, _scope_set(held))


def _unsatisfied(expr: ScopeExpr, held: ScopeSet) -> ScopeExpr | None:
    if isinstance(expr, str):
        return None if held.satisfies(expr) else expr
    key = _operator(expr)
    if key == "AllOf":
        rest = [r for r in (_unsatisfied(e, held) for e in expr[key]) if r is not None]
        if not rest:
            return None
    else:
        branches = [_unsatisfied(e, held) for e in expr[key]]
        if any(b is None for b in branches):
            return None
        rest = [b for b in branches if b is not None]
        if not rest:
            return {"AnyOf": []}
    return rest[0] if len(rest) == 1 else {key: rest}


def leaves(expr: ScopeExpr | None) -> list[str]:
    """Every scope string in an expression, in order, without repeats."""
    if expr is None:
        return []
    if isinstance(expr, str):
        return [expr]
    return list(dict.fromkeys(s for e in _children(expr) for s in leaves(e)))


def unsatisfied_leaves(expr: ScopeExpr, held: Iterable[str] | ScopeSet) -> list[str]:
    """The required scopes `held` lacks (empty when the expression is satisfied)."""
    return leaves(unsatisfied(expr, held))


# --- roles ----------------------------------------------------------------------------------------
class ExpansionTooLarge(ValueError):
    """Roles that keep granting new scopes (parameterized roles can): refused, never looped on."""


# Bounds of one expansion, counted over what it holds (the scopes so far and the new ones a round
# produces, but not those a held star covers), checked as each scope is produced: `<..>` repeated
# in a role's scope doubles a parameter per round, so a bound checked between rounds comes after
# the memory is gone. Real expansions are hundreds of scopes, each rarely over 200 characters;
# 2,000,000 characters also hold an expandScopes body at its caps (below).
MAX_EXPANDED_SCOPES = 10_000
MAX_EXPANDED_CHARS = 2_000_000
MAX_EXPANSION_ROUNDS = 64  # a chain of roles assuming roles this deep is a loop that keeps growing

# What one request may name (the schemas of createClient, createRole and expandScopes say the same;
# docs/limits.md): Taskcluster's real clients and roles hold at most a few hundred scopes, the
# longest of them a couple of hundred characters.
MAX_SCOPES_PER_SET = 1_000
MAX_SCOPE_LENGTH = 1_000


class RoleIndex:
    """Roles ordered for lookup: the roles one scope assumes are found by bisection, not by trying
    every role (plain roles by id, star roles `p*` by their prefix `p`)."""

    def __init__(self, roles: Mapping[str, Sequence[str]]) -> None:
        self.scopes: dict[str, Sequence[str]] = dict(roles)
        self._plain = sorted(r for r in roles if not r.endswith("*"))
        self._star = sorted(r[:-1] for r in roles if r.endswith("*"))

    def assumed_by(self, scope: str) -> Iterator[tuple[str, str]]:
        """(roleId, value of `<..>`) for every role `scope` assumes."""
        for role_id in self._candidates(scope):
            parameter = _role_match(scope, role_id)
            if parameter is not None:
                yield role_id, parameter

    def _candidates(self, scope: str) -> Iterable[str]:
        """Every role `scope` may assume (a few more at most: _role_match decides)."""
        if scope.endswith("*") and ASSUME.startswith(scope[:-1]):
            return self.scopes  # it covers every assume: scope
        if not scope.startswith(ASSUME):
            return ()
        rest = scope[len(ASSUME) :]
        stars = {p + "*" for p in _prefixes_of(self._star, rest)}
        if not scope.endswith("*"):
            return [rest, *stars] if rest in self.scopes else stars
        under = rest[:-1]  # a star scope also assumes the roles whose ids start with its prefix
        stars.update(p + "*" for p in _starting_with(self._star, under))
        return [*_starting_with(self._plain, under), *stars]


def expand(
    scopes: Iterable[str],
    roles: Mapping[str, Sequence[str]] | RoleIndex,
    *,
    max_scopes: int = MAX_EXPANDED_SCOPES,
    max_chars: int = MAX_EXPANDED_CHARS,
) -> list[str]:
    """`scopes` plus every role they assume, transitively, normalized (sorted, covered scopes dropped).

    Each round expands only the scopes the previous one added (a scope's grants do not change).
    Raises ExpansionTooLarge past `max_scopes` scopes or `max_chars` characters held — checked as
    each scope is produced — or past MAX_EXPANSION_ROUNDS.
    """
    index = roles if isinstance(roles, RoleIndex) else RoleIndex(roles)
    result = normalize(scopes)
    fresh = result
    for _ in range(MAX_EXPANSION_ROUNDS):
        held = ScopeSet(result, normalized=True)
        count, chars = len(result), sum(map(len, result))
        _within(count, chars, max_scopes, max_chars)
        produced: set[str] = set()
        for scope in fresh:
            for role_id, parameter in index.assumed_by(scope):
                for template in index.scopes[role_id]:
                    granted = _fill_role_parameter(template, parameter, room=max_chars - chars)
                    if granted in produced or held.covers(granted):
                        continue
                    produced.add(granted)
                    count, chars = count + 1, chars + len(granted)
                    _within(count, chars, max_scopes, max_chars)
        if not produced:
            return result
        known = set(result)
        result = normalize([*result, *produced])
        fresh = [s for s in result if s not in known]
    raise ExpansionTooLarge(f"roles still grant new scopes after {MAX_EXPANSION_ROUNDS} rounds")


def _within(count: int, chars: int, max_scopes: int, max_chars: int) -> None:
    if count > max_scopes:
        raise ExpansionTooLarge(f"expansion exceeds {max_scopes} scopes")
    if chars > max_chars:
        raise ExpansionTooLarge(f"expansion exceeds {max_chars} characters")


def _role_match(scope: str, role_id: str) -> str | None:
    """The value of `<..>` when `scope` assumes role `role_id`, or None when it does not.

    A star role `p*` is assumed by `assume:p<x>` (parameter `<x>`) and by a star scope covering
    `assume:p` (parameter `*`); a plain role by `assume:<roleId>` or a star scope covering it.
    """
    target = ASSUME + role_id
    if not role_id.endswith("*"):
        return "" if satisfies(scope, target) else None
    prefix = target[:-1]
    if scope.startswith(prefix):
        return scope[len(prefix) :]
    if scope.endswith("*") and prefix.startswith(scope[:-1]):
        return "*"
    return None


def _fill_role_parameter(scope: str, parameter: str, room: int) -> str:
    """`scope` with `<..>` filled; a result longer than `room` characters is refused before it is built."""
    if ROLE_PARAMETER not in scope:
        return scope
    if parameter.endswith("*"):
        # Taskcluster: a star parameter ends the scope there — it already covers whatever followed.
        return scope[: scope.index(ROLE_PARAMETER)] + parameter
    if len(scope) + scope.count(ROLE_PARAMETER) * (len(parameter) - len(ROLE_PARAMETER)) > room:
        raise ExpansionTooLarge(f"a role's <..> makes a scope longer than the {room} characters left of the bound")
    return scope.replace(ROLE_PARAMETER, parameter)


def normalize(scopes: Iterable[str]) -> list[str]:
    """Sorted, unique, and without scopes another held star scope already covers.

    O(n log n), as Taskcluster's normalizeScopeSet: in walk order a star scope `p*` comes just
    before every scope starting with `p`, so one pass dropping what the last kept star covers
    suffices (the scopes a star covers follow it as one run, and so do those of a star it covers).
    """
    kept: list[str] = []
    cover: str | None = None
    for scope in sorted(set(scopes), key=_walk_order):
        stem = _walk_order(scope)[0]
        if cover is not None and stem.startswith(cover):
            continue
        kept.append(scope)
        if scope.endswith("*"):
            cover = stem
    return sorted(kept)


def _walk_order(scope: str) -> tuple[str, bool]:
    """A star scope `p*` sorts as `p`, before `p` itself and every longer scope starting with `p`."""
    return (scope[:-1], False) if scope.endswith("*") else (scope, True)


def _starting_with(ordered: Sequence[str], prefix: str) -> Iterator[str]:
    i = bisect_left(ordered, prefix)
    while i < len(ordered) and ordered[i].startswith(prefix):
        yield ordered[i]
        i += 1


def _prefixes_of(ordered: Sequence[str], text: str) -> Iterator[str]:
    """The items of `ordered` that are prefixes of `text`.

    Such an item is also a prefix of the greatest item not above `text` (the candidate): when the
    candidate is not one itself, the search goes on below it for their common prefix. The key only
    shortens, so there are at most twice as many steps as characters; real role ids take one or two.
    """
    key, end = text, len(ordered)
    while (i := bisect_right(ordered, key, 0, end) - 1) >= 0:
        candidate = ordered[i]
        if text.startswith(candidate):
            yield candidate
            key = candidate
        else:
            key = text[: _common_length(candidate, text)]
        end = i


def _common_length(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


# --- helpers --------------------------------------------------------------------------------------
def _operator(expr: Mapping[str, Any]) -> str:
    keys = set(expr)
    if keys == {"AllOf"} or keys == {"AnyOf"}:
        (key,) = keys
        if not isinstance(expr[key], list):
            raise ScopeExpressionError(f"{key} needs a list")
        return key
    raise ScopeExpressionError(f"not a scope expression: {dict(expr)!r}")


def _children(expr: Mapping[str, Any]) -> list[ScopeExpr]:
    if "for" in expr:
        return [expr["each"]]
    children: list[ScopeExpr] = expr[_operator(expr)]
    return children


def _param(params: Mapping[str, Any], name: str) -> Any:
    if name not in params:
        raise MissingParameter(name)
    return params[name]


def _fill(template: str, params: Mapping[str, Any]) -> str:
    return PLACEHOLDER.sub(lambda m: str(_param(params, m.group(1))), template)


# --- the endpoints --------------------------------------------------------------------------------
def priorities_at_or_above(priority: str) -> list[str]:
    """createTask accepts the scope of the task's priority or any higher one."""
    return list(PRIORITIES[: PRIORITIES.index(priority) + 1])


def create_task_parameters(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of createTask's expression, from a definition with its defaults applied."""
    provisioner_id, worker_type = str(definition["taskQueueId"]).split("/", 1)
    return {
        "scopes": list(definition.get("scopes", [])),
        "routes": list(definition.get("routes", [])),
        "projectId": definition.get("projectId", "none"),
        "schedulerId": definition.get("schedulerId", "-"),
        "priorities": priorities_at_or_above(definition.get("priority", "lowest")),
        "provisionerId": provisioner_id,
        "workerType": worker_type,
    }


def in_scheduler_or_project(verb: str) -> ScopeExpr:
    """schedule/rerun/cancel: by the task's scheduler and group, its project, or a scheduler it may assume."""
    return {
        "AnyOf": [
            f"queue:{verb}:<schedulerId>/<taskGroupId>/<taskId>",
            f"queue:{verb}-in-project:<projectId>",
            {"AllOf": [f"queue:{verb}", "assume:scheduler-id:<schedulerId>/<taskGroupId>"]},
        ]
    }
