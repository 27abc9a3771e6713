"""python -m taskqueue: tasks, task groups and worker pools from the command line (docs/cli.md).

Talks to any Taskcluster-compatible deployment through the official `taskcluster` client, configured
like Taskcluster's own CLI: TASKCLUSTER_ROOT_URL, and TASKCLUSTER_CLIENT_ID with
TASKCLUSTER_ACCESS_TOKEN (and TASKCLUSTER_CERTIFICATE for temporary credentials). Reading needs no
credentials where the deployment lets anyone read; changing anything needs them.

Exit status: 0 on success; 1 when the API refused (unknown id, missing scope, ...) or `watch` saw a
task fail; 2 on a usage error, missing configuration or credentials, or a file that cannot be
submitted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import taskcluster
from taskcluster.exceptions import TaskclusterAuthFailure, TaskclusterConnectionError, TaskclusterRestFailure

from .graph import GraphError, load, plan
from .progress import FINAL, Progress, fancy_output

PROG = "python -m taskqueue"
LOG = "public/logs/live.log"
STATES = ("unscheduled", "pending", "running", "completed", "failed", "exception")
UNRESOLVED = ("unscheduled", "pending", "running")
USAGE, FAILED = 2, 1


class CliError(Exception):
    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Ctx:
    """What every verb gets: the clients, where to print, and whether as JSON."""

    options: dict[str, Any]
    out: TextIO
    json: bool

    @property
    def queue(self) -> Any:
        return taskcluster.Queue(self.options)

    @property
    def manager(self) -> Any:
        return taskcluster.WorkerManager(self.options)

    def print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def dump(self, value: Any) -> None:
        print(json.dumps(value, indent=2, sort_keys=True), file=self.out, flush=True)


def main(
    argv: list[str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """The command; `environ` (default: the process's) holds the TASKCLUSTER_* configuration."""
    out, err = out or sys.stdout, err or sys.stderr
    env = os.environ if environ is None else environ
    parser = build_parser()
    args = parser.parse_args(argv)
    options: dict[str, Any] = {}
    try:
        options = client_options(env, needs_credentials=args.writes)
        code: int = args.handler(args, Ctx(options, out, args.json))
        return code
    except CliError as e:
        print(f"{PROG}: {e}", file=err)
        return e.code
    except TaskclusterAuthFailure as e:
        hint = "" if "credentials" in options else " (no credentials were given: set TASKCLUSTER_CLIENT_ID and " \
            "TASKCLUSTER_ACCESS_TOKEN)"  # fmt: skip
        print(f"{PROG}: {api_message(e)}{hint}", file=err)
        return FAILED
    except TaskclusterRestFailure as e:
        print(f"{PROG}: {api_message(e)}", file=err)
        return FAILED
    except TaskclusterConnectionError as e:
        print(f"{PROG}: cannot reach {env.get('TASKCLUSTER_ROOT_URL')}: {e}", file=err)
        return FAILED
    except KeyboardInterrupt:
        return 130


def api_message(e: TaskclusterRestFailure) -> str:
    """The first line of the API's error message, with its code and HTTP status."""
    body = e.body if isinstance(e.body, dict) else {}
    message = str(body.get("message") or e).strip().splitlines()[0]
    return f"{body.get('code', 'error')} (HTTP {e.status_code}): {message}"


def client_options(env: Mapping[str, str], needs_credentials: bool) -> dict[str, Any]:
    """Root URL and credentials from the environment, as Taskcluster's clients read them."""
    root_url = env.get("TASKCLUSTER_ROOT_URL", "").rstrip("/")
    if not root_url:
        raise CliError(
            "TASKCLUSTER_ROOT_URL is not set: the deployment's root URL (the embedded stack prints it, "
            "e.g. http://127.0.0.1:8000)",
            USAGE,
        )
    client_id, token = env.get("TASKCLUSTER_CLIENT_ID"), env.get("TASKCLUSTER_ACCESS_TOKEN")
    if bool(client_id) != bool(token):
        raise CliError("set both TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN, or neither", USAGE)
    if needs_credentials and not client_id:
        raise CliError(
            "this command changes something and needs credentials: set TASKCLUSTER_CLIENT_ID and "
            "TASKCLUSTER_ACCESS_TOKEN (the embedded stack prints the root client's)",
            USAGE,
        )
    options: dict[str, Any] = {"rootUrl": root_url}
    if client_id:
        credentials = {"clientId": client_id, "accessToken": token}
        if env.get("TASKCLUSTER_CERTIFICATE"):
            credentials["certificate"] = env["TASKCLUSTER_CERTIFICATE"]
        options["credentials"] = credentials
    return options


# --- the command line -----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0].split(": ", 1)[1],
        epilog="Configuration: TASKCLUSTER_ROOT_URL, TASKCLUSTER_CLIENT_ID, TASKCLUSTER_ACCESS_TOKEN. "
        "Exit status: 0 done; 1 the API refused, or a watched task did not complete; 2 usage, "
        "configuration or credentials missing, or a file that cannot be submitted.",
    )
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="print JSON for scripts instead of text")
    verbs = parser.add_subparsers(dest="noun", required=True, metavar="{task,group,submit,watch,pool}")

    def verb(
        sub: Any, name: str, text: str, run: Callable[[argparse.Namespace, Ctx], int], writes: bool = False,
        json: bool = True,
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text,
                                                    parents=[json_flag] if json else [])
        p.set_defaults(handler=run, writes=writes, json=False)
        return p

    task = verbs.add_parser("task", help="one task: status, def, log, artifacts, rerun, cancel, retrigger")
    tasks = task.add_subparsers(dest="verb", required=True)
    p = verb(tasks, "status", "the state of the task's latest run (or of --run N, or of --all-runs)", task_status)
    p.add_argument("task_id", metavar="TASKID")
    p.add_argument("-a", "--all-runs", action="store_true", help="one line per run")
    p.add_argument("-r", "--run", type=int, help="this run instead of the latest")
    p = verb(tasks, "def", "the task's definition (JSON)", task_def, json=False)
    p.add_argument("task_id", metavar="TASKID")
    p = verb(tasks, "log", f"the task's log ({LOG} of its latest run, or of --run N)", task_log, json=False)
    p.add_argument("task_id", metavar="TASKID")
    p.add_argument("-r", "--run", type=int, help="this run instead of the latest")
    p.add_argument("-f", "--follow", action="store_true", help="wait for the run to start and print as the log grows, "
                   "until it is resolved")  # fmt: skip
    p.add_argument("--interval", type=float, default=1.0, help="seconds between looks with --follow (default 1)")
    p = verb(tasks, "artifacts", "the names of the artifacts of the task's latest run (or of --run N)", task_artifacts)
    p.add_argument("task_id", metavar="TASKID")
    p.add_argument("-r", "--run", type=int, help="this run instead of the latest")
    p = verb(tasks, "rerun", "run a resolved task again (the queue's rerunTask)", task_rerun, writes=True)
    p.add_argument("task_id", metavar="TASKID")
    p.add_argument("-f", "--force", action="store_true", help="also rerun a task that is not failed or exception")
    p = verb(tasks, "cancel", "cancel the task (the queue's cancelTask)", task_cancel, writes=True)
    p.add_argument("task_id", metavar="TASKID")
    retrigger = "a copy of the task with a new taskId and fresh created/deadline/expires, in the same group, with " \
        "retries 0 and no dependencies or routes"  # fmt: skip
    p = verb(tasks, "retrigger", retrigger, task_retrigger, writes=True)
    p.add_argument("task_id", metavar="TASKID")
    p.add_argument("-e", "--exact", action="store_true", help="keep the dependencies, routes and retries")

    group = verbs.add_parser("group", help="a task group: list, status, cancel")
    groups = group.add_subparsers(dest="verb", required=True)
    p = verb(groups, "list", "the group's tasks, one line each: taskId, name, state (every state unless some "
             "are chosen)", group_list)  # fmt: skip
    p.add_argument("group_id", metavar="TASKGROUPID")
    p.add_argument("-a", "--all", action="store_true", help="every task (the default)")
    for letter, state in (("u", "unscheduled"), ("p", "pending"), ("r", "running"), ("c", "completed"),
                          ("f", "failed"), ("e", "exception")):  # fmt: skip
        p.add_argument(f"-{letter}", f"--{state}", action="store_true", help=f"the {state} tasks")
    p = verb(groups, "status", "how many of the group's tasks are in each state", group_status)
    p.add_argument("group_id", metavar="TASKGROUPID")
    p = verb(groups, "cancel", "cancel every unresolved task of the group, one cancelTask each", group_cancel,
             writes=True)  # fmt: skip
    p.add_argument("group_id", metavar="TASKGROUPID")
    p.add_argument("-f", "--force", action="store_true", help="do not ask first (nothing is asked without a terminal)")
    p.add_argument("--seal", action="store_true", help="seal the group (no task can be added to it any more), then "
                   "cancel it with one cancelTaskGroup")  # fmt: skip

    p = verb(verbs, "submit", "create a task or a task graph from a YAML or JSON file (format: docs/cli.md)", submit,
             writes=True)  # fmt: skip
    p.add_argument("file", metavar="FILE", type=Path)
    p.add_argument("-w", "--watch", action="store_true", help="then watch the group, as `watch` does")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between looks with --watch (default 1)")

    p = verb(verbs, "watch", "show a task group's progress until every task is resolved, or waits on one that "
             "did not complete; exit status 1 unless all completed", watch)  # fmt: skip
    p.add_argument("group_id", metavar="TASKGROUPID")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between looks (default 1)")

    pool = verbs.add_parser("pool", help="worker pools: list, show")
    pools = pool.add_subparsers(dest="verb", required=True)
    verb(pools, "list", "every worker pool, with its provider and capacity", pool_list)
    p = verb(pools, "show", "one worker pool: its settings, pending tasks and workers", pool_show)
    p.add_argument("pool_id", metavar="WORKERPOOLID")
    return parser


