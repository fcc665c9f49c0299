"""apimachinery.workqueue: client-go's work queue semantics (dirty set, processing set,
delays, per-key backoff, shutdown) and the worker loop. Tiny delays; each test well under 2 s."""

import asyncio
import time

import pytest

from apimachinery.workqueue import ShutDown, WorkQueue, run_workers


async def drain(q):
    """Every key queued now, each marked done."""
    keys = []
    while len(q):
        key = await q.get()
        keys.append(key)
        q.done(key)
    return keys


async def test_a_key_added_while_waiting_is_queued_once():
    q = WorkQueue()
    for key in ["a", "b", "a", "c", "b", "a"]:
        q.add(key)
    assert len(q) == 3
    assert await drain(q) == ["a", "b", "c"]
    assert len(q) == 0


async def test_a_key_added_while_processing_is_requeued_after_done_and_never_handed_out_twice():
    q = WorkQueue()
    q.add("a")
    key = await q.get()
    assert key == "a" and q.processing() == 1
    q.add("a")
    q.add("a")
    assert len(q) == 0  # held by a worker: not handed to another
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    q.done("a")
    assert await asyncio.wait_for(getter, 1) == "a"  # once, for both adds
    q.done("a")
    assert len(q) == 0 and q.processing() == 0


async def test_done_without_a_new_add_does_not_requeue():
    q = WorkQueue()
    q.add("a")
    q.done(await q.get())
    assert len(q) == 0


async def test_get_waits_for_a_key_and_fifo_order_holds():
    q = WorkQueue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    q.add("x")
    q.add("y")
    assert await asyncio.wait_for(getter, 1) == "x"
    assert await asyncio.wait_for(q.get(), 1) == "y"


async def test_a_cancelled_getter_does_not_swallow_a_key():
    q = WorkQueue()
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    q.add("k")  # wakes the first getter ...
    first.cancel()  # ... which is cancelled before it runs: the key must reach the second
    assert await asyncio.wait_for(second, 1) == "k"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_rate_limited_backoff_doubles_up_to_the_cap_and_forget_resets_it():
    q = WorkQueue(base_delay=0.001, max_delay=0.008)
    delays = [q.add_rate_limited("a") for _ in range(6)]
    assert delays == [0.001, 0.002, 0.004, 0.008, 0.008, 0.008]
    assert q.num_requeues("a") == 6 and q.num_requeues("b") == 0
    assert q.add_rate_limited("b") == 0.001  # per key
    q.forget("a")
    assert q.num_requeues("a") == 0
    assert q.add_rate_limited("a") == 0.001


async def test_defaults_are_50_ms_doubling_to_30_s():
    q = WorkQueue()
    delays = [q.add_rate_limited("a") for _ in range(12)]
    assert delays[:3] == [0.05, 0.1, 0.2] and delays[-1] == 30.0 and max(delays) == 30.0
    q.shutdown()  # the timers go with it


async def test_a_rate_limited_key_arrives_after_its_backoff():
    q = WorkQueue(base_delay=0.05)
    start = time.monotonic()
    q.add_rate_limited("a")
    assert len(q) == 0 and q.waiting() == 1
    assert await asyncio.wait_for(q.get(), 1) == "a"
    assert time.monotonic() - start >= 0.045


async def test_add_after_orders_by_time_and_keeps_the_earlier_time_of_a_waiting_key():
    q = WorkQueue()
    q.add_after("late", 0.06)
    q.add_after("early", 0.02)
    q.add_after("mid", 0.2)
    q.add_after("mid", 0.04)  # earlier: moves up
    q.add_after("early", 0.5)  # later: ignored
    q.add_after("now", 0)  # no delay: queued at once
    assert len(q) == 1 and q.waiting() == 3
    got = []
    for _ in range(4):
        key = await asyncio.wait_for(q.get(), 1)
        got.append(key)
        q.done(key)
    assert got == ["now", "early", "mid", "late"]
    assert q.waiting() == 0


async def test_add_after_of_a_queued_key_does_not_duplicate_it():
    q = WorkQueue()
    q.add("a")
    q.add_after("a", 0.01)
    await asyncio.sleep(0.03)
    assert await drain(q) == ["a"]


async def test_shutdown_wakes_waiting_getters_hands_out_what_is_queued_and_refuses_new_keys():
    q = WorkQueue()
    waiting = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    q.shutdown()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(waiting, 1)

    q = WorkQueue()
    q.add("a")
    q.add("b")
    q.add_after("later", 0.01)
    held = await q.get()
    q.add(held)  # changed while processed
    q.shutdown()
    q.add("c")  # refused
    q.add_after("d", 0.001)  # refused
    assert await asyncio.wait_for(q.get(), 1) == "b"
    q.done("b")
    q.done(held)  # requeued: it was added before the shutdown
    assert await asyncio.wait_for(q.get(), 1) == "a"
    with pytest.raises(ShutDown):
        await asyncio.wait_for(q.get(), 1)
    await asyncio.sleep(0.02)
    assert len(q) == 0 and q.waiting() == 0


async def test_two_workers_never_hold_the_same_key():
    q = WorkQueue(base_delay=0.001)
    holding: set[str] = set()
    overlaps = []
    counts: dict[str, int] = {}

    async def reconcile(key):
        if key in holding:
            overlaps.append(key)
        holding.add(key)
        counts[key] = counts.get(key, 0) + 1
        await asyncio.sleep(0.002)
        if counts[key] == 1:
            q.add(key)  # a change while it is processed: requeued after done, not doubled
        holding.discard(key)

    runner = asyncio.create_task(run_workers(q, reconcile, 4))
    for i in range(50):
        q.add(f"k{i % 5}")
        await asyncio.sleep(0)
    deadline = time.monotonic() + 1.5
    while (len(q) or q.processing()) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    q.shutdown()
    await asyncio.wait_for(runner, 1)
    assert overlaps == []
    assert set(counts) == {f"k{i}" for i in range(5)}
    assert all(c >= 2 for c in counts.values())


async def test_run_workers_retries_a_failure_with_backoff_and_forgets_on_success():
    q = WorkQueue(base_delay=0.01)
    attempts: list[tuple[str, float]] = []
    requeues_seen = []

    async def reconcile(key):
        attempts.append((key, time.monotonic()))
        requeues_seen.append(q.num_requeues(key))
        if len(attempts) < 3:
            raise RuntimeError("member unreachable")

    runner = asyncio.create_task(run_workers(q, reconcile, 2))
    q.add("default/web")
    deadline = time.monotonic() + 1.5
    while len(attempts) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.01)
    q.shutdown()
    await asyncio.wait_for(runner, 1)
    assert [k for k, _ in attempts] == ["default/web"] * 3
    gaps = [b - a for (_, a), (_, b) in zip(attempts, attempts[1:])]
    assert gaps[0] >= 0.009 and gaps[1] >= 0.019  # 10 ms, then 20 ms
    assert requeues_seen == [0, 1, 2]
    assert q.num_requeues("default/web") == 0  # forgotten after the success
    assert q.processing() == 0


async def test_run_workers_can_be_cancelled_and_bad_arguments_are_refused():
    q = WorkQueue()
    started = asyncio.Event()

    async def reconcile(key):
        started.set()
        await asyncio.sleep(10)

    runner = asyncio.create_task(run_workers(q, reconcile, 2))
    q.add("a")
    await asyncio.wait_for(started.wait(), 1)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert q.processing() == 0  # done() ran for the key being reconciled
    with pytest.raises(ValueError):
        await run_workers(q, reconcile, 0)
    with pytest.raises(ValueError):
        WorkQueue(base_delay=0)
