"""Work queue semantics (client-go's dirty/processing sets, delays, shutdown) and the
rate limiter arithmetic, all on a fake clock."""
from __future__ import annotations

import asyncio

import pytest

from pyk8s.client.clock import FakeClock
from pyk8s.client.workqueue import (
    BucketRateLimiter, ItemExponentialFailureRateLimiter, MaxOfRateLimiter, QueueShutDown,
    WorkQueue, default_controller_rate_limiter,
)

from .helpers import settle


def test_duplicate_adds_collapse(clock):
    q = WorkQueue(clock=clock)
    for item in ("a", "b", "a", "a", "c", "b"):
        q.add(item)
    assert len(q) == 3


async def test_fifo_order(clock):
    q = WorkQueue(clock=clock)
    for item in ("b", "a", "c"):
        q.add(item)
    assert [await q.get() for _ in range(3)] == ["b", "a", "c"]


async def test_an_item_being_processed_is_not_handed_out_again(clock):
    q = WorkQueue(clock=clock)
    q.add("a")
    assert await q.get() == "a"
    q.add("a")  # re-added while a worker holds it
    assert len(q) == 0 and q.is_processing("a")
    second = asyncio.create_task(q.get())
    await settle()
    assert not second.done()
    q.done("a")  # only now does it come back, once
    assert await asyncio.wait_for(second, 1) == "a"
    assert len(q) == 0


async def test_done_without_readd_drops_the_item(clock):
    q = WorkQueue(clock=clock)
    q.add("a")
    await q.get()
    q.done("a")
    assert len(q) == 0 and not q.is_processing("a")


async def test_many_adds_during_processing_requeue_once(clock):
    q = WorkQueue(clock=clock)
    q.add("a")
    await q.get()
    for _ in range(5):
        q.add("a")
    q.done("a")
    assert len(q) == 1


async def test_waiting_getters_are_served_in_turn(clock):
    q = WorkQueue(clock=clock)
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await settle()
    q.add("x")
    q.add("y")
    await settle()
    done = sorted(t.result() for t in getters if t.done())
    assert done == ["x", "y"]
    pending = [t for t in getters if not t.done()]
    assert len(pending) == 1
    q.shut_down()
    with pytest.raises(QueueShutDown):
        await asyncio.wait_for(pending[0], 1)


async def test_cancelled_getter_does_not_swallow_an_item(clock):
    q = WorkQueue(clock=clock)
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await settle()
    q.add("x")
    first.cancel()  # woken, but cancelled before it could take the item
    await settle()
    assert second.done() and second.result() == "x"


async def test_add_after_waits_for_the_clock(clock):
    q = WorkQueue(clock=clock)
    q.add_after("a", 5.0)
    assert len(q) == 0 and q.waiting == 1
    clock.advance(4.999)
    assert len(q) == 0
    clock.advance(0.001)
    assert len(q) == 1 and q.waiting == 0
    assert await q.get() == "a"


def test_add_after_keeps_the_earliest_time(clock):
    q = WorkQueue(clock=clock)
    q.add_after("a", 10.0)
    q.add_after("a", 2.0)
    q.add_after("a", 7.0)  # later than the pending 2 s: ignored
    clock.advance(2.0)
    assert len(q) == 1
    clock.advance(10.0)
    assert len(q) == 1  # no second copy from the superseded timers


def test_add_after_non_positive_adds_now(clock):
    q = WorkQueue(clock=clock)
    q.add_after("a", 0)
    q.add_after("b", -1)
    assert len(q) == 2


async def test_shutdown_drains_then_stops(clock):
    q = WorkQueue(clock=clock)
    q.add("a")
    q.add_after("later", 1.0)
    q.shut_down()
    q.add("b")  # refused after shutdown
    clock.advance(5.0)  # the delayed item was dropped
    assert await q.get() == "a"
    with pytest.raises(QueueShutDown):
        await q.get()