# --- task -----------------------------------------------------------------------------------------
def run_state(run: dict[str, Any]) -> str:
    """As Taskcluster's CLI prints a run: its state, and why it was resolved when that says more."""
    reason = run.get("reasonResolved")
    return f"{run['state']} '{reason}'" if reason and reason != run["state"] else run["state"]


def pick_run(status: dict[str, Any], run_id: int | None) -> dict[str, Any] | None:
    runs = status["runs"]
    if run_id is None:
        return runs[-1] if runs else None
    if not 0 <= run_id < len(runs):
        raise CliError(f"task {status['taskId']} has no run {run_id} (it has {len(runs)})")
    run: dict[str, Any] = runs[run_id]
    return run


def task_status(args: argparse.Namespace, ctx: Ctx) -> int:
    if args.all_runs and args.run is not None:
        raise CliError("give --all-runs or --run, not both", USAGE)
    status = ctx.queue.status(args.task_id)["status"]
    run = pick_run(status, args.run)
    if ctx.json:
        ctx.dump(status if args.all_runs or args.run is None else run)
    elif args.all_runs:
        for r in status["runs"]:
            ctx.print(f"Run #{r['runId']}: {run_state(r)}")
    else:
        ctx.print(run_state(run) if run else status["state"])
    return 0


def task_def(args: argparse.Namespace, ctx: Ctx) -> int:
    ctx.dump(ctx.queue.task(args.task_id))
    return 0


