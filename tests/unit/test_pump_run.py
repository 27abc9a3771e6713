"""The event pump's loop (`EventPump.run`): schedules keep their pace under a steady stream of
writes, an idle pump backs off, and `wake()` ends its wait; the embedded stack's HTTP server
calls it after every request that may have written.

The pump runs in a thread against a fake stream of one shard and a small Chalice app (one stream
handler, one schedule), with the real clock. Bounds are loose: each test tells a fair, backing-off
pump from one that is not by a wide margin, never by a tight timing.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from typing import Any

from chalice import Chalice, Rate
from chalice.config import Config

from chalicelib.local.pump import EventPump
from chalicelib.local.stack import local_server


class FakeStream:
    """The tasks table and its stream of one shard, as the pump's dynamodb and dynamodbstreams
    clients see them. `endless`: every read finds a new record (a steady stream of writes)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.position = 0
        self.reads = 0
        self.endless = False
        self._lock = threading.Lock()

    def write(self) -> None:
        with self._lock:
            n = len(self.records)
            keys = {"taskId": {"S": f"t{n}"}}
            change = {"Keys": keys, "SequenceNumber": str(n), "SizeBytes": 10, "StreamViewType": "KEYS_ONLY"}
            self.records.append({"eventName": "INSERT", "dynamodb": change})

    def describe_table(self, TableName: str) -> dict[str, Any]:
        return {"Table": {"LatestStreamArn": "arn:stream"}}

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": "shard-0"}]}}

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        return {"ShardIterator": "iterator"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        if self.endless:
            self.write()
        with self._lock:
            self.reads += 1
            batch = self.records[self.position : self.position + Limit]
            self.position += len(batch)
        return {"Records": batch, "NextShardIterator": "iterator"}


def make_app(delivered: list[float], ticks: list[float]) -> Chalice:
    app = Chalice("pump-run-test")

    @app.on_dynamodb_record(stream_arn="arn:stream", batch_size=100, name="stream")
    def stream(event: Any) -> None:
        time.sleep(0.005)  # a handler takes some time
        delivered.extend(time.monotonic() for _ in event)

    @app.schedule(Rate(1, unit=Rate.MINUTES), name="sweeper")
    def sweeper(event: Any) -> None:
        ticks.append(time.monotonic())

    return app


class Running:
    def __init__(self, schedule_every: float, **run_options: float) -> None:
        self.delivered: list[float] = []
        self.ticks: list[float] = []
        self.fake = FakeStream()
        app = make_app(self.delivered, self.ticks)
        self.pump = EventPump(app, self.fake, self.fake, None, "us-east-1", lambda arn: "tasks", schedule_every)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.pump.run, args=(self.stop,), kwargs=run_options, daemon=True)


@contextmanager
def running(schedule_every: float = 60.0, **run_options: float) -> Iterator[Running]:
    r = Running(schedule_every, **run_options)
    r.thread.start()
    try:
        yield r
    finally:
        r.fake.endless = False  # a pump that never yields returns once the stream runs dry
        r.stop.set()
        if hasattr(r.pump, "wake"):
            r.pump.wake()
        r.thread.join(timeout=10)
        assert not r.thread.is_alive(), "the pump did not stop"


def wait_until(check: Any, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def test_schedules_keep_running_while_the_stream_never_runs_dry() -> None:
    with running(schedule_every=0.2) as r:
        r.fake.endless = True
        assert wait_until(lambda: len(r.delivered) > 0, 5), "the stream was not delivered"
        # The sweeper's interval is 0.2 s: a fair pump runs it about 15 times in these 3 s.
        ran = wait_until(lambda: len(r.ticks) >= 3, 3)
        delivered = len(r.delivered)
    assert ran, f"the sweeper ran {len(r.ticks)} times in 3 s of steady writes ({delivered} records delivered)"
    assert delivered > 10  # and the stream kept being delivered meanwhile


def test_an_idle_pump_backs_off_instead_of_polling_the_stream() -> None:
    with running() as r:
        time.sleep(1.5)
        reads = r.fake.reads
    # Polling every 20 ms would read ~75 times; backing off (20 ms, 40 ms ... up to 1 s) about 7 times.
    assert reads <= 15, f"{reads} stream reads in 1.5 s of idleness"


def test_wake_delivers_a_write_at_once_however_long_the_pump_was_idle() -> None:
    with running(idle_max=10.0) as r:
        time.sleep(3)  # backed off: the current wait is seconds long
        r.fake.write()
        woken = time.monotonic()
        r.pump.wake()
        assert wait_until(lambda: r.delivered, 5)
        assert r.delivered[0] - woken < 1.0, f"delivered {r.delivered[0] - woken:.2f} s after wake()"


def test_a_backed_off_pump_still_runs_its_schedules_on_time() -> None:
    with running(schedule_every=0.3, idle_max=10.0) as r:
        time.sleep(3)
        ticks = list(r.ticks)
    # Every 0.3 s: about 10 runs. A wait that overran the schedule would leave a few.
    assert len(ticks) >= 6, ticks
    assert max(b - a for a, b in pairwise(ticks)) < 1.5, ticks


def test_the_http_server_wakes_the_pump_after_each_request_that_may_write() -> None:
    app = Chalice("wake-test")

    @app.route("/thing", methods=["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"])
    def thing() -> dict[str, str]:
        return {}

    wakes: list[str] = []
    config = Config(chalice_stage="dev", user_provided_params={})
    server = local_server(app, config, "127.0.0.1", 0, on_write=lambda: wakes.append("wake"))
    threading.Thread(target=server.server.serve_forever, daemon=True).start()
    host, port = server.server.server_address[:2]
    try:
        for method in ("GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"):
            request = urllib.request.Request(f"http://{host}:{port}/thing", method=method, data=b"{}")
            request.add_header("Content-Type", "application/json")
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200
        # Called once each response is out: PUT, POST, PATCH and DELETE, not the reads.
        assert wait_until(lambda: len(wakes) >= 4, 5), wakes
        time.sleep(0.2)
        assert len(wakes) == 4, wakes
    finally:
        server.server.shutdown()
        server.server.server_close()
