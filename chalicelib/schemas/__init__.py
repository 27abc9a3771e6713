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

from ..domain.model import storable_date

SCHEMA_DIR = Path(__file__).parent / "v1"


@cache
def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    return data


@cache
def validator(name: str) -> Callable[[Any], Any]:
    """A function that validates a value against schema `name`, fills defaults, and returns it.

    `date-time` means a date the service can store (domain.model.storable_date): one that
    merely parses (year 0001, year 9999's last days) would fail later, in arithmetic."""
    return fastjsonschema.compile(load(name), use_default=True, formats={"date-time": storable_date})


def schema_url(name: str) -> str:
    return str(load(name)["$id"])
