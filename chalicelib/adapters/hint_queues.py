"""SQS hint queues: one standard queue per (task queue, priority), created on first use.

Sends are batched (SendMessageBatch, 10 a call) per queue; receives drain the priority queues
highest first. Each queue redrives to one shared dead-letter queue, so a hint that keeps being
received and never deleted is set aside instead of circulating forever (the sweeper re-hints
any run still pending).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..domain.dispatch import Hint, queue_name, queue_names
from ..services.ports import ReceivedHint, Undelivered

log = logging.getLogger(__name__)

VISIBILITY_TIMEOUT = 30  # seconds a received hint stays hidden while its claimer works on it
RETENTION = 14 * 24 * 3600  # SQS's maximum; longer than any deadline (5 days)
MAX_RECEIVES = 10
KNOWN_QUEUES_TTL = 2.0  # seconds a claimer trusts its list of a task queue's priority queues
LONG_POLL = 5  # seconds of one long poll while a claimer waits
SQS_BATCH = 10
SEND_ATTEMPTS = 3  # calls for hints SQS refuses one by one (SendMessageBatch's Failed)
RETRY_PAUSE = 0.1  # seconds before the second call, doubled before each further one
# SQS's estimates of a queue's messages: waiting, and received but not yet deleted (being claimed).
APPROXIMATE_COUNTS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
DEFAULT_PRIORITY = "lowest"  # createTask's default: the queue a claimer waits on before any exists
DOORBELL = '{"doorbell":true}'  # not a hint: tells claimers to look for new priority queues


def dlq_name(prefix: str) -> str:
    return f"{prefix}dispatch-dlq"


class SqsHintQueues:
    def __init__(self, sqs: Any, prefix: str, pause: Callable[[float], None] = time.sleep) -> None:
        self._sqs = sqs
        self._pause = pause
        self._prefix = prefix
        self._urls: dict[str, str] = {}
        self._known: dict[str, tuple[float, list[str]]] = {}
        self._dlq_arn: str | None = None
        self._lock = threading.Lock()

    # --- queues --------------------------------------------------------------------------------
    def _dead_letter_arn(self) -> str:
        if self._dlq_arn is None:
            url = self._sqs.create_queue(
                QueueName=dlq_name(self._prefix), Attributes={"MessageRetentionPeriod": str(RETENTION)}
            )["QueueUrl"]
            attrs = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            self._dlq_arn = attrs["Attributes"]["QueueArn"]
        return self._dlq_arn

    def _url(self, name: str, task_queue_id: str) -> str:
        url = self._urls.get(name)
        if url is None:
            try:
                url = self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
            except ClientError as e:
                if e.response["Error"]["Code"] not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                    raise
                redrive = {"deadLetterTargetArn": self._dead_letter_arn(), "maxReceiveCount": MAX_RECEIVES}
                url = self._sqs.create_queue(
                    QueueName=name,
                    Attributes={
                        "VisibilityTimeout": str(VISIBILITY_TIMEOUT),
                        "MessageRetentionPeriod": str(RETENTION),
                        "RedrivePolicy": json.dumps(redrive),
                    },
                )["QueueUrl"]
                self._ring_doorbells(task_queue_id, url)
            assert url is not None
            with self._lock:
                self._urls[name] = url
        return url

    def _ring_doorbells(self, task_queue_id: str, new_url: str) -> None:
        """Wake claimers long-polling the task queue's other priority queues: a new one exists."""
        self._known.pop(task_queue_id, None)
        for url in self._existing(task_queue_id):
            if url != new_url:
                self._sqs.send_message(QueueUrl=url, MessageBody=DOORBELL)

    def _existing(self, task_queue_id: str) -> list[str]:
        """URLs of the task queue's priority queues that exist, highest priority first."""
        cached = self._known.get(task_queue_id)
        if cached and time.monotonic() - cached[0] < KNOWN_QUEUES_TTL:
            return cached[1]
        names = queue_names(self._prefix, task_queue_id)
        listed: set[str] = set()
        # One ListQueues call finds them all: the names share everything up to the priority.
        common = names[0][: len(names[0]) - 1]
        paginator = self._sqs.get_paginator("list_queues")
        for page in paginator.paginate(QueueNamePrefix=common):
            listed.update(page.get("QueueUrls", []))
        by_name = {u.rsplit("/", 1)[1]: u for u in listed}
        urls = [by_name[n] for n in names if n in by_name]
        with self._lock:
            for n in names:
                if n in by_name:
                    self._urls[n] = by_name[n]
            self._known[task_queue_id] = (time.monotonic(), urls)
        return urls

    # --- HintQueues port -----------------------------------------------------------------------
    def send(self, hints: Sequence[Hint]) -> None:
        """Batches of ten per queue. Entries SQS refuses one by one are sent again (SEND_ATTEMPTS
        calls at most); a batch still not delivered then, or a call that fails outright (botocore
        has retried it), ends the sending: `Undelivered` names it and every hint not yet sent."""
        by_queue: dict[str, list[int]] = {}
        for i, h in enumerate(hints):
            by_queue.setdefault(queue_name(self._prefix, h.task_queue_id, h.priority), []).append(i)
        sent: set[int] = set()
        for name, group in by_queue.items():
            try:
                url = self._url(name, hints[group[0]].task_queue_id)
                for n in range(0, len(group), SQS_BATCH):
                    chunk = group[n : n + SQS_BATCH]
                    left, reason = self._send_batch(url, hints, chunk)
                    if left:
                        raise Undelivered(left, f"SQS {name}: {reason}")
                    sent.update(chunk)
            except (ClientError, BotoCoreError, Undelivered) as e:
                raise Undelivered(set(range(len(hints))) - sent, str(e)) from e

    def _send_batch(self, url: str, hints: Sequence[Hint], chunk: list[int]) -> tuple[list[int], str]:
        left = chunk
        reason = ""
        for attempt in range(SEND_ATTEMPTS):
            if attempt:
                self._pause(RETRY_PAUSE * 2 ** (attempt - 1))
            entries = [{"Id": str(i), "MessageBody": hints[i].body()} for i in left]
            failed = self._sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed") or []
            if not failed:
                return [], ""
            reason = "; ".join(sorted({f"{f.get('Code')}: {f.get('Message', '')}" for f in failed}))
            left = sorted(int(f["Id"]) for f in failed)
        return left, reason

    def receive(self, task_queue_id: str, max_hints: int, wait_seconds: float) -> list[ReceivedHint]:
        deadline = time.monotonic() + max(0.0, wait_seconds)
        while True:
            urls = self._existing(task_queue_id)
            got = self._drain(task_queue_id, urls, max_hints)
            remaining = deadline - time.monotonic()
            if got or remaining < 1:
                return got
            if not urls:
                # Nothing was ever dispatched here: wait on the default priority's queue. The first
                # hint of any other priority rings its doorbell (see _ring_doorbells).
                urls = [self._url(queue_name(self._prefix, task_queue_id, DEFAULT_PRIORITY), task_queue_id)]
                self._known.pop(task_queue_id, None)
            if len(urls) == 1:
                # One priority in use: a long poll on it is cheapest and quickest. It is kept
                # short enough that a queue for another priority, created meanwhile, is noticed.
                got, _ = self._receive_from(task_queue_id, urls[0], max_hints, int(min(remaining, LONG_POLL)))
            else:
                # Several: wait briefly on each in turn, highest first.
                for url in urls:
                    got, _ = self._receive_from(task_queue_id, url, max_hints, 1)
                    if got:
                        break
            if got:
                return got

    def _drain(self, task_queue_id: str, urls: list[str], max_hints: int) -> list[ReceivedHint]:
        got: list[ReceivedHint] = []
        for url in urls:
            while len(got) < max_hints:
                batch, messages = self._receive_from(task_queue_id, url, max_hints - len(got), 0)
                got += batch
                if not messages:
                    break
        return got

    def _receive_from(self, task_queue_id: str, url: str, n: int, wait: int) -> tuple[list[ReceivedHint], int]:
        """(hints received, messages received): doorbells and junk are deleted, not returned."""
        try:
            resp = self._sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(n, SQS_BATCH), WaitTimeSeconds=wait)
        except ClientError as e:
            if e.response["Error"]["Code"] in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                self._known.pop(task_queue_id, None)
                return [], 0
            raise
        received: list[ReceivedHint] = []
        junk: list[str] = []
        for m in resp.get("Messages", []):
            hint = Hint.parse(m["Body"], task_queue_id)
            if hint is None:
                junk.append(m["ReceiptHandle"])
                if m["Body"] != DOORBELL:
                    log.warning("dropping a message that is not a hint from %s: %.200s", url, m["Body"])
            else:
                received.append(ReceivedHint(hint, m["ReceiptHandle"], url))
        if junk:
            self._known.pop(task_queue_id, None)  # a doorbell: look for new priority queues
            self._delete(url, junk)
        return received, len(received) + len(junk)

    def delete(self, received: Sequence[ReceivedHint]) -> None:
        by_url: dict[str, list[str]] = {}
        for r in received:
            by_url.setdefault(r.queue_url, []).append(r.receipt)
        for url, receipts in by_url.items():
            self._delete(url, receipts)

    def approximate_count(self, task_queue_id: str) -> int:
        total = 0
        for url in self._existing(task_queue_id):
            try:
                attributes = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(APPROXIMATE_COUNTS))
            except ClientError as e:
                if e.response["Error"]["Code"] in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                    self._known.pop(task_queue_id, None)
                    continue
                raise
            total += sum(int(attributes["Attributes"].get(name, 0)) for name in APPROXIMATE_COUNTS)
        return total

    def _delete(self, url: str, receipts: list[str]) -> None:
        for i in range(0, len(receipts), SQS_BATCH):
            entries = [{"Id": str(n), "ReceiptHandle": rh} for n, rh in enumerate(receipts[i : i + SQS_BATCH])]
            self._sqs.delete_message_batch(QueueUrl=url, Entries=entries)
