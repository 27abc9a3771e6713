"""The readable rendering of the reference: docs/reference/<service>.md, an index, and the
generated parts of docs/architecture.md (the state machine).

`files(docs_dir)` returns every generated file's path and content; the CLI writes them, and a
test compares them with what is committed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..domain.scopes import ScopeExpr
from . import Entry, api_reference, entries, reference_path, relative_schema_url, service_info, services, states

REGENERATE = "python -m chalicelib.reference render docs"  # or: make docs
NOTICE = f"<!-- Generated from the code by `{REGENERATE}` (make docs). Do not edit. -->"
SCHEMA_SOURCE = "../../chalicelib/schemas/v1"  # from docs/reference/
STATE_MACHINE_BEGIN = "<!-- BEGIN GENERATED: state machine (chalicelib/reference/states.py; make docs) -->"
STATE_MACHINE_END = "<!-- END GENERATED: state machine -->"


def scopes_markdown(expr: ScopeExpr | None, indent: str = "") -> list[str]:
    """A scope expression as nested bullet points, as Taskcluster's docs show them."""
    if expr is None:
        return [f"{indent}- none: public"]
    if isinstance(expr, str):
        return [f"{indent}- `{expr}`"]
    if "for" in expr:
        return [
            f"{indent}- for each `<{expr['for']}>` in `{expr['in']}`:",
            *scopes_markdown(expr["each"], indent + "  "),
        ]
    key = "AllOf" if "AllOf" in expr else "AnyOf"
    items: list[Any] = expr[key]
    if key == "AllOf" and not items:
        return [f"{indent}- none, but the caller must be authenticated"]
    lines = [f"{indent}- {'all of' if key == 'AllOf' else 'any of'}:"]
    for item in items:
        lines += scopes_markdown(item, indent + "  ")
    return lines


def _schema_link(name: str) -> str:
    return f"[`{relative_schema_url(name).rstrip('#')}`]({SCHEMA_SOURCE}/{name}.json)"


def _entry_markdown(service: str, version: str, e: Entry) -> list[str]:
    ep = e.endpoint
    lines = [f"### {e.name}", "", f"**{e.title}** — `{ep.method} /api/{service}/{version}{ep.path}`", ""]
    facts = [f"stability: {e.stability}"]
    if e.query:
        facts.append("query: " + ", ".join(f"`{q}`" for q in e.query))
    facts.append(f"input: {_schema_link(ep.input)}" if ep.input else "input: none")
    facts.append(f"output: {_schema_link(e.output)}" if e.output else "output: not described by a schema")
    lines += [" · ".join(facts), "", "Scopes:", "", *scopes_markdown(ep.scopes), "", e.description, ""]
    return lines


def service_markdown(service: str) -> str:
    info = service_info(service)
    reference = api_reference(service)
    version = reference["apiVersion"]
    found = entries(service)
    lines = [
        NOTICE,
        "",
        f"# {info.title} (`{service}` {version})",
        "",
        info.description,
        "",
        f"Base URL: `<rootUrl>/api/{service}/{version}`. Served as JSON at `<rootUrl>{reference_path(service)}`;"
        f" schemas at `<rootUrl>/schemas/{service}/{version}/<name>.json`.",
        "",
        "| endpoint | method and path | stability |",
        "|---|---|---|",
    ]
    lines += [
        f"| [{e.name}](#{e.name.lower()}) | `{e.endpoint.method} {e.endpoint.path}` | {e.stability} |" for e in found
    ]
    category = None
    for e in found:
        if e.category != category:
            category = e.category
            lines += ["", f"## {category}", ""]
        lines += _entry_markdown(service, version, e)
    return "\n".join(lines).rstrip() + "\n"


def index_markdown() -> str:
    lines = [
        NOTICE,
        "",
        "# API reference",
        "",
        "Every endpoint of every service, generated from the code: each endpoint as its route"
        " declares it (`Api.route` in chalicelib/handlers/api.py: path, scope expression, schemas,"
        " query, category), the JSON schemas it validates with (chalicelib/schemas/v1) and its"
        " description (the handler's docstring).",
        "",
        "A running deployment serves the same in Taskcluster's formats, without credentials:"
        " `<rootUrl>/references/manifest.json`, `<rootUrl>/references/<service>/v1/api.json` and"
        " `<rootUrl>/schemas/<service>/v1/<name>.json`.",
        "",
        f"Regenerate after changing an endpoint: `make docs` (`{REGENERATE}`).",
        "",
        "| service | reference | endpoints |",
        "|---|---|---|",
    ]
    for s in services():
        lines.append(f"| {service_info(s).title} | [{s}.md]({s}.md) | {len(entries(s))} |")
    return "\n".join(lines) + "\n"


def state_machine_markdown() -> str:
    return "\n".join(
        [
            STATE_MACHINE_BEGIN,
            states.mermaid(),
            "",
            states.table(),
            STATE_MACHINE_END,
        ]
    )


def with_state_machine(architecture: str) -> str:
    """docs/architecture.md with its generated block replaced by the current state machine."""
    start = architecture.find(STATE_MACHINE_BEGIN)
    end = architecture.find(STATE_MACHINE_END)
    if start < 0 or end < start:
        raise ValueError(f"docs/architecture.md has no block between {STATE_MACHINE_BEGIN!r} and {STATE_MACHINE_END!r}")
    return architecture[:start] + state_machine_markdown() + architecture[end + len(STATE_MACHINE_END) :]


def files(docs: Path) -> dict[Path, str]:
    """Every generated file under `docs`, with the content it must have now."""
    out = {docs / "reference" / "README.md": index_markdown()}
    for s in services():
        out[docs / "reference" / f"{s}.md"] = service_markdown(s)
        out[docs / "reference" / f"{s}-api.json"] = json.dumps(api_reference(s), indent=2) + "\n"
    architecture = docs / "architecture.md"
    if architecture.exists():
        out[architecture] = with_state_machine(architecture.read_text())
    return out


def stale(docs: Path) -> list[Path]:
    """Generated files that are missing or differ from what the code generates, plus leftovers."""
    wanted = files(docs)
    changed = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    generated = set((docs / "reference").glob("*")) if (docs / "reference").exists() else set()
    return changed + sorted(generated - set(wanted))


def write(docs: Path) -> list[Path]:
    (docs / "reference").mkdir(parents=True, exist_ok=True)
    written = []
    for path, text in files(docs).items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    for leftover in sorted(set((docs / "reference").glob("*")) - set(files(docs))):
        leftover.unlink()
        written.append(leftover)
    return written
