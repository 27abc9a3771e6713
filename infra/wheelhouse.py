"""Wheels of requirements.txt made from what is installed here, so `chalice deploy` bundles offline.

Chalice builds a deployment package by running `pip download -r requirements.txt` (then it unpacks
the wheels itself). With no network, point pip at a directory of wheels instead:

    python -m infra.wheelhouse infra/build/wheels          # from this virtualenv, no network
    PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/infra/build/wheels make deploy STAGE=dev

(`pip download -r requirements.txt -d infra/build/wheels`, run once where PyPI is reachable, makes
the same directory from PyPI.) Every requirement and dependency must be installed here, and pure
Python (`Root-Is-Purelib`, `py3-none-any`): Lambda runs Linux, and a compiled wheel made from this
machine's files might not fit it; today all of them are pure. Chalice then reuses its own cache
(.chalice/deployments/) for as long as requirements.txt and the code stay the same.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata as metadata
import re
import sys
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

PROJECT_DIR = Path(__file__).resolve().parent.parent


class NotPure(Exception):
    pass


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_requirements(path: Path) -> list[Requirement]:
    requirements = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirements.append(Requirement(line))
    return requirements


def closure(requirements: Iterable[Requirement], python_version: str = "3.11") -> list[metadata.Distribution]:
    """The installed distributions the requirements need, dependencies included (markers evaluated
    for Lambda's Linux and Python `python_version`)."""
    environment: dict[str, str] = {
        **{k: str(v) for k, v in default_environment().items()},
        "python_version": python_version,
        "python_full_version": f"{python_version}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": "x86_64",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    found: dict[str, metadata.Distribution] = {}
    requested: dict[str, set[str]] = {}  # per distribution: the extras already followed ("" = its base)
    todo = [r for r in requirements if not r.marker or r.marker.evaluate({**environment, "extra": ""})]
    while todo:
        requirement = todo.pop()
        key = _normal(requirement.name)
        dist = found.get(key) or metadata.distribution(requirement.name)
        if dist.version not in requirement.specifier:
            raise ValueError(f"{requirement}: {dist.metadata['Name']} {dist.version} is installed")
        found[key] = dist
        new = ({""} | set(requirement.extras)) - requested.get(key, set())
        requested.setdefault(key, set()).update(new)
        for line in dist.requires or []:
            dependency = Requirement(line)
            if any(not dependency.marker or dependency.marker.evaluate({**environment, "extra": e}) for e in new):
                todo.append(dependency)
    return sorted(found.values(), key=lambda d: _normal(d.metadata["Name"]))


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(dist: metadata.Distribution, out_dir: Path) -> Path:
    """Pack an installed pure-Python distribution back into a wheel."""
    wheel_meta = dist.read_text("WHEEL") or ""
    if "Root-Is-Purelib: true" not in wheel_meta:
        raise NotPure(f"{dist.metadata['Name']} is not pure Python: fetch its Linux wheel with pip download")
    name = re.sub(r"[-.]+", "_", dist.metadata["Name"])
    path = out_dir / f"{name}-{dist.version}-py3-none-any.whl"
    records = []
    info_dir = None
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for file in dist.files or []:
            arcname = str(file).replace("\\", "/")
            if arcname.endswith(".pyc") or "__pycache__" in arcname or arcname.startswith(".."):
                continue
            if arcname.endswith(".dist-info/RECORD"):
                info_dir = arcname.rsplit("/", 1)[0]
                continue
            if arcname.endswith((".dist-info/INSTALLER", ".dist-info/REQUESTED", ".dist-info/direct_url.json")):
                continue
            source = Path(str(dist.locate_file(file)))
            if not source.is_file():
                continue
            data = source.read_bytes()
            wheel.writestr(arcname, data)
            records.append(f"{arcname},{_digest(data)},{len(data)}")
        if info_dir is None:
            raise ValueError(f"{dist.metadata['Name']}: no RECORD, cannot tell its files")
        records.append(f"{info_dir}/RECORD,,")
        wheel.writestr(f"{info_dir}/RECORD", "\n".join(records) + "\n")
    return path


def build(out_dir: Path, requirements_file: Path = PROJECT_DIR / "requirements.txt") -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return [build_wheel(d, out_dir) for d in closure(read_requirements(requirements_file))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.wheelhouse", description=__doc__.split("\n", 1)[0])
    parser.add_argument("out", type=Path, help="the directory to write the wheels into")
    parser.add_argument("--requirements", type=Path, default=PROJECT_DIR / "requirements.txt")
    args = parser.parse_args(argv)
    try:
        for path in build(args.out, args.requirements):
            print(path)
    except (NotPure, metadata.PackageNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
