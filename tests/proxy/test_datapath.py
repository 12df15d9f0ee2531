"""Real packets through the proxy's rules, inside namespaces the tests create.

The "node" namespace holds the rules (a table of its own, deleted afterwards), the
blackhole routes every pyk8s node has, pods on a bridge, and a veth to an
off-cluster "client" namespace. Nothing is connected to the host's namespace.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import subprocess
import uuid

import pytest

from pyk8s.cri import cni
from pyk8s.proxy.nft import HostCommands
from pyk8s.proxy.proxier import Proxier, ProxySettings
from pyk8s.proxy.rules import NodeConfig

from .netlab import Pod, ask, ask_udp, sh
from .objects import endpoint, endpoint_slice, service

pytestmark = pytest.mark.root


@contextlib.asynccontextmanager
async def running_proxier(lab, *pods: str):
    for name in pods:
        index = 11 + len(lab.pods)
        await lab.serve(lab.add_pod(name, index))
    # What a pyk8s node has: blackholes for the cluster and service ranges.
    sh("ip", "-n", lab.node, "route", "add", "blackhole", "10.42.0.0/16")
    sh("ip", "-n", lab.node, "route", "add", "blackhole", "10.43.0.0/16")
    cfg = NodeConfig(node_name="n1", table="pyk8s-test-" + uuid.uuid4().hex[:6],
                     node_ips=(lab.node_ip,))
    proxier = Proxier(HostCommands(netns=lab.node), cfg, ProxySettings(min_sync_period=0))
    task = asyncio.create_task(proxier.run())
    proxier.set_services_synced()
    proxier.set_slices_synced()
    try:
        yield proxier
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await proxier.cleanup()


def ip_of(lab, pod: str) -> str:
    return lab.pods[pod].ip


async def spread(netns: str, host: str, port: int, n: int) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for _ in range(n):
        counts[(await ask(netns, host, port)).split(" ")[0]] += 1
    return counts


async def test_cluster_ip_spreads_over_ready_endpoints_and_skips_unready(lab):
    async with running_proxier(lab, "p1", "p2", "p3") as proxier:
        proxier.on_service_add(service("web", "10.43.0.5"))
        proxier.on_slice_add(endpoint_slice("web", [
            endpoint(ip_of(lab, "p1")), endpoint(ip_of(lab, "p2")),
            endpoint(ip_of(lab, "p3"), ready=False)]))
        await proxier.wait_applied()
        from_node = await spread(lab.node, "10.43.0.5", 80, 40)
        assert set(from_node) == {"p1", "p2"}, from_node
        assert min(from_node.values()) >= 5, from_node  # p = 0.5 each: far from 5 of 40
        # Off-cluster clients are masqueraded (the pod sees the node's bridge address).
        answer = await ask(lab.client, "10.43.0.5", 80)
        assert answer.split(" ")[0] in ("p1", "p2") and answer.endswith(lab.bridge_ip)
        # A port the Service does not have is rejected, an unallocated ClusterIP dropped.
        assert await ask(lab.node, "10.43.0.5", 81) == "refused"
        assert await ask(lab.node, "10.43.0.99", 80, timeout=0.5) == "timeout"


async def test_endpoint_changes_apply_incrementally(lab):
    async with running_proxier(lab, "p1", "p2") as proxier:
        proxier.on_service_add(service("web", "10.43.0.5"))
        proxier.on_slice_add(endpoint_slice("web", [endpoint(ip_of(lab, "p1"))]))
        await proxier.wait_applied()
        assert set(await spread(lab.node, "10.43.0.5", 80, 10)) == {"p1"}
        proxier.on_slice_update(None, endpoint_slice("web", [
            endpoint(ip_of(lab, "p1"), ready=False), endpoint(ip_of(lab, "p2"))]))
        await proxier.wait_applied()
        assert not proxier.last_plan_full
        assert set(await spread(lab.node, "10.43.0.5", 80, 10)) == {"p2"}


async def test_session_affinity_pins_each_client(lab):
    async with running_proxier(lab, "p1", "p2", "p3") as proxier:
        proxier.on_service_add(service("web", "10.43.0.5", sessionAffinity="ClientIP",
                                       sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}))
        proxier.on_slice_add(endpoint_slice("web", [endpoint(ip_of(lab, p))
                                                    for p in ("p1", "p2", "p3")]))
        await proxier.wait_applied()
        assert len(await spread(lab.node, "10.43.0.5", 80, 20)) == 1
        assert len(await spread(lab.client, "10.43.0.5", 80, 20)) == 1


async def test_udp_cluster_ip(lab):
    async with running_proxier(lab, "p1") as proxier:
        proxier.on_service_add(service("dns", "10.43.0.10", ports=(("dns", 53, "UDP"),)))
        proxier.on_slice_add(endpoint_slice("dns", [endpoint(ip_of(lab, "p1"))],
                                            ports=(("dns", 8080, "UDP"),)))
        await proxier.wait_applied()
        assert (await ask_udp(lab.client, "10.43.0.10", 53)).startswith("p1 ")


async def test_udp_flows_move_when_their_endpoint_goes_away(lab):
    async with running_proxier(lab, "p1", "p2") as proxier:
        proxier.on_service_add(service("dns", "10.43.0.10", ports=(("dns", 53, "UDP"),)))
        udp_slice = lambda pod: endpoint_slice("dns", [endpoint(ip_of(lab, pod))],  # noqa: E731
                                               ports=(("dns", 8080, "UDP"),))
        proxier.on_slice_add(udp_slice("p1"))
        await proxier.wait_applied()
        assert (await ask_udp(lab.client, "10.43.0.10", 53, source_port=40053)).startswith("p1 ")
        proxier.on_slice_update(None, udp_slice("p2"))
        await proxier.wait_applied()
        # Same client flow: without clearing its conntrack entry it would still be
        # NATed to p1 (which no longer backs the Service) until the entry expired.
        assert (await ask_udp(lab.client, "10.43.0.10", 53, source_port=40053)).startswith("p2 ")


async def test_node_port_answers_on_the_node_address_and_localhost(lab):
    async with running_proxier(lab, "p1") as proxier:
        proxier.on_service_add(service("web", "10.43.0.5", type="NodePort",
                                       node_ports={"http": 30080}))
        proxier.on_slice_add(endpoint_slice("web", [endpoint(ip_of(lab, "p1"))]))
        await proxier.wait_applied()
        assert (await ask(lab.client, lab.node_ip, 30080)).startswith("p1 ")
        assert (await ask(lab.node, lab.node_ip, 30080)).startswith("p1 ")
        assert (await ask(lab.node, "127.0.0.1", 30080)).startswith("p1 ")


async def test_external_traffic_policy_local_keeps_the_client_address(lab):
    async with running_proxier(lab, "p1", "p2") as proxier:
        proxier.on_service_add(service("web", "10.43.0.5", type="NodePort",
                                       node_ports={"http": 30080},
                                       externalTrafficPolicy="Local"))
        proxier.on_slice_add(endpoint_slice("web", [
            endpoint(ip_of(lab, "p1"), node="n1"), endpoint(ip_of(lab, "p2"), node="n2")]))
        await proxier.wait_applied()
        answers = {await ask(lab.client, lab.node_ip, 30080) for _ in range(10)}
        assert answers == {f"p1 {lab.client_ip}"}
        # The ClusterIP still uses every endpoint (Cluster internal policy).
        assert set(await spread(lab.node, "10.43.0.5", 80, 30)) == {"p1", "p2"}


async def test_load_balancer_on_the_node_address_like_service_lb(lab):
    async with running_proxier(lab, "p1") as proxier:
        proxier.on_service_add(service(
            "lb", "10.43.0.7", type="LoadBalancer", node_ports={"http": 30081},
            status={"loadBalancer": {"ingress": [{"ip": lab.node_ip}]}}))
        proxier.on_slice_add(endpoint_slice("lb", [endpoint(ip_of(lab, "p1"))]))
        await proxier.wait_applied()
        assert (await ask(lab.client, lab.node_ip, 80)).startswith("p1 ")


async def test_pods_reach_services_and_themselves(lab):
    async with running_proxier(lab, "p1", "p2") as proxier:
        proxier.on_service_add(service("web", "10.43.0.5"))
        proxier.on_slice_add(endpoint_slice("web", [endpoint(ip_of(lab, "p2"))]))
        await proxier.wait_applied()
        # Pod to pod through the ClusterIP keeps the pod's address.
        assert await ask(lab.pods["p1"].netns, "10.43.0.5", 80) == f"p2 {ip_of(lab, 'p1')}"
        # Hairpin: a pod reaching itself is masqueraded so the reply comes back.
        assert (await ask(lab.pods["p2"].netns, "10.43.0.5", 80)).startswith("p2 ")


async def test_no_endpoints_rejects_and_deletion_removes_every_rule(lab):
    async with running_proxier(lab, "p1") as proxier:
        svc = service("web", "10.43.0.5", type="NodePort", node_ports={"http": 30080},
                      sessionAffinity="ClientIP")
        proxier.on_service_add(svc)
        await proxier.wait_applied()
        assert await ask(lab.node, "10.43.0.5", 80) == "refused"
        assert await ask(lab.client, lab.node_ip, 30080) == "refused"
        proxier.on_slice_add(endpoint_slice("web", [endpoint(ip_of(lab, "p1"))]))
        await proxier.wait_applied()
        assert (await ask(lab.node, "10.43.0.5", 80)).startswith("p1 ")
        proxier.on_service_delete(svc)
        await proxier.wait_applied()
        listing = sh("ip", "netns", "exec", lab.node, "nft", "list", "table", "ip",
                     proxier.cfg.table).stdout
        assert "ns/web" not in listing and "10.43.0.5" not in listing and "30080" not in listing
        assert await ask(lab.node, "10.43.0.5", 80, timeout=0.5) == "timeout"


async def test_pod_egress_is_masqueraded_and_cluster_traffic_is_not(lab):
    """The node's masquerade table (what `write_network` installs) beside the proxy's."""
    async with running_proxier(lab, "p1", "p2") as proxier:
        outside = Pod("outside", lab.client, lab.client_ip)  # off-cluster, in our lab
        await lab.serve(outside, 9090)
        proxier.on_service_add(service("web", "10.43.0.5"))
        proxier.on_slice_add(endpoint_slice("web", [endpoint(ip_of(lab, "p2"))]))
        await proxier.wait_applied()
        p1, p2 = lab.pods["p1"].netns, lab.pods["p2"].netns
        # Without it, the off-cluster host sees the pod address.
        assert await ask(p1, lab.client_ip, 9090) == f"outside {ip_of(lab, 'p1')}"
        rules = cni.masquerade_rules(bridge="br0", pod_cidr="10.42.7.0/24")
        subprocess_input(["ip", "netns", "exec", lab.node, "nft", "-f", "-"], rules)
        try:
            # Leaving the cluster range: the node's address on the way out.
            assert await ask(p1, lab.client_ip, 9090) == f"outside {lab.node_ip}"
            # Pod to pod, directly and through a ClusterIP: the pod's own address.
            assert await ask(p1, ip_of(lab, "p2"), 8080) == f"p2 {ip_of(lab, 'p1')}"
            assert await ask(p1, "10.43.0.5", 80) == f"p2 {ip_of(lab, 'p1')}"
            # Hairpin still works (kube-proxy masquerades it to the bridge address).
            assert await ask(p2, "10.43.0.5", 80) == f"p2 {lab.bridge_ip}"
        finally:
            subprocess_input(["ip", "netns", "exec", lab.node, "nft", "-f", "-"],
                             "add table ip pyk8s-masq-br0\ndelete table ip pyk8s-masq-br0\n")
        listing = sh("ip", "netns", "exec", lab.node, "nft", "list", "tables").stdout
        assert "pyk8s-masq-br0" not in listing


def subprocess_input(args: list[str], text: str) -> None:
    r = subprocess.run(args, input=text, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
