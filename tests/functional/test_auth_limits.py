"""Scope and role work stays bounded and cheap whatever a caller sends (docs/limits.md), over HTTP:
roles whose expansion multiplies, sets of scopes built to make the work quadratic, the caps on
request bodies, and creates racing for one id. Each refusal is a Taskcluster error body, quick,
with nothing stored."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import mohawk
import pytest
import slugid
import taskcluster

from chalicelib.domain.credentials import Role
from chalicelib.domain.model import format_date
from tests.harness import AUTH, Harness, assert_error, expires

QUICK = 5.0  # seconds: a generous bound; the work these tests guard against took minutes or all memory


# --- helpers --------------------------------------------------------------------------------------
def timed(stack: Harness, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
    """The response of one request, asserted to have come within QUICK seconds."""
    started = time.perf_counter()
    r = stack.call(method, path, body, **kwargs)
    elapsed = time.perf_counter() - started
    assert elapsed < QUICK, (method, path, r.status_code, elapsed)
    return r


def make_client(stack: Harness, client_id: str, scopes: list[str]) -> dict[str, str]:
    r = timed(
        stack, "PUT", f"{AUTH}/clients/{client_id}", {"description": "d", "expires": expires(stack), "scopes": scopes}
    )
    assert r.status_code == 200, r.body
    return {"clientId": client_id, "accessToken": r.json_body["accessToken"]}


def role_ids(stack: Harness) -> list[str]:
    r = stack.call("GET", f"{AUTH}/roles")
    assert r.status_code == 200, r.body
    return [role["roleId"] for role in r.json_body]


def client_ids(stack: Harness) -> list[str]:
    r = stack.call("GET", f"{AUTH}/clients")
    assert r.status_code == 200, r.body
    return [c["clientId"] for c in r.json_body["clients"]]


def store_role(stack: Harness, role_id: str, scopes: list[str]) -> None:
    """A role written straight to the table, past the API's check (as another writer could)."""
    now = stack.clock.now()
    stack.c.auth.store.put_role(Role(role_id, "written directly", tuple(scopes), now, now), create=True)


def with_ext(
    stack: Harness, credentials: dict[str, str], method: str, path: str, ext: dict[str, Any]
) -> dict[str, str]:
    """A Hawk header carrying `ext` (authorizedScopes), as Taskcluster's clients make it."""
    sender = mohawk.Sender(
        credentials={"id": credentials["clientId"], "key": credentials["accessToken"], "algorithm": "sha256"},
        url=f"http://localhost{path}",
        method=method,
        content="",
        content_type="",
        ext=base64.b64encode(json.dumps(ext).encode()).decode(),
        _timestamp=str(int(stack.clock.now().timestamp())),
    )
    return {"Authorization": sender.request_header}


class Interrupting:
    """The auth store, running `interrupt` once just before its `at`-th call (of any method)."""

    def __init__(self, inner: Any, at: int, interrupt: Callable[[], None]) -> None:
        self._inner, self._at, self._interrupt, self._calls = inner, at, interrupt, 0

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls += 1
            if self._calls == self._at:
                self._interrupt()
            return target(*args, **kwargs)

        return call


def race(
    stack: Harness, monkeypatch: pytest.MonkeyPatch, at: int, outer: Callable[[], Any], inner: Callable[[], Any]
) -> tuple[Any, Any]:
    """`outer` runs until the store's `at`-th call, `inner` from start to end, then `outer` goes on
    (or `inner` runs after, when outer made fewer calls): every interleaving of two requests."""
    responses: dict[str, Any] = {}

    def run_inner() -> None:
        responses["inner"] = inner()

    store, interrupting = stack.c.auth.store, Interrupting(stack.c.auth.store, at, run_inner)
    monkeypatch.setattr(stack.c.auth, "store", interrupting)
    monkeypatch.setattr(stack.c.auth_admin, "store", interrupting)
    responses["outer"] = outer()
    monkeypatch.setattr(stack.c.auth, "store", store)
    monkeypatch.setattr(stack.c.auth_admin, "store", store)
    if "inner" not in responses:
        run_inner()
    return responses["outer"], responses["inner"]


