"""Queue v1 artifact routes: parse, call the artifact service, render.

Artifact names may contain `/`. The official clients send it as `%2F`, inside the one `{name}`
segment; raw slashes (URLs typed or pasted, as Taskcluster's `{*name}` routes accept) reach the
same endpoints through `splat` routes of up to SPLAT_SEGMENTS segments (handlers/api.py).

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
from ..domain.scopes import ScopeExpr
from ..services.artifacts import ArtifactService, Content
from .api import Api, page
from .http import Call

artifact_bp = Blueprint(__name__)
api = Api(artifact_bp, "/api/queue/v1")
STORAGE_TYPE_HEADER = "x-taskcluster-artifact-storage-type"

RUN = "/task/{taskId}/runs/{runId}"
LATEST = "/task/{taskId}"
# For the requested name before the task is looked up (403 beats 404), then for every link followed.
GET_ARTIFACT: ScopeExpr = {"AllOf": [{"for": "name", "in": "names", "each": "queue:get-artifact:<name>"}]}


def _artifacts() -> ArtifactService:
    return container.get().artifacts


def _names(call: Call) -> Callable[[list[str]], None]:
    return lambda names: call.authorize(names=names)


def _run_id(call: Call) -> int | None:
    return int(call.params["runId"]) if "runId" in call.params else None


# --- createArtifact, finishArtifact ---------------------------------------------------------------
@api.route(
    "POST",
    f"{RUN}/artifacts/{{name}}",
    "createArtifact",
    scopes="queue:create-artifact:<taskId>/<runId>",
    input="post-artifact-request",
    splat=True,
    category="Artifacts",
)
def create_artifact(call: Call) -> dict[str, Any]:
    """Create Artifact

    Create an artifact of a running run (or of a run resolved as exception, for 25 minutes). `s3`:
    answers with a presigned `putUrl` to upload the bytes to; `reference`: a URL to redirect to;
    `link`: another artifact of the same task; `error`: downloads answer 424 with its reason.
    `object` artifacts are refused (this deployment has no object service). Repeating the same
    request succeeds; changing an artifact is a 409 (a reference may change its URL)."""
    p = call.params
    return _artifacts().create(p["taskId"], int(p["runId"]), p["name"], call.body)


@api.route(
    "PUT",
    f"{RUN}/artifacts/{{name}}",
    "finishArtifact",
    scopes="queue:create-artifact:<taskId>/<runId>",
    input="finish-artifact-request",
    splat=True,
    category="Artifacts",
)
def finish_artifact(call: Call) -> None:
    # Only `object` artifacts are ever finished, and this queue refuses to create them.
    """Finish Artifact

    Only `object` artifacts are ever finished, and this deployment does not create them: 404 for a
    missing artifact, 400 otherwise."""
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


@api.route("GET", f"{RUN}/artifacts/{{name}}", "getArtifact", scopes=GET_ARTIFACT, splat=True, category="Artifacts")
def get_artifact(call: Call) -> Response:
    """Get Artifact Data from Run

    Redirect (303) to the artifact's content: a presigned S3 URL, or a reference's URL; links are
    followed. The body says the same as JSON (`storageType`, `url`) for API clients, which do not
    follow redirects. An error artifact answers 424 with its `reason` and `message`. Names under
    `public/` need no scopes; others need `queue:get-artifact:<name>` (for every link followed too)."""
    return _redirect(_artifacts().content(call.params["taskId"], _run_id(call), call.params["name"], _names(call)))


@api.route(
    "GET", f"{LATEST}/artifacts/{{name}}", "getLatestArtifact", scopes=GET_ARTIFACT, splat=True, category="Artifacts"
)
def get_latest_artifact(call: Call) -> Response:
    """Get Artifact Data from Latest Run

    As `getArtifact`, for the task's latest run."""
    return _redirect(_artifacts().content(call.params["taskId"], None, call.params["name"], _names(call)))


@api.route("GET", f"{RUN}/artifact-content/{{name}}", "artifact", scopes=GET_ARTIFACT, splat=True, category="Artifacts")
def artifact(call: Call) -> dict[str, Any]:
    """Get Artifact Content from Run

    Where to download the artifact's content, as JSON (200): `{storageType, url}` (links followed);
    the official clients' download helpers use it."""
    return _artifacts().content(call.params["taskId"], _run_id(call), call.params["name"], _names(call)).to_json()


@api.route(
    "GET",
    f"{LATEST}/artifact-content/{{name}}",
    "latestArtifact",
    scopes=GET_ARTIFACT,
    splat=True,
    category="Artifacts",
)
def latest_artifact(call: Call) -> dict[str, Any]:
    """Get Artifact Content from Latest Run

    As `artifact`, for the task's latest run."""
    return _artifacts().content(call.params["taskId"], None, call.params["name"], _names(call)).to_json()


# --- listings and info ----------------------------------------------------------------------------
def _listing(call: Call) -> dict[str, Any]:
    found, token = _artifacts().listing(call.params["taskId"], _run_id(call), call.limit(), call.continuation)
    return page("artifacts", (a.to_json() for a in found), token)


@api.route(
    "GET",
    f"{RUN}/artifacts",
    "listArtifacts",
    scopes="queue:list-artifacts:<taskId>:<runId>",
    output="list-artifacts-response",
    paged=True,
    category="Artifacts",
)
def list_artifacts(call: Call) -> dict[str, Any]:
    """Get Artifacts from Run

    A page of the run's artifacts, by name."""
    return _listing(call)


@api.route(
    "GET",
    f"{LATEST}/artifacts",
    "listLatestArtifacts",
    scopes="queue:list-artifacts:<taskId>",
    output="list-artifacts-response",
    paged=True,
    category="Artifacts",
)
def list_latest_artifacts(call: Call) -> dict[str, Any]:
    """Get Artifacts from Latest Run

    As `listArtifacts`, for the task's latest run."""
    return _listing(call)


@api.route(
    "GET",
    f"{RUN}/artifact-info/{{name}}",
    "artifactInfo",
    scopes="queue:list-artifacts:<taskId>:<runId>",
    splat=True,
    category="Artifacts",
)
def artifact_info(call: Call) -> dict[str, Any]:
    """Get Artifact Information From Run

    The artifact's metadata (`storageType`, `name`, `expires`, `contentType`), without its content."""
    return _artifacts().info(call.params["taskId"], _run_id(call), call.params["name"]).to_json()


@api.route(
    "GET",
    f"{LATEST}/artifact-info/{{name}}",
    "latestArtifactInfo",
    scopes="queue:list-artifacts:<taskId>",
    splat=True,
    category="Artifacts",
)
def latest_artifact_info(call: Call) -> dict[str, Any]:
    """Get Artifact Information From Latest Run

    As `artifactInfo`, for the task's latest run."""
    return _artifacts().info(call.params["taskId"], None, call.params["name"]).to_json()
