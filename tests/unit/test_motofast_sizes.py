"""motofast's patches 51 (a value's size without re-wrapping its nested values) and 52 (its plain
JSON without copying it twice) change moto's cost, never its answers: every kind of value, nested
in maps and lists, has the same size and the same JSON (alone, and as an item's attribute) on the
patched stand-in (this process: conftest applies motofast) as on moto without the patches (a fresh
interpreter that never imports motofast).
"""

from __future__ import annotations

import json
from typing import Any

from tests.unit.moto_twins import unpatched_scenario

RUN = {"M": {"runId": {"N": "0"}, "state": {"S": "running"}, "reasonCreated": {"S": "scheduled"},
             "takenUntil": {"S": "2026-01-01T00:20:00.000Z"}, "workerId": {"S": "wörker-ü"}}}  # fmt: skip
VALUES: list[dict[str, Any]] = [
    {"S": "plain"},
    {"S": "ünïcödé ✓"},
    {"S": ""},
    {"N": "12345.678"},
    {"N": "-0"},
    {"B": b"\x00\x01\x02"},
    {"SS": ["a", "bé", "ccc"]},
    {"NS": ["1", "22", "3.5"]},
    {"BS": [b"\x00", b"\x01\x02"]},
    {"BOOL": True},
    {"BOOL": False},
    {"NULL": True},
    {"L": []},
    {"M": {}},
    {"L": [RUN, RUN, {"S": "x"}, {"N": "1"}, {"L": [{"BOOL": False}, {"SS": ["q"]}]}]},
    {"M": {"runs": {"L": [RUN, RUN]}, "tags": {"M": {"é": {"S": "ü"}, "n": {"NULL": True}}}, "b": {"B": b"\xff"}}},
]


def measures() -> list[Any]:
    """Each value's size and JSON, as this process's moto makes them (also after a copy, nested,
    and in an item), as plain JSON."""
    import copy

    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    found: list[Any] = []
    for value in VALUES:
        typed, nested = DynamoType(value), DynamoType({"M": {"k": value}})
        found += [typed.size(), copy.deepcopy(typed).size(), nested.size()]
        found += [typed.to_regular_json(), nested.to_regular_json(), typed.to_json()]
        item = Item(DynamoType({"S": "key"}), None, {"pk": {"S": "key"}, "v": value, "n": nested.to_json()})
        found += [item.to_json(), item.to_regular_json()]
    as_json: list[Any] = json.loads(json.dumps(found, sort_keys=True, default=_plain))
    return as_json


def _plain(value: Any) -> Any:
    """Sets (an item's regular JSON has them) in one order, whatever the process's hash seed."""
    return sorted(map(repr, value)) if isinstance(value, set | frozenset) else repr(value)


def test_sizes_and_json_are_moto_s_own() -> None:
    ours = measures()
    assert ours == unpatched_scenario("tests.unit.test_motofast_sizes", "measures()", mocked=False)