# --- role expansion that multiplies ---------------------------------------------------------------
def test_a_role_re_entering_itself_with_its_parameter_doubled_is_a_quick_400_and_not_stored(stack: Harness) -> None:
    # assume:grow<x> grants assume:grow<x><x>, which grants assume:grow<x><x><x><x>: this request
    # used to take all the machine's memory.
    r = timed(stack, "PUT", f"{AUTH}/roles/grow*", {"description": "d", "scopes": ["assume:grow<..><..>"]})
    assert_error(r, 400, "InputError", "createRole", "characters")
    assert_error(stack.call("GET", f"{AUTH}/roles/grow*"), 404, "ResourceNotFound", "role")
    assert role_ids(stack) == []

    # Nor may an update make a stored role do it; the stored role stays as it was.
    assert stack.call("PUT", f"{AUTH}/roles/grow*", {"description": "d", "scopes": ["assume:x"]}).status_code == 200
    r = timed(stack, "POST", f"{AUTH}/roles/grow*", {"description": "d2", "scopes": ["assume:grow<..>/<..>"]})
    assert_error(r, 400, "InputError", "updateRole", "characters")
    stored = stack.call("GET", f"{AUTH}/roles/grow*").json_body
    assert (stored["description"], stored["scopes"]) == ("d", ["assume:x"])


def test_a_second_role_that_makes_the_first_multiply_is_refused(stack: Harness) -> None:
    # p* alone expands to little; q* sends p*'s scope back into p* with the parameter doubled.
    assert (
        stack.call("PUT", f"{AUTH}/roles/p*", {"description": "d", "scopes": ["assume:q<..><..>"]}).status_code == 200
    )
    r = timed(stack, "PUT", f"{AUTH}/roles/q*", {"description": "d", "scopes": ["assume:p<..>"]})
    assert_error(r, 400, "InputError", "createRole", "role p*")
    assert role_ids(stack) == ["p*"]


def test_stored_roles_beyond_the_bound_fail_every_request_that_uses_them_closed(stack: Harness) -> None:
    victim = make_client(stack, "victim", ["assume:grow:z", "queue:status:*"])
    store_role(stack, "grow:*", ["assume:grow:<..><..>"])
    store_role(stack, "anonymous", ["assume:grow:x"])
    stack.advance(11)  # past the auth caches of clients and roles
    task = f"/api/queue/v1/task/{slugid.nice()}/status"

    # Who assumes the role can be granted nothing: 403 for any request, even one needing no scope.
    assert_error(
        timed(stack, "GET", task, credentials=None), 403, "InsufficientScopes", "status", "cannot be determined"
    )
    assert_error(
        timed(stack, "GET", task, credentials=victim), 403, "InsufficientScopes", "status", "cannot be determined"
    )
    r = timed(stack, "GET", f"{AUTH}/scopes/current", credentials=victim)
    assert_error(r, 403, "InsufficientScopes", "currentScopes", "cannot be determined")
    # Expanding it, or reading what it expands to, is a 400.
    r = timed(stack, "POST", f"{AUTH}/scopes/expand", {"scopes": ["assume:grow:y"]}, credentials=None)
    assert_error(r, 400, "InputError", "expandScopes", "too large")
    assert_error(timed(stack, "GET", f"{AUTH}/roles/grow:*"), 400, "InputError", "role", "too large")
    assert_error(timed(stack, "GET", f"{AUTH}/clients/victim"), 400, "InputError", "client", "too large")
    # Nothing that does not pass through it is affected, and the root client can repair the table.
    r = timed(stack, "POST", f"{AUTH}/scopes/expand", {"scopes": ["queue:x"]}, credentials=None)
    assert r.json_body == {"scopes": ["queue:x"]}
    assert timed(stack, "DELETE", f"{AUTH}/roles/grow:*").status_code == 204
    assert timed(stack, "GET", f"{AUTH}/scopes/current", credentials=victim).json_body["scopes"] == [
        "assume:grow:z",
        "queue:status:*",
    ]
    assert_error(timed(stack, "GET", task, credentials=None), 403, "InsufficientScopes", "status", "is missing")


