"""Authentication and authorization (Taskcluster's auth service, in-process), and the credentials
this deployment issues.

`authenticate` turns a signed request into a Caller with expanded scopes: no credentials → the
`anonymous` role; a Hawk header or bewit → the client (the root client from configuration, or a
stored one), or temporary credentials checked against their issuer; `authorizedScopes` narrows
the result. `authorize` checks a caller against an endpoint's scope expression. The auth API's
administration of clients and roles is services/auth_admin.py.

Expansion is bounded (domain/scopes.py): should stored roles exceed the bound (written another
way, or two racing role writes each checked without the other), requests fail closed — the
caller's scopes cannot be known, so nothing is authorized (403).

Clients and the role set are cached per process for `cache_seconds` (a Lambda container lives
for many requests): a change made through another process takes effect within that time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from ..clock import Clock
from ..domain import hawk
from ..domain.credentials import (
    CLIENT_ID,
    Certificate,
    Client,
    CredentialError,
    client_token,
    issue_temporary,
    parse_ext,
)
from ..domain.errors import AuthenticationFailed, InsufficientScopes
from ..domain.model import Task
from ..domain.scopes import ExpansionTooLarge, RoleIndex, ScopeExpr, ScopeSet, expand, render, unsatisfied
from .ports import AuthStore

ANONYMOUS_ROLE = "anonymous"


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
        principal = Principal(self.access_token(client), tuple(self._expand(client.scopes)))
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

    def _expand(self, scopes: Sequence[str]) -> list[str]:
        return expand(scopes, self.roles())

    def forget(self, client_id: str | None = None, roles: bool = False) -> None:
        """Drop what this process cached of a client (and of the role set): it changed."""
        with self._lock:
            if client_id is not None:
                self._clients.pop(client_id, None)
            if roles:
                self._roles = None

    def access_token(self, client: Client) -> str:
        """A stored client's access token, derived (never stored)."""
        if not self.root.token_key:
            # Without a key every token would be derivable by anyone: stored clients stay unusable.
            raise CredentialError("this deployment has no token key (configure a root access token)")
        return client_token(self.root.token_key, client.client_id, client.seed)

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
