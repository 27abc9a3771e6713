"""HintQueues: a queue per (task queue, priority), drained highest priority first."""

from __future__ import annotations

from chalicelib.domain.dispatch import Hint
from chalicelib.services.ports import HintQueues

QUEUE = "proj/linux"


def hint(task_id: str, priority: str = "lowest", queue: str = QUEUE, run_id: int = 0) -> Hint:
    return Hint(task_id, run_id, queue, priority)


def test_a_task_queue_without_hints_gives_none(hints: HintQueues) -> None:
    assert hints.receive(QUEUE, 10, 0) == []


def test_a_sent_hint_is_received_with_its_task_run_and_priority(hints: HintQueues) -> None:
    hints.send([hint("a", "high", run_id=3)])
    [received] = hints.receive(QUEUE, 10, 0)
    assert received.hint == Hint("a", 3, QUEUE, "high")
    assert received.receipt and received.queue_url


def test_higher_priorities_are_received_first(hints: HintQueues) -> None:
    hints.send([hint("low", "lowest"), hint("mid", "medium"), hint("top", "highest"), hint("mid2", "medium")])
    got = [r.hint.task_id for r in hints.receive(QUEUE, 10, 0)]
    assert got[0] == "top" and set(got[1:3]) == {"mid", "mid2"} and got[3] == "low"


def test_receive_hands_out_at_most_what_is_asked_and_the_rest_later(hints: HintQueues) -> None:
    hints.send([hint(f"t{n:02}") for n in range(15)])
    first = hints.receive(QUEUE, 12, 0)
    rest = hints.receive(QUEUE, 12, 0)
    assert len(first) == 12 and len(rest) == 3
    assert sorted(r.hint.task_id for r in first + rest) == [f"t{n:02}" for n in range(15)]


def test_a_received_hint_is_not_handed_out_again_while_its_claimer_works(hints: HintQueues) -> None:
    hints.send([hint("a"), hint("b")])
    [first] = hints.receive(QUEUE, 1, 0)
    hints.delete([first])
    [second] = hints.receive(QUEUE, 1, 0)
    assert {first.hint.task_id, second.hint.task_id} == {"a", "b"}
    assert hints.receive(QUEUE, 10, 0) == []


def test_hints_of_other_task_queues_stay_there(hints: HintQueues) -> None:
    hints.send([hint("mine"), hint("theirs", queue="proj/other")])
    assert [r.hint.task_id for r in hints.receive(QUEUE, 10, 0)] == ["mine"]
    assert [r.hint.task_id for r in hints.receive("proj/other", 10, 0)] == ["theirs"]


def test_a_task_queue_id_too_long_for_a_queue_name_still_gets_its_hints(hints: HintQueues) -> None:
    long_queue = "p" * 38 + "/" + "w" * 38
    hints.send([hint("a", "very-high", queue=long_queue)])
    assert [r.hint for r in hints.receive(long_queue, 10, 0)] == [Hint("a", 0, long_queue, "very-high")]
    assert hints.receive(QUEUE, 10, 0) == []


def test_approximate_count_counts_the_hints_waiting_and_being_received(hints: HintQueues) -> None:
    assert hints.approximate_count(QUEUE) == 0
    hints.send([hint("a"), hint("b"), hint("c"), hint("theirs", queue="proj/other")])
    assert hints.approximate_count(QUEUE) == 3
    [received] = hints.receive(QUEUE, 1, 0)
    assert hints.approximate_count(QUEUE) == 3
    hints.delete([received])
    assert hints.approximate_count(QUEUE) == 2
