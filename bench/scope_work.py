"""Scope and role work under hostile input: what expansion, normalization and a refused role cost.

    python -m bench.scope_work

In process, no AWS stand-in: the domain functions directly, and the auth service over a store
held in memory. Each figure is printed beside the one measured on the code before expansion was
bounded and normalization made O(n log n) (commit bc46a4f, which cannot be rerun from here), on
the same 2-CPU machine with other work running (load average 2 to 8, as when the figures after
were taken).
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from chalicelib.clock import FakeClock
from chalicelib.domain.credentials import Role
from chalicelib.domain.errors import QueueError
from chalicelib.domain.scopes import expand, normalize
from chalicelib.services.auth import Auth, RootCredentials
from chalicelib.services.auth_admin import AuthAdmin

BEFORE = {
    "expand, no roles": "247 s",
    "expand, 1,100 roles": "1221 s",
    "service, 1,000 scopes": "4.8 s",
    "service, 20,000 scopes": "1098 s, then ExpansionTooLarge (a 500 over HTTP)",
    "self-referencing role": "MemoryError at a 4 GiB address-space limit after 16 s",
    "normalize 100,000": "233 s",
}


def roles() -> dict[str, tuple[str, ...]]:
    """1,000 plain roles, 100 star roles with `<..>`, one role they all assume."""
    table: dict[str, tuple[str, ...]] = {
        f"project:{j:05d}/ci": (f"queue:create-task:project:{j}", f"secrets:get:project/{j}/*", "assume:worker")
        for j in range(1000)
    }
    table.update({f"repo:{j}/*": ("queue:route:index.<..>.*", "secrets:get:repo/<..>") for j in range(100)})
    return {**table, "worker": ("queue:claim-work:*",)}


def distinct_star_scopes(n: int) -> list[str]:
    """No one covers another; the first 1,000 each assume a project role."""
    return [f"assume:project:{i:05d}/*" for i in range(n)]


def mixed(n: int) -> list[str]:
    """One in ten a star scope; every other scope lies under one of them."""
    return [
        f"queue:get-artifact:{i // 10:06d}/*" if i % 10 == 0 else f"queue:get-artifact:{(i // 10) * (i % 2):06d}/{i}"
        for i in range(n)
    ]


class MemoryStore:
    """The auth service's store, roles only, in memory."""

    def __init__(self, table: dict[str, tuple[str, ...]]) -> None:
        now = datetime(2026, 1, 1)
        self.roles = {r: Role(r, "bench", s, now, now) for r, s in table.items()}

    def all_roles(self) -> Iterator[Role]:
        return iter(list(self.roles.values()))

    def get_role(self, role_id: str) -> Role | None:
        return self.roles.get(role_id)

    def put_role(self, role: Role, *, create: bool) -> None:
        self.roles[role.role_id] = role


def timed(work: Callable[[], Any]) -> tuple[float, float, str]:
    """Seconds, peak traced memory (MB; a second run, as tracing slows the work), what came of it."""
    started = time.perf_counter()
    outcome = _outcome(work)
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    _outcome(work)
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return elapsed, peak, outcome


def _outcome(work: Callable[[], Any]) -> str:
    try:
        return f"{len(work())} scopes"
    except QueueError as err:
        return f"{err.status} {err.code}"


def main() -> int:
    table = roles()
    store, clock = MemoryStore(table), FakeClock()
    auth = AuthAdmin(store, clock, Auth(store, clock, RootCredentials("root", "token", "key")))  # type: ignore[arg-type]
    unbounded = {"max_scopes": sys.maxsize, "max_chars": sys.maxsize}
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("expand, no roles", lambda: expand(distinct_star_scopes(20_000), {}, **unbounded)),
        ("expand, 1,100 roles", lambda: expand(distinct_star_scopes(20_000), table, **unbounded)),
        ("service, 1,000 scopes", lambda: auth.expand(distinct_star_scopes(1_000))),
        ("service, 20,000 scopes", lambda: auth.expand(distinct_star_scopes(20_000))),
        (
            "self-referencing role",
            lambda: auth.create_role("a*", {"description": "grows", "scopes": ["assume:a<..><..>"]}).role.scopes,
        ),
        ("normalize 100,000", lambda: normalize(mixed(100_000))),
    ]
    print("expandScopes with 20,000 distinct star scopes (the domain function with its bounds lifted,")
    print("and the service with them), createRole a* -> assume:a<..><..>, normalize of 100,000 scopes:\n")
    print(f"{'case':24} {'seconds':>8} {'peak MB':>8}  {'outcome':22} before")
    for name, work in cases:
        elapsed, peak, outcome = timed(work)
        print(f"{name:24} {elapsed:8.3f} {peak:8.1f}  {outcome:22} {BEFORE[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
