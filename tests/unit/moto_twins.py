"""Transcripts of moto's answers with motofast's patches and without, for tests showing a patch
changes nothing moto answers. A test module defines `transcript(patched)` and runs itself as a
script (`python <module> patched|unpatched` prints that transcript as JSON); each transcript is
taken in a fresh process, so the unpatched one never sees a patch, with the same hash seed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def transcripts(module_file: str) -> tuple[list[Any], list[Any]]:
    """(patched, unpatched): the module's transcript, each from a process of its own."""
    return _transcript(module_file, True), _transcript(module_file, False)


def _transcript(module_file: str, patched: bool) -> list[Any]:
    out = subprocess.run(
        [sys.executable, module_file, "patched" if patched else "unpatched"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={
            "PYTHONPATH": str(ROOT),
            "PYTHONHASHSEED": "0",
            "PATH": "",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
        },
    )
    answers: list[Any] = json.loads(out.stdout)
    return answers


def unpatched_scenario(module: str, call: str = "_json(scenario())", mocked: bool = True) -> list[Any]:
    """What `call` (a name of test module `module`, a dotted name; by default `_json(scenario())`)
    returns under moto without motofast, in a process of its own (this one has the patches applied);
    inside `mock_aws()` unless `mocked` is False."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("AWS_ENDPOINT_URL", None)
    body = f"print(json.dumps(eval({call!r}, vars(module))))\n"
    script = (
        f"import importlib, json, sys\nfrom moto import mock_aws\nmodule = importlib.import_module({module!r})\n"
        "assert 'chalicelib.local.motofast' not in sys.modules\n"
        + ("with mock_aws():\n    " + body if mocked else body)
    )
    plain = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr
    answers: list[Any] = json.loads(plain.stdout)
    return answers
