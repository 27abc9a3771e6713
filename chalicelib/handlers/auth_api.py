"""Auth v1 routes (the subset of Taskcluster's auth service this deployment needs): clients, roles, scopes.

Paths, bodies and scopes are Taskcluster's, so `taskcluster.Auth` works unchanged. Every scope
expression is in domain/scopes.py's ENDPOINT_SCOPES; create/update checks of the granted scopes
are deferred to here, where the body is known.
"""

from __future__ import annotations

import time
from typing import Any

from chalice import Blueprint

from .. import container
from ..services.auth import Auth
from .http import Api, Call

auth_bp = Blueprint(__name__)
api = Api(auth_bp, "/api/auth/v1")
_started = time.monotonic()


def _auth() -> Auth:
    return container.get().auth


@api.route("GET", "/ping", "ping")
def ping(call: Call) -> dict[str, Any]:
    return {"alive": True, "uptime": time.monotonic() - _started}


# --- clients --------------------------------------------------------------------------------------
@api.route("GET", "/clients", "listClients")
def list_clients(call: Call) -> dict[str, Any]:
    clients, token = _auth().list_clients(call.query.get("prefix", ""), call.limit(), call.continuation)
    out: dict[str, Any] = {"clients": clients}
    if token:
        out["continuationToken"] = token
    return out


@api.route("GET", "/clients/{clientId}", "client")
def get_client(call: Call) -> dict[str, Any]:
    return _auth().client(call.params["clientId"])


@api.route("PUT", "/clients/{clientId}", "createClient", input="create-client-request")
def create_client(call: Call) -> dict[str, Any]:
    call.authorize(scopes=call.body["scopes"])
    return _auth().create_client(call.params["clientId"], call.body)


@api.route("POST", "/clients/{clientId}", "updateClient", input="create-client-request")
def update_client(call: Call) -> dict[str, Any]:
    call.authorize(scopes=call.body["scopes"])
    return _auth().update_client(call.params["clientId"], call.body)


@api.route("POST", "/clients/{clientId}/reset", "resetAccessToken")
def reset_access_token(call: Call) -> dict[str, Any]:
    return _auth().reset_access_token(call.params["clientId"])


@api.route("DELETE", "/clients/{clientId}", "deleteClient")
def delete_client(call: Call) -> None:
    _auth().delete_client(call.params["clientId"])


# --- roles ----------------------------------------------------------------------------------------
@api.route("GET", "/roles", "listRoles")
def list_roles(call: Call) -> list[dict[str, Any]]:
    return _auth().list_roles()


@api.route("GET", "/roles/{roleId}", "role")
def get_role(call: Call) -> dict[str, Any]:
    return _auth().role(call.params["roleId"])


@api.route("PUT", "/roles/{roleId}", "createRole", input="create-role-request")
def create_role(call: Call) -> dict[str, Any]:
    call.authorize(scopes=call.body["scopes"])
    return _auth().create_role(call.params["roleId"], call.body)


@api.route("POST", "/roles/{roleId}", "updateRole", input="create-role-request")
def update_role(call: Call) -> dict[str, Any]:
    call.authorize(scopes=call.body["scopes"])
    return _auth().update_role(call.params["roleId"], call.body)


@api.route("DELETE", "/roles/{roleId}", "deleteRole")
def delete_role(call: Call) -> None:
    _auth().delete_role(call.params["roleId"])


# --- scopes ---------------------------------------------------------------------------------------
@api.route("POST", "/scopes/expand", "expandScopes", input="scopeset")
def expand_scopes(call: Call) -> dict[str, Any]:
    return {"scopes": _auth().expand(call.body["scopes"])}


@api.route("GET", "/scopes/current", "currentScopes")
def current_scopes(call: Call) -> dict[str, Any]:
    assert call.caller is not None  # the (always satisfied) expression makes the dispatcher authenticate
    return {"scopes": list(call.caller.scopes)}
