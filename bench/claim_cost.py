"""What an idle worker costs a month on AWS, in each claim mode, from durations measured on the
embedded stack with a deployed stage's claimWork wait (TASKQUEUE_CLAIM_WORK_TIMEOUT 0).

    .venv/bin/python -m bench.claim_cost [--samples 200] [--pollers 100] [--seconds 15]

1. Empty claimWork: `--samples` calls in a row on a task queue with nothing pending, timed at the
   client (an upper bound on the Lambda's billed duration), with the AWS requests the API makes
   for them counted from botocore (the stack runs in this process).
2. `--pollers` idle pollers (threads with a client each) call claimWork on one empty task queue as
   the reference worker does (again `--claim-work-interval` = 5 s after the start of an empty
   call, starts spread over the interval) for `--seconds`; meanwhile tasks are created one at a
   time on another task queue and, once dispatched, claimed: the p50 of that claimWork (which
   finds a task), and of the pollers' empty ones.
3. The monthly figures (bench/price.py, list prices): claim-work mode = calls/month × (API Gateway
   + Lambda request + billed duration + SQS), with the mean empty duration; sqs mode = the
   worker's own SQS receives (no API call at all); the 20 s long poll this replaces, for scale.
About 30 s. Part of `make bench` (`measure()` and `report()`).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import threading
import time
import uuid
from typing import Any

import taskcluster
from taskcluster.utils import slugId

from chalicelib.local.stack import EmbeddedStack, free_port
from worker.claiming import CLAIM_WORK_INTERVAL

from . import price
from .requests import counting_requests
from .workload import Latencies, options, task_def

STAGE_WAIT = "0"  # .chalice/config.json's TASKQUEUE_CLAIM_WORK_TIMEOUT on dev and prod
PROD_MEMORY_GB = 1.0


def _claim(queue: Any, task_queue_id: str, worker_id: str) -> list[Any]:
    tasks: list[Any] = queue.claimWork(task_queue_id, {"tasks": 1, "workerGroup": "bench", "workerId": worker_id})[
        "tasks"
    ]
    return tasks


def empty_calls(root_url: str, samples: int, tq: str) -> dict[str, Any]:
    """`samples` empty claimWork calls in a row: their durations and the API's AWS requests per call."""
    queue = taskcluster.Queue(options(root_url, maxRetries=0))
    # A task queue that has had work (its hint queue exists, as an idle worker's does): one task,
    # claimed once dispatched.
    queue.createTask(slugId(), task_def(tq, slugId()))
    end = time.monotonic() + 30
    while not _claim(queue, tq, "warm"):
        if time.monotonic() > end:
            raise TimeoutError("the warm-up task was never dispatched")
        time.sleep(0.1)
    lat = Latencies("claimWork empty")
    with counting_requests(lambda: threading.current_thread().name == "pump") as counts:
        for _ in range(samples):
            t0 = time.perf_counter()
            got = _claim(queue, tq, "idle")
            lat.samples.append(time.perf_counter() - t0)
            assert not got, "an empty task queue gave a task"
    per_call = {f"{svc}:{op}": round(n / samples, 2) for (svc, op), n in sorted(counts.items())}
    return {**lat.summary(), "aws_requests_per_call": per_call}


def with_pollers(
    root_url: str, pollers: int, seconds: float, idle_tq: str, interval: float = CLAIM_WORK_INTERVAL
) -> dict[str, Any]:
    """`pollers` idle pollers on `idle_tq`; claimWork that finds a task on another task queue, meanwhile."""
    busy_tq = f"bench/busy{uuid.uuid4().hex[:8]}"
    stop = threading.Event()
    empty = Latencies("claimWork empty (pollers)")
    errors: list[str] = []
    lock = threading.Lock()

    def poller(k: int) -> None:
        queue = taskcluster.Queue(options(root_url, maxRetries=5))
        stop.wait(interval * k / pollers)  # starts spread over the interval, as independent workers'
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                got = _claim(queue, idle_tq, f"poller{k}")
            except Exception as e:  # counted, not fatal: the figure is the p50
                with lock:
                    errors.append(type(e).__name__)
                got = []
            took = time.perf_counter() - t0
            with lock:
                empty.samples.append(took)
            if not got:
                stop.wait(max(0.0, interval - took))

    threads = [threading.Thread(target=poller, args=(k,), daemon=True) for k in range(pollers)]
    for t in threads:
        t.start()
    queue = taskcluster.Queue(options(root_url, maxRetries=5))
    found = Latencies("claimWork finding a task")
    group = slugId()
    started = time.monotonic()
    end = started + interval + seconds
    try:
        stop.wait(interval)  # every poller has started
        while time.monotonic() < end:
            queue.createTask(slugId(), task_def(busy_tq, group))
            time.sleep(0.2)  # its hint is dispatched (the stream, then SQS)
            t0 = time.perf_counter()
            got = _claim(queue, busy_tq, "measured")
            if got:
                found.samples.append(time.perf_counter() - t0)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    elapsed = time.monotonic() - started
    return {
        "pollers": pollers,
        "interval_s": interval,
        "poll_calls_per_s": round(len(empty.samples) / elapsed, 1),
        "finding_a_task": found.summary(),
        "empty_under_load": empty.summary(),
        "poller_errors": len(errors),
    }


