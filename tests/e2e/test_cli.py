"""The command line (`python -m taskqueue`, docs/cli.md) against the embedded stack (`python -m
chalicelib.local serve`) and a reference worker on `sandbox/linux`, the task queue of the documented
example, with the environment Taskcluster's tools read. The documented graph, `watch`'s exit status,
`log --follow`, the errors and their exit statuses go through the entry point as a user runs it (a
subprocess); the other commands run its main() in-process, to spare a Python start each. `watch`
and `task log --follow` poll the stack themselves (every 0.2 s here), so the tests wait only on
those commands, bounded by a timeout."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import taskcluster

from taskqueue.cli import main
from tests.harness import (
    PROJECT_DIR,
    ROOT_TOKEN,
    WORKER_ENV,
    Served,
    WorkerProc,
    serving,
    worker_starter,
)

CLI_TIMEOUT = 90.0  # bound on one command (watch waits for a whole graph)
IDLE_QUEUE = "cli-idle/none"  # no worker: its tasks stay pending
OWNER = {"owner": "me@example.com", "source": "https://example.com/cli-test"}


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving(WORKER_ENV) as s:
        yield s


@pytest.fixture(scope="module")
def worker(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProc]:
    with worker_starter(served, tmp_path_factory) as start:
        w = start("linux", "--capacity", "4", provisioner="sandbox")
        yield w
        assert w.stop() == 0, w.log()


def cli_env(served: Served, credentials: bool = True, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TASKCLUSTER_"))}
    env.update(CI="true", TASKCLUSTER_ROOT_URL=served.root_url)
    if credentials:
        env.update(TASKCLUSTER_CLIENT_ID="root", TASKCLUSTER_ACCESS_TOKEN=ROOT_TOKEN)
    env.update(extra)
    return env


def cli(served: Served, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command in-process (its main(), with this environment): most calls, to save a Python start each."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out=out, err=err, environ=env or cli_env(served))
    return subprocess.CompletedProcess(["python -m taskqueue", *args], code, out.getvalue(), err.getvalue())


def entry_point(served: Served, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command through its entry point, `python -m taskqueue`, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "taskqueue", *args],
        cwd=PROJECT_DIR,
        env=env or cli_env(served),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(result))


def write(tmp_path: Path, name: str, content: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(content) if name.endswith(".json") else content)
    return str(path)


def documented_graph() -> str:
    """The YAML example of docs/cli.md, as it stands there."""
    found = re.search(r"```yaml\n(# numbers\.yaml\n.*?)```", (PROJECT_DIR / "docs" / "cli.md").read_text(), re.S)
    assert found, "docs/cli.md has no numbers.yaml example"
    return found.group(1)


# --- submit and watch -----------------------------------------------------------------------------
def test_the_documented_graph_is_submitted_watched_to_success_and_its_tasks_read_back(
    served: Served, worker: WorkerProc, tmp_path: Path
) -> None:
    path = write(tmp_path, "numbers.yaml", documented_graph())
    out = ok(entry_point(served, "submit", path, "--watch", "--interval", "0.2"))
    found = re.match(r"task group (\S+): 3 tasks created\n  build  (\S+)\n  sum    (\S+)\n  count  (\S+)\n", out)
    assert found, out
    group, build, total, _count = found.groups()
    assert re.search(r"build\s+\S+ -> completed\s+run 0", out), out
    assert "[##############################] 3/3 done" in out
    assert f"task group {group}: build=completed, " in out and out.rstrip().endswith("all completed: 3 completed")

    # The dependents waited for build, and found its artifact through the taskId the file referenced.
    assert "sum: 500500" in ok(cli(served, "task", "log", total))
    assert ok(cli(served, "task", "status", build)) == "completed\n"
    assert ok(cli(served, "task", "artifacts", build)).splitlines() == ["public/logs/live.log", "public/numbers.txt"]
    definition = as_json(cli(served, "task", "def", total))
    assert definition["taskGroupId"] == group and definition["dependencies"] == [build]
    assert definition["metadata"]["name"] == "sum"
    assert f"/task/{build}/artifacts/public/numbers.txt" in definition["payload"]["command"][0][2]
    status = as_json(cli(served, "task", "status", build, "--json"))
    assert status["state"] == "completed" and status["taskGroupId"] == group
    assert [a["name"] for a in as_json(cli(served, "task", "artifacts", build, "--json"))] == [
        "public/logs/live.log",
        "public/numbers.txt",
    ]
    assert ok(cli(served, "group", "status", group)) == "completed: 3\n"
    assert as_json(cli(served, "group", "status", group, "--json")) == {"completed": 3}
    assert ok(cli(served, "watch", group)).rstrip().endswith("all completed: 3 completed")  # over already


def test_watch_of_a_graph_with_a_failing_task_exits_non_zero_and_says_what_is_blocked(
    served: Served, worker: WorkerProc, tmp_path: Path
) -> None:
    graph = {
        "defaults": {"taskQueueId": "sandbox/linux", "metadata": OWNER, "deadline": "10 minutes"},
        "tasks": [
            {"name": "compile", "payload": {"command": [["sh", "-c", "echo compiling; exit 3"]], "maxRunTime": 60}},
            {"name": "unit", "dependencies": ["compile"], "payload": {"command": [["true"]], "maxRunTime": 60}},
            {"name": "lint", "payload": {"command": [["sh", "-c", "echo lint ok"]], "maxRunTime": 60}},
            {"name": "package", "dependencies": ["unit", "lint"], "payload": {"command": [["true"]]}},
        ],
    }
    submitted = as_json(cli(served, "submit", write(tmp_path, "failing.json", graph), "--json"))
    group, tasks = submitted["taskGroupId"], submitted["tasks"]
    assert sorted(tasks) == ["compile", "lint", "package", "unit"]

    result = entry_point(served, "watch", group, "--interval", "0.2")
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"compile\s+\S+ -> failed\s+run 0", result.stdout), result.stdout
    assert re.search(r"unit\s+\S+ -> unscheduled\s+\(blocked: compile failed\)", result.stdout), result.stdout
    assert re.search(r"package\s+\S+ -> unscheduled\s+\(blocked: unit blocked\)", result.stdout), result.stdout
    assert "NOT all completed: 2 unscheduled, 1 completed, 1 failed, 2 blocked by a dependency" in result.stdout

    summary = json.loads(cli(served, "watch", group, "--json").stdout)
    assert summary["ok"] is False and summary["taskGroupId"] == group
    assert {t["name"]: (t["state"], t["blocked"]) for t in summary["tasks"]} == {
        "compile": ("failed", False),
        "unit": ("unscheduled", True),
        "lint": ("completed", False),
        "package": ("unscheduled", True),
    }
    assert ok(cli(served, "task", "status", tasks["compile"])) == "failed\n"
    assert "compiling" in ok(cli(served, "task", "log", tasks["compile"]))
    assert ok(cli(served, "group", "list", group, "--failed")) == f"{tasks['compile']} compile failed\n"
    assert sorted(ok(cli(served, "group", "list", group, "-c", "-u")).splitlines()) == sorted([
        f"{tasks['lint']} lint completed",
        f"{tasks['unit']} unit unscheduled",
        f"{tasks['package']} package unscheduled",
    ])
    assert len(ok(cli(served, "group", "list", group)).splitlines()) == 4

    # Rerun the failed task, now fixed by nobody: it fails again, and watch follows the new run.
    assert ok(cli(served, "task", "rerun", tasks["compile"])) == "pending\n"
    result = cli(served, "watch", group, "--interval", "0.2")
    assert result.returncode == 1 and "2 blocked by a dependency" in result.stdout, result.stdout
    assert ok(cli(served, "task", "status", tasks["compile"], "--all-runs")) == "Run #0: failed\nRun #1: failed\n"


def test_log_follow_waits_for_the_run_and_prints_until_it_is_resolved(
    served: Served, worker: WorkerProc, tmp_path: Path
) -> None:
    task = {"taskQueueId": "sandbox/linux", "metadata": {**OWNER, "name": "slow"},
            "payload": {"command": [["sh", "-c", "echo first; sleep 1; echo second"]], "maxRunTime": 60}}  # fmt: skip
    task_id = as_json(cli(served, "submit", write(tmp_path, "slow.json", task), "--json"))["tasks"]["slow"]
    log = ok(entry_point(served, "task", "log", task_id, "--follow", "--interval", "0.2"))
    assert "first\nsecond\n" in log and "result: completed" in log, log


# --- the task verbs that change something -----------------------------------------------------------
def test_cancel_rerun_and_retrigger(served: Served, tmp_path: Path) -> None:
    group = taskcluster.slugId()
    first = {"taskQueueId": IDLE_QUEUE, "taskGroupId": group, "metadata": {**OWNER, "name": "idle"},
             "payload": {}, "routes": ["index.cli.test"], "retries": 3, "expires": "2 days"}  # fmt: skip
    task_id = as_json(cli(served, "submit", write(tmp_path, "idle.json", first), "--json"))["tasks"]["idle"]
    assert ok(cli(served, "task", "status", task_id)) == "pending\n"

    refused = cli(served, "task", "rerun", task_id)
    assert refused.returncode == 1 and "is pending: only failed and exception tasks are rerun" in refused.stderr
    assert ok(cli(served, "task", "cancel", task_id)) == "exception 'canceled'\n"
    assert ok(cli(served, "task", "rerun", task_id)) == "pending\n"
    assert as_json(cli(served, "task", "cancel", task_id, "--json"))["runs"][1]["reasonResolved"] == "canceled"

    found = re.fullmatch(r"Task (\S+) created\n", ok(cli(served, "task", "retrigger", task_id)))
    assert found
    copy, original = as_json(cli(served, "task", "def", found.group(1))), as_json(cli(served, "task", "def", task_id))
    assert copy["taskGroupId"] == group and copy["payload"] == original["payload"]
    assert copy["metadata"] == original["metadata"] and copy["taskQueueId"] == IDLE_QUEUE
    assert (copy["retries"], copy["routes"], copy["dependencies"]) == (0, [], [])
    assert copy["created"] > original["created"] and copy["deadline"] > original["deadline"]
    assert ok(cli(served, "task", "status", found.group(1))) == "pending\n"

    exact = as_json(cli(served, "task", "retrigger", task_id, "--exact", "--json"))
    copy = as_json(cli(served, "task", "def", exact["taskId"]))
    assert (copy["retries"], copy["routes"]) == (3, ["index.cli.test"]) and exact["status"]["state"] == "pending"


# --- group ----------------------------------------------------------------------------------------
def test_group_status_list_and_cancel(served: Served, tmp_path: Path) -> None:
    graph = {
        "defaults": {"taskQueueId": IDLE_QUEUE, "metadata": OWNER, "payload": {}},
        "tasks": [{"name": "first"}, {"name": "second", "dependencies": ["first"]}, {"name": "third"}],
    }
    submitted = as_json(cli(served, "submit", write(tmp_path, "idle-graph.json", graph), "--json"))
    group, tasks = submitted["taskGroupId"], submitted["tasks"]
    assert ok(cli(served, "group", "status", group)) == "unscheduled: 1\npending: 2\n"
    assert ok(cli(served, "group", "list", group, "--unscheduled")) == f"{tasks['second']} second unscheduled\n"
    listed = as_json(cli(served, "group", "list", group, "--pending", "--json"))
    assert sorted(t["task"]["metadata"]["name"] for t in listed) == ["first", "third"]

    # No terminal: nothing is asked. Task by task, as Taskcluster's CLI does: the group stays open.
    assert ok(cli(served, "group", "cancel", group)) == f"cancelled 3 of the 3 tasks of {group}\n"
    assert ok(cli(served, "group", "status", group)) == "exception: 3\n"
    assert as_json(cli(served, "group", "cancel", group, "--force", "--json"))["cancelledCount"] == 0
    again = {"taskGroupId": group, "taskQueueId": IDLE_QUEUE, "metadata": OWNER, "payload": {}}
    late = as_json(cli(served, "submit", write(tmp_path, "late.json", again), "--json"))["tasks"]["late"]

    # --seal: one cancelTaskGroup, and the group takes no more tasks.
    answer = as_json(cli(served, "group", "cancel", group, "--seal", "--json"))
    assert (answer["cancelledCount"], answer["taskIds"], answer["taskGroupSize"]) == (1, [late], 4)
    refused = cli(served, "submit", write(tmp_path, "too-late.json", again))
    assert refused.returncode == 1 and "(HTTP 409)" in refused.stderr, refused.stderr


# --- pools ----------------------------------------------------------------------------------------
def test_pool_list_and_show(served: Served) -> None:
    root = {"clientId": "root", "accessToken": ROOT_TOKEN}
    manager = taskcluster.WorkerManager({"rootUrl": served.root_url, "credentials": root})
    manager.createWorkerPool("cli-pool/linux", {
        "providerId": "local", "description": "the CLI test's pool", "owner": "me@example.com", "emailOnError": False,
        "config": {"minCapacity": 0, "maxCapacity": 3, "launchConfigs": [{"region": "local",
                   "launchConfig": {"ImageId": "local"}, "workerConfig": {},
                   "workerManager": {"launchConfigId": "cli", "capacityPerInstance": 1}}]},
    })  # fmt: skip
    assert re.search(r"^cli-pool/linux  provider local  capacity 0 \(min 0, max 3\)$", ok(cli(served, "pool", "list")),
                     re.M)  # fmt: skip
    assert "cli-pool/linux" in [p["workerPoolId"] for p in as_json(cli(served, "pool", "list", "--json"))]
    shown = ok(cli(served, "pool", "show", "cli-pool/linux"))
    assert shown.splitlines() == [
        "worker pool cli-pool/linux (provider local)",
        "  the CLI test's pool",
        "  owner me@example.com; capacity 0 (min 0, max 3); 0 tasks pending",
        "  workers: 0 live, 0 stopped",
    ]
    shown_json = as_json(cli(served, "pool", "show", "cli-pool/linux", "--json"))
    assert shown_json["workerPool"]["providerId"] == "local" and shown_json["workers"] == []
    unknown = cli(served, "pool", "show", "cli-pool/nothing")
    assert unknown.returncode == 1 and "ResourceNotFound (HTTP 404)" in unknown.stderr


# --- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ("task", "status"),
        ("task", "log"),
        ("group", "status"),
        ("watch",),
    ],
)
def test_an_unknown_id_is_the_apis_404_and_exit_status_1(served: Served, args: tuple[str, ...]) -> None:
    unknown = taskcluster.slugId()
    result = entry_point(served, *args, unknown)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.fullmatch(rf"python -m taskqueue: ResourceNotFound \(HTTP 404\): Task (group )?{unknown} not found\n",
                        result.stderr), result.stderr  # fmt: skip
    assert result.stdout == ""


def test_help_lists_the_verbs() -> None:
    result = subprocess.run([sys.executable, "-m", "taskqueue", "task", "--help"], cwd=PROJECT_DIR,
                            capture_output=True, text=True, timeout=CLI_TIMEOUT)  # fmt: skip
    assert result.returncode == 0
    assert "{status,def,log,artifacts,rerun,cancel,retrigger}" in result.stdout


def test_a_malformed_id_is_the_apis_400(served: Served) -> None:
    result = cli(served, "task", "def", "not-a-task-id")
    assert result.returncode == 1 and "InvalidRequestArguments (HTTP 400)" in result.stderr, result.stderr


Case = tuple[list[str], Callable[[Served], dict[str, str]], str]
CONFIG_ERRORS: list[Case] = [
    (["task", "cancel", "TS2pkt6VT_-wqqAuP8cckA"], lambda s: cli_env(s, credentials=False),
     "this command changes something and needs credentials: set TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN"),
    (["submit", "whatever.yaml"], lambda s: cli_env(s, credentials=False), "needs credentials"),
    (["group", "cancel", "TS2pkt6VT_-wqqAuP8cckA", "--force"], lambda s: cli_env(s, credentials=False),
     "needs credentials"),
    (["task", "status", "TS2pkt6VT_-wqqAuP8cckA"], lambda s: cli_env(s, TASKCLUSTER_ROOT_URL=""),
     "TASKCLUSTER_ROOT_URL is not set"),
    (["pool", "list"], lambda s: cli_env(s, credentials=False, TASKCLUSTER_CLIENT_ID="root"),
     "set both TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN, or neither"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "env", "message"), CONFIG_ERRORS)
def test_missing_configuration_or_credentials_is_exit_status_2(
    served: Served, args: list[str], env: Callable[[Served], dict[str, str]], message: str
) -> None:
    result = entry_point(served, *args, env=env(served))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and result.stdout == ""


def test_reading_needs_no_credentials_where_anonymous_may_read(served: Served, tmp_path: Path) -> None:
    task = {"taskQueueId": IDLE_QUEUE, "metadata": OWNER, "payload": {}}
    task_id = as_json(cli(served, "submit", write(tmp_path, "anon.json", task), "--json"))["tasks"]["anon"]
    assert ok(cli(served, "task", "status", task_id, env=cli_env(served, credentials=False))) == "pending\n"


def test_a_wrong_token_is_refused_by_the_api(served: Served) -> None:
    env = cli_env(served, TASKCLUSTER_ACCESS_TOKEN="not-the-token")
    result = cli(served, "pool", "list", env=env)
    assert result.returncode == 1 and "(HTTP 401)" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("tasks: [{name: a, payload: {}}]", "a: missing metadata.owner, metadata.source, taskQueueId"),
        ("tasks: [{name: a}, {name: a}]", "the name 'a' is used twice"),
        ("tasks: [{name: a, dependencies: [b]}]", "dependency 'b' is neither a task of this file nor a taskId"),
        ("tasks: [", "is not valid YAML"),
    ],
)
def test_a_file_that_cannot_be_submitted_is_exit_status_2_before_anything_is_created(
    served: Served, tmp_path: Path, content: str, message: str
) -> None:
    result = entry_point(served, "submit", write(tmp_path, "bad.yaml", content))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stdout == ""


def test_make_install_puts_the_command_on_the_venv_and_it_runs_from_any_directory(tmp_path: Path) -> None:
    command = Path(sys.prefix, "bin", "taskqueue")
    assert command.exists(), "make install writes .venv/bin/taskqueue"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKCLUSTER_")}
    done = subprocess.run([str(command), "task", "status", "x"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "TASKCLUSTER_ROOT_URL is not set" in done.stderr, done.stderr
