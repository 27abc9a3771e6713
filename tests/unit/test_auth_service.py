"""Authentication and the auth API's administration (services/auth.py, services/auth_admin.py)
on the in-memory fakes: clients created and used with Hawk, roles expanded, tokens reset, the
per-process cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.adapters.memory import memory_container, memory_fakes
from chalicelib.clock import FakeClock
from chalicelib.container import Container
from chalicelib.domain.errors import AuthenticationFailed, InputError, RequestConflict, ResourceNotFound
from chalicelib.domain.model import format_date
from chalicelib.services.auth import SignedRequest
from tests.harness import TEST_SETTINGS, hawk_header

T0 = datetime(2030, 1, 1, tzinfo=UTC)
PATH = "/api/queue/v1/task/abc"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def c(clock: FakeClock) -> Container:
    return memory_container(TEST_SETTINGS, clock)


def signed(clock: FakeClock, client_id: str, token: str) -> SignedRequest:
    credentials = {"clientId": client_id, "accessToken": token}
    header = hawk_header(credentials, "GET", f"http://localhost{PATH}", b"", {}, clock.now().timestamp())
    return SignedRequest("GET", (PATH,), "localhost", 80, authorization=header)


def new_client(c: Container, client_id: str, *scopes: str, days: int = 1) -> str:
    body = {"description": "d", "scopes": list(scopes), "expires": format_date(c.clock.now() + timedelta(days=days))}
    token = c.auth_admin.create_client(client_id, body).access_token
    assert token is not None
    return token


def test_a_created_client_authenticates_with_its_scopes_expanded(c: Container, clock: FakeClock) -> None:
    c.auth_admin.create_role("project:ci", {"description": "ci", "scopes": ["queue:create-task:*"]})
    token = new_client(c, "ci/bot", "assume:project:ci", "queue:get-artifact:*")
    caller = c.auth.authenticate(signed(clock, "ci/bot", token))
    assert caller.client_id == "ci/bot"
    assert set(caller.scopes) >= {"assume:project:ci", "queue:create-task:*", "queue:get-artifact:*"}


def test_a_wrong_token_and_an_unknown_client_fail_authentication(c: Container, clock: FakeClock) -> None:
    new_client(c, "ci/bot")
    with pytest.raises(AuthenticationFailed):
        c.auth.authenticate(signed(clock, "ci/bot", "not-its-token"))
    with pytest.raises(AuthenticationFailed):
        c.auth.authenticate(signed(clock, "nobody", "x"))


def test_the_root_client_is_configured_not_stored(c: Container, clock: FakeClock) -> None:
    caller = c.auth.authenticate(signed(clock, "root", TEST_SETTINGS.root_access_token))
    assert caller.scopes == ("*",)
    with pytest.raises(InputError):
        new_client(c, "root")


def test_a_client_id_is_created_once(c: Container) -> None:
    new_client(c, "ci/bot")
    with pytest.raises(RequestConflict):
        new_client(c, "ci/bot")


def test_a_reset_token_replaces_the_old_one_at_once_here(c: Container, clock: FakeClock) -> None:
    old = new_client(c, "ci/bot")
    c.auth.authenticate(signed(clock, "ci/bot", old))  # cached by this process
    new = c.auth_admin.reset_access_token("ci/bot").access_token
    assert new is not None and new != old
    with pytest.raises(AuthenticationFailed):
        c.auth.authenticate(signed(clock, "ci/bot", old))
    assert c.auth.authenticate(signed(clock, "ci/bot", new)).client_id == "ci/bot"


def test_an_expired_client_fails_and_a_deleted_one_is_gone(c: Container, clock: FakeClock) -> None:
    token = new_client(c, "ci/bot", days=1)
    clock.advance(timedelta(days=1, seconds=1).total_seconds())
    with pytest.raises(AuthenticationFailed):
        c.auth.authenticate(signed(clock, "ci/bot", token))
    c.auth_admin.delete_client("ci/bot")
    c.auth_admin.delete_client("ci/bot")
    with pytest.raises(ResourceNotFound):
        c.auth_admin.client("ci/bot")


def test_clients_are_listed_by_prefix(c: Container) -> None:
    for client_id in ["team/b", "team/a", "other/c"]:
        new_client(c, client_id)
    views, token = c.auth_admin.list_clients("team/", 10, None)
    assert [v.client.client_id for v in views] == ["team/a", "team/b"] and token is None


def test_a_role_changed_by_another_process_applies_here_after_the_cache_time(clock: FakeClock) -> None:
    tables = memory_fakes(TEST_SETTINGS, clock)
    here, there = (memory_container(TEST_SETTINGS, clock, fakes=tables) for _ in range(2))
    here.auth_admin.create_role("r", {"description": "", "scopes": ["a:1"]})
    token = new_client(here, "ci/bot", "assume:r")
    assert "a:1" in here.auth.authenticate(signed(clock, "ci/bot", token)).scopes
    there.auth_admin.update_role("r", {"description": "", "scopes": ["b:2"]})
    assert "a:1" in here.auth.authenticate(signed(clock, "ci/bot", token)).scopes
    clock.advance(TEST_SETTINGS.auth_cache_seconds)
    scopes = here.auth.authenticate(signed(clock, "ci/bot", token)).scopes
    assert "b:2" in scopes and "a:1" not in scopes
