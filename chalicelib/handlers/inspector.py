"""The web inspector: static files of chalicelib/inspector/, served by the stack itself.

- `/inspector` — a redirect to `inspector/` (relative: it keeps API Gateway's stage or base path);
- `/inspector/` — the page (index.html);
- `/inspector/<file>` — one of the files of chalicelib/inspector/ with a known type; anything else 404.

The page is plain ES modules that call the public API at `../api/…` (same origin, relative, so any
base path works), signing requests with the credentials the user gives it. Like the API reference,
these are plain routes, not `Api` endpoints: public, no Hawk, no scopes. Chalice routes are not
greedy: the files are one flat directory, read once per process.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from chalice import Blueprint, Response

from ..domain.errors import ResourceNotFound
from .http import error_response

inspector_bp = Blueprint(__name__)
STATIC_DIR = Path(__file__).resolve().parents[1] / "inspector"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The page loads only its own files; the API answers artifact GETs with a redirect to S3 (another
# origin), which the live log follows with fetch: hence connect-src beyond 'self'.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self' https: http:; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@cache
def files() -> dict[str, tuple[bytes, str, str]]:
    """name → (content, content type, ETag) of every servable file."""
    out = {}
    for path in sorted(STATIC_DIR.iterdir()):
        if path.is_file() and path.suffix in TYPES:
            content = path.read_bytes()
            out[path.name] = (content, TYPES[path.suffix], '"' + hashlib.sha256(content).hexdigest()[:32] + '"')
    return out


def _serve(name: str) -> Response:
    found = files().get(name)
    if found is None:
        err = ResourceNotFound(f"Inspector file {name!r} not found")
        return error_response(err, "inspector", {"file": name}, None)
    content, content_type, etag = found
    # Revalidated on every load (a deployment changes them), answered 304 while unchanged.
    headers: dict[str, str | list[str]] = {"Content-Type": content_type, "Cache-Control": "no-cache", "ETag": etag}
    headers.update(SECURITY_HEADERS)
    if inspector_bp.current_request.headers.get("if-none-match") == etag:
        return Response(body="", status_code=304, headers=headers)
    return Response(body=content.decode(), status_code=200, headers=headers)


@inspector_bp.route("/inspector", methods=["GET"], content_types=["*/*"])
def inspector_index() -> Response:
    # API Gateway and chalice local route `/inspector/` here too: the page needs the slash, so
    # that its relative URLs (`app.js`, `../api/…`) resolve under it.
    raw_path = (inspector_bp.current_request.context or {}).get("path") or ""
    if raw_path.endswith("/"):
        return _serve("index.html")
    return Response(body="", status_code=302, headers={"Location": "inspector/", "Cache-Control": "no-cache"})


@inspector_bp.route("/inspector/{file}", methods=["GET"], content_types=["*/*"])
def inspector_file(file: str) -> Response:
    return _serve(file)
