"""Reading docs/tutorial.md as a script: its fenced blocks, what to run, and what output to expect.

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

import re
from dataclasses import dataclass

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


def blocks(markdown: str) -> list[Block]:
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
