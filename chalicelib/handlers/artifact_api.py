"""Queue v1 artifact routes: parse, call the artifact service, render.

Artifact names may contain `/`. The official clients send it as `%2F`, inside the one `{name}`
segment; raw slashes (URLs typed or pasted, as Taskcluster's `{*name}` routes accept) reach the
same endpoints through `splat` routes of up to SPLAT_SEGMENTS segments (handlers/http.py).

Every endpoint taking a name refuses one that can never exist (`..`, `//`, backslash, too long:
domain check_artifact_name) with 400 InvalidRequestArguments, in the service, before any read.

Reading an artifact needs `queue:get-artifact:<name>` for the name and every link followed
(not for `public/` names): the service calls `call.authorize(names=...)` before each read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalice import Blueprint, Response

from .. import container
from ..domain.artifacts import StorageType
from ..domain.errors import InputError
from ..services.artifacts import ArtifactService, Content
from .http import Api, Call

artifact_bp = Blueprint(__name__)
api = Api(artifact_bp, "/api/queue/v1")
STORAGE_TYPE_HEADER = "x-taskcluster-artifact-storage-type"

RUN = "/task/{taskId}/runs/{runId}"
LATEST = "/task/{taskId}"


def _artifacts() -> ArtifactService:
    return container.get().artifacts


def _names(call: Call) -> Callable[[list[str]], None]:
    return lambda names: call.authorize(names=names)


def _run_id(call: Call) -> int | None:
    return int(call.params["runId"]) if "runId" in call.params else None


# --- createArtifact, finishArtifact ---------------------------------------------------------------
@api.route("POST", f"{RUN}/artifacts/{{name}}", "createArtifact", input="post-artifact-request", splat=True)
def create_artifact(call: Call) -> dict[str, Any]:
    p = call.params
    return _artifacts().create(p["taskId"], int(p["runId"]), p["name"], call.body)


@api.route("PUT", f"{RUN}/artifacts/{{name}}", "finishArtifact", input="finish-artifact-request", splat=True)
def finish_artifact(call: Call) -> None:
    # Only `object` artifacts are ever finished, and this queue refuses to create them.
    p = call.params
    _artifacts().info(p["taskId"], int(p["runId"]), p["name"])  # 404 for a missing artifact
    raise InputError("Only object artifacts can be finished")


# --- downloads ------------------------------------------------------------------------------------
def _redirect(content: Content) -> Response:
    """getArtifact's answer: 303 to the content (the JSON body says the same, for API clients,
    which do not follow redirects), or 424 for an error artifact."""
    headers: dict[str, str | list[str]] = {STORAGE_TYPE_HEADER: content.storage_type.value}
    if content.storage_type is StorageType.ERROR:
        return Response(body={"reason": content.reason, "message": content.message}, status_code=424, headers=headers)
    assert content.url is not None
    headers["Location"] = content.url
    return Response(body=content.to_json(), status_code=303, headers=headers)


@api.route("GET", f"{RUN}/artifacts/{{name}}", "getArtifact", splat=True)
def get_artifact(call: Call) -> Response:
    return _redirect(_artifacts().content(call.params["taskId"], _run_id(call), call.params["name"], _names(call)))


@api.route("GET", f"{LATEST}/artifacts/{{name}}", "getLatestArtifact", splat=True)
def get_latest_artifact(call: Call) -> Response:
    return _redirect(_artifacts().content(call.params["taskId"], None, call.params["name"], _names(call)))


@api.route("GET", f"{RUN}/artifact-content/{{name}}", "artifact", splat=True)
def artifact(call: Call) -> dict[str, Any]:
    return _artifacts().content(call.params["taskId"], _run_id(call), call.params["name"], _names(call)).to_json()


@api.route("GET", f"{LATEST}/artifact-content/{{name}}", "latestArtifact", splat=True)
def latest_artifact(call: Call) -> dict[str, Any]:
    return _artifacts().content(call.params["taskId"], None, call.params["name"], _names(call)).to_json()


# --- listings and info ----------------------------------------------------------------------------
def _listing(call: Call) -> dict[str, Any]:
    found, token = _artifacts().listing(call.params["taskId"], _run_id(call), call.limit(), call.continuation)
    out: dict[str, Any] = {"artifacts": [a.to_json() for a in found]}
    if token:
        out["continuationToken"] = token
    return out


@api.route("GET", f"{RUN}/artifacts", "listArtifacts")
def list_artifacts(call: Call) -> dict[str, Any]:
    return _listing(call)


@api.route("GET", f"{LATEST}/artifacts", "listLatestArtifacts")
def list_latest_artifacts(call: Call) -> dict[str, Any]:
    return _listing(call)


@api.route("GET", f"{RUN}/artifact-info/{{name}}", "artifactInfo", splat=True)
def artifact_info(call: Call) -> dict[str, Any]:
    return _artifacts().info(call.params["taskId"], _run_id(call), call.params["name"]).to_json()


@api.route("GET", f"{LATEST}/artifact-info/{{name}}", "latestArtifactInfo", splat=True)
def latest_artifact_info(call: Call) -> dict[str, Any]:
    return _artifacts().info(call.params["taskId"], None, call.params["name"]).to_json()
