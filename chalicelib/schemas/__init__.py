"""JSON schemas for request bodies: one file each under v1/, compiled once.

These files are the single source for what the API accepts; they are also what the API
reference serves.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema

SCHEMA_DIR = Path(__file__).parent / "v1"


@cache
def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    return data


@cache
def validator(name: str) -> Callable[[Any], Any]:
    """A function that validates a value against schema `name`, fills defaults, and returns it."""
    return fastjsonschema.compile(load(name), use_default=True)


def schema_url(name: str) -> str:
    return str(load(name)["$id"])
