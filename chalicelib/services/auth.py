"""Authentication and authorization (Taskcluster's auth service, in-process), and the auth API's use cases.

`authenticate` turns a signed request into a Caller with expanded scopes: no credentials → the
`anonymous` role; a Hawk header or bewit → the client (the root client from configuration, or a
stored one), or temporary credentials checked against their issuer; `authorizedScopes` narrows
the result. `authorize` checks a caller against an endpoint's scope expression.

Expansion is bounded (domain/scopes.py): createRole and updateRole refuse a role that would make
any role's expansion exceed the bound (400), and should stored roles exceed it anyway (written
another way, or two racing role writes each checked without the other), requests fail closed —
the caller's scopes cannot be known, so nothing is authorized (403), and expandScopes is a 400.

Clients and the role set are cached per process for `cache_seconds` (a Lambda container lives
for many requests): a change made through another process takes effect within that time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Protocol

from ..clock import Clock
from ..domain import hawk
from ..domain.credentials import (
    CLIENT_ID,
    Certificate,
    Client,
    CredentialError,
    Role,
    client_token,
    issue_temporary,
    new_seed,
    parse_ext,
)
from ..domain.errors import AuthenticationFailed, InputError, InsufficientScopes, ResourceNotFound
from ..domain.model import Task, parse_date
from ..domain.scopes import (
    MAX_SCOPE_LENGTH,
    MAX_SCOPES_PER_SET,
    ExpansionTooLarge,
    RoleIndex,
    ScopeExpr,
    ScopeSet,
    expand,
    render,
    unsatisfied,
)

ANONYMOUS_ROLE = "anonymous"


class AuthStore(Protocol):
    def get_client(self, client_id: str) -> Client | None: ...

    def put_client(self, client: Client, *, create: bool, seed_was: str | None = None) -> None: ...

    def rotate_seed(self, client_id: str, seed_was: str, seed: str, when: datetime) -> Client: ...

    def delete_client(self, client_id: str) -> None: ...

    def list_clients(self, prefix: str, limit: int, token: str | None) -> tuple[list[Client], str | None]: ...

    def get_role(self, role_id: str) -> Role | None: ...

    def put_role(self, role: Role, *, create: bool) -> None: ...

    def delete_role(self, role_id: str) -> None: ...

    def all_roles(self) -> Any: ...


@dataclass(frozen=True)
class SignedRequest:
    """A request as its signature sees it. `resources` are the URIs (path + query, percent-encoded,
    without a bewit) the client may have signed: the front door may hand over the query parsed, so
    the caller lists each faithful re-encoding and the MAC must match one of them."""

    method: str
    resources: tuple[str, ...]
    host: str
    port: int
    authorization: str | None = None
    bewit: str | None = None
    content_type: str = ""
    body: bytes = b""


@dataclass(frozen=True)
class Caller:
    client_id: str | None  # None: no credentials (the anonymous role)
    scopes: tuple[str, ...]  # expanded, hence normalized

    @property
    def name(self) -> str:
        return self.client_id or "anonymous"

    @cached_property
    def held(self) -> ScopeSet:
        return ScopeSet(self.scopes, normalized=True)


@dataclass(frozen=True)
class Principal:
    token: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class RootCredentials:
    client_id: str
    access_token: str
    token_key: str


class Auth:
    def __init__(self, store: AuthStore, clock: Clock, root: RootCredentials, cache_seconds: float = 10.0) -> None:
        self.store = store
        self.clock = clock
        self.root = root
        self.cache = timedelta(seconds=cache_seconds)
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[datetime, Principal]] = {}
        self._roles: tuple[datetime, RoleIndex] | None = None

    # --- authentication -------------------------------------------------------------------------
    def authenticate(self, req: SignedRequest) -> Caller:
        if req.authorization and req.bewit:
            raise AuthenticationFailed("Cannot use both a Hawk header and a bewit")
        try:
            if not req.authorization and req.bewit is None:
                return Caller(None, tuple(self._expand([f"assume:{ANONYMOUS_ROLE}"])))
            return self._authenticate(req)
        except (hawk.HawkError, CredentialError) as err:
            raise AuthenticationFailed(str(err)) from None
        except ExpansionTooLarge as err:
            raise InsufficientScopes(
                f"The caller's scopes cannot be determined, so none are granted: the roles it assumes "
                f"expand beyond the bound ({err})"
            ) from None

    def _authenticate(self, req: SignedRequest) -> Caller:
        bewit = req.bewit is not None
        sig = hawk.parse_bewit(req.bewit or "") if bewit else hawk.parse_header(req.authorization or "")
        ext = parse_ext(sig.ext)
        now = self.clock.now()
        if ext.certificate is not None:
            cert = Certificate.from_json(ext.certificate)
            issuer_id = cert.issuer_of(sig.id)
            issuer = self._principal(issuer_id)
            key = cert.check(sig.id, issuer.token, int(now.timestamp() * 1000))
            held = ScopeSet(issuer.scopes, normalized=True)  # expanded, as every principal's
            if cert.issuer is not None and not held.satisfies(f"auth:create-client:{sig.id}"):
                raise CredentialError(f"ext.certificate issuer {issuer_id} lacks auth:create-client:{sig.id}")
            if not all(held.satisfies(s) for s in cert.scopes):
                raise CredentialError("ext.certificate issuer lacks scopes in the certificate")
            scopes = tuple(self._expand(cert.scopes))
        else:
            principal = self._principal(sig.id)
            key, scopes = principal.token, principal.scopes
        self._verify(key, sig, req, now.timestamp(), bewit)
        if ext.authorized_scopes is not None:
            held = ScopeSet(scopes, normalized=True)
            if not all(held.satisfies(s) for s in ext.authorized_scopes):
                raise CredentialError("ext.authorizedScopes must be satisfied by the client's scopes")
            scopes = tuple(self._expand(ext.authorized_scopes))
        return Caller(sig.id, scopes)

    @staticmethod
    def _verify(key: str, sig: hawk.Signature, req: SignedRequest, now: float, bewit: bool) -> None:
        failure = hawk.HawkError("Bad mac")
        for resource in req.resources:
            target = hawk.Target(req.method, resource, req.host, req.port)
            try:
                if bewit:
                    hawk.verify_bewit(key, sig, target, now)
                else:
                    hawk.verify_header(key, sig, target, now, req.content_type, req.body)
                return
            except hawk.HawkError as err:
                failure = err
        raise failure

    def _principal(self, client_id: str) -> Principal:
        if client_id == self.root.client_id and self.root.access_token:
            return Principal(self.root.access_token, ("*",))
        if not CLIENT_ID.match(client_id):
            raise CredentialError(f"Unknown client {client_id[:100]!r}")
        now = self.clock.now()
        with self._lock:
            cached = self._clients.get(client_id)
        if cached is not None and now - cached[0] < self.cache:
            return cached[1]
        client = self.store.get_client(client_id)
        if client is None:
            raise CredentialError(f"Unknown client {client_id}")
        if client.disabled:
            raise CredentialError(f"Client {client_id} is disabled")
        if client.expires <= now:
            raise CredentialError(f"Client {client_id} has expired")
        principal = Principal(self._token(client), tuple(self._expand(client.scopes)))
        with self._lock:
            self._clients[client_id] = (now, principal)
        return principal

    # --- authorization --------------------------------------------------------------------------
    @staticmethod
    def authorize(caller: Caller, expr: ScopeExpr, params: Mapping[str, Any]) -> None:
        required = render(expr, params)
        missing = unsatisfied(required, caller.held)
        if missing is None:
            return
        raise InsufficientScopes(
            f"Client ID {caller.name} does not have sufficient scopes and is missing the following scopes:\n\n"
            f"```\n{json.dumps(missing, indent=2)}\n```\n\n"
            f"This request requires the client to satisfy the following scope expression:\n\n"
            f"```\n{json.dumps(required, indent=2)}\n```",
            required=required,
            unsatisfied=missing,
        )

    # --- roles and expansion --------------------------------------------------------------------
    def roles(self) -> RoleIndex:
        now = self.clock.now()
        with self._lock:
            if self._roles is not None and now - self._roles[0] < self.cache:
                return self._roles[1]
        roles = RoleIndex({r.role_id: r.scopes for r in self.store.all_roles()})
        with self._lock:
            self._roles = (now, roles)
        return roles

    def expand(self, scopes: Sequence[str], roles: RoleIndex | None = None) -> list[str]:
        """For the API: an expansion beyond the bound is the request's fault or the roles', a 400."""
        try:
            return self._expand(scopes, roles)
        except ExpansionTooLarge as err:
            raise InputError(f"Scope expansion is too large: {err}") from None

    def _expand(self, scopes: Sequence[str], roles: RoleIndex | None = None) -> list[str]:
        return expand(scopes, self.roles() if roles is None else roles)

    def _forget(self, client_id: str | None = None, roles: bool = False) -> None:
        with self._lock:
            if client_id is not None:
                self._clients.pop(client_id, None)
            if roles:
                self._roles = None

    # --- temporary credentials for a run ---------------------------------------------------------
    def task_credentials(self, task: Task, run_id: int) -> dict[str, str] | None:
        """Credentials its worker uses for this claimed run only, until takenUntil; None without a root token."""
        run = task.runs[run_id]
        if not self.root.access_token or run.taken_until is None:
            return None
        task_id = task.task_id
        scopes = [
            f"queue:reclaim-task:{task_id}/{run_id}",
            f"queue:resolve-task:{task_id}/{run_id}",
            f"queue:create-artifact:{task_id}/{run_id}",
            *task.definition.get("scopes", []),
        ]
        until = int(run.taken_until.timestamp())
        name = f"task-client/{task_id}/{run_id}/on/{run.worker_group}/{run.worker_id}/until/{until}"
        start = int(self.clock.now().timestamp() * 1000)
        return issue_temporary(self.root.client_id, self.root.access_token, scopes, start, until * 1000, name)

    def worker_credentials(self, client_id: str, scopes: Sequence[str], expiry: datetime) -> dict[str, str] | None:
        """Named temporary credentials for a registered worker (worker-manager's createCredentials):
        valid from 15 minutes ago (clock skew) until `expiry`; None without a root token."""
        if not self.root.access_token:
            return None
        start = int((self.clock.now() - timedelta(minutes=15)).timestamp() * 1000)
        return issue_temporary(
            self.root.client_id, self.root.access_token, scopes, start, int(expiry.timestamp() * 1000), client_id
        )

    def derived_secret(self, purpose: str) -> str:
        """A secret only this deployment can compute again (e.g. a launch's registration token)."""
        return client_token(self.root.token_key, purpose, "derived")

    # --- the auth API: clients ------------------------------------------------------------------
    def client(self, client_id: str) -> dict[str, Any]:
        client = self._stored_client(client_id)
        return client.to_json(self.expand(client.scopes))

    def list_clients(self, prefix: str, limit: int, token: str | None) -> tuple[list[dict[str, Any]], str | None]:
        clients, next_token = self.store.list_clients(prefix, limit, token)
        roles = self.roles()
        return [c.to_json(self.expand(c.scopes, roles)) for c in clients], next_token

    def create_client(self, client_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check_client_id(client_id)
        now = self.clock.now()
        client = Client(
            client_id=client_id,
            description=body["description"],
            scopes=self._checked_scopes(body.get("scopes", [])),
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

    def update_client(self, client_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        stored = self._stored_client(client_id)
        client = replace(
            stored,
            description=body["description"],
            scopes=self._checked_scopes(body.get("scopes", [])),
            expires=parse_date(body["expires"]),
            delete_on_expiration=bool(body.get("deleteOnExpiration", False)),
            last_modified=self.clock.now(),
        )
        expanded = self.expand(client.scopes)
        self.store.put_client(client, create=False, seed_was=stored.seed)
        self._forget(client_id)
        return client.to_json(expanded)

    def reset_access_token(self, client_id: str) -> dict[str, Any]:
        stored = self._stored_client(client_id)
        self.expand(stored.scopes)  # refused before the write: a new token nobody is told of locks the client out
        client = self.store.rotate_seed(client_id, stored.seed, new_seed(), self.clock.now())
        self._forget(client_id)
        return self._with_token(client, self.expand(client.scopes))

    def delete_client(self, client_id: str) -> None:
        self._check_client_id(client_id)
        self.store.delete_client(client_id)
        self._forget(client_id)

    def _stored_client(self, client_id: str) -> Client:
        client = self.store.get_client(client_id) if client_id != self.root.client_id else None
        if client is None:
            raise ResourceNotFound(f"Client {client_id} not found")
        return client

    def _with_token(self, client: Client, expanded: Sequence[str]) -> dict[str, Any]:
        return {**client.to_json(expanded), "accessToken": self._token(client)}

    def _token(self, client: Client) -> str:
        if not self.root.token_key:
            # Without a key every token would be derivable by anyone: stored clients stay unusable.
            raise CredentialError("this deployment has no token key (configure a root access token)")
        return client_token(self.root.token_key, client.client_id, client.seed)

    def _check_client_id(self, client_id: str) -> None:
        if not self.root.token_key:
            raise InputError("No token key is configured (set a root access token): clients cannot be stored")
        if client_id == self.root.client_id:
            raise InputError(f"{client_id} is the deployment's root client; it is configured, not stored")

    # --- the auth API: roles --------------------------------------------------------------------
    def role(self, role_id: str) -> dict[str, Any]:
        role = self.store.get_role(role_id)
        if role is None:
            raise ResourceNotFound(f"Role {role_id} not found")
        return role.to_json(self.expand(role.scopes))

    def list_roles(self) -> list[dict[str, Any]]:
        roles = list(self.store.all_roles())
        table = RoleIndex({r.role_id: r.scopes for r in roles})
        return [r.to_json(self.expand(r.scopes, table)) for r in roles]

    def create_role(self, role_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._put_role(role_id, body, create=True)

    def update_role(self, role_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._put_role(role_id, body, create=False)

    def _put_role(self, role_id: str, body: Mapping[str, Any], create: bool) -> dict[str, Any]:
        now = self.clock.now()
        existing = None if create else self.store.get_role(role_id)
        if not create and existing is None:
            raise ResourceNotFound(f"Role {role_id} not found")
        role = Role(
            role_id=role_id,
            description=body["description"],
            scopes=self._checked_scopes(body["scopes"]),
            created=existing.created if existing else now,
            last_modified=now,
        )
        roles = {r.role_id: r.scopes for r in self.store.all_roles()}
        roles[role_id] = role.scopes
        table = RoleIndex(roles)
        # Every role, not only this one: another role's expansion may pass through it.
        for other, scopes in roles.items():
            try:
                expand(scopes, table)
            except ExpansionTooLarge as err:
                raise InputError(
                    f"With role {role_id} as given, the expansion of role {other} is too large: {err}"
                ) from None
        self.store.put_role(role, create=create)
        self._forget(roles=True)
        return role.to_json(expand(role.scopes, table))

    def delete_role(self, role_id: str) -> None:
        self.store.delete_role(role_id)
        self._forget(roles=True)

    @staticmethod
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