def task_artifacts(args: argparse.Namespace, ctx: Ctx) -> int:
    queue = ctx.queue
    run = pick_run(queue.status(args.task_id)["status"], args.run)
    if run is None:
        raise CliError(f"task {args.task_id} has no run yet, so no artifacts")
    found = list(pages(lambda q: queue.listArtifacts(args.task_id, str(run["runId"]), query=q), "artifacts"))
    if ctx.json:
        ctx.dump(found)
    for artifact in [] if ctx.json else found:
        ctx.print(artifact["name"])
    return 0


def task_log(args: argparse.Namespace, ctx: Ctx) -> int:
    queue, printed, shown_run = ctx.queue, 0, None
    while True:
        status = queue.status(args.task_id)["status"]
        run = pick_run(status, args.run)
        if run is None or run["state"] == "pending":
            if not args.follow:
                raise CliError(f"task {args.task_id} is {run['state'] if run else status['state']}: it has no log "
                               "yet (--follow waits for it)")  # fmt: skip
        else:
            text = fetch_log(queue, args.task_id, run["runId"], quiet=args.follow and run["state"] == "running")
            if run["runId"] != shown_run:  # --follow without --run: a retry's run has a log of its own
                printed, shown_run = 0, run["runId"]
            ctx.out.write(text[printed:])
            ctx.out.flush()
            printed = len(text)
            if not args.follow or run["state"] not in UNRESOLVED:
                return 0
        time.sleep(args.interval)


