"""`make run`'s demo, end to end: the embedded stack comes up, real work happens, it stops."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chalicelib.local.stack import free_port

PROJECT = Path(__file__).resolve().parents[2]


def test_the_demo_runs_tasks_and_a_task_graph_to_the_end() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chalicelib.local", "run", "--port", str(free_port()), "--exit"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "final states: {'build': 'completed', 'lint': 'failed', 'flaky': 'completed'} (as expected)" in out
    assert "report=completed" in out
    assert "test-2=failed" in out
    assert out.rstrip().endswith("stopped")
