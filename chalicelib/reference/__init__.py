"""The API reference, generated from the code: never written twice.

Every endpoint is declared once, by `handlers.api.Api.route`, which records it in
`handlers.api.ENDPOINTS` (service, method, path, name, scope expression, schemas, query, category,
stability, handler). This package turns that registry — with each endpoint's words (its handler's
docstring) and the JSON schemas in chalicelib/schemas — into Taskcluster's formats:

- `api_reference(service)`: `/references/<service>/v1/api.json` (api-reference-v0);
- `manifest()`: `/references/manifest.json` (manifest-v3);
- `schemas(service)`: the schemas served under `/schemas/<service>/v1/<name>.json`, the very
  files the API validates requests with (and the tests validate responses with).

handlers/reference_api.py serves them; `python -m chalicelib.reference render docs` writes the
readable rendering in docs/reference/ (render.py).
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import fastjsonschema

from ..handlers.api import ENDPOINTS, PAGING, Endpoint
from ..schemas import SCHEMA_DIR, load
from .service_docs import SERVICES, Service

API_REFERENCE_SCHEMA = "/schemas/common/api-reference-v0.json#"
SCHEMA_ID = re.compile(r"^/schemas/(?P<service>[a-z][a-z0-9_-]*)/(?P<version>v[0-9]+)/(?P<name>[^/]+)\.json#?$")
ARG = re.compile(r"<([A-Za-z0-9_]+)>")


class ReferenceError(ValueError):
    """The code and the words about it disagree (an endpoint documented twice, or not at all)."""


@dataclass(frozen=True)
class Entry:
    """An endpoint with everything its reference entry says."""

    endpoint: Endpoint
    title: str
    description: str
    category: str
    stability: str
    output: str | None
    query: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.endpoint.name

    @property
    def args(self) -> list[str]:
        return ARG.findall(self.endpoint.path)

    def to_json(self) -> dict[str, Any]:
        e = self.endpoint
        out: dict[str, Any] = {
            "type": "function",
            "method": e.method.lower(),
            "route": e.path,
            "args": self.args,
            "name": e.name,
            "stability": self.stability,
            "category": self.category,
            "title": self.title,
            "description": self.description,
            "query": list(self.query),
        }
        if e.scopes is not None:
            out["scopes"] = e.scopes
        if e.input:
            out["input"] = relative_schema_url(e.input)
        if self.output:
            out["output"] = relative_schema_url(self.output)
        return out


def unwrap(text: str) -> str:
    """A docstring's paragraphs as one line each (lists, tables and code blocks keep their lines)."""
    paragraphs = []
    for para in text.split("\n\n"):
        lines = para.split("\n")
        structured = any(
            line.lstrip().startswith(("- ", "* ", "|", "```")) or line.startswith("    ") for line in lines
        )
        paragraphs.append(para if structured else " ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs)


def entry(endpoint: Endpoint) -> Entry:
    """The reference entry of one endpoint: its declaration, and its handler's docstring for the words."""
    doc = inspect.getdoc(endpoint.handler)
    if not doc:
        raise ReferenceError(
            f"{endpoint.service}.{endpoint.name} has no documentation: give its handler a docstring "
            "(first line: the title; then the description)"
        )
    title, _, rest = doc.partition("\n")
    description = unwrap(rest.strip()) or title.strip()
    if endpoint.paged:
        description = f"{description}\n\n{PAGING}"
    return Entry(
        endpoint, title.strip(), description, endpoint.category, endpoint.stability, endpoint.output, endpoint.query
    )


def services() -> list[str]:
    """Every service that registered an endpoint, in a stable order (known ones first)."""
    found = {s for s, _ in ENDPOINTS}
    return [s for s in SERVICES if s in found] + sorted(found - set(SERVICES))


def service_info(service: str) -> Service:
    return SERVICES.get(service) or Service(title=service, description=f"The {service} service.", categories=())


def entries(service: str) -> list[Entry]:
    """A service's entries, grouped by category (in the service's order), then as registered."""
    found = [entry(e) for (s, _), e in ENDPOINTS.items() if s == service]
    order = service_info(service).categories

    def rank(e: Entry) -> int:
        return order.index(e.category) if e.category in order else len(order)

    return sorted(found, key=rank)  # stable: registration order within a category


def api_version(service: str) -> str:
    versions = {e.api_version for (s, _), e in ENDPOINTS.items() if s == service}
    return min(versions) if versions else "v1"


def api_reference(service: str, root_url: str = "") -> dict[str, Any]:
    """`/references/<service>/<version>/api.json`: Taskcluster's api-reference-v0 document."""
    info = service_info(service)
    version = api_version(service)
    return {
        "$schema": root_url + API_REFERENCE_SCHEMA,
        "apiVersion": version,
        "serviceName": service,
        "title": info.title,
        "description": info.description,
        "baseUrl": f"{root_url}/api/{service}/{version}",
        "entries": [e.to_json() for e in entries(service)],
    }


def reference_path(service: str) -> str:
    return f"/references/{service}/{api_version(service)}/api.json"


def manifest(root_url: str = "") -> dict[str, Any]:
    """`/references/manifest.json`: Taskcluster's manifest-v3, the URL of every reference."""
    return {"references": [root_url + reference_path(s) for s in services()]}


# --- schemas --------------------------------------------------------------------------------------
def schema_path(name: str) -> str:
    """Where schema `name` is served: its `$id`, `/schemas/<service>/v1/<name>.json`."""
    return str(load(name)["$id"]).rstrip("#")


def relative_schema_url(name: str) -> str:
    """A schema as reference entries name it: relative to `/schemas/<service>/` (`v1/<name>.json#`)."""
    m = SCHEMA_ID.match(str(load(name)["$id"]))
    if m is None:
        raise ReferenceError(f"schema {name} has an $id not of the form /schemas/<service>/v1/<name>.json#")
    return f"{m['version']}/{m['name']}.json#"


@cache
def all_schemas() -> dict[str, dict[str, Any]]:
    """Every schema file, by the path it is served at."""
    return {schema_path(p.stem): load(p.stem) for p in sorted(SCHEMA_DIR.glob("*.json"))}


def schema_at(path: str) -> dict[str, Any] | None:
    """The schema served at `/schemas/<service>/<version>/<name>.json`, if there is one."""
    return all_schemas().get(path)


def schemas(service: str) -> dict[str, dict[str, Any]]:
    prefix = f"/schemas/{service}/"
    return {p: s for p, s in all_schemas().items() if p.startswith(prefix)}


def _fetch(uri: str) -> dict[str, Any]:
    schema = schema_at(uri.split("#", 1)[0])
    if schema is None:
        raise ReferenceError(f"$ref to {uri}, which is not a schema of this deployment")
    return copy.deepcopy(schema)


@cache
def output_validator(name: str) -> Callable[[Any], Any]:
    """Checks a response against output schema `name`; `$ref`s resolve to the served schemas.

    The API does not validate its responses at run time (it would cost every request); the tests
    validate real responses with this.
    """
    # fastjsonschema rewrites `$ref`s in place: compile copies, never the schemas served.
    return fastjsonschema.compile(copy.deepcopy(load(name)), handlers={"": _fetch}, use_default=False)