async def test_shutdown_wakes_blocked_workers(clock):
    q = WorkQueue(clock=clock)
    worker = asyncio.create_task(q.get())
    await settle()
    q.shut_down()
    with pytest.raises(QueueShutDown):
        await asyncio.wait_for(worker, 1)


async def test_shutdown_with_drain_waits_for_done(clock):
    q = WorkQueue(clock=clock)
    q.add("a")
    await q.get()
    drain = asyncio.create_task(q.shut_down_with_drain())
    await settle()
    assert not drain.done()
    q.done("a")
    await asyncio.wait_for(drain, 1)


async def test_add_rate_limited_backs_off_exponentially(clock):
    q = WorkQueue(clock=clock)
    waits = []
    for _ in range(4):
        q.add_rate_limited("k")
        wait = clock.next_deadline() - clock.monotonic()
        waits.append(round(wait, 6))
        clock.advance(wait * 0.99)
        assert len(q) == 0
        clock.advance(wait)
        assert await q.get() == "k"
        q.done("k")
    assert waits == [0.005, 0.01, 0.02, 0.04]
    assert q.num_requeues("k") == 4
    q.forget("k")
    assert q.num_requeues("k") == 0


# --- rate limiter maths ------------------------------------------------------------

def test_item_exponential_limiter():
    rl = ItemExponentialFailureRateLimiter(0.005, 1000.0)
    assert [rl.when("a") for _ in range(5)] == [0.005, 0.01, 0.02, 0.04, 0.08]
    assert rl.when("b") == 0.005  # per item
    assert rl.num_requeues("a") == 5
    for _ in range(30):
        rl.when("a")
    assert rl.when("a") == 1000.0  # capped (5 ms * 2**18 > 1000 s)
    for _ in range(2000):
        rl.when("a")
    assert rl.when("a") == 1000.0  # no overflow on huge exponents
    rl.forget("a")
    assert rl.when("a") == 0.005 and rl.num_requeues("a") == 1


def test_token_bucket_limiter():
    clock = FakeClock()
    rl = BucketRateLimiter(10.0, 100, clock=clock)
    assert [rl.when(i) for i in range(100)] == [0.0] * 100
    # Out of burst: each further token is a tenth of a second further out.
    assert [round(rl.when(i), 6) for i in range(3)] == [0.1, 0.2, 0.3]
    clock.advance(1.0)  # ten tokens refilled against a debt of three: seven left
    assert [rl.when(i) for i in range(7)] == [0.0] * 7
    assert round(rl.when("x"), 6) == 0.1
    clock.advance(1000.0)
    assert [rl.when(i) for i in range(100)] == [0.0] * 100  # refill stops at burst


def test_token_bucket_refill_arithmetic():
    clock = FakeClock()
    rl = BucketRateLimiter(10.0, 2, clock=clock)
    assert (rl.when(1), rl.when(2)) == (0.0, 0.0)
    assert round(rl.when(3), 6) == 0.1
    clock.advance(0.05)  # half a token back: debt -0.5 -> next at 0.15 s
    assert round(rl.when(4), 6) == 0.15


def test_default_controller_rate_limiter_takes_the_longer_wait():
    clock = FakeClock()
    rl = default_controller_rate_limiter(clock=clock)
    assert isinstance(rl, MaxOfRateLimiter)
    # First 100 failures of distinct items: the bucket has tokens, items are new.
    assert {rl.when(f"i{n}") for n in range(100)} == {0.005}
    # The 101st: the bucket wants 0.1 s, the item only 5 ms.
    assert round(rl.when("i100"), 6) == 0.1
    # An item failing repeatedly: its own back-off dominates eventually.
    waits = [rl.when("hot") for _ in range(15)]
    assert waits[-1] == pytest.approx(0.005 * 2 ** 14)
    assert rl.num_requeues("hot") == 15
    rl.forget("hot")
    assert rl.num_requeues("hot") == 0