def test_a_role_growing_only_for_some_parameters_is_stored_but_requests_using_it_fail_closed(stack: Harness) -> None:
    # ab* re-enters itself only for a parameter starting with `b`: no check of the role's own scopes
    # sees it, so the bound when expanding for a request is what holds.
    assert (
        stack.call("PUT", f"{AUTH}/roles/ab*", {"description": "d", "scopes": ["assume:a<..><..>"]}).status_code == 200
    )
    r = timed(stack, "POST", f"{AUTH}/scopes/expand", {"scopes": ["assume:abbb"]}, credentials=None)
    assert_error(r, 400, "InputError", "expandScopes", "too large")
    # A client that would assume it is refused before it is stored.
    body = {"description": "d", "expires": expires(stack), "scopes": ["assume:abbb"]}
    assert_error(timed(stack, "PUT", f"{AUTH}/clients/grower", body), 400, "InputError", "createClient", "too large")
    assert client_ids(stack) == []


def test_racing_role_writes_may_store_roles_beyond_the_bound_and_requests_then_fail_closed(
    stack: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each write checks the roles it read: q* written between p*'s read and its write is not seen.
    def inner() -> None:
        r = stack.call("PUT", f"{AUTH}/roles/q*", {"description": "d", "scopes": ["assume:p<..>"]})
        assert r.status_code == 200, r.body

    interrupting = Interrupting(stack.c.auth.store, at=2, interrupt=inner)
    monkeypatch.setattr(stack.c.auth, "store", interrupting)
    monkeypatch.setattr(stack.c.auth_admin, "store", interrupting)
    r = stack.call("PUT", f"{AUTH}/roles/p*", {"description": "d", "scopes": ["assume:q<..><..>"]})
    assert r.status_code == 200, r.body
    assert sorted(role.role_id for role in stack.c.auth.store.all_roles()) == ["p*", "q*"]
    r = timed(stack, "POST", f"{AUTH}/scopes/expand", {"scopes": ["assume:p1"]}, credentials=None)
    assert_error(r, 400, "InputError", "expandScopes", "too large")
    assert_error(timed(stack, "GET", f"{AUTH}/roles"), 400, "InputError", "listRoles", "too large")
    # Any further role write says what is wrong; updating either role out of the loop repairs it.
    r = timed(stack, "PUT", f"{AUTH}/roles/other", {"description": "d", "scopes": []})
    assert_error(r, 400, "InputError", "createRole", "too large")
    assert timed(stack, "POST", f"{AUTH}/roles/q*", {"description": "d", "scopes": []}).status_code == 200
    assert timed(stack, "POST", f"{AUTH}/scopes/expand", {"scopes": ["assume:p1"]}).json_body["scopes"] == [
        "assume:p1",
        "assume:q11",
    ]


# --- scope work quadratic in what anyone sends ----------------------------------------------------
def distinct_stars(n: int) -> list[str]:
    return [f"assume:project:{i:05d}/*" for i in range(n)]


def test_anonymous_expand_scopes_of_20000_distinct_star_scopes_is_a_quick_400(stack: Harness) -> None:
    # This request took 38 s (every scope compared with every star) before ending in a 500.
    r = timed(stack, "POST", f"{AUTH}/scopes/expand", {"scopes": distinct_stars(20_000)}, credentials=None)
    assert_error(r, 400, "InputValidationError", "expandScopes", "1000")
    assert role_ids(stack) == [] and client_ids(stack) == []


def test_expand_scopes_at_its_cap_against_a_thousand_roles_is_quick(stack: Harness) -> None:
    now, model = format_date(stack.clock.now()), stack.c.auth.store.model  # type: ignore[attr-defined]
    with model.batch_write() as batch:  # far quicker than a thousand createRole, each checking every role
        for j in range(1000):
            scopes = json.dumps([f"queue:create-task:project:{j}", "assume:worker"])
            batch.save(
                model("role", f"project:{j:05d}/ci", description="d", scopes=scopes, created=now, lastModified=now)
            )
    store_role(stack, "worker", ["queue:claim-work:*"])
    # Loading a thousand roles from the AWS stand-in takes seconds of its own: not what is timed here.
    assert stack.call("POST", f"{AUTH}/scopes/expand", {"scopes": []}, credentials=None).status_code == 200
    r = timed(stack, "POST", f"{AUTH}/scopes/expand", {"scopes": distinct_stars(1000)}, credentials=None)
    assert r.status_code == 200, r.body
    assert len(r.json_body["scopes"]) == 1000 + 1000 + 2


def test_authorized_scopes_of_20000_scopes_are_a_quick_403(stack: Harness) -> None:
    # Checked against the client's scopes and expanded: 20,000 exceed the bound of an expansion.
    path = f"/api/queue/v1/task/{slugid.nice()}/status"
    ext = {"authorizedScopes": [f"queue:status:{i}" for i in range(20_000)]}
    r = timed(stack, "GET", path, headers=with_ext(stack, stack.credentials, "GET", path, ext))
    assert_error(r, 403, "InsufficientScopes", "status", "10000 scopes")


def test_many_authorized_or_certificate_scopes_against_many_held_stars_are_checked_quickly(stack: Harness) -> None:
    task_id = stack.create()
    held = [f"queue:get-artifact:{i}/*" for i in range(999)] + ["queue:status:*"]
    issuer = make_client(stack, "issuer", held)
    wanted = [f"queue:get-artifact:{i % 999}/{i}" for i in range(9000)] + [f"queue:status:{task_id}"]
    path = f"/api/queue/v1/task/{task_id}/status"
    r = timed(stack, "GET", path, headers=with_ext(stack, issuer, "GET", path, {"authorizedScopes": wanted}))
    assert r.status_code == 200, r.body
    now = stack.clock.now()
    temp = taskcluster.createTemporaryCredentials(
        issuer["clientId"], issuer["accessToken"], now, now + timedelta(hours=1), wanted
    )
    assert timed(stack, "GET", path, credentials=temp).status_code == 200


# --- caps on what one request may name ------------------------------------------------------------
TOO_MANY = [f"queue:status:{i}" for i in range(1001)]
TOO_LONG = ["queue:status:" + "x" * 988]  # 1001 characters


@pytest.mark.parametrize(
    ("scopes", "says"), [(TOO_MANY, "1000 items"), (TOO_LONG, "1000 characters")], ids=["many", "long"]
)
@pytest.mark.parametrize(
    ("method", "path", "name", "fields"),
    [
        ("PUT", f"{AUTH}/clients/capped", "createClient", {"description": "d", "expires": "3000-01-01T00:00:00.000Z"}),
        ("PUT", f"{AUTH}/roles/capped", "createRole", {"description": "d"}),
        ("POST", f"{AUTH}/scopes/expand", "expandScopes", {}),
    ],
    ids=["createClient", "createRole", "expandScopes"],
)
def test_a_body_past_a_scope_cap_is_a_quick_400_and_stores_nothing(
    stack: Harness, method: str, path: str, name: str, fields: dict[str, Any], scopes: list[str], says: str
) -> None:
    r = timed(stack, method, path, {**fields, "scopes": scopes}, credentials=None)
    assert_error(r, 400, "InputValidationError", name, says)
    assert role_ids(stack) == [] and client_ids(stack) == []
    # at the caps, it is accepted
    at_caps = [f"queue:status:{i}" for i in range(999)] + ["queue:status:" + "x" * 987]
    assert timed(stack, method, path, {**fields, "scopes": at_caps}).status_code == 200


def test_a_description_past_its_cap_is_a_400(stack: Harness) -> None:
    r = timed(stack, "PUT", f"{AUTH}/roles/wordy", {"description": "x" * 10241, "scopes": []})
    assert_error(r, 400, "InputValidationError", "createRole", "10240")
    assert role_ids(stack) == []


@pytest.mark.parametrize(
    ("path", "name", "fields"),
    [
        (f"{AUTH}/clients/huge", "createClient", {"description": "d", "expires": "3000-01-01T00:00:00.000Z"}),
        (f"{AUTH}/roles/huge", "createRole", {"description": "d"}),
    ],
    ids=["client", "role"],
)
def test_a_client_or_role_too_large_for_a_table_row_is_a_400_not_a_500(
    stack: Harness, path: str, name: str, fields: dict[str, Any]
) -> None:
    # Within the caps, but past DynamoDB's 400 KB item (which refused the write: a 500).
    scopes = [f"{i:04d}:" + "x" * 995 for i in range(1000)]
    assert_error(timed(stack, "PUT", path, {**fields, "scopes": scopes}), 400, "InputError", name, "bytes")
    assert role_ids(stack) == [] and client_ids(stack) == []


# --- creates racing for one id --------------------------------------------------------------------
@pytest.mark.parametrize("at", [1, 2, 3])
def test_racing_creates_of_one_role_store_exactly_one_and_tell_the_other_409(
    stack: Harness, monkeypatch: pytest.MonkeyPatch, at: int
) -> None:
    def create(scopes: list[str]) -> Callable[[], Any]:
        return lambda: stack.call("PUT", f"{AUTH}/roles/racer", {"description": scopes[0], "scopes": scopes})

    outer, inner = race(stack, monkeypatch, at, create(["outer:a", "outer:b"]), create(["inner:a"]))
    winner, loser = (outer, inner) if outer.status_code == 200 else (inner, outer)
    assert winner.status_code == 200, (at, outer.body, inner.body)
    assert_error(loser, 409, "RequestConflict", "createRole", "already exists")
    stored = stack.call("GET", f"{AUTH}/roles/racer").json_body
    assert (stored["description"], stored["scopes"]) == (winner.json_body["description"], winner.json_body["scopes"])
    assert role_ids(stack) == ["racer"]
    # nothing of the loser's is granted
    expanded = stack.call("POST", f"{AUTH}/scopes/expand", {"scopes": ["assume:racer"]}).json_body["scopes"]
    assert expanded == ["assume:racer", *winner.json_body["scopes"]]


@pytest.mark.parametrize("at", [1, 2])
def test_racing_creates_of_one_client_store_exactly_one_and_tell_the_other_409(
    stack: Harness, monkeypatch: pytest.MonkeyPatch, at: int
) -> None:
    def create(description: str, scopes: list[str]) -> Callable[[], Any]:
        body = {"description": description, "expires": expires(stack), "scopes": scopes}
        return lambda: stack.call("PUT", f"{AUTH}/clients/racer", body)

    outer, inner = race(stack, monkeypatch, at, create("outer", ["queue:status:*"]), create("inner", []))
    winner, loser = (outer, inner) if outer.status_code == 200 else (inner, outer)
    assert winner.status_code == 200, (at, outer.body, inner.body)
    body = assert_error(loser, 409, "RequestConflict", "createClient", "already exists")
    assert "accessToken" not in body
    assert stack.call("GET", f"{AUTH}/clients/racer").json_body["description"] == winner.json_body["description"]
    assert client_ids(stack) == ["racer"]
    creds = {"clientId": "racer", "accessToken": winner.json_body["accessToken"]}
    current = stack.call("GET", f"{AUTH}/scopes/current", credentials=creds)
    assert current.json_body["scopes"] == winner.json_body["expandedScopes"]


@pytest.mark.parametrize("reset_inside", [True, False], ids=["reset-inside-update", "update-inside-reset"])
def test_an_update_racing_a_token_reset_neither_brings_the_old_token_back_nor_is_undone(
    stack: Harness, monkeypatch: pytest.MonkeyPatch, reset_inside: bool
) -> None:
    old = make_client(stack, "leaked", ["queue:status:*"])
    update_body = {"description": "updated", "expires": expires(stack), "scopes": ["queue:status:*"]}

    def reset() -> Any:
        return stack.call("POST", f"{AUTH}/clients/leaked/reset")

    def update() -> Any:
        return stack.call("POST", f"{AUTH}/clients/leaked", update_body)

    # Each reads the client, then writes (store calls 1 and 2): the inner request runs in between.
    outer, inner = race(stack, monkeypatch, 2, *((update, reset) if reset_inside else (reset, update)))
    reset_r, update_r = (inner, outer) if reset_inside else (outer, inner)
    assert reset_r.status_code == 200, reset_r.body
    if reset_inside:  # the update would write the old seed back: refused, and told so
        assert_error(update_r, 409, "RequestConflict", "updateClient", "try again")
        assert stack.call("GET", f"{AUTH}/clients/leaked").json_body["description"] == "d"
    else:  # the reset writes only the seed: the update made meanwhile stands
        assert update_r.status_code == 200, update_r.body
        assert stack.call("GET", f"{AUTH}/clients/leaked").json_body["description"] == "updated"
    stack.advance(11)  # past the client cache
    new = {"clientId": "leaked", "accessToken": reset_r.json_body["accessToken"]}
    assert stack.call("GET", f"{AUTH}/scopes/current", credentials=new).status_code == 200
    assert_error(
        stack.call("GET", f"{AUTH}/scopes/current", credentials=old), 401, "AuthenticationFailed", "currentScopes"
    )
