"""`submit FILE`: a task or a task graph, in YAML or JSON, made into createTask calls (docs/cli.md).

A graph is a mapping with `tasks`, a list of task definitions that each carry a local `name`;
`dependencies` may name other tasks of the file (they become those tasks' fresh taskIds) or give
taskIds of existing tasks. `defaults` is merged into every task (its `metadata` key by key), and
`taskGroupId` names the group (a fresh one otherwise). Anything else is a single task definition.
Inside a task, `{task-reference: "... <name> ..."}` becomes that string with each `<name>` of a task
of the file replaced by its taskId (as Taskcluster's taskgraph writes it). `created` defaults to now
and `deadline` to "1 hour"; `deadline` and `expires` may be relative
("2 hours", as taskcluster.fromNow reads them). Everything is checked before any task is created.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import taskcluster
import yaml

SLUGID = re.compile(r"^[A-Za-z0-9_-]{8}[Q-T][A-Za-z0-9_-][CGKOSWaeimquy26-][A-Za-z0-9_-]{10}[AQgw]$")
REFERENCE = re.compile(r"<([^<>]+)>")
DEFAULT_DEADLINE = "1 hour"
GRAPH_KEYS = {"tasks", "defaults", "taskGroupId"}


class GraphError(ValueError):
    """The file is not a task or graph this command can submit (the message says why)."""


@dataclass
class Planned:
    name: str
    task_id: str
    definition: dict[str, Any]


def load(path: Path) -> Any:
    """The file's content: JSON for *.json, YAML (a superset) otherwise."""
    try:
        text = path.read_text()
    except OSError as e:
        raise GraphError(f"cannot read {path}: {e.strerror}") from e
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise GraphError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {e}") from e


def plan(doc: Any, default_name: str, new_id: Callable[[], str], now: datetime | None = None) -> list[Planned]:
    """The tasks to create, each after those it depends on, with fresh taskIds from `new_id`."""
    if not isinstance(doc, Mapping):
        raise GraphError("expected a mapping: a task definition, or a graph with `tasks`")
    now = now or datetime.now(UTC)
    if "tasks" not in doc:
        task = dict(doc)
        task_id = task.pop("taskId", None) or new_id()
        name = _name(task, default_name)
        return [Planned(name, task_id, _complete(task, name, now))]
    unknown = set(doc) - GRAPH_KEYS
    if unknown:
        raise GraphError(f"unknown key(s) beside `tasks`: {', '.join(sorted(unknown))} (allowed: {sorted(GRAPH_KEYS)})")
    tasks, defaults = doc["tasks"], doc.get("defaults") or {}
    if not isinstance(tasks, list) or not tasks or not isinstance(defaults, Mapping):
        raise GraphError("`tasks` must be a non-empty list of task definitions and `defaults` a mapping")
    group = doc.get("taskGroupId") or new_id()
    by_name: dict[str, dict[str, Any]] = {}
    for i, raw in enumerate(tasks):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str) or not raw["name"]:
            raise GraphError(f"tasks[{i}]: each task needs a `name` (its local name in this file)")
        if raw["name"] in by_name:
            raise GraphError(f"tasks[{i}]: the name {raw['name']!r} is used twice")
        task = {**defaults, **raw, "taskGroupId": group}
        task["metadata"] = {**(defaults.get("metadata") or {}), **(raw.get("metadata") or {})}
        by_name[task.pop("name")] = task
    ids = {name: new_id() for name in by_name}
    for name, task in by_name.items():
        deps = task.get("dependencies") or []
        if not isinstance(deps, list):
            raise GraphError(f"{name}: `dependencies` must be a list")
        for dep in deps:
            if dep not in ids and not (isinstance(dep, str) and SLUGID.match(dep)):
                raise GraphError(f"{name}: dependency {dep!r} is neither a task of this file nor a taskId")
        task["dependencies"] = [ids.get(dep, dep) for dep in deps]
        by_name[name] = _references(task, ids, name)
        _complete(by_name[name], name, now)
    return [Planned(name, ids[name], by_name[name]) for name in _ordered(by_name, ids)]


