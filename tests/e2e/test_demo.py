"""`make run`'s demo, end to end: the embedded stack comes up, the provisioner starts local workers
for the example task graph, which runs to the end, the idle pool goes back to no workers, everything
stops."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from chalicelib.local.stack import free_port
from tests.harness import running

PROJECT = Path(__file__).resolve().parents[2]


def test_the_demo_runs_the_task_graph_on_provisioned_workers_which_stop_when_idle() -> None:
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
    inspector = r"watch it in the web inspector: http://127\.0\.0\.1:\d+/inspector/#/group/[A-Za-z0-9_-]{22}\n"
    assert re.search(inspector, out), out
    # Progress, one line per change: a dependent waits, then runs; test-3's first run asks for a retry.
    # (The display polls: it may catch the report pending, or miss its run and see it completed.)
    first_change = r"report\s+unscheduled -> (pending|running\s+run 0 on local-[0-9a-f]{8}|completed\s+run 0)"
    assert re.search(first_change, out), out
    assert re.search(r"report\s+\w+ -> completed\s+run 0", out), out
    assert re.search(r"test-3 .*-> completed\s+run 1 \(run 0: exception/intermittent-task\)", out), out
    assert "[##############################] 5/5 done" in out
    # The display says why tasks wait: the build waits for the pool's first worker.
    assert re.search(r"pool    1 task pending: (no worker yet|worker starting)", out), out
    assert "pool    no task waiting" in out
    # The report read each test's artifact, which read the build's artifact through the API.
    assert "test-1: passed (run 0, 14392 bytes checked)" in out
    assert "test-3: passed (run 1, 14392 bytes checked)" in out
    assert re.search(r"build\s+http://127\.0\.0\.1:\d+/api/queue/v1/task/\S+/artifacts/public/build/app\.txt", out)
    assert out.rstrip().endswith("stopped")

    # Nobody started a worker: the provisioner did, for the graph, and ended them once idle.
    started = re.findall(r"worker  (local-[0-9a-f]{8}) - -> requested", out)
    assert 1 <= len(started) <= 2, out  # --workers 2 (the default): the pool's maximum
    for worker_id in started:
        assert re.search(rf"worker  {worker_id} requested -> running", out), out
        assert re.search(rf"worker  {worker_id} \w+ -> stopped", out), out
    assert re.search(r"worker pool demo/linux: [12] worker\(s\) started for the graph, all stopped \d+\.\ds after", out)

    found = re.search(r"worker logs: (\S+)/local-\*/worker\.log", out)
    assert found, out
    log_dir = found.group(1)
    logs = sorted(Path(log_dir).glob("local-*/worker.log"))
    assert sorted(p.parent.name for p in logs) == sorted(started)
    for log in logs:
        text = log.read_text()
        assert "registered worker_pool=demo/linux provider=local" in text, text
        # Ended by the scanner (SIGTERM), or by itself when worker-manager told it it was over
        # capacity (it asks between polls): either way, cleanly.
        assert re.search(r"worker-stopped reason=(sigterm|worker-manager-terminate) exit=0", text), text
    assert not running(lambda cmd: "-m worker" in cmd and log_dir in cmd)
    shutil.rmtree(log_dir)