def measure(samples: int = 200, pollers: int = 100, seconds: float = 15.0) -> dict[str, Any]:
    """Both measurements on a fresh stack whose claimWork waits as a deployed stage's does."""
    saved = os.environ.get("TASKQUEUE_CLAIM_WORK_TIMEOUT")
    os.environ["TASKQUEUE_CLAIM_WORK_TIMEOUT"] = STAGE_WAIT  # read once, when the stack starts
    stack = EmbeddedStack(port=free_port())
    try:
        stack.start()
        idle_tq = f"bench/idle{uuid.uuid4().hex[:8]}"
        empty = empty_calls(stack.root_url, samples, idle_tq)
        load = with_pollers(stack.root_url, pollers, seconds, idle_tq)
    finally:
        stack.stop()
        if saved is None:
            os.environ.pop("TASKQUEUE_CLAIM_WORK_TIMEOUT", None)
        else:
            os.environ["TASKQUEUE_CLAIM_WORK_TIMEOUT"] = saved
    billed_ms, interval, small = empty["mean_ms"], CLAIM_WORK_INTERVAL, price.LAMBDA_MEMORY_GB
    sqs = sum(v for k, v in empty["aws_requests_per_call"].items() if k.startswith("sqs:"))
    return {
        "claim_work_wait_s": float(STAGE_WAIT),
        "empty_claim_work": empty,
        "pollers": load,
        "prices_date": price.PRICES_DATE,
        # The longest billed empty claimWork that keeps an idle claim-work worker within $3/month.
        "break_even_ms_3usd_512mb": round(price.break_even_ms(3.0, interval, small, sqs)),
        "idle_worker_usd_per_month": {
            "claim_work_512mb": price.idle_claim_work_month(interval, billed_ms, small, sqs),
            "claim_work_1024mb": price.idle_claim_work_month(interval, billed_ms, PROD_MEMORY_GB, sqs),
            "sqs": price.idle_sqs_month(),
            "sqs_several_priorities": price.idle_sqs_month(priorities=2),
            "should_terminate_512mb": price.should_terminate_month(billed_ms),
            "before_20s_long_poll_512mb": price.long_poll_month(20.0),
        },
    }


def report(r: dict[str, Any]) -> None:
    e, p, m = r["empty_claim_work"], r["pollers"], r["idle_worker_usd_per_month"]
    cw, cw1 = m["claim_work_512mb"], m["claim_work_1024mb"]
    print(
        f"   empty claimWork (wait {r['claim_work_wait_s']:g} s): p50 {e['p50_ms']} ms, mean {e['mean_ms']} ms, "
        f"p99 {e['p99_ms']} ms (n={e['n']}); AWS requests per call {e['aws_requests_per_call']}",
        flush=True,
    )
    f, u = p["finding_a_task"], p["empty_under_load"]
    print(
        f"   {p['pollers']} idle pollers (one claimWork per {p['interval_s']:g} s each, "
        f"{p['poll_calls_per_s']} calls/s): "
        f"claimWork finding a task p50 {f['p50_ms']} ms, p90 {f['p90_ms']} ms (n={f['n']}); their empty calls "
        f"p50 {u['p50_ms']} ms (n={u['n']}); poller errors {p['poller_errors']}",
        flush=True,
    )
    print(
        f"   idle worker, claim-work mode: {cw['calls_per_month']} calls/month × ${cw['usd_per_call']:.3g} = "
        f"${cw['usd_per_month']}/month at 512 MB {cw['breakdown_usd']}; ${cw1['usd_per_month']} at 1024 MB; "
        f"holds {cw['concurrency_held']} of an instance",
        flush=True,
    )
    print(
        f"   claim-work mode stays under $3/month at 512 MB while an empty claimWork bills under "
        f"{r['break_even_ms_3usd_512mb']} ms (AWS's own round trips are slower than the stand-in's)",
        flush=True,
    )
    print(
        f"   idle worker, sqs mode: ${m['sqs']['usd_per_month']}/month ({m['sqs']['sqs_requests_per_month']} SQS "
        f"requests, no API call); several priorities in use ${m['sqs_several_priorities']['usd_per_month']}; "
        f"provisioned workers in either mode add shouldWorkerTerminate ${m['should_terminate_512mb']}; "
        f"before (claimWork waiting 20 s in Lambda): ${m['before_20s_long_poll_512mb']}/month at 512 MB "
        f"[{r['prices_date']} list prices]",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.claim_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200, help="empty claimWork calls timed (default 200)")
    parser.add_argument("--pollers", type=int, default=100, help="idle pollers (default 100)")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long they poll (default 15)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TASKQUEUE_ROOT_ACCESS_TOKEN", secrets.token_urlsafe(33))
    result = measure(args.samples, args.pollers, args.seconds)
    report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