def fetch_log(queue: Any, task_id: str, run_id: int, quiet: bool) -> str:
    """The log as last uploaded ("" when `quiet` and there is none yet)."""
    try:
        url = queue.artifact(task_id, str(run_id), LOG)["url"]
        with urllib.request.urlopen(url, timeout=60) as r:
            return str(r.read().decode(errors="replace"))
    except TaskclusterRestFailure as e:
        if quiet and e.status_code == 404:
            return ""
        if e.status_code == 404:
            raise CliError(f"run {run_id} of task {task_id} has no {LOG} artifact") from e
        raise
    except urllib.error.URLError as e:
        raise CliError(f"cannot download {LOG} of task {task_id} run {run_id}: {e}") from e


def task_rerun(args: argparse.Namespace, ctx: Ctx) -> int:
    queue = ctx.queue
    state = queue.status(args.task_id)["status"]["state"]
    if not args.force and state not in ("failed", "exception"):
        raise CliError(f"task {args.task_id} is {state}: only failed and exception tasks are rerun without --force")
    return print_status(ctx, queue.rerunTask(args.task_id)["status"])


def task_cancel(args: argparse.Namespace, ctx: Ctx) -> int:
    return print_status(ctx, ctx.queue.cancelTask(args.task_id)["status"])


def print_status(ctx: Ctx, status: dict[str, Any]) -> int:
    if ctx.json:
        ctx.dump(status)
    else:
        ctx.print(run_state(status["runs"][-1]) if status["runs"] else status["state"])
    return 0


def task_retrigger(args: argparse.Namespace, ctx: Ctx) -> int:
    queue = ctx.queue
    old = queue.task(args.task_id)
    now = datetime.now(UTC)
    created = parse_date(old["created"])
    copy = {k: v for k, v in old.items() if k not in ("dependencies", "routes", "retries")}
    copy.update(
        created=taskcluster.stringDate(now),
        deadline=taskcluster.stringDate(now + (parse_date(old["deadline"]) - created)),
        expires=taskcluster.stringDate(now + (parse_date(old["expires"]) - created)),
    )
    if args.exact:
        copy.update(dependencies=old.get("dependencies", []), routes=old.get("routes", []), retries=old["retries"])
    else:
        copy.update(dependencies=[], routes=[], retries=0)
    new_id = taskcluster.slugId()
    status = queue.createTask(new_id, copy)["status"]
    if ctx.json:
        ctx.dump({"taskId": new_id, "status": status})
    else:
        ctx.print(f"Task {new_id} created")
    return 0


