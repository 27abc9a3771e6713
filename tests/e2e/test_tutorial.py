"""docs/tutorial.md, run as a reader would: every command in it, in order, against one embedded stack.

Foreground blocks run in one bash session, like the reader's terminal: `export`s and shell
variables carry from block to block, and `set -e` makes any failing command fail the test. A
```python block runs as a script (`.venv/bin/python <file>`) in that session. A background block
(the stack, the worker) starts in a process group of its own with the shell's environment at that
point; at the end each gets Ctrl-C (SIGINT to its group), the worker first, and must exit cleanly,
print what the tutorial shows and leave no process behind. The one rewrite: port 8000 becomes a
free port, so the test never collides with a stack someone is running.

The conventions (the tutorial states them for its readers too):

- A ```sh or ```python block is run, in order.
- An HTML comment right above a block says how: `<!-- test: background, ready at "<text>" -->`
  starts a command meant for a terminal of its own and waits until its output shows <text>;
  `<!-- test: not run, <why> -->` leaves the block out (the reason is required).
- The ```text block after a run block (prose may come between) is its expected output: `<...>`
  (any word in angle brackets) matches one value without spaces, `...` within a line matches any
  text, and a line `...` matches any number of lines.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chalicelib.local.stack import free_port
from tests.harness import alive, descendants

PROJECT = Path(__file__).resolve().parents[2]
TUTORIAL = PROJECT / "docs" / "tutorial.md"
BLOCK_TIMEOUT = 60.0  # one foreground block (a task or graph run takes seconds)
READY_TIMEOUT = 120.0  # a background command showing its ready text (make may first install .venv)
STOP_TIMEOUT = 30.0  # Ctrl-C to exit (a claim-work worker may finish its claimWork long-poll first)
MOST_NOT_RUN = 3  # blocks that need AWS; keep them few
DONE = "__tutorial_block_done__"


# --- reading the tutorial ------------------------------------------------------------------------
RUNNABLE = ("sh", "python")
FENCE = re.compile(r"^```(\S*)\s*$")
DIRECTIVE = re.compile(r"^<!-- test: (.*?) -->$")
READY_AT = re.compile(r'^background, ready at "([^"]+)"$')
NOT_RUN = re.compile(r"^not run, (.+)$")
PLACEHOLDER = re.compile(r"<[^<>\s][^<>]*?>")


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    directive: str | None = None
    expected: str | None = None  # the text block that follows, for a runnable block

    @property
    def ready_at(self) -> str | None:
        match = READY_AT.match(self.directive or "")
        return match.group(1) if match else None

    @property
    def not_run_because(self) -> str | None:
        match = NOT_RUN.match(self.directive or "")
        return match.group(1) if match else None

    @property
    def runs(self) -> bool:
        return self.lang in RUNNABLE and self.not_run_because is None


def read_blocks(markdown: str) -> list[Block]:
    """Every fenced block of the document, runnable ones with their directive and expected output."""
    found: list[Block] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            raise ValueError(f"line {i + 1}: a fenced block is never closed")
        above = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        directive = DIRECTIVE.match(above.strip())
        found.append(Block(i + 1, opening.group(1), "\n".join(lines[i + 1 : end]) + "\n",
                           directive.group(1) if directive else None))  # fmt: skip
        i = end + 1
    for n, block in enumerate(found):  # a text block belongs to the run block before it
        if block.lang == "text" and n > 0 and found[n - 1].lang in RUNNABLE:
            found[n - 1] = Block(found[n - 1].line, found[n - 1].lang, found[n - 1].code,
                                 found[n - 1].directive, block.code)  # fmt: skip
    return found


def pattern(expected: str) -> re.Pattern[str]:
    """The regular expression an expected-output block stands for (whole output, line by line)."""
    parts: list[str] = []
    for line in expected.rstrip("\n").splitlines():
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
            continue
        regex = ""
        for piece in re.split(r"(\.\.\.|<[^<>\s][^<>]*?>)", line.rstrip()):
            if piece == "...":
                regex += r"[^\n]*?"
            elif PLACEHOLDER.fullmatch(piece):
                regex += r"\S+"
            else:
                regex += re.escape(piece)
        parts.append(regex + r"[ \t]*\n")
    return re.compile("".join(parts))


def matches(expected: str, output: str) -> bool:
    text = "\n".join(line.rstrip() for line in output.rstrip().splitlines()) + "\n"
    return pattern(expected).fullmatch(text) is not None


# --- running it -----------------------------------------------------------------------------------
@dataclass
class Background:
    block: Block
    proc: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    children: dict[int, str] = field(default_factory=dict)

    def text(self) -> str:
        return "".join(self.output)


def _collect(stream: Iterable[str], sink: list[str] | queue.Queue[str | None]) -> None:
    """Read a process's output as it comes; a queue gets None at the end."""
    for line in stream:
        if isinstance(sink, list):
            sink.append(line)
        else:
            sink.put(line)
    if not isinstance(sink, list):
        sink.put(None)


