"""A kubelet on fakes: FakeRuntime, the client's FakeAPI and a FakeClock.

The background loops are not started: a test advances the clock and calls
`settle()`, which relists the runtime (the PLEG), lets the pod workers and the
informer run until nothing moves, and writes pending statuses.
"""
from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from pyk8s.client import resources
from pyk8s.client.clock import FakeClock
from pyk8s.client.errors import ApiError
from pyk8s.client.events import EventBroadcaster
from pyk8s.client.fake import FakeAPI, FakeTransport
from pyk8s.client.rest import Client
from pyk8s.cri.fake import FakeRuntime
from pyk8s.kubelet.kubelet import Kubelet
from pyk8s.kubelet.nodestatus import MachineInfo
from pyk8s.kubelet.settings import KubeletSettings

from .helpers import NODE

MACHINE = MachineInfo(cpus=4, memory=8 << 30, memory_available=6 << 30,
                      filesystem=100 << 30, filesystem_available=50 << 30,
                      machine_id="m1", system_uuid="u1", boot_id="b1", kernel="6.1.0",
                      os_image="Debian GNU/Linux 12 (bookworm)", architecture="amd64",
                      hostname="node-a")


def ns(clock: FakeClock) -> int:
    return int(clock.now().timestamp() * 1e9)


@dataclasses.dataclass
class FakeNode:
    kubelet: Kubelet
    api: FakeAPI
    runtime: FakeRuntime
    clock: FakeClock
    client: Client
    relisted: dict | None = None
    recorded: list = dataclasses.field(default_factory=list)

    async def settle(self, rounds: int = 200) -> None:
        """Run everything until no worker, watch event or status write is pending."""
        quiet = 0
        for _ in range(rounds):
            self.relisted = await self.kubelet.relist(self.relisted)
            for _ in range(10):
                await asyncio.sleep(0)
            await self.kubelet.workers.wait_idle()
            written = await self.kubelet.status_manager.sync_batch()
            quiet = quiet + 1 if not written and self._idle() else 0
            if quiet >= 3:
                return
        raise AssertionError("the kubelet did not settle")

    def _idle(self) -> bool:
        return all(not w.busy and not w.wake_event.is_set()
                   for w in self.kubelet.workers.workers.values())

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await self.settle()

    async def create(self, pod: dict) -> dict:
        return await self.client.create(resources.PODS, pod, namespace="default")

    async def get(self, name: str) -> dict | None:
        try:
            return await self.client.get(resources.PODS, name, namespace="default")
        except ApiError as e:
            if e.code == 404:
                return None
            raise

    def containers(self, name: str = "app") -> list:
        return sorted((c for c in self.runtime.containers.values()
                       if c.config.metadata.name == name), key=lambda c: c.created_at)

    def calls(self, method: str) -> list:
        return [c for c in self.runtime.calls if c[0] == method]

    async def events(self) -> list[tuple[str, str]]:
        """Every event recorded, as (reason, message); the fake clock stands still, so
        the API would reject same-named events: they are taken before correlation."""
        return [(e.get("reason"), e.get("message")) for e in self.recorded]


async def make_node(tmp_path: Path, *, runtime: FakeRuntime | None = None,
                    api: FakeAPI | None = None, clock: FakeClock | None = None,
                    probe_network=None, **settings) -> FakeNode:
    clock = clock or FakeClock()
    api = api or FakeAPI(clock=clock)
    client = Client(transport=FakeTransport(api), clock=clock)
    runtime = runtime or FakeRuntime(images=["busybox", "nginx", "registry.k8s.io/pause:3.9"],
                                     clock=lambda: ns(clock))
    (tmp_path / "resolv.conf").write_text("nameserver 192.0.2.53\n")
    config = KubeletSettings(node_name=NODE, data_dir=tmp_path, pod_cidr="10.42.0.0/24",
                             resolv_conf=tmp_path / "resolv.conf", **settings)
    kubelet = Kubelet(config, client=client, runtime=runtime, machine=MACHINE,
                      node_ip="192.0.2.10", clock=clock, read_machine=lambda: MACHINE,
                      events=EventBroadcaster(client, clock=clock),
                      probe_network=probe_network)
    node = FakeNode(kubelet, api, runtime, clock, client)
    kubelet.broadcaster.add_listener(node.recorded.append)
    await kubelet.start(loops=False)
    await node.settle()
    return node
