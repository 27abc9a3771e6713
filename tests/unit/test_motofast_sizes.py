"""motofast's patch 51 (a value's size without re-wrapping its nested values) changes moto's cost,
never its measure: every kind of value, nested in maps and lists, has the same size on the patched
stand-in (this process: conftest applies motofast) as on moto without the patches (a fresh
interpreter that never imports motofast).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

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


def sizes() -> list[int]:
    """Each value's size, as this process's moto measures it (also after a copy and after nesting)."""
    import copy

    from moto.dynamodb.models.dynamo_type import DynamoType

    found = []
    for value in VALUES:
        typed = DynamoType(value)
        found += [typed.size(), copy.deepcopy(typed).size(), DynamoType({"M": {"k": value}}).size()]
    return found


def test_sizes_are_moto_s_own() -> None:
    ours = sizes()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = (
        "import json, sys\n"
        "from tests.unit.test_motofast_sizes import sizes\n"
        "assert 'chalicelib.local.motofast' not in sys.modules\n"
        "print(json.dumps(sizes()))\n"
    )
    plain = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr
    assert ours == json.loads(plain.stdout)
