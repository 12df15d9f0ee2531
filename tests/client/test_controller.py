"""The controller skeleton: informers feed keys to workers calling ``sync``."""
from __future__ import annotations

import asyncio

import pytest

from pyk8s.client import resources as r
from pyk8s.client.controller import Controller, Requeue
from pyk8s.client.informers import SharedInformer

from .helpers import eventually, settle

pytestmark = pytest.mark.timeout(60)


class ConfigMapStamper(Controller):
    """Writes the number of data keys of each ConfigMap into an annotation."""

    name = "stamper"

    def __init__(self, client, informer: SharedInformer, **kwargs):
        super().__init__(**kwargs)
        self.client, self.informer = client, informer
        self.synced: list[str] = []
        self.fail: dict[str, int] = {}
        informer.add_event_handler(on_add=self.enqueue,
                                   on_update=lambda old, new: self.enqueue(new),
                                   on_delete=self.enqueue)

    async def sync(self, key: str) -> None:
        self.synced.append(key)
        if self.fail.get(key):
            self.fail[key] -= 1
            raise RuntimeError("the API said no")
        obj = self.informer.store.get(key)
        if obj is None:
            return  # deleted: nothing to do
        count = str(len(obj.get("data") or {}))
        if (obj["metadata"].get("annotations") or {}).get("keys") != count:
            await self.client.patch(r.CONFIGMAPS, obj["metadata"]["name"], body={
                "metadata": {"annotations": {"keys": count}}},
                namespace=obj["metadata"]["namespace"])


def cm(name: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": data}


@pytest.fixture
def informer(fake_client, clock):
    return SharedInformer(fake_client, r.CONFIGMAPS, clock=clock)


async def test_controller_converges_and_follows_changes(fake_client, api, clock, informer):
    api.add(cm("a", x="1"))
    ctl = ConfigMapStamper(fake_client, informer, clock=clock)
    run = asyncio.create_task(ctl.run(workers=2, informers=[informer]))
    try:
        def annotation(name: str) -> str | None:
            obj = api.get_object(r.CONFIGMAPS, name, namespace="default") or {"metadata": {}}
            return (obj["metadata"].get("annotations") or {}).get("keys")

        await eventually(lambda: annotation("a") == "1", what="a stamped")
        await fake_client.create(r.CONFIGMAPS, cm("b", x="1", y="2"))
        await eventually(lambda: annotation("b") == "2", what="b stamped")
        await fake_client.patch(r.CONFIGMAPS, "a", body={"data": {"z": "3"}}, namespace="default")
        await eventually(lambda: annotation("a") == "2", what="a restamped")
        await fake_client.delete(r.CONFIGMAPS, "b", namespace="default")
        await eventually(lambda: ctl.synced.count("default/b") >= 3, what="b's deletion")
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        await informer.stop()
    assert ctl.queue.shutting_down


async def test_errors_requeue_with_backoff_and_success_forgets(fake_client, clock, informer):
    ctl = ConfigMapStamper(fake_client, informer, clock=clock)
    ctl.fail["default/a"] = 2
    ctl.enqueue("default/a")
    assert await ctl.process_next_work_item()
    assert ctl.queue.num_requeues("default/a") == 1 and len(ctl.queue) == 0
    clock.advance(0.005)  # first retry after 5 ms
    assert len(ctl.queue) == 1
    assert await ctl.process_next_work_item()
    assert ctl.queue.num_requeues("default/a") == 2
    clock.advance(0.009)
    assert len(ctl.queue) == 0  # second retry after 10 ms
    clock.advance(0.001)
    assert await ctl.process_next_work_item()  # succeeds this time
    assert ctl.queue.num_requeues("default/a") == 0
    assert ctl.synced == ["default/a"] * 3


async def test_one_key_is_never_synced_twice_at_once(fake_client, clock, informer):
    running, peak, gate = set(), [0], asyncio.Event()

    class Slow(ConfigMapStamper):
        async def sync(self, key):
            assert key not in running
            running.add(key)
            peak[0] = max(peak[0], len(running))
            self.synced.append(key)
            await gate.wait()
            running.discard(key)

    ctl = Slow(fake_client, informer, clock=clock)
    workers = [asyncio.create_task(ctl._worker()) for _ in range(4)]
    ctl.enqueue("default/a")
    ctl.enqueue("default/b")
    await settle()
    ctl.enqueue("default/a")  # while a is being synced
    ctl.enqueue("default/a")
    await settle()
    assert sorted(ctl.synced) == ["default/a", "default/b"] and peak[0] == 2
    gate.set()
    await eventually(lambda: len(ctl.synced) == 3, what="the deferred re-sync of a")
    assert ctl.synced[-1] == "default/a"
    ctl.queue.shut_down()
    await asyncio.wait_for(asyncio.gather(*workers), 1)


async def test_requeue_after_is_not_a_failure(fake_client, clock, informer):
    class Waiting(ConfigMapStamper):
        async def sync(self, key):
            self.synced.append(key)
            raise Requeue(after=30.0)

    ctl = Waiting(fake_client, informer, clock=clock)
    ctl.enqueue("default/a")
    await ctl.process_next_work_item()
    assert ctl.queue.num_requeues("default/a") == 0
    clock.advance(29.9)
    assert len(ctl.queue) == 0
    clock.advance(0.1)
    assert len(ctl.queue) == 1


async def test_workers_start_only_after_the_caches_sync(fake_client, api, clock, informer):
    gate = asyncio.Event()
    original = fake_client.list

    async def slow_list(*args, **kwargs):
        await gate.wait()
        return await original(*args, **kwargs)

    fake_client.list = slow_list
    api.add(cm("a"))
    ctl = ConfigMapStamper(fake_client, informer, clock=clock)
    ctl.enqueue("default/early")
    run = asyncio.create_task(ctl.run(workers=1, informers=[informer]))
    try:
        await settle()
        assert ctl.synced == []
        gate.set()
        await eventually(lambda: "default/a" in ctl.synced, what="the first sync")
        assert ctl.synced[0] == "default/early"
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        await informer.stop()
