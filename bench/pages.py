"""The largest responses: listings of 1,000 tasks of ~7 KB, as Lambda would send them.

    .venv/bin/python -m bench.pages [--tasks 1000] [--kb 7]

Creates `--tasks` tasks of about `--kb` KB each (one task group, one task queue) on a fresh
embedded stack with the official client, then pages through listTaskGroup, `POST /tasks` (every
id) and listPendingTasks with the default `limit`, and prints for each: pages, the largest page's
bytes as Lambda counts them (the body as an escaped string in the proxy response,
domain/dispatch.py `escaped_json_bytes`) against the 5 MB budget and Lambda's 6 MB limit, and
whether the pages together held every task once. Without the budget each of these was one
7.6–8.1 MB answer: a 502 on AWS. About 40 s. Part of `make bench` (`measure()` and `report()`).
"""

from __future__ import annotations

import argparse
import os
import secrets
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import taskcluster
from taskcluster.utils import slugId

from chalicelib.domain.dispatch import DEFAULT_RESPONSE_BUDGET, escaped_json_bytes
from chalicelib.local.stack import EmbeddedStack, free_port

from .workload import options, task_def

LAMBDA_LIMIT = 6 * 1024 * 1024


def _pages(call: Callable[[dict[str, Any]], dict[str, Any]], key: str, ident: Callable[[Any], str]) -> dict[str, Any]:
    sizes: list[int] = []
    ids: list[str] = []
    token: str | None = None
    while True:
        body = call({"continuationToken": token} if token else {})
        sizes.append(escaped_json_bytes(body))
        ids += [ident(item) for item in body[key]]
        token = body.get("continuationToken")
        if not token:
            break
    return {"pages": len(sizes), "largest_bytes": max(sizes), "items": len(ids), "distinct": len(set(ids))}


def measure(root_url: str, tasks: int, kb: int) -> dict[str, Any]:
    queue = taskcluster.Queue(options(root_url))
    group, task_queue_id = slugId(), f"bench/pages-{uuid.uuid4().hex[:8]}"
    ids = [slugId() for _ in range(tasks)]

    def create(task_id: str) -> None:
        definition = task_def(task_queue_id, group)
        definition["payload"] = {"env": {"BLOB": "x" * (kb * 1024)}}
        queue.createTask(task_id, definition)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(create, ids))
    listings = {
        "listTaskGroup": _pages(
            lambda q: queue.listTaskGroup(params={"taskGroupId": group}, query=q),
            "tasks",
            lambda t: str(t["status"]["taskId"]),
        ),
        "tasks (POST /tasks)": _pages(
            lambda q: queue.tasks(payload={"taskIds": ids}, query=q), "tasks", lambda t: str(t["taskId"])
        ),
        "listPendingTasks": _pages(
            lambda q: queue.listPendingTasks(params={"taskQueueId": task_queue_id}, query=q),
            "tasks",
            lambda t: str(t["taskId"]),
        ),
    }
    for listing in listings.values():
        listing["complete"] = listing["items"] == listing["distinct"] == tasks
    return {
        "tasks": tasks,
        "task_kb": kb,
        "budget_bytes": DEFAULT_RESPONSE_BUDGET,
        "lambda_limit_bytes": LAMBDA_LIMIT,
        "listings": listings,
        "largest_page_bytes": max(v["largest_bytes"] for v in listings.values()),
    }


def report(result: dict[str, Any]) -> None:
    for name, v in result["listings"].items():
        print(
            f"   {name:20} {v['pages']} pages, largest {v['largest_bytes']:,} B "
            f"({v['largest_bytes'] / result['lambda_limit_bytes']:.0%} of Lambda's 6 MB); "
            f"{'every task once' if v['complete'] else 'INCOMPLETE'}",
            flush=True,
        )
    print(f"   largest page {result['largest_page_bytes']:,} B; budget {result['budget_bytes']:,} B", flush=True)


def run(tasks: int, kb: int) -> dict[str, Any]:
    os.environ.setdefault("TASKQUEUE_ROOT_ACCESS_TOKEN", secrets.token_urlsafe(33))
    stack = EmbeddedStack(port=free_port())
    stack.start()
    try:
        return measure(stack.root_url, tasks, kb)
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--kb", type=int, default=7)
    args = parser.parse_args()
    report(run(args.tasks, args.kb))


if __name__ == "__main__":
    main()
