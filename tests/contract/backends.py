"""What the contract fixtures hand a test besides the port itself: a way to see what a queue or
bus delivered, to land an object, to make the cloud refuse; and the moto-only xfail marker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from chalicelib.services.ports import BlobStore, EventBus, Provider, QueueFacts, ReleaseQueue

EC2_REGION = "us-west-2"  # the cloud fixture's region (not the tables'): launches name their own


def moto_xfail(reason: str) -> pytest.MarkDecorator:
    """The adapter over moto gets this case wrong (a discrepancy to fix there): xfail, strictly, on moto only."""
    return pytest.mark.moto_xfail(reason=reason)


@dataclass
class Subscribed:
    """The bus, and what a subscriber to every task event received since it last looked:
    (detail-type, detail) pairs, as EventBridge delivers them."""

    bus: EventBus
    received: Callable[[], list[tuple[str, dict[str, Any]]]]


@dataclass
class Releases:
    queue: ReleaseQueue
    received: Callable[[], list[dict[str, Any]]]


@dataclass
class Bucket:
    """The blob store, its bucket, and how a client's upload lands an object there."""

    blobs: BlobStore
    name: str
    upload: Callable[[str, bytes], None]
    exists: Callable[[str], bool]


@dataclass
class Cloud:
    """A provider, an image its launch specifications may name, and how to make it refuse the next
    launch as the cloud would (EC2: a subnet that does not exist)."""

    provider: Provider
    image: str
    refuse: Callable[[], dict[str, Any]]  # arranges the refusal; returns the launch spec to use


@dataclass
class Queue:
    """QueueFacts, and how to put tasks on its task queues: pending ones, ones a worker holds (worker
    group "wg", run 0), and how such a run completes."""

    facts: QueueFacts
    add_pending: Callable[[str], str]  # task queue -> task id
    hold: Callable[[str, str], str]  # (task queue, worker id) -> task id
    complete: Callable[[str], None]  # task id of a held run
