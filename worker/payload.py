"""A task's payload, as generic-worker defines it, validated.

Pure: `parse_payload` turns the task's JSON payload into a `Payload` or raises `MalformedPayload`
with a message that names the field at fault (the worker writes it to the task's log and reports
exception/malformed-payload). Also here: the task's environment and content types of artifacts.
"""

from __future__ import annotations

import mimetypes
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
# Known generic-worker fields this worker accepts but has nothing to do for.
IGNORED = frozenset({"features", "osGroups", "logs", "supersederUrl", "taskclusterProxyInterface"})
KNOWN = frozenset({"command", "env", "maxRunTime", "artifacts", "onExitStatus", "image", "mounts"}) | IGNORED
ARTIFACT_KEYS = frozenset({"type", "path", "name", "expires", "contentType", "contentEncoding", "optional"})
# The variables a task inherits from the worker (overridable by the payload); nothing else
# leaks from the worker's environment (its credentials stay out of tasks).
INHERITED = ("HOME", "PATH", "USER", "LANG", "TMPDIR")
TEXT_TYPES = {".log": "text/plain; charset=utf-8", ".txt": "text/plain; charset=utf-8", ".md": "text/markdown"}


class MalformedPayload(ValueError):
    """The payload does not validate; the message says why."""


@dataclass(frozen=True)
class ArtifactSpec:
    type: str  # "file" or "directory"
    path: str  # relative to the task directory
    name: str
    expires: str | None = None
    content_type: str | None = None
    optional: bool = False


@dataclass(frozen=True)
class Payload:
    commands: tuple[tuple[str, ...], ...]
    max_run_time: int
    env: Mapping[str, str] = field(default_factory=dict)
    artifacts: tuple[ArtifactSpec, ...] = ()
    retry_codes: frozenset[int] = frozenset()
    image: str | None = None  # a Docker image: run the commands in a container


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _commands(raw: Any, required: bool) -> tuple[tuple[str, ...], ...]:
    if raw is None:
        if required:
            raise MalformedPayload("payload.command is required: a list of commands, each a list of strings")
        return ()
    if not isinstance(raw, list) or not raw:
        raise MalformedPayload("payload.command must be a non-empty list of commands (each a list of strings)")
    out = []
    for i, argv in enumerate(raw):
        if not isinstance(argv, list) or not argv:
            raise MalformedPayload(f"payload.command[{i}] must be a non-empty list of strings")
        for j, arg in enumerate(argv):
            if not isinstance(arg, str):
                raise MalformedPayload(f"payload.command[{i}][{j}] must be a string, got {type(arg).__name__}")
        out.append(tuple(argv))
    return tuple(out)


