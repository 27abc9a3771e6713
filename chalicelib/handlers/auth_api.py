"""Auth v1 routes (the subset of Taskcluster's auth service this deployment needs): clients, roles, scopes.

Paths, bodies and scopes are Taskcluster's, so `taskcluster.Auth` works unchanged. The checks of
the scopes a create/update grants are deferred to the handler, where the body is known.
"""

from __future__ import annotations

import time
from typing import Any

from chalice import Blueprint

from .. import container
from ..services.auth_admin import AuthAdmin
from .api import Api, page, response_budget
from .http import Call

auth_bp = Blueprint(__name__)
api = Api(auth_bp, "/api/auth/v1")
_started = time.monotonic()


def _admin() -> AuthAdmin:
    return container.get().auth_admin


@api.route("GET", "/ping", "ping", scopes=None, category="Monitoring")
def ping(call: Call) -> dict[str, Any]:
    """Ping Server

    Respond without doing anything. This endpoint is used to check that the service is up."""
    return {"alive": True, "uptime": time.monotonic() - _started}


# --- clients --------------------------------------------------------------------------------------
@api.route("GET", "/clients", "listClients", scopes=None, query=("prefix",), paged=True, category="Clients")
def list_clients(call: Call) -> dict[str, Any]:
    """List Clients

    A page of the clients, optionally only those whose clientId starts with `prefix`."""
    clients, token = _admin().list_clients(call.query.get("prefix", ""), call.limit(), call.continuation)
    return page("clients", [c.to_json() for c in clients], token)


@api.route("GET", "/clients/{clientId}", "client", scopes=None, category="Clients")
def get_client(call: Call) -> dict[str, Any]:
    """Get Client

    A client: its description, scopes, expanded scopes and dates."""
    return _admin().client(call.params["clientId"]).to_json()


@api.route(
    "PUT",
    "/clients/{clientId}",
    "createClient",
    scopes={"AllOf": ["auth:create-client:<clientId>", {"for": "scope", "in": "scopes", "each": "<scope>"}]},
    input="create-client-request",
    category="Clients",
)
def create_client(call: Call) -> dict[str, Any]:
    """Create Client

    Create a client and answer with its `accessToken`, shown only this once. The caller must hold
    every scope it gives the client."""
    call.authorize(scopes=call.body["scopes"])
    return _admin().create_client(call.params["clientId"], call.body).to_json()


@api.route(
    "POST",
    "/clients/{clientId}",
    "updateClient",
    scopes={"AllOf": ["auth:update-client:<clientId>", {"for": "scope", "in": "scopes", "each": "<scope>"}]},
    input="create-client-request",
    category="Clients",
)
def update_client(call: Call) -> dict[str, Any]:
    """Update Client

    Change a client's description, expiry and scopes. The caller must hold every scope it gives."""
    call.authorize(scopes=call.body["scopes"])
    return _admin().update_client(call.params["clientId"], call.body).to_json()


@api.route(
    "POST",
    "/clients/{clientId}/reset",
    "resetAccessToken",
    scopes="auth:reset-access-token:<clientId>",
    category="Clients",
)
def reset_access_token(call: Call) -> dict[str, Any]:
    """Reset `accessToken`

    Give the client a new `accessToken` (answered once); the old one stops working."""
    return _admin().reset_access_token(call.params["clientId"]).to_json()


@api.route("DELETE", "/clients/{clientId}", "deleteClient", scopes="auth:delete-client:<clientId>", category="Clients")
def delete_client(call: Call) -> None:
    """Delete Client

    Delete a client. Deleting one that does not exist succeeds."""
    _admin().delete_client(call.params["clientId"])


# --- roles ----------------------------------------------------------------------------------------
@api.route("GET", "/roles", "listRoles", scopes=None, category="Roles")
def list_roles(call: Call) -> list[dict[str, Any]]:
    """List Roles

    Every role, with its scopes and expanded scopes."""
    return [r.to_json() for r in _admin().list_roles()]


@api.route("GET", "/roles/{roleId}", "role", scopes=None, category="Roles")
def get_role(call: Call) -> dict[str, Any]:
    """Get Role

    A role: its description, scopes and expanded scopes."""
    return _admin().role(call.params["roleId"]).to_json()


@api.route(
    "PUT",
    "/roles/{roleId}",
    "createRole",
    scopes={"AllOf": ["auth:create-role:<roleId>", {"for": "scope", "in": "scopes", "each": "<scope>"}]},
    input="create-role-request",
    category="Roles",
)
def create_role(call: Call) -> dict[str, Any]:
    """Create Role

    Create a role: whoever holds `assume:<roleId>` gets its scopes. A roleId ending in `*` is
    assumed by every matching `assume:` scope, `<..>` in its scopes standing for the matched part.
    The caller must hold every scope it gives."""
    call.authorize(scopes=call.body["scopes"])
    return _admin().create_role(call.params["roleId"], call.body, response_budget()).to_json()


@api.route(
    "POST",
    "/roles/{roleId}",
    "updateRole",
    scopes={"AllOf": ["auth:update-role:<roleId>", {"for": "scope", "in": "scopes", "each": "<scope>"}]},
    input="create-role-request",
    category="Roles",
)
def update_role(call: Call) -> dict[str, Any]:
    """Update Role

    Change a role's description and scopes. The caller must hold every scope it gives."""
    call.authorize(scopes=call.body["scopes"])
    return _admin().update_role(call.params["roleId"], call.body, response_budget()).to_json()


@api.route("DELETE", "/roles/{roleId}", "deleteRole", scopes="auth:delete-role:<roleId>", category="Roles")
def delete_role(call: Call) -> None:
    """Delete Role

    Delete a role. Deleting one that does not exist succeeds."""
    _admin().delete_role(call.params["roleId"])


# --- scopes ---------------------------------------------------------------------------------------
@api.route("POST", "/scopes/expand", "expandScopes", scopes=None, input="scopeset", category="Scopes")
def expand_scopes(call: Call) -> dict[str, Any]:
    """Expand Scopes

    The given scopes with every role they assume expanded, normalized."""
    return {"scopes": _admin().expand(call.body["scopes"])}


@api.route("GET", "/scopes/current", "currentScopes", scopes={"AllOf": []}, category="Scopes")
def current_scopes(call: Call) -> dict[str, Any]:
    """Get Current Scopes

    The scopes the request's own credentials carry, expanded (temporary credentials and
    `authorizedScopes` included)."""
    assert call.caller is not None  # the (always satisfied) expression makes the dispatcher authenticate
    return {"scopes": list(call.caller.scopes)}