def _references(value: Any, ids: Mapping[str, str], name: str) -> Any:
    """`value` with every {task-reference: text} replaced by the text, <name>s made taskIds."""
    if isinstance(value, Mapping):
        if set(value) == {"task-reference"}:
            text = value["task-reference"]
            if not isinstance(text, str):
                raise GraphError(f"{name}: a task-reference must be a string")
            for ref in REFERENCE.findall(text):
                if ref not in ids:
                    raise GraphError(f"{name}: task-reference <{ref}> names no task of this file")
            return REFERENCE.sub(lambda m: ids[m.group(1)], text)
        return {k: _references(v, ids, name) for k, v in value.items()}
    if isinstance(value, list):
        return [_references(v, ids, name) for v in value]
    return value


def _name(task: Mapping[str, Any], default: str) -> str:
    metadata = task.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return name if isinstance(name, str) and name else default


def _complete(task: dict[str, Any], name: str, now: datetime) -> dict[str, Any]:
    """Fill in what the file may leave out, and check what it may not."""
    if not isinstance(task.get("metadata", {}), Mapping):
        raise GraphError(f"{name}: `metadata` must be a mapping")
    metadata = task["metadata"] = dict(task.get("metadata", {}))
    metadata.setdefault("name", name)
    metadata.setdefault("description", "")
    missing = [f"metadata.{k}" for k in ("owner", "source") if k not in metadata]
    missing += [] if "taskQueueId" in task or {"provisionerId", "workerType"} <= set(task) else ["taskQueueId"]
    missing += [] if "payload" in task else ["payload"]
    if missing:
        raise GraphError(f"{name}: missing {', '.join(missing)} (give it in the task or in `defaults`)")
    task["created"] = _date(task.get("created", now), now, name, "created")
    task["deadline"] = _date(task.get("deadline", DEFAULT_DEADLINE), now, name, "deadline")
    if "expires" in task:
        task["expires"] = _date(task["expires"], now, name, "expires")
    return task


def _date(value: Any, now: datetime, name: str, key: str) -> str:
    """An ISO date (YAML may have read it as a datetime already), or a time from now like "2 hours"."""
    if isinstance(value, datetime):
        return str(taskcluster.stringDate(value if value.tzinfo else value.replace(tzinfo=UTC)))
    if not isinstance(value, str):
        raise GraphError(f"{name}: `{key}` must be a date or a time from now such as \"1 hour\"")
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return str(value)
    except ValueError:
        pass
    try:
        return str(taskcluster.stringDate(taskcluster.fromNow(value, now)))
    except ValueError as e:
        raise GraphError(f"{name}: `{key}` {value!r} is neither a date nor a time from now (\"1 hour\")") from e


def _ordered(tasks: Mapping[str, dict[str, Any]], ids: Mapping[str, str]) -> list[str]:
    """Names in an order where each comes after the tasks of the file it depends on."""
    local = {task_id: name for name, task_id in ids.items()}
    order: list[str] = []
    state: dict[str, str] = {}  # name -> "visiting" | "done"
    for start in tasks:
        stack = [(start, iter(tasks[start]["dependencies"]))]
        state.setdefault(start, "visiting")
        if state[start] == "done":
            continue
        while stack:
            name, deps = stack[-1]
            dep = next((local[d] for d in deps if d in local), None)
            if dep is None:
                stack.pop()
                state[name] = "done"
                order.append(name)
            elif state.get(dep) == "visiting":
                raise GraphError(f"the dependencies form a cycle through {dep!r} and {name!r}")
            elif dep not in state:
                state[dep] = "visiting"
                stack.append((dep, iter(tasks[dep]["dependencies"])))
    return order
