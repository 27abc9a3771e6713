"""`make run`'s demo, end to end: the embedded stack and local workers come up, the example task
graph runs to the end, everything stops."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from chalicelib.local.stack import free_port
from tests.e2e.test_embedded_stack import running

PROJECT = Path(__file__).resolve().parents[2]


def test_the_demo_runs_the_task_graph_on_local_workers_and_stops_them() -> None:
    env = {**os.environ, "CI": "true"}  # plain lines, as in CI
    env.pop("AWS_ENDPOINT_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "chalicelib.local", "run", "--port", str(free_port()), "--exit"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "task group" in out and "build=completed, test-1=completed, test-2=completed, test-3=completed, " \
        "report=completed" in out  # fmt: skip
    assert re.search(r"all completed in \d+\.\ds", out), out
    # Progress, one line per change: a dependent waits, then runs; test-3's first run asks for a retry.
    # (The display polls: it may catch the report pending, or miss its run and see it completed.)
    assert re.search(r"report\s+unscheduled -> (pending|running\s+run 0 on worker-\d|completed\s+run 0)", out), out
    assert re.search(r"report\s+\w+ -> completed\s+run 0", out), out
    assert re.search(r"test-3 .*-> completed\s+run 1 \(run 0: exception/intermittent-task\)", out), out
    assert "[##############################] 5/5 done" in out
    # The report read each test's artifact, which read the build's artifact through the API.
    assert "test-1: passed (run 0, 14392 bytes checked)" in out
    assert "test-3: passed (run 1, 14392 bytes checked)" in out
    assert re.search(r"build\s+http://127\.0\.0\.1:\d+/api/queue/v1/task/\S+/artifacts/public/build/app\.txt", out)
    assert out.rstrip().endswith("stopped")

    found = re.search(r"worker logs: (\S+)/worker-\*\.log", out)
    assert found, out
    log_dir = found.group(1)
    logs = sorted(Path(log_dir).glob("worker-*.log"))
    assert [p.name for p in logs] == ["worker-1.log", "worker-2.log"]
    for log in logs:
        assert "worker-stopped reason=sigterm exit=0" in log.read_text(), log.read_text()
    assert not running(lambda cmd: "-m worker" in cmd and log_dir in cmd)
    shutil.rmtree(log_dir)
