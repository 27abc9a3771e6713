"""What `make run`'s display says about the pool (chalicelib/local/demo.py): pure text, no stack."""

from __future__ import annotations

import io

from chalicelib.local.demo import Progress, wait_reason


def test_nothing_pending_says_nothing() -> None:
    assert wait_reason(0, {"w1": "running"}, 2) == ""


def test_the_reason_a_task_waits() -> None:
    assert wait_reason(1, {}, 2) == "1 task pending: no worker yet (the provisioner starts one within seconds)"
    assert wait_reason(1, {"w1": "stopped"}, 2).endswith("no worker yet (the provisioner starts one within seconds)")
    assert wait_reason(3, {"w1": "requested"}, 2) == "3 tasks pending: worker starting"
    assert wait_reason(5, {"w1": "running", "w2": "running"}, 2) == (
        "5 tasks pending: at maxCapacity (2 of 2 workers); they wait for a free slot"
    )
    assert wait_reason(1, {"w1": "running", "w2": "stopping"}, 2) == (
        "1 task pending: at maxCapacity (2 of 2 workers, 1 of them stopping); they wait for a free slot"
    )
    assert wait_reason(2, {"w1": "running"}, 2).startswith("2 tasks pending: waiting for a free slot")


def test_the_plain_display_prints_a_line_when_the_reason_changes() -> None:
    out = io.StringIO()
    progress = Progress({}, out, fancy=False)
    progress.update({}, {}, "1 task pending: no worker yet")
    progress.update({}, {}, "1 task pending: no worker yet")  # unchanged: nothing new
    progress.update({}, {"w1": "requested"}, "1 task pending: worker starting")
    progress.update({}, {"w1": "running"}, "")
    lines = [line.split("s  ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == [
        "pool    1 task pending: no worker yet",
        "worker  w1 - -> requested",
        "pool    1 task pending: worker starting",
        "worker  w1 requested -> running",
        "pool    no task waiting",
    ]
