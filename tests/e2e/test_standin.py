"""The embedded stack's AWS stand-in runs in a process of its own, a child of the stack's: the
stack reaches it over a Unix socket, every other process over HTTP, and both see one state. It
ends with the stack, however the stack ends: even a kill -9 of the stack's process (its stdin
pipe closes with it).
"""

from __future__ import annotations

import re
from pathlib import Path

import boto3
import slugid

from tests.harness import E2E_ENV, alive, eventually, serving, task_def_now

MODULE = "chalicelib.local.standin"
ORPHAN_TIMEOUT = 15.0  # the stand-in noticing its stdin's end


def _stand_in(children: dict[int, str]) -> tuple[int, str]:
    found = [(pid, cmd) for pid, cmd in children.items() if f"-m {MODULE} " in cmd]
    assert len(found) == 1, children
    return found[0]


def _socket_connections(name: str) -> int:
    """Connected sockets of the stand-in's abstract Unix socket `name` (its accepted connections)."""
    lines = Path("/proc/net/unix").read_text().splitlines()[1:]
    # Num RefCount Protocol Flags Type St Inode Path; St 03: connected
    return sum(1 for line in lines if line.endswith(f" @{name}") and line.split()[5] == "03")


def test_the_stand_in_serves_the_stack_over_its_socket_and_other_processes_over_http() -> None:
    with serving(E2E_ENV) as served:
        pid, cmd = _stand_in(served.children)
        assert pid != served.proc.pid
        name = re.search(r"--socket (\S+)", cmd)
        assert name, cmd

        task_id = slugid.nice()
        served.queue().createTask(task_id, task_def_now("e2e/stand-in"))

        assert _socket_connections(name.group(1)) >= 1  # the stack's own requests came this way
        # Over HTTP, as a worker or the `events` command reaches it: the same DynamoDB.
        ddb = boto3.client(
            "dynamodb",
            endpoint_url=served.aws_endpoint,
            region_name="us-east-1",
            aws_access_key_id="embedded",
            aws_secret_access_key="embedded",
        )
        tables = ddb.list_tables()["TableNames"]
        items = [item for table in tables for item in ddb.scan(TableName=table)["Items"]]
        assert any(task_id in str(item) for item in items), tables


def test_the_stand_in_exits_when_the_stacks_process_is_killed() -> None:
    with serving(E2E_ENV, own_group=True) as served:
        pid, cmd = _stand_in(served.children)
        assert alive(pid, cmd)
        served.proc.kill()  # SIGKILL to the stack's process alone: it closes nothing itself
        served.proc.wait()
        eventually(lambda: not alive(pid, cmd), ORPHAN_TIMEOUT, f"the stand-in ({pid}) to exit")
