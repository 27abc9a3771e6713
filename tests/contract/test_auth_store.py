"""AuthStore: clients and roles; a create on a taken id is 409, a change to a missing one 404."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.credentials import Client, Role
from chalicelib.domain.errors import InputError, RequestConflict, ResourceNotFound
from chalicelib.services.auth import AuthStore

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def client(client_id: str, seed: str = "s" * 44, **changes: object) -> Client:
    made = Client(client_id, "a client", ("queue:*", "assume:r"), T0 + timedelta(days=1), T0, T0, T0, seed)
    return replace(made, **changes)  # type: ignore[arg-type]


def role(role_id: str, *scopes: str) -> Role:
    return Role(role_id, "a role", scopes or ("queue:get-task:*",), T0, T0)


def every_client(auth: AuthStore, prefix: str, limit: int) -> list[str]:
    ids: list[str] = []
    token: str | None = None
    while True:
        page, token = auth.list_clients(prefix, limit, token)
        assert len(page) <= limit
        ids += [c.client_id for c in page]
        if token is None:
            return ids


# --- clients --------------------------------------------------------------------------------------
def test_an_unknown_client_is_none(auth: AuthStore) -> None:
    assert auth.get_client("nobody") is None


def test_a_created_client_reads_back_whole(auth: AuthStore) -> None:
    made = client("c/1", disabled=True, delete_on_expiration=True, last_rotated=T0 + timedelta(seconds=1))
    auth.put_client(made, create=True)
    assert auth.get_client("c/1") == made


def test_creating_a_taken_client_id_is_a_conflict_that_stores_nothing(auth: AuthStore) -> None:
    auth.put_client(client("c"), create=True)
    with pytest.raises(RequestConflict):
        auth.put_client(client("c", description="second"), create=True)
    stored = auth.get_client("c")
    assert stored is not None and stored.description == "a client"


def test_updating_a_client_that_does_not_exist_is_not_found(auth: AuthStore) -> None:
    with pytest.raises(ResourceNotFound):
        auth.put_client(client("ghost"), create=False)
    assert auth.get_client("ghost") is None


def test_an_update_read_with_a_seed_since_reset_is_a_conflict(auth: AuthStore) -> None:
    auth.put_client(client("c", seed="old"), create=True)
    auth.rotate_seed("c", "old", "new", T0 + timedelta(minutes=1))
    with pytest.raises(RequestConflict):
        auth.put_client(client("c", seed="old", description="stale"), create=False, seed_was="old")
    auth.put_client(client("c", seed="new", description="fresh"), create=False, seed_was="new")
    stored = auth.get_client("c")
    assert stored is not None and (stored.seed, stored.description) == ("new", "fresh")


def test_rotating_the_seed_changes_only_the_seed_and_its_dates(auth: AuthStore) -> None:
    auth.put_client(client("c", seed="old"), create=True)
    when = T0 + timedelta(hours=1)
    rotated = auth.rotate_seed("c", "old", "new", when)
    assert rotated == client("c", seed="new", last_rotated=when, last_modified=when)
    assert auth.get_client("c") == rotated


def test_rotating_with_a_stale_seed_is_a_conflict_and_a_missing_client_not_found(auth: AuthStore) -> None:
    auth.put_client(client("c", seed="old"), create=True)
    auth.rotate_seed("c", "old", "new", T0)
    with pytest.raises(RequestConflict):
        auth.rotate_seed("c", "old", "newer", T0)
    with pytest.raises(ResourceNotFound):
        auth.rotate_seed("ghost", "old", "new", T0)
    stored = auth.get_client("c")
    assert stored is not None and stored.seed == "new"


def test_deleting_a_client_is_idempotent(auth: AuthStore) -> None:
    auth.put_client(client("c"), create=True)
    auth.delete_client("c")
    auth.delete_client("c")
    assert auth.get_client("c") is None


def test_clients_are_listed_by_id_under_a_prefix_page_by_page(auth: AuthStore) -> None:
    for client_id in ["team/e", "team/a", "other/x", "team/c", "team/b", "team/d", "teams"]:
        auth.put_client(client(client_id), create=True)
    assert every_client(auth, "team/", 2) == ["team/a", "team/b", "team/c", "team/d", "team/e"]
    assert every_client(auth, "", 3) == sorted(["team/e", "team/a", "other/x", "team/c", "team/b", "team/d", "teams"])


def test_a_listing_token_is_refused_under_another_prefix(auth: AuthStore) -> None:
    for client_id in ["team/a", "team/b"]:
        auth.put_client(client(client_id), create=True)
    _, token = auth.list_clients("team/", 1, None)
    assert token is not None
    with pytest.raises(InputError):
        auth.list_clients("other/", 1, token)


def test_a_client_too_large_to_store_is_refused_as_input(auth: AuthStore) -> None:
    huge = client("big", scopes=tuple(f"queue:{i:04}:" + "x" * 990 for i in range(500)))
    with pytest.raises(InputError):
        auth.put_client(huge, create=True)
    assert auth.get_client("big") is None


# --- roles ----------------------------------------------------------------------------------------
def test_roles_are_created_once_read_back_and_listed_by_id(auth: AuthStore) -> None:
    auth.put_role(role("b", "x:1", "x:2"), create=True)
    auth.put_role(role("a"), create=True)
    with pytest.raises(RequestConflict):
        auth.put_role(role("a", "other"), create=True)
    assert auth.get_role("b") == role("b", "x:1", "x:2")
    assert [r.role_id for r in auth.all_roles()] == ["a", "b"]


def test_updating_a_missing_role_is_not_found_and_an_existing_one_replaced(auth: AuthStore) -> None:
    with pytest.raises(ResourceNotFound):
        auth.put_role(role("ghost"), create=False)
    auth.put_role(role("r"), create=True)
    auth.put_role(role("r", "new:scope"), create=False)
    assert auth.get_role("r") == role("r", "new:scope")


def test_deleting_a_role_is_idempotent(auth: AuthStore) -> None:
    auth.put_role(role("r"), create=True)
    auth.delete_role("r")
    auth.delete_role("r")
    assert auth.get_role("r") is None
    assert list(auth.all_roles()) == []
