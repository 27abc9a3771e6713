"""PoolStore (and what worker-manager's listings add): worker pools, their workers and errors."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.errors import InputError
from chalicelib.domain.pools import PoolError, PoolWorker, WorkerPool, WorkerState
from chalicelib.services.ports import PoolRecords

T0 = datetime(2030, 1, 1, tzinfo=UTC)
POOL = "proj/linux"
CONFIG = {"minCapacity": 0, "maxCapacity": 4, "launchConfigs": [{"region": "r", "launchConfig": {"ImageId": "i"}}]}


def pool(pool_id: str = POOL, provider: str = "aws", modified: datetime = T0) -> WorkerPool:
    return WorkerPool(pool_id, provider, "a pool", "me@example.com", True, dict(CONFIG), T0, modified, ("old",))


def worker(
    worker_id: str, state: WorkerState = WorkerState.REQUESTED, pool_id: str = POOL, **changes: object
) -> PoolWorker:
    made = PoolWorker(
        pool_id,
        "us-east-1",
        worker_id,
        "aws",
        "lc-0",
        state,
        2,
        T0,
        T0,
        T0,
        T0 + timedelta(days=7),
        terminate_after=T0 + timedelta(hours=1),
        provider_data={"region": "us-east-1", "n": 1},
        registration_hash="reg",
    )
    return replace(made, **changes)  # type: ignore[arg-type]


def error(error_id: str, minutes: int, lc: str | None = "lc-0") -> PoolError:
    return PoolError(POOL, error_id, T0 + timedelta(minutes=minutes), "creation-error", "t", "d", lc, {"code": "x"})


def every_error(
    pools: PoolRecords, limit: int, launch_config_id: str | None = None, error_id: str | None = None
) -> list[str]:
    ids: list[str] = []
    token: str | None = None
    while True:
        page, token = pools.errors(POOL, T0, limit, token, launch_config_id, error_id)
        assert len(page) <= limit
        ids += [e.error_id for e in page]
        if token is None:
            return ids


# --- pools ----------------------------------------------------------------------------------------
def test_a_pool_is_created_once_and_reads_back_whole(pools: PoolRecords) -> None:
    assert pools.get_pool(POOL) is None
    assert pools.put_pool(pool(), create=True)
    assert pools.get_pool(POOL, consistent=True) == pool()
    assert not pools.put_pool(pool(provider="other"), create=True)
    stored = pools.get_pool(POOL)
    assert stored is not None and stored.provider_id == "aws"


def test_replacing_a_pool_needs_it_to_exist(pools: PoolRecords) -> None:
    assert not pools.put_pool(pool(), create=False)
    assert pools.get_pool(POOL) is None
    pools.put_pool(pool(), create=True)
    assert pools.put_pool(pool(provider="local"), create=False)
    stored = pools.get_pool(POOL)
    assert stored is not None and stored.provider_id == "local"


def test_replacing_a_pool_as_read_fails_once_it_changed(pools: PoolRecords) -> None:
    pools.put_pool(pool(), create=True)
    read = pool()
    newer = pool(modified=T0 + timedelta(seconds=1))
    assert pools.put_pool(newer, create=False, expected=read)
    assert not pools.put_pool(pool(provider="late", modified=T0 + timedelta(seconds=2)), create=False, expected=read)
    assert not pools.put_pool(
        pool(modified=T0 + timedelta(seconds=2)), create=False, expected=replace(newer, provider_id="x")
    )
    assert pools.get_pool(POOL) == newer


def test_a_pool_is_deleted_only_once_marked_with_the_null_provider(pools: PoolRecords) -> None:
    pools.put_pool(pool(), create=True)
    pools.delete_pool(POOL)
    assert pools.get_pool(POOL) is not None
    pools.put_pool(pool(provider="null-provider"), create=False)
    pools.delete_pool(POOL)
    assert pools.get_pool(POOL) is None
    pools.delete_pool(POOL)  # gone already: nothing happens


def test_pools_are_listed_by_id_page_by_page(pools: PoolRecords) -> None:
    ids = ["p/e", "p/a", "q/c", "p/b", "p/d"]
    for pool_id in ids:
        pools.put_pool(pool(pool_id), create=True)
    found: list[str] = []
    token: str | None = None
    while True:
        page, token = pools.list_pools(2, token)
        assert len(page) <= 2
        found += [p.worker_pool_id for p in page]
        if token is None:
            break
    assert found == sorted(ids)
    assert [p.worker_pool_id for p in pools.all_pools()] == sorted(ids)


def test_a_pool_too_large_to_store_is_refused_as_input(pools: PoolRecords) -> None:
    huge = replace(pool(), config={**CONFIG, "padding": "x" * 450_000})
    with pytest.raises(InputError):
        pools.put_pool(huge, create=True)
    assert pools.get_pool(POOL) is None


# --- workers --------------------------------------------------------------------------------------
def test_a_launched_worker_is_recorded_once_and_reads_back_whole(pools: PoolRecords) -> None:
    assert pools.get_worker(POOL, "us-east-1", "i-1") is None
    assert pools.put_worker(worker("i-1"))
    assert not pools.put_worker(worker("i-1", capacity=9))
    assert pools.get_worker(POOL, "us-east-1", "i-1") == worker("i-1")


def test_a_worker_changes_only_from_the_state_it_was_read_in(pools: PoolRecords) -> None:
    pools.put_worker(worker("i-1"))
    running = worker("i-1", WorkerState.RUNNING, secret_hash="h1")
    assert pools.put_worker(running, expected_state=WorkerState.REQUESTED)
    assert not pools.put_worker(worker("i-1", WorkerState.STOPPED), expected_state=WorkerState.REQUESTED)
    assert not pools.put_worker(worker("ghost", WorkerState.RUNNING), expected_state=WorkerState.REQUESTED)
    assert pools.get_worker(POOL, "us-east-1", "ghost") is None
    assert pools.get_worker(POOL, "us-east-1", "i-1") == running


def test_a_worker_changes_only_while_it_has_the_secret_read(pools: PoolRecords) -> None:
    pools.put_worker(worker("i-1", WorkerState.RUNNING, secret_hash="h1"))
    renewed = worker("i-1", WorkerState.RUNNING, secret_hash="h2")
    assert not pools.put_worker(renewed, expected_state=WorkerState.RUNNING, expected_secret_hash="h0")
    assert pools.put_worker(renewed, expected_state=WorkerState.RUNNING, expected_secret_hash="h1")
    stored = pools.get_worker(POOL, "us-east-1", "i-1")
    assert stored is not None and stored.secret_hash == "h2"


def test_a_worker_is_found_by_its_id_in_any_pool(pools: PoolRecords) -> None:
    pools.put_worker(worker("i-1", pool_id="other/pool"))
    assert pools.find_worker("i-1") == worker("i-1", pool_id="other/pool")
    assert pools.find_worker("i-404") is None


def test_workers_are_listed_page_by_page_and_filtered(pools: PoolRecords) -> None:
    states = [WorkerState.RUNNING, WorkerState.STOPPED, WorkerState.RUNNING, WorkerState.REQUESTED] * 2
    for i, state in enumerate(states):
        pools.put_worker(worker(f"i-{i}", state, launch_config_id="lc-1" if i % 2 else "lc-0"))
    pools.put_worker(worker("i-x", pool_id="other/pool"))
    found: list[str] = []
    token: str | None = None
    while True:
        page, token = pools.list_workers(POOL, 3, token)
        assert len(page) <= 3
        found += [w.worker_id for w in page]
        if token is None:
            break
    assert found == [f"i-{i}" for i in range(8)]
    running, _ = pools.list_workers(POOL, 10, None, state="running")
    assert [w.worker_id for w in running] == ["i-0", "i-2", "i-4", "i-6"]
    by_config, _ = pools.list_workers(POOL, 10, None, launch_config_id="lc-1")
    assert [w.worker_id for w in by_config] == ["i-1", "i-3", "i-5", "i-7"]


def test_alive_workers_and_tallies(pools: PoolRecords) -> None:
    for i, state in enumerate([WorkerState.RUNNING, WorkerState.STOPPED, WorkerState.STOPPING, WorkerState.REQUESTED]):
        pools.put_worker(worker(f"i-{i}", state, capacity=i + 1))
    assert [w.worker_id for w in pools.alive_workers(POOL)] == ["i-0", "i-2", "i-3"]
    tallies = sorted((t.state.value, t.capacity) for t in pools.worker_tallies(POOL))
    assert tallies == [("requested", 4), ("running", 1), ("stopped", 2), ("stopping", 3)]
    assert pools.alive_workers("no/pool") == [] and list(pools.worker_tallies("no/pool")) == []


# --- errors ---------------------------------------------------------------------------------------
def test_errors_are_listed_newest_first_and_recorded_once(pools: PoolRecords) -> None:
    for i in range(5):
        pools.add_error(error(f"e{i}", i))
    pools.add_error(replace(error("e1", 1), title="again"))
    pools.add_error(error("too-old", -1))
    assert every_error(pools, 2) == ["e4", "e3", "e2", "e1", "e0"]
    page, _ = pools.errors(POOL, T0, 10, None)
    assert page[3] == error("e1", 1)


def test_errors_are_filtered_by_launch_config_and_id(pools: PoolRecords) -> None:
    pools.add_error(error("e0", 0, "lc-0"))
    pools.add_error(error("e1", 1, "lc-1"))
    pools.add_error(error("e2", 2, None))
    assert every_error(pools, 10, launch_config_id="lc-1") == ["e1"]
    assert every_error(pools, 10, error_id="e2") == ["e2"]


def test_an_error_listing_token_is_refused_for_another_pool(pools: PoolRecords) -> None:
    for i in range(2):
        pools.add_error(error(f"e{i}", i))
    _, token = pools.errors(POOL, T0, 1, None)
    assert token is not None
    with pytest.raises(InputError):
        pools.errors("other/pool", T0, 1, token)


# --- the provisioner's lease ------------------------------------------------------------------------
def test_the_lease_is_one_holders_until_it_expires_or_is_released(pools: PoolRecords) -> None:
    until = T0 + timedelta(seconds=60)
    first = pools.take_lease("run-a", T0, until)
    assert (first.holder, first.until, first.resume_at) == ("run-a", until, "")
    other = pools.take_lease("run-b", T0 + timedelta(seconds=30), T0 + timedelta(seconds=90))
    assert (other.holder, other.until) == ("run-a", until)  # held: run-b gets nothing
    assert pools.release_lease("run-b", "x/y") is False  # only the holder releases it
    assert pools.release_lease("run-a", "proj/m") is True
    after = pools.take_lease("run-b", T0 + timedelta(seconds=31), T0 + timedelta(seconds=91))
    assert (after.holder, after.resume_at) == ("run-b", "proj/m")  # where run-a stopped


def test_an_expired_lease_is_taken_over_and_its_old_holder_can_no_longer_release_it(pools: PoolRecords) -> None:
    pools.take_lease("run-a", T0, T0 + timedelta(seconds=60))
    assert pools.release_lease("run-a", "proj/b")
    pools.take_lease("run-a", T0 + timedelta(seconds=61), T0 + timedelta(seconds=120))
    taken = pools.take_lease("run-b", T0 + timedelta(seconds=120), T0 + timedelta(seconds=180))
    assert (taken.holder, taken.resume_at) == ("run-b", "proj/b")  # expired: taken over
    assert pools.release_lease("run-a", "proj/z") is False  # run-a overran its lease: it records nothing
    assert pools.release_lease("run-b", "") is True
    assert pools.take_lease("run-c", T0 + timedelta(seconds=121), T0 + timedelta(seconds=130)).resume_at == ""
    assert pools.all_pools() == []  # the lease is no pool
