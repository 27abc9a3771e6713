"""The auth API's administration: clients (create, update, reset their access token, delete, read,
list), roles (create, update, delete, read, list) and expandScopes. Each answers domain values
(domain/credentials.py: ClientView, RoleView) that the handlers render.

Expansion is bounded (domain/scopes.py): createRole and updateRole refuse a role that would make
any role's expansion exceed the bound, or listRoles' one answer exceed a response's budget
(400), and a client or a listing whose scopes expand beyond
it is a 400, as is expandScopes. A write drops what this process cached of the client or the role
set (services/auth.py); other processes notice within their cache time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..clock import Clock
from ..domain.credentials import Client, ClientView, Role, RoleView, new_seed
from ..domain.dispatch import DEFAULT_RESPONSE_BUDGET, escaped_json_bytes
from ..domain.errors import InputError, ResourceNotFound
from ..domain.model import parse_date
from ..domain.scopes import MAX_SCOPE_LENGTH, MAX_SCOPES_PER_SET, ExpansionTooLarge, RoleIndex, expand
from .auth import Auth
from .ports import AuthStore


class AuthAdmin:
    def __init__(self, store: AuthStore, clock: Clock, auth: Auth) -> None:
        """`auth`: the role set it caches, the caches a write invalidates, access tokens."""
        self.store = store
        self.clock = clock
        self.auth = auth

    # --- scopes ---------------------------------------------------------------------------------
    def expand(self, scopes: Sequence[str], roles: RoleIndex | None = None) -> list[str]:
        """An expansion beyond the bound is the request's fault or the roles', a 400."""
        try:
            return expand(scopes, self.auth.roles() if roles is None else roles)
        except ExpansionTooLarge as err:
            raise InputError(f"Scope expansion is too large: {err}") from None

    # --- clients --------------------------------------------------------------------------------
    def client(self, client_id: str) -> ClientView:
        client = self._stored_client(client_id)
        return ClientView(client, tuple(self.expand(client.scopes)))

    def list_clients(self, prefix: str, limit: int, token: str | None) -> tuple[list[ClientView], str | None]:
        clients, next_token = self.store.list_clients(prefix, limit, token)
        roles = self.auth.roles()
        return [ClientView(c, tuple(self.expand(c.scopes, roles))) for c in clients], next_token

    def create_client(self, client_id: str, body: Mapping[str, Any]) -> ClientView:
        self._check_client_id(client_id)
        now = self.clock.now()
        client = Client(
            client_id=client_id,
            description=body["description"],
            scopes=_checked_scopes(body.get("scopes", [])),
            expires=parse_date(body["expires"]),
            created=now,
            last_modified=now,
            last_rotated=now,
            seed=new_seed(),
            delete_on_expiration=bool(body.get("deleteOnExpiration", False)),
        )
        expanded = self.expand(client.scopes)  # before the write: a refused client leaves nothing
        self.store.put_client(client, create=True)
        return self._with_token(client, expanded)

    def update_client(self, client_id: str, body: Mapping[str, Any]) -> ClientView:
        stored = self._stored_client(client_id)
        client = replace(
            stored,
            description=body["description"],
            scopes=_checked_scopes(body.get("scopes", [])),
            expires=parse_date(body["expires"]),
            delete_on_expiration=bool(body.get("deleteOnExpiration", False)),
            last_modified=self.clock.now(),
        )
        expanded = self.expand(client.scopes)
        self.store.put_client(client, create=False, seed_was=stored.seed)
        self.auth.forget(client_id)
        return ClientView(client, tuple(expanded))

    def reset_access_token(self, client_id: str) -> ClientView:
        stored = self._stored_client(client_id)
        self.expand(stored.scopes)  # refused before the write: a new token nobody is told of locks the client out
        client = self.store.rotate_seed(client_id, stored.seed, new_seed(), self.clock.now())
        self.auth.forget(client_id)
        return self._with_token(client, self.expand(client.scopes))

    def delete_client(self, client_id: str) -> None:
        self._check_client_id(client_id)
        self.store.delete_client(client_id)
        self.auth.forget(client_id)

    def _stored_client(self, client_id: str) -> Client:
        client = self.store.get_client(client_id) if client_id != self.auth.root.client_id else None
        if client is None:
            raise ResourceNotFound(f"Client {client_id} not found")
        return client

    def _with_token(self, client: Client, expanded: Sequence[str]) -> ClientView:
        return ClientView(client, tuple(expanded), self.auth.access_token(client))

    def _check_client_id(self, client_id: str) -> None:
        root = self.auth.root
        if not root.token_key:
            raise InputError("No token key is configured (set a root access token): clients cannot be stored")
        if client_id == root.client_id:
            raise InputError(f"{client_id} is the deployment's root client; it is configured, not stored")

    # --- roles ----------------------------------------------------------------------------------
    def role(self, role_id: str) -> RoleView:
        role = self.store.get_role(role_id)
        if role is None:
            raise ResourceNotFound(f"Role {role_id} not found")
        return RoleView(role, tuple(self.expand(role.scopes)))

    def list_roles(self) -> list[RoleView]:
        roles = list(self.store.all_roles())
        table = RoleIndex({r.role_id: r.scopes for r in roles})
        return [RoleView(r, tuple(self.expand(r.scopes, table))) for r in roles]

    def create_role(self, role_id: str, body: Mapping[str, Any], budget: int = DEFAULT_RESPONSE_BUDGET) -> RoleView:
        return self._put_role(role_id, body, budget, create=True)

    def update_role(self, role_id: str, body: Mapping[str, Any], budget: int = DEFAULT_RESPONSE_BUDGET) -> RoleView:
        return self._put_role(role_id, body, budget, create=False)

    def _put_role(self, role_id: str, body: Mapping[str, Any], budget: int, create: bool) -> RoleView:
        """Stores the role unless, with it in place, a role's expansion exceeds the bound or
        listRoles (one unpaged answer, as Taskcluster defines it) would exceed `budget` bytes."""
        now = self.clock.now()
        existing = None if create else self.store.get_role(role_id)
        if not create and existing is None:
            raise ResourceNotFound(f"Role {role_id} not found")
        role = Role(
            role_id=role_id,
            description=body["description"],
            scopes=_checked_scopes(body["scopes"]),
            created=existing.created if existing else now,
            last_modified=now,
        )
        roles = {r.role_id: r for r in self.store.all_roles()}
        roles[role_id] = role
        table = RoleIndex({r.role_id: r.scopes for r in roles.values()})
        # Every role, not only this one: another role's expansion may pass through it.
        listing = 2  # listRoles' brackets
        for other in roles.values():
            try:
                expanded = expand(other.scopes, table)
            except ExpansionTooLarge as err:
                raise InputError(
                    f"With role {role_id} as given, the expansion of role {other.role_id} is too large: {err}"
                ) from None
            listing += escaped_json_bytes(RoleView(other, tuple(expanded)).to_json()) + 1
        if listing > budget:
            raise InputError(
                f"With role {role_id} as given, listRoles would answer {listing} bytes, more than a response"
                f" holds ({budget}): remove or shorten roles first"
            )
        self.store.put_role(role, create=create)
        self.auth.forget(roles=True)
        return RoleView(role, tuple(expand(role.scopes, table)))

    def delete_role(self, role_id: str) -> None:
        self.store.delete_role(role_id)
        self.auth.forget(roles=True)


def _checked_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    # The request schemas say the same; repeated here for callers that did not come through them.
    if len(scopes) > MAX_SCOPES_PER_SET:
        raise InputError(f"{len(scopes)} scopes; at most {MAX_SCOPES_PER_SET} are allowed")
    for scope in scopes:
        if len(scope) > MAX_SCOPE_LENGTH:
            raise InputError(f"A scope of {len(scope)} characters; at most {MAX_SCOPE_LENGTH} are allowed")
        if scope.endswith("**"):
            raise InputError(f"Scope {scope!r} ends with '**', which Taskcluster does not allow")
    return tuple(scopes)