def parse_date(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- group ----------------------------------------------------------------------------------------
def pages(call: Callable[[dict[str, str]], dict[str, Any]], key: str) -> Iterator[dict[str, Any]]:
    """Every item of a paged list (continuationToken)."""
    query: dict[str, str] = {}
    while True:
        page = call(query)
        yield from page[key]
        if not page.get("continuationToken"):
            return
        query = {"continuationToken": page["continuationToken"]}


def group_tasks(queue: Any, group_id: str) -> list[dict[str, Any]]:
    return list(pages(lambda q: queue.listTaskGroup(group_id, query=q), "tasks"))


def group_list(args: argparse.Namespace, ctx: Ctx) -> int:
    chosen = {s for s in STATES if getattr(args, s)}
    found = group_tasks(ctx.queue, args.group_id)
    found = [t for t in found if args.all or not chosen or t["status"]["state"] in chosen]
    if ctx.json:
        ctx.dump(found)
    for t in [] if ctx.json else found:
        ctx.print(f"{t['status']['taskId']} {t['task']['metadata']['name']} {t['status']['state']}")
    return 0


def group_status(args: argparse.Namespace, ctx: Ctx) -> int:
    counts = Counter(t["status"]["state"] for t in group_tasks(ctx.queue, args.group_id))
    if ctx.json:
        ctx.dump(dict(counts))
    for state in [] if ctx.json else sorted(counts, key=STATES.index):
        ctx.print(f"{state}: {counts[state]}")
    return 0


def group_cancel(args: argparse.Namespace, ctx: Ctx) -> int:
    queue = ctx.queue
    tasks = group_tasks(queue, args.group_id)
    open_tasks = [t for t in tasks if t["status"]["state"] in UNRESOLVED]
    if open_tasks and not args.force and sys.stdin.isatty():
        ctx.print(f"The following {len(open_tasks)} tasks will be cancelled:")
        for t in open_tasks:
            ctx.print(f"\tTask {t['status']['taskId']}: {t['task']['metadata']['name']}")
        if input("Are you sure you want to cancel these tasks? [y/n] ").strip().lower() not in ("y", "yes"):
            ctx.print("Cancellation of tasks aborted.")
            return 0
    if args.seal:
        queue.sealTaskGroup(args.group_id)
        answer = queue.cancelTaskGroup(args.group_id)
    else:
        cancelled = []
        for t in open_tasks:
            run = queue.cancelTask(t["status"]["taskId"])["status"]["runs"][-1]
            if run.get("reasonResolved") == "canceled":
                cancelled.append(t["status"]["taskId"])
        answer = {"taskGroupId": args.group_id, "taskGroupSize": len(tasks), "cancelledCount": len(cancelled),
                  "taskIds": cancelled}  # fmt: skip
    if ctx.json:
        ctx.dump(answer)
    else:
        ctx.print(f"cancelled {answer['cancelledCount']} of the {answer['taskGroupSize']} tasks of {args.group_id}")
    return 0


# --- submit and watch -----------------------------------------------------------------------------
def submit(args: argparse.Namespace, ctx: Ctx) -> int:
    try:
        planned = plan(load(args.file), args.file.stem, taskcluster.slugId)
    except GraphError as e:
        raise CliError(str(e), USAGE) from e
    queue = ctx.queue
    created: dict[str, str] = {}
    for task in planned:
        try:
            queue.createTask(task.task_id, task.definition)
        except TaskclusterRestFailure as e:
            done = f" ({len(created)} created before it: {', '.join(created)})" if created else ""
            raise CliError(f"createTask of {task.name!r}: {api_message(e)}{done}") from e
        created[task.name] = task.task_id
    group = planned[0].definition.get("taskGroupId") or planned[0].task_id
    if ctx.json and not args.watch:
        ctx.dump({"taskGroupId": group, "tasks": created})
    elif not ctx.json:
        ctx.print(f"task group {group}: {len(created)} task{'s' if len(created) != 1 else ''} created")
        width = max(map(len, created))
        for name, task_id in created.items():
            ctx.print(f"  {name:{width}}  {task_id}")
    if args.watch:
        args.group_id = group
        return watch(args, ctx, shown=created)
    return 0


def blocked(tasks: list[dict[str, Any]]) -> dict[str, str]:
    """Unscheduled tasks that will not run before their deadline: a dependency they need completed
    (requires all-completed) ended otherwise, or any dependency is itself blocked. taskId -> why."""
    states = {t["status"]["taskId"]: t["status"]["state"] for t in tasks}
    names = {t["status"]["taskId"]: t["task"]["metadata"]["name"] for t in tasks}
    waiting = [t for t in tasks if t["status"]["state"] == "unscheduled"]
    found: dict[str, str] = {}
    while True:  # until nothing more is found: blocking passes down a chain of dependents
        before = len(found)
        for t in waiting:
            task_id, deps = t["status"]["taskId"], t["task"].get("dependencies", [])
            needs_completed = t["task"].get("requires", "all-completed") == "all-completed"
            bad = [d for d in deps if d in found or (needs_completed and states.get(d) in ("failed", "exception"))]
            if bad and task_id not in found:
                found[task_id] = f"blocked: {names[bad[0]]} {'blocked' if bad[0] in found else states[bad[0]]}"
        if len(found) == before:
            return found


def labels(tasks: list[dict[str, Any]], known: dict[str, str]) -> None:
    """Add each new task to `known` (label -> taskId) under its name, or name#taskId when taken."""
    have = set(known.values())
    for t in tasks:
        task_id, name = t["status"]["taskId"], t["task"]["metadata"]["name"]
        if task_id not in have:
            known[name if name not in known else f"{name}#{task_id}"] = task_id


def watch(args: argparse.Namespace, ctx: Ctx, shown: dict[str, str] | None = None) -> int:
    """`shown`: tasks known already (label -> taskId), in the order to show them; others follow."""
    queue = ctx.queue
    progress = Progress(dict(shown or {}), ctx.out, fancy=fancy_output(ctx.out), pool=False)
    while True:
        tasks = group_tasks(queue, args.group_id)
        labels(tasks, progress.ids)
        stuck = blocked(tasks)
        if not ctx.json:  # --json: only the summary
            progress.update({t["status"]["taskId"]: t["status"] for t in tasks}, {}, notes=stuck)
        if all(t["status"]["state"] in FINAL or t["status"]["taskId"] in stuck for t in tasks):
            break
        time.sleep(args.interval)
    counts = Counter(t["status"]["state"] for t in tasks)
    ok = counts["completed"] == len(tasks)
    if ctx.json:
        summary = [
            {"taskId": t["status"]["taskId"], "name": t["task"]["metadata"]["name"], "state": t["status"]["state"],
             "blocked": t["status"]["taskId"] in stuck}
            for t in tasks
        ]  # fmt: skip
        ctx.dump({"taskGroupId": args.group_id, "ok": ok, "tasks": summary})
    else:
        final = ", ".join(f"{name}={progress.states.get(name, '?')}" for name in progress.ids)
        ctx.print(f"\ntask group {args.group_id}: {final}")
        parts = [f"{counts[s]} {s}" for s in STATES if counts[s]]
        parts += [f"{len(stuck)} blocked by a dependency that did not complete"] if stuck else []
        ctx.print(f"{'all completed' if ok else 'NOT all completed'}: {', '.join(parts)}")
    return 0 if ok else FAILED


# --- pool -----------------------------------------------------------------------------------------
def pool_list(args: argparse.Namespace, ctx: Ctx) -> int:
    manager = ctx.manager
    found = list(pages(lambda q: manager.listWorkerPools(query=q), "workerPools"))
    if ctx.json:
        ctx.dump(found)
    elif not found:
        ctx.print("no worker pools")
    for p in [] if ctx.json else found:
        config = p.get("config", {})
        ctx.print(f"{p['workerPoolId']}  provider {p['providerId']}  capacity {p.get('currentCapacity', 0)} "
                  f"(min {config.get('minCapacity', '-')}, max {config.get('maxCapacity', '-')})")  # fmt: skip
    return 0


def pool_show(args: argparse.Namespace, ctx: Ctx) -> int:
    manager = ctx.manager
    pool = manager.workerPool(args.pool_id)
    workers = list(pages(lambda q: manager.listWorkersForWorkerPool(args.pool_id, query=q), "workers"))
    pending = int(ctx.queue.pendingTasks(args.pool_id)["pendingTasks"])
    if ctx.json:
        ctx.dump({"workerPool": pool, "pendingTasks": pending, "workers": workers})
        return 0
    config = pool.get("config", {})
    ctx.print(f"worker pool {pool['workerPoolId']} (provider {pool['providerId']})")
    ctx.print(f"  {pool.get('description') or '(no description)'}")
    ctx.print(f"  owner {pool.get('owner', '-')}; capacity {pool.get('currentCapacity', 0)} "
              f"(min {config.get('minCapacity', '-')}, max {config.get('maxCapacity', '-')}); "
              f"{pending} task{'s' if pending != 1 else ''} pending")  # fmt: skip
    live = [w for w in workers if w["state"] != "stopped"]
    ctx.print(f"  workers: {len(live)} live, {len(workers) - len(live)} stopped")
    for w in workers:
        ctx.print(f"    {w['workerGroup']}/{w['workerId']}  {w['state']}  capacity {w.get('capacity', '-')}")
    return 0
