"""Server CPU per task: what the embedded stack's processes spend on the end-to-end workload.

    .venv/bin/python -m bench.cpu [--tasks 500] [--clients 1,4] [--rounds 1] [--project DIR]

Starts `python -m chalicelib.local serve` (the API, the event pump and the stand-in's process),
runs the end-to-end workload of bench/workload.py against it from this process (the official
client), and reads the CPU time (user + system, /proc) each server process used during each run.
Figures per run: CPU-ms per task (the API process, the stand-in, both), tasks/s to the last
completion, claimWork(32) p50, the load average at the end. `--project` serves another checkout
of this project (its own code; this one's client), so two versions can be compared in interleaved
runs on a shared machine: `--project` twice or more alternates between them. Not part of
`make bench`; `measure()` returns the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import workload
from .idle import children, cpu_seconds

ROOT = Path(__file__).resolve().parents[1]


def serve(project: Path, port: int) -> tuple[subprocess.Popen[bytes], int | None]:
    """The stack of `project` serving on `port`, and its stand-in's pid if it runs in a process
    of its own (as it does since standin.py; for a while before, it ran in the stack's)."""
    from chalicelib.local.stack import wait_for

    proc = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.local", "serve", "--port", str(port)],
        cwd=project,
        stdout=subprocess.DEVNULL,
    )
    wait_for(f"http://127.0.0.1:{port}/api/queue/v1/ping", 120, proc)
    moto = children(proc.pid)
    assert len(moto) <= 1, f"expected at most one child (the stand-in), found {moto}"
    return proc, moto[0] if moto else None


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run(root: str, api_pid: int, moto_pid: int | None, n: int, clients: int) -> dict[str, Any]:
    def moto_cpu() -> float:
        return cpu_seconds(moto_pid) if moto_pid is not None else 0.0

    api0, moto0 = cpu_seconds(api_pid), moto_cpu()
    w = workload.end_to_end(root, n, clients)
    api, moto = cpu_seconds(api_pid) - api0, moto_cpu() - moto0
    done = max(1, w["reportCompleted"]["n"])
    return {
        "clients": clients,
        "tasks": done,
        "cpu_ms_per_task": {
            "api": round(api * 1000 / done, 1),
            "stand_in": round(moto * 1000 / done, 1),
            "total": round((api + moto) * 1000 / done, 1),
        },
        "tasks_per_s": w["tasks_per_s_to_last_completion"],
        "claimWork_p50_ms": w["claimWork"]["p50_ms"],
        "createTask_p50_ms": w["createTask"]["p50_ms"],
        "reportCompleted_p50_ms": w["reportCompleted"]["p50_ms"],
        "errors": w["errors"],
        "loadavg": os.getloadavg()[0],
    }


def measure(projects: list[Path], n: int, clients: list[int], rounds: int) -> list[dict[str, Any]]:
    from chalicelib.local.stack import free_port

    os.environ.setdefault("TASKQUEUE_ROOT_ACCESS_TOKEN", secrets.token_urlsafe(33))
    results = []
    for _ in range(rounds):
        for project in projects:
            port = free_port()
            proc, moto = serve(project, port)
            try:
                time.sleep(2)  # the first schedules' runs load their clients: start-up work
                for c in clients:
                    r = {"project": str(project), **run(f"http://127.0.0.1:{port}", proc.pid, moto, n, c)}
                    report(r)
                    results.append(r)
            finally:
                stop(proc)
    return results


def report(r: dict[str, Any]) -> None:
    cpu = r["cpu_ms_per_task"]
    print(
        f"{Path(r['project']).name:12} {r['clients']} client(s): {cpu['total']:5.1f} CPU-ms/task "
        f"(API {cpu['api']:.1f}, stand-in {cpu['stand_in']:.1f}), {r['tasks_per_s']:5.1f} tasks/s, "
        f"claimWork(32) p50 {r['claimWork_p50_ms']} ms, createTask p50 {r['createTask_p50_ms']} ms, "
        f"reportCompleted p50 {r['reportCompleted_p50_ms']} ms, errors {r['errors']}, load {r['loadavg']:.2f}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--clients", default="1,4", help="client counts, comma-separated (default 1,4)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--project", action="append", type=Path, help="checkout to serve (default: this one)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",") if c.strip()]
    results = measure(args.project or [ROOT], args.tasks, clients, args.rounds)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
