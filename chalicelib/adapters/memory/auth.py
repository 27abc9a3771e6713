"""The in-memory auth table: MemoryAuthStore, clients and roles, each write conditional.

It stands for adapters/auth_store.py: a write refused answers 409 or 404 as the adapter's does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime

from ...domain.credentials import Client, Role
from ...domain.errors import RequestConflict, ResourceNotFound
from ..pagination import equal, prefixed
from .common import _check_fits, _ms, _query, _start, _token


def _stored_client(c: Client) -> Client:
    return replace(
        c,
        scopes=tuple(c.scopes),
        expires=_ms(c.expires),
        created=_ms(c.created),
        last_modified=_ms(c.last_modified),
        last_rotated=_ms(c.last_rotated),
    )


def _stored_role(r: Role) -> Role:
    return replace(r, scopes=tuple(r.scopes), created=_ms(r.created), last_modified=_ms(r.last_modified))


class MemoryAuthStore:
    """The auth table (adapters/auth_store.py): clients and roles, each write conditional."""

    def __init__(self) -> None:
        self._clients: dict[str, Client] = {}
        self._roles: dict[str, Role] = {}
        self._lock = threading.Lock()

    def get_client(self, client_id: str) -> Client | None:
        with self._lock:
            return self._clients.get(client_id)

    def put_client(self, client: Client, *, create: bool, seed_was: str | None = None) -> None:
        _check_fits(f"Client {client.client_id}", {"description": client.description, "scopes": client.scopes})
        with self._lock:
            stored = self._clients.get(client.client_id)
            ok = stored is None if create else stored is not None and (not seed_was or stored.seed == seed_was)
            if not ok:
                raise self._refused("Client", client.client_id, create, stored is not None)
            self._clients[client.client_id] = _stored_client(client)

    def rotate_seed(self, client_id: str, seed_was: str, seed: str, when: datetime) -> Client:
        with self._lock:
            stored = self._clients.get(client_id)
            if stored is None or stored.seed != seed_was:
                raise self._refused("Client", client_id, False, stored is not None)
            rotated = _stored_client(replace(stored, seed=seed, last_rotated=when, last_modified=when))
            self._clients[client_id] = rotated
        return rotated

    def delete_client(self, client_id: str) -> None:
        with self._lock:
            self._clients.pop(client_id, None)

    def list_clients(self, prefix: str, limit: int, token: str | None) -> tuple[list[Client], str | None]:
        names = ("kind", "id")
        start = _start(token, names, ("id",), {"kind": equal("client"), "id": prefixed(prefix)})
        with self._lock:
            rows = [((i,), c) for i, c in self._clients.items() if i.startswith(prefix)]
        clients, last = _query(rows, start, limit)
        return clients, _token(names, ("client", *last) if last else None)

    def get_role(self, role_id: str) -> Role | None:
        with self._lock:
            return self._roles.get(role_id)

    def put_role(self, role: Role, *, create: bool) -> None:
        _check_fits(f"Role {role.role_id}", {"description": role.description, "scopes": role.scopes})
        with self._lock:
            exists = role.role_id in self._roles
            if exists == create:
                raise self._refused("Role", role.role_id, create, exists)
            self._roles[role.role_id] = _stored_role(role)

    def delete_role(self, role_id: str) -> None:
        with self._lock:
            self._roles.pop(role_id, None)

    def all_roles(self) -> Iterator[Role]:
        with self._lock:
            roles = sorted(self._roles.values(), key=lambda r: r.role_id)
        return iter(roles)

    @staticmethod
    def _refused(what: str, item_id: str, create: bool, exists: bool) -> ResourceNotFound | RequestConflict:
        if create:
            return RequestConflict(f"{what} {item_id} already exists")
        if not exists:
            return ResourceNotFound(f"{what} {item_id} not found")
        return RequestConflict(f"{what} {item_id} changed while this request ran; try again")
