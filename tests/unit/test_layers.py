"""The house's layers, checked on the source: domain at the bottom with no AWS or web imports,
services free of AWS SDKs, handlers free of adapters, and no import circle anywhere."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "chalicelib"
AWS = ("boto3", "botocore", "pynamodb", "moto", "chalice", "mypy_boto3")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    found = {module_name(p): p for p in (ROOT / PACKAGE).rglob("*.py")}
    found["app"] = ROOT / "app.py"
    return found


def imports(name: str, path: Path) -> Iterator[str]:
    """Every module `name` imports at any level of its source (functions included), resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            yield prefix
            yield from (f"{prefix}.{alias.name}" for alias in node.names)


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {m for m in imports(name, path) if m in known and m != name} for name, path in known.items()}


def external(name: str) -> set[str]:
    return {m.split(".")[0] for m in imports(name, modules()[name])}


def layer(prefix: str) -> list[str]:
    return sorted(m for m in modules() if m == prefix or m.startswith(prefix + "."))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_itself_through_others() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_sees_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", layer("chalicelib.domain"))
def test_the_domain_imports_nothing_of_aws_nor_of_the_layers_above(module: str) -> None:
    assert not external(module) & set(AWS), module
    above = {m for m in graph()[module] if not m.startswith(("chalicelib.domain", "chalicelib.clock"))}
    assert not above - {"chalicelib"}, module


@pytest.mark.parametrize("module", layer("chalicelib.services"))
def test_services_import_no_aws_sdk_and_no_adapter_or_handler(module: str) -> None:
    assert not external(module) & set(AWS), module
    assert not {m for m in graph()[module] if m.startswith(("chalicelib.adapters", "chalicelib.handlers"))}, module


@pytest.mark.parametrize("module", layer("chalicelib.handlers"))
def test_handlers_reach_adapters_only_through_the_composition_root(module: str) -> None:
    assert not external(module) & {"boto3", "botocore", "pynamodb"}, module
    assert not {m for m in graph()[module] if m.startswith("chalicelib.adapters")}, module


def test_the_reference_does_not_import_the_application() -> None:
    for module in layer("chalicelib.reference"):
        if module.endswith("__main__"):
            continue  # the generator's entry point loads the app on purpose
        assert "app" not in graph()[module], module
