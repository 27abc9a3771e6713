"""The tasks table's stream is the outbox: what a committed row change must cause elsewhere.

For now that is dispatch — a row change that makes (or re-announces) a pending run puts a hint
on its task queue. Records are at-least-once and may come out of order across tasks; a repeated
hint is harmless because the claim re-checks the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..domain.dispatch import Hint, hint_needed
from ..domain.model import Task
from .ports import HintQueues


@dataclass(frozen=True)
class RowChange:
    old: Task | None
    new: Task | None


class Outbox:
    def __init__(self, hints: HintQueues) -> None:
        self.hints = hints

    def process(self, changes: Sequence[RowChange]) -> list[Hint]:
        """Send what a batch of row changes requires; returns the hints sent."""
        hints = [h for c in changes if c.new is not None and (h := hint_needed(c.old, c.new)) is not None]
        if hints:
            self.hints.send(hints)
        return hints
