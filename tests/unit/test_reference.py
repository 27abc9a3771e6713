"""The API reference is generated from the code and stays true to it: every route has an entry and
every entry a route, schemas are the ones the code validates with, the official client agrees, and
docs/ is what the generator makes now."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import taskcluster.generated.auth
import taskcluster.generated.queue
import taskcluster.generated.workermanager

from app import app
from chalicelib import reference
from chalicelib.domain.model import TaskState
from chalicelib.handlers.api import ENDPOINTS, PAGING, SPLAT_SEP, Endpoint
from chalicelib.reference import render, states
from chalicelib.schemas import SCHEMA_DIR, load, validator

ROOT = Path(__file__).resolve().parents[2]
DOCS_DIR = ROOT / "docs"
DOCUMENT_ROUTES = ("/references/", "/schemas/", "/inspector")  # served documents and files, not API endpoints
SPLAT_TAIL = re.compile(r"\{[A-Za-z0-9]+" + SPLAT_SEP + r"[0-9]+\}")  # the extra routes of a splat endpoint
CLIENTS = {
    "queue": taskcluster.generated.queue.Queue,
    "auth": taskcluster.generated.auth.Auth,
    "worker-manager": taskcluster.generated.workermanager.WorkerManager,
}


def chalice_path(e: Endpoint) -> str:
    return f"/api/{e.service}/{e.api_version}" + re.sub(r"<([A-Za-z0-9_]+)>", r"{\1}", e.path)


def app_routes() -> dict[tuple[str, str], str]:
    """Every (method, path) the app serves, with the name of the view behind it."""
    return {
        (method, path): entry.view_name
        for path, methods in app.routes.items()
        for method, entry in methods.items()
        if not path.startswith(DOCUMENT_ROUTES) and not SPLAT_TAIL.search(path)
    }


# --- routes and entries -----------------------------------------------------------------------------
def test_every_route_of_the_app_has_a_reference_entry() -> None:
    registered = {(e.method, chalice_path(e)): e.name for e in ENDPOINTS.values()}
    missing = {route: view for route, view in app_routes().items() if route not in registered}
    assert not missing, f"routes without a reference entry (register them with Api.route): {missing}"
    assert all(registered[route] == view for route, view in app_routes().items())


def test_every_reference_entry_is_a_route_the_app_serves() -> None:
    routes = app_routes()
    orphans = [key for key, e in ENDPOINTS.items() if (e.method, chalice_path(e)) not in routes]
    assert not orphans, f"reference entries whose Api is not registered in app.py: {orphans}"


def test_every_endpoint_is_documented_by_its_declaration() -> None:
    for service in reference.services():
        for entry in reference.entries(service):  # raises for an endpoint without a docstring
            assert entry.title and entry.description and entry.category != "General", entry.name
            assert entry.stability in ("stable", "experimental", "deprecated")
            assert entry.category in reference.service_info(service).categories, entry.name


def test_an_endpoint_without_a_docstring_is_refused_and_its_docstring_is_its_entry() -> None:
    endpoint = ENDPOINTS[("queue", "status")]

    def documented(call: Any) -> None:
        """Title

        A body wrapped
        over two lines.

        - a list
        - kept as it is"""

    fresh = Endpoint(**{**endpoint.__dict__, "handler": documented, "name": "brandNew"})
    assert reference.entry(fresh).title == "Title"
    assert reference.entry(fresh).description == "A body wrapped over two lines.\n\n- a list\n- kept as it is"
    paged = Endpoint(**{**endpoint.__dict__, "handler": documented, "paged": True})
    assert reference.entry(paged).description.endswith("\n\n" + PAGING)
    with pytest.raises(reference.ReferenceError, match="no documentation"):
        reference.entry(Endpoint(**{**endpoint.__dict__, "handler": lambda call: None, "name": "brandNew"}))


def test_entries_carry_the_scopes_the_dispatcher_enforces_and_taskcluster_shape() -> None:
    required = {"type", "method", "route", "args", "name", "stability", "title", "description"}
    for service in reference.services():
        doc = reference.api_reference(service)
        assert {"$schema", "apiVersion", "serviceName", "title", "description", "baseUrl", "entries"} <= set(doc)
        names = [e["name"] for e in doc["entries"]]
        assert len(names) == len(set(names))
        for e in doc["entries"]:
            assert required <= set(e), e["name"]
            assert e.get("scopes") == ENDPOINTS[(service, e["name"])].scopes
            assert e["args"] == re.findall(r"<([A-Za-z0-9_]+)>", e["route"])


def test_list_endpoints_declare_their_paging_query() -> None:
    for service in reference.services():
        for entry in reference.entries(service):
            if entry.output and "continuationToken" in load(entry.output)["properties"]:
                assert {"continuationToken", "limit"} <= set(entry.query), entry.name


# --- schemas ----------------------------------------------------------------------------------------
def test_the_reference_serves_the_very_schemas_the_code_validates_with() -> None:
    for service in reference.services():
        for e in reference.api_reference(service)["entries"]:
            for kind in ("input", "output"):
                if kind not in e:
                    continue
                served = reference.schema_at(f"/schemas/{service}/{e[kind].rstrip('#')}")
                assert served is not None, f"{e['name']} {kind} {e[kind]} is not served"
                endpoint = ENDPOINTS[(service, e["name"])]
                if kind == "input":
                    assert endpoint.input is not None
                    assert served == load(endpoint.input)
                    validator(endpoint.input)  # the same document compiles to the request validator


def test_served_schemas_are_the_files_as_written_even_after_validators_compiled_them() -> None:
    for name in ("claim-work-response", "task-status-response", "create-task-request"):
        reference.output_validator(name)
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        on_disk = json.loads(path.read_text())
        assert reference.schema_at(on_disk["$id"].rstrip("#")) == on_disk, path.name


def test_every_schema_ref_resolves_to_a_served_schema() -> None:
    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return ([node["$ref"]] if isinstance(node.get("$ref"), str) else []) + [
                r for v in node.values() for r in refs(v)
            ]
        return [r for v in node for r in refs(v)] if isinstance(node, list) else []

    for path, schema in reference.all_schemas().items():
        for ref in refs(schema):
            if ref.startswith("#"):
                continue
            target = path.rsplit("/", 1)[0] + "/" + ref.split("#")[0]
            assert reference.schema_at(target) is not None, f"{path}: $ref {ref} does not resolve"
    for name in ("claim-work-response", "list-task-group-response", "task-reclaim-response"):
        reference.output_validator(name)  # compiles, refs and all


# --- the official client ----------------------------------------------------------------------------
def used_client_methods() -> set[str]:
    """Queue and Auth methods the project calls on the official client (worker, demo, CLI, bench, tests)."""
    pattern = re.compile(r"\b(?:queue|q|auth)\.([a-z][A-Za-z]+)\(")
    found: set[str] = set()
    for folder in ("worker", "chalicelib", "taskqueue", "bench", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            found |= set(pattern.findall(path.read_text()))
    return found


def test_the_official_client_agrees_with_the_reference() -> None:
    for service, client in CLIENTS.items():
        funcinfo = client.funcinfo
        assert (client.serviceName, client.apiVersion) == (service, reference.api_version(service))
        for e in reference.api_reference(service)["entries"]:
            info = funcinfo.get(e["name"])
            assert info is not None, f"{service}.{e['name']} is not a method of the official client"
            # The client's listClients/listRoles routes end in '/', which routes to the same endpoint.
            assert (info["method"], info["route"].rstrip("/")) == (e["method"], e["route"]), e["name"]
            assert info["args"] == e["args"]
            assert info.get("input") == e.get("input"), e["name"]
            assert set(info.get("query", [])) == set(e["query"]), e["name"]
            if "output" in e:  # ours may leave an output undescribed, never describe it differently
                assert info.get("output") == e["output"], e["name"]


def test_every_client_method_the_project_uses_is_in_the_reference() -> None:
    ours = {name for (service, name) in ENDPOINTS if service in CLIENTS}
    known = set(CLIENTS["queue"].funcinfo) | set(CLIENTS["auth"].funcinfo)
    used = used_client_methods() & known
    assert used, "found no client calls: the scan is broken"
    assert used <= ours, f"used but not in the reference: {sorted(used - ours)}"


# --- docs/ ------------------------------------------------------------------------------------------
def test_docs_reference_is_up_to_date_with_the_code() -> None:
    stale = render.stale(DOCS_DIR)
    assert not stale, (
        f"docs out of date with the code: {[str(p.relative_to(ROOT)) for p in stale]}; "
        f"regenerate with `make docs` ({render.REGENERATE}) and commit the result"
    )


def test_architecture_embeds_the_generated_state_machine() -> None:
    text = (DOCS_DIR / "architecture.md").read_text()
    assert render.STATE_MACHINE_BEGIN in text and render.STATE_MACHINE_END in text
    assert states.mermaid() in text


def test_the_state_machine_has_the_transitions_the_queue_documents() -> None:
    pairs = {(e.source, e.target) for e in states.edges()}
    s = TaskState
    expected = {
        ("[*]", s.PENDING),
        ("[*]", s.UNSCHEDULED),
        (s.UNSCHEDULED, s.PENDING),
        (s.UNSCHEDULED, s.EXCEPTION),
        (s.PENDING, s.RUNNING),
        (s.PENDING, s.EXCEPTION),
        (s.RUNNING, s.COMPLETED),
        (s.RUNNING, s.FAILED),
        (s.RUNNING, s.EXCEPTION),
        (s.RUNNING, s.PENDING),
        (s.COMPLETED, s.PENDING),
        (s.FAILED, s.PENDING),
        (s.EXCEPTION, s.PENDING),
    }
    assert pairs == {(str(a), str(b)) for a, b in expected}
    retry = [e for e in states.edges() if (e.source, e.target) == ("running", "pending")]
    assert {e.condition for e in retry} == {"retries left"}
    assert not any(e.source in ("completed", "failed") and e.target == "exception" for e in states.edges())


def test_scopes_render_as_nested_bullets() -> None:
    lines = render.scopes_markdown(ENDPOINTS[("queue", "getArtifact")].scopes)
    assert lines == ["- all of:", "  - for each `<name>` in `names`:", "    - `queue:get-artifact:<name>`"]
    assert render.scopes_markdown(None) == ["- none: public"]
