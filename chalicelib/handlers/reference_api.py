"""The API reference and JSON schemas, served where Taskcluster serves them.

- `/references/manifest.json` — the URL of every service's reference (manifest-v3);
- `/references/<service>/<version>/api.json` — a service's endpoints (api-reference-v0);
- `/schemas/<service>/<version>/<name>.json` — the JSON schemas the API validates with.

They are documents, not API methods (Taskcluster serves them outside its services' APIs too), so
they are plain routes rather than `Api` endpoints: public, no Hawk, no scopes, and not part of any
reference themselves. URLs in them are absolute, built from the root URL the request came to.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from .. import reference
from ..domain.errors import ResourceNotFound
from .http import CORS, error_response

reference_bp = Blueprint(__name__)
HEADERS: dict[str, str | list[str]] = {"Content-Type": "application/json", "Cache-Control": "no-cache"}


def root_url() -> str:
    """The deployment's root URL as this request addressed it (scheme, host, and API Gateway's stage)."""
    request = reference_bp.current_request
    headers = request.headers
    proto = headers.get("x-forwarded-proto", "http").split(",")[0].strip() or "http"
    host = headers.get("host", "localhost")
    raw_path = (request.context or {}).get("path") or request.path
    stage = raw_path[: -len(request.path)] if raw_path.endswith(request.path) else ""
    return f"{proto}://{host}{stage}"


def _json(body: Any) -> Response:
    return Response(body=body, status_code=200, headers=HEADERS)


def _not_found(what: str, method: str, params: dict[str, str]) -> Response:
    return error_response(ResourceNotFound(f"{what} not found"), method, params, None)


@reference_bp.route("/references/manifest.json", methods=["GET"], content_types=["*/*"], cors=CORS)
def reference_manifest() -> Response:
    return _json(reference.manifest(root_url()))


@reference_bp.route("/references/{service}/{version}/api.json", methods=["GET"], content_types=["*/*"], cors=CORS)
def reference_api(service: str, version: str) -> Response:
    if service not in reference.services() or version != reference.api_version(service):
        params = {"service": service, "version": version}
        return _not_found(f"API reference /references/{service}/{version}/api.json", "apiReference", params)
    return _json(reference.api_reference(service, root_url()))


@reference_bp.route("/schemas/{service}/{version}/{name}", methods=["GET"], content_types=["*/*"], cors=CORS)
def reference_schema(service: str, version: str, name: str) -> Response:
    path = f"/schemas/{service}/{version}/{name}"
    found = reference.schema_at(path)
    if found is None:
        return _not_found(f"Schema {path}", "schema", {"service": service, "version": version, "name": name})
    return _json(found)
