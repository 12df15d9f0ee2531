"""pyk8s.aio.wait_for: a timeout that never swallows its caller's cancellation."""
import asyncio

import pytest

from pyk8s import aio


async def test_cancellation_racing_completion_is_not_swallowed():
    inner = asyncio.get_running_loop().create_future()
    outer = asyncio.create_task(aio.wait_for(inner, 10))
    await asyncio.sleep(0)  # outer now waits on inner
    inner.set_result("done")  # inner finishes ...
    outer.cancel()  # ... in the same loop iteration as the owner cancels
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert outer.cancelled()


async def test_times_out_and_cancels_the_operation():
    inner = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        await aio.wait_for(inner, 0.01)
    assert inner.cancelled()


async def test_returns_the_result_and_allows_no_timeout():
    async def value():
        return 7
    assert await aio.wait_for(value(), 1) == 7
    assert await aio.wait_for(value(), None) == 7
