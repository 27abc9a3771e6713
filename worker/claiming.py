"""Finding work, in two modes, behind one small interface.

A claimer first *waits* for work (`wait_for_work`: may block, claims nothing) and then *takes*
it (`take`: the claiming calls). The worker holds a lock around `take` only, so on shutdown it
knows no claim is half made. Both get the worker's stop event: once it is set they start no new
receive or claim, and what a receive already in flight brings is given back (`release`).

- claim-work: plain Taskcluster; `take` is claimWork (the queue may long-poll it), and after an
  empty answer `wait_for_work` waits until `interval` seconds have passed since that call began.
- sqs: long-polls the task queue's SQS hint queues (one per priority, highest first), then
  claims each hinted run with claimTask. Hints are only hints: a 409 or 404 means the run is no
  longer pending (claimed by someone else, resolved, a duplicate), so the hint is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib.domain.dispatch import Hint, queue_names

from .queue import QueueCalls, TaskclusterFailure, brief, status_code

log = logging.getLogger(__name__)
KNOWN_QUEUES_TTL = 5.0  # seconds the list of a task queue's priority queues is trusted
NO_QUEUE_WAIT = 1.0  # seconds to wait before looking again when no hint queue exists yet
NO_QUEUE_WARN_EVERY = 300.0  # seconds between repeats of the no-dispatch-queue warning
CLAIM_WORK_INTERVAL = 5.0  # least seconds from an empty claimWork's start to the next call (generic-worker's)


class Claimer(Protocol):
    def wait_for_work(self, wanted: int, stop: threading.Event) -> list[Any]: ...

    def take(self, offers: list[Any], stop: threading.Event) -> list[dict[str, Any]]: ...

    def release(self, offers: list[Any]) -> None: ...


@dataclass
class ClaimWorkClaimer:
    """claimWork, called again no sooner than `interval` seconds after the start of a call that
    brought nothing (as generic-worker does: at least 5 s between them). A queue that long-polls
    (Taskcluster's, the embedded stack: 20 s) answers later than that, so the next call goes out
    at once; a deployed stage answers at once (waiting is billed on Lambda), and this wait, not
    the queue's, is what keeps an idle worker's calls (and cost) down."""

    queue: QueueCalls
    task_queue_id: str
    worker_group: str
    worker_id: str
    interval: float = CLAIM_WORK_INTERVAL
    clock: Callable[[], float] = time.monotonic
    _next_call: float | None = field(default=None, init=False)  # clock(): no claimWork before it

    def wait_for_work(self, wanted: int, stop: threading.Event) -> list[Any]:
        if self._next_call is not None:
            delay = self._next_call - self.clock()
            if delay > 0:
                stop.wait(delay)  # a stop ends the wait; the worker then calls nothing
        return [wanted]  # then claimWork, which may wait on the queue too

    def take(self, offers: list[Any], stop: threading.Event) -> list[dict[str, Any]]:
        # claimWork waits *and* claims on the server: once sent it cannot be called off (Worker._start).
        started = self.clock()
        claims = self.queue.claim_work(self.task_queue_id, self.worker_group, self.worker_id, offers[0])
        self._next_call = None if claims else started + self.interval
        return claims

    def release(self, offers: list[Any]) -> None:
        pass


@dataclass(frozen=True)
class Offer:
    hint: Hint | None  # None: not a hint (a doorbell or junk): just delete it
    receipt: str
    queue_url: str


class SqsClaimer:
    def __init__(
        self,
        sqs: Any,
        prefix: str,
        task_queue_id: str,
        queue: QueueCalls,
        worker_group: str,
        worker_id: str,
        poll: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sqs = sqs
        self.prefix = prefix
        self.names = queue_names(prefix, task_queue_id)  # highest priority first
        self.task_queue_id = task_queue_id
        self.queue = queue
        self.worker_group, self.worker_id = worker_group, worker_id
        self.poll = poll
        self.clock = clock
        self._urls: list[str] = []
        self._listed_at = -KNOWN_QUEUES_TTL
        self._warned_at: float | None = None  # the last no-dispatch-queue warning (clock())

    def _existing(self) -> list[str]:
        """The hint queues that exist, highest priority first (one ListQueues call)."""
        now = self.clock()
        if now - self._listed_at < KNOWN_QUEUES_TTL:
            return self._urls
        common = self.names[0][:-1]  # the names differ only in their last character
        found: set[str] = set()
        for page in self.sqs.get_paginator("list_queues").paginate(QueueNamePrefix=common):
            found.update(page.get("QueueUrls", []))
        by_name = {u.rsplit("/", 1)[1]: u for u in found}
        self._urls = [by_name[n] for n in self.names if n in by_name]
        # None yet: look again next time (the first hint creates one; no doorbell rings for it).
        self._listed_at = now if self._urls else -KNOWN_QUEUES_TTL
        if self._urls:
            self._warned_at = None
        elif self._warned_at is None or now - self._warned_at >= NO_QUEUE_WARN_EVERY:
            self._warned_at = now
            # A wrong prefix or region looks just like a task queue without tasks: the worker
            # waits forever. Say so, now and then, with what it looks for.
            log.warning(
                "no-dispatch-queue prefix=%s region=%s task_queue=%s looked_for=%s* (the queue makes one "
                "with this task queue's first task: if tasks are pending, check --queue-prefix and the region)",
                self.prefix,
                self.sqs.meta.region_name,
                self.task_queue_id,
                common,
            )
        return self._urls

    def _receive(self, url: str, wanted: int, wait: int) -> list[Offer]:
        try:
            msgs = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=min(10, wanted), WaitTimeSeconds=wait
            ).get("Messages", [])
        except self.sqs.exceptions.QueueDoesNotExist:
            self._listed_at = -KNOWN_QUEUES_TTL
            return []
        offers = [Offer(Hint.parse(m["Body"], self.task_queue_id), m["ReceiptHandle"], url) for m in msgs]
        if any(o.hint is None for o in offers):
            self._listed_at = -KNOWN_QUEUES_TTL  # a doorbell: a new priority queue exists
        return offers

    def wait_for_work(self, wanted: int, stop: threading.Event) -> list[Any]:
        """Hints for up to `wanted` runs: those already there (highest priority first), else a wait.

        Once `stop` is set no new receive starts. The worker waits for one in flight and gives
        back what it brings, which would otherwise stay hidden for the visibility timeout.
        """
        urls = self._existing()
        offers: list[Offer] = []

        def short() -> int:
            return wanted - sum(1 for o in offers if o.hint)

        def receive(url: str, n: int, wait: int) -> bool:
            """One receive into `offers`, unless stopping; whether it brought anything."""
            got = [] if stop.is_set() else self._receive(url, n, wait)
            offers.extend(got)
            return bool(got)

        try:
            for url in urls:  # what is there already, highest priority first
                while short() > 0 and receive(url, short(), 0):
                    pass
            if short() < wanted:
                return offers
            if not urls:
                stop.wait(NO_QUEUE_WAIT)
            elif len(urls) == 1:
                receive(urls[0], wanted, self.poll)  # one priority in use: long poll it
            else:
                for url in urls:  # several: a short wait on each in turn, highest first
                    if receive(url, wanted, 1) and short() < wanted:
                        break
        except Exception:
            self.release(offers)  # a later receive failed: the earlier ones' hints go back now
            raise
        return offers

    def take(self, offers: list[Any], stop: threading.Event) -> list[dict[str, Any]]:
        claims: list[dict[str, Any]] = []
        done: list[Offer] = []  # claimed, stale, or not a hint: deleted
        kept: list[Offer] = []  # the claim call failed: the hint comes back after its visibility timeout
        try:
            for offer in offers:
                if stop.is_set():
                    break  # a run claimed now would only be aborted: leave the rest to other workers
                if offer.hint is None:
                    done.append(offer)
                    continue
                hint = offer.hint
                try:
                    claims.append(self.queue.claim_task(hint.task_id, hint.run_id, self.worker_group, self.worker_id))
                except TaskclusterFailure as e:
                    if status_code(e) in (401, 403):
                        raise
                    if status_code(e) not in (404, 409):
                        log.warning("claim-failed task=%s run=%s error=%s", hint.task_id, hint.run_id, brief(e))
                        kept.append(offer)
                        continue
                    log.info("stale-hint-dropped task=%s run=%s", hint.task_id, hint.run_id)
                done.append(offer)
        finally:
            self._delete(done)
            # Not tried (stopping, or the credentials were refused): visible to other workers at once.
            self.release([o for o in offers if o not in done and o not in kept])
        return claims

    def release(self, offers: list[Any]) -> None:
        """Hints received but not claimed (stopping): visible to other workers at once."""
        hints = [o for o in offers if o.hint is not None]
        for o in hints:
            try:
                self.sqs.change_message_visibility(QueueUrl=o.queue_url, ReceiptHandle=o.receipt, VisibilityTimeout=0)
            except Exception as e:  # best effort: it reappears after its visibility timeout anyway
                log.warning("hint-release-failed error=%s", brief(e))
        if hints:
            log.info("hints-released count=%d", len(hints))

    def _delete(self, offers: list[Offer]) -> None:
        by_url: dict[str, list[str]] = {}
        for o in offers:
            by_url.setdefault(o.queue_url, []).append(o.receipt)
        for url, receipts in by_url.items():
            for i in range(0, len(receipts), 10):
                entries = [{"Id": str(n), "ReceiptHandle": r} for n, r in enumerate(receipts[i : i + 10])]
                self.sqs.delete_message_batch(QueueUrl=url, Entries=entries)