class Shell:
    """One bash process fed block after block, as a terminal would be."""

    def __init__(self, env: dict[str, str], scratch: Path) -> None:
        self.scratch = scratch
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            ["bash", "--norc", "--noprofile"],
            cwd=PROJECT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=_collect, args=(self.proc.stdout, self.lines), daemon=True).start()
        self.count = 0

    def run(self, command: str, timeout: float = BLOCK_TIMEOUT) -> str:
        """Run `command` in the session (set -e) and return its output; fail the test if it fails."""
        self.count += 1
        script, out = self.scratch / f"block-{self.count}.sh", self.scratch / f"block-{self.count}.out"
        script.write_text(command)
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"set -e; source {script} >{out} 2>&1 </dev/null; set +e; echo {DONE}\n")
        self.proc.stdin.flush()
        end = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"still running after {timeout:.0f}s:\n{command}\n--- output so far:\n{_read(out)}")
            if line is None or line.strip() == DONE:
                break
        if line is None:
            pytest.fail(f"failed (exit {self.proc.wait()}):\n{command}\n--- output:\n{_read(out)}")
        return _read(out)

    def environment(self) -> dict[str, str]:
        dump = self.scratch / "env"
        self.run(f"env -0 > {dump}")
        pairs = (item.split("=", 1) for item in dump.read_text().split("\0") if "=" in item)
        return dict(pairs)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _start(block: Block, code: str, env: dict[str, str]) -> Background:
    proc = subprocess.Popen(
        ["bash", "-c", code],
        cwd=PROJECT,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: SIGINT to it is Ctrl-C in its terminal
    )
    started = Background(block, proc)
    threading.Thread(target=_collect, args=(proc.stdout, started.output), daemon=True).start()
    ready_at = block.ready_at or ""
    end = time.monotonic() + READY_TIMEOUT
    while ready_at not in started.text():
        if proc.poll() is not None or time.monotonic() > end:
            pytest.fail(f"line {block.line}: never printed {ready_at!r}:\n{code}\n--- output:\n{started.text()}")
        time.sleep(0.05)
    started.children = descendants(proc.pid)
    return started


def _interrupt(started: Background) -> None:
    """Ctrl-C in its terminal: SIGINT to its process group."""
    if started.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(started.proc.pid, signal.SIGINT)


def _wait(started: Background) -> int | None:
    """Its exit status (None: it did not exit in time and was killed); nothing it started is left."""
    try:
        returncode: int | None = started.proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        returncode = None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(started.proc.pid, signal.SIGKILL)  # the group we created for it
        started.proc.wait()
    for pid, cmdline in started.children.items():
        if alive(pid, cmdline):  # left behind: end it, by its id
            os.kill(pid, signal.SIGKILL)
    return returncode


def _with_port(text: str, port: int) -> str:
    return re.sub(r"\b8000\b", str(port), text)


@pytest.fixture
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="taskqueue-tutorial-") as path:
        yield Path(path)


def test_the_tutorial_leaves_out_only_a_few_blocks_and_says_why() -> None:
    blocks = read_blocks(TUTORIAL.read_text())
    assert {b.lang for b in blocks} <= {"sh", "python", "text"}, [(b.line, b.lang) for b in blocks]
    not_run = [b for b in blocks if b.lang in RUNNABLE and not b.runs]
    assert len(not_run) <= MOST_NOT_RUN, [b.line for b in not_run]
    unknown = [b.line for b in blocks if b.directive and not (b.ready_at or b.not_run_because)]
    assert not unknown, f"directives the test does not understand, at lines {unknown}"
    assert sum(b.runs for b in blocks) >= 8


def test_every_command_in_the_tutorial_runs_and_prints_what_it_shows(scratch: Path) -> None:
    port = free_port()
    # A newcomer's terminal: none of our settings, and not inside `make test` (a nested make prints
    # "Entering directory" lines the tutorial does not show).
    inherited = ("TASKCLUSTER_", "TASKQUEUE_", "AWS_", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
    env = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
    env.update(CI="true", TERM="dumb")
    shell = Shell(env, scratch)
    background: list[Background] = []
    try:
        for block in read_blocks(TUTORIAL.read_text()):
            if not block.runs:
                continue
            code = _with_port(block.code, port)
            if block.lang == "python":
                script = scratch / f"line-{block.line}.py"
                script.write_text(code)
                code = f".venv/bin/python {script}\n"
            if block.ready_at is not None:
                background.append(_start(block, code, shell.environment()))
                continue
            output = shell.run(code)
            if block.expected is not None:
                expected = _with_port(block.expected, port)
                shows = matches(expected, output)
                assert shows, f"line {block.line}: not the output the tutorial shows:\n{code}\n--- printed:\n{output}"
    finally:
        shell.close()
        for started in reversed(background):  # the worker, then the stack
            _interrupt(started)
            time.sleep(0.5)
        stopped = [(started, _wait(started)) for started in background]
    for started, returncode in stopped:
        where = f"line {started.block.line}: {started.block.code}--- printed:\n{started.text()}"
        # make passes Ctrl-C on and then dies of it, as in a terminal, even when its command exits 0.
        assert returncode in (0, -signal.SIGINT), f"exit status {returncode} after Ctrl-C, {where}"
        if started.block.expected is not None:
            shows = matches(_with_port(started.block.expected, port), started.text())
            assert shows, f"not the output the tutorial shows, {where}"
        left = {pid: cmd for pid, cmd in started.children.items() if alive(pid, cmd)}
        assert not left, f"left running: {left}"