def _env(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise MalformedPayload("payload.env must be an object of strings")
    for k, v in raw.items():
        if not isinstance(v, str):
            raise MalformedPayload(f"payload.env.{k} must be a string, got {type(v).__name__}")
    return dict(raw)


def _relative_path(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise MalformedPayload(f"{where}.path must be a non-empty string")
    normal = posixpath.normpath(raw)
    if raw.startswith("/") or normal == ".." or normal.startswith("../"):
        raise MalformedPayload(f"{where}.path must be relative to the task directory, got {raw!r}")
    return normal


def _artifact(raw: Any, i: int) -> ArtifactSpec:
    where = f"payload.artifacts[{i}]"
    if not isinstance(raw, dict):
        raise MalformedPayload(f"{where} must be an object")
    unknown = sorted(set(raw) - ARTIFACT_KEYS)
    if unknown:
        raise MalformedPayload(f"{where} has unknown properties: {', '.join(unknown)}")
    if raw.get("type") not in ("file", "directory"):
        raise MalformedPayload(f"{where}.type must be 'file' or 'directory', got {raw.get('type')!r}")
    path = _relative_path(raw.get("path"), where)
    name = raw.get("name", path)
    if not isinstance(name, str) or not name:
        raise MalformedPayload(f"{where}.name must be a non-empty string")
    expires = raw.get("expires")
    if expires is not None and (not isinstance(expires, str) or not DATE.match(expires)):
        raise MalformedPayload(f"{where}.expires must be a date-time such as 2030-01-01T00:00:00.000Z")
    content_type = raw.get("contentType")
    if content_type is not None and not isinstance(content_type, str):
        raise MalformedPayload(f"{where}.contentType must be a string")
    if raw.get("contentEncoding", "identity") not in ("identity", "gzip"):
        raise MalformedPayload(f"{where}.contentEncoding must be 'identity' or 'gzip'")
    optional = raw.get("optional", False)
    if not isinstance(optional, bool):
        raise MalformedPayload(f"{where}.optional must be true or false")
    return ArtifactSpec(raw["type"], path, name, expires, content_type, optional)


def _image(raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, str) and raw:
        return raw
    if isinstance(raw, dict) and raw.get("type") == "docker-image" and isinstance(raw.get("name"), str):
        return str(raw["name"])
    raise MalformedPayload(
        "payload.image must be an image name or {type: docker-image, name}; other forms are not supported"
    )


def _retry_codes(raw: Any) -> frozenset[int]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, dict):
        raise MalformedPayload("payload.onExitStatus must be an object")
    codes = raw.get("retry", [])
    if not isinstance(codes, list) or not all(_is_int(c) and c > 0 for c in codes):
        raise MalformedPayload("payload.onExitStatus.retry must be a list of positive exit codes")
    return frozenset(codes)


def parse_payload(raw: Any, max_run_time_limit: int) -> Payload:
    """The payload of a task, or MalformedPayload naming the first problem found."""
    if not isinstance(raw, dict):
        raise MalformedPayload("payload must be an object")
    unknown = sorted(set(raw) - KNOWN)
    if unknown:
        raise MalformedPayload(f"payload has unknown properties: {', '.join(unknown)}")
    if raw.get("mounts"):
        raise MalformedPayload("payload.mounts are not supported by this worker")
    image = _image(raw.get("image"))
    max_run_time = raw.get("maxRunTime")
    if (
        not isinstance(max_run_time, int)
        or isinstance(max_run_time, bool)
        or not 1 <= max_run_time <= max_run_time_limit
    ):
        raise MalformedPayload(f"payload.maxRunTime must be an integer from 1 to {max_run_time_limit} (seconds)")
    artifacts = raw.get("artifacts", [])
    if not isinstance(artifacts, list):
        raise MalformedPayload("payload.artifacts must be a list")
    return Payload(
        commands=_commands(raw.get("command"), required=image is None),
        max_run_time=max_run_time,
        env=_env(raw.get("env")),
        artifacts=tuple(_artifact(a, i) for i, a in enumerate(artifacts)),
        retry_codes=_retry_codes(raw.get("onExitStatus")),
        image=image,
    )


def task_environment(
    payload_env: Mapping[str, str], worker_env: Mapping[str, str], injected: Mapping[str, str]
) -> dict[str, str]:
    """HOME, PATH, USER… from the worker (overridable), then the payload's env, then the
    worker's injected variables (TASK_ID, RUN_ID, …), which a payload cannot override."""
    env = {k: worker_env[k] for k in INHERITED if k in worker_env}
    env.update(payload_env)
    env.update(injected)
    return env


def content_type(name: str) -> str:
    """The contentType of an artifact that does not give one, guessed from its name."""
    ext = posixpath.splitext(name)[1].lower()
    if ext in TEXT_TYPES:
        return TEXT_TYPES[ext]
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


def docker_command(image: str, argv: tuple[str, ...], task_dir: str, env: Mapping[str, str], name: str) -> list[str]:
    """One payload command run in a container: the task directory mounted as its working directory."""
    env_args = [a for k in sorted(env) if k not in ("HOME", "PATH", "USER", "TMPDIR") for a in ("-e", k)]
    return [
        "docker", "run", "--rm", "--init", "--name", name,
        "-v", f"{task_dir}:/task", "-w", "/task", "-e", "TASK_WORKDIR=/task",
        *env_args, image, *argv,
    ]  # fmt: skip
