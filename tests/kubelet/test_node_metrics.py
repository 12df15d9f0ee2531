"""`kubectl top` on a real node: the API server's metrics API scrapes the kubelet's
/stats/summary (every 15 s, the default resolution) and shows a busy busybox pod's
CPU and memory, and the node's."""
from __future__ import annotations

import pytest

from .conftest import _wait
from .test_node import apply, wait_phase

pytestmark = pytest.mark.root

# a loop that keeps a fraction of a core busy without hogging the shared machine
BUSY = ("while true; do i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; "
        "sleep 0.5; done")

# about 100m: more than half of a 100m request, well under a core for three replicas
BURN = ("while true; do i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; "
        "sleep 0.5; done")


def _cpu_and_memory(cpu: str, memory: str) -> tuple[int, int]:
    assert cpu.endswith("m"), cpu
    assert memory.endswith("Mi"), memory
    return int(cpu[:-1]), int(memory[:-2])


def test_kubectl_top_shows_a_busy_pod_and_its_node(cluster, kubelet, ns):
    apply(cluster, ns, kubelet, "busy", [{"name": "app", "image": "busybox",
                                          "command": ["sh", "-c", BUSY]}])
    wait_phase(cluster, ns, "busy", ("Running",))

    def top_pod():
        r = cluster.kubectl("top", "pod", "-n", ns, "--no-headers", check=False)
        rows = [line.split() for line in r.stdout.splitlines()]
        return rows if r.returncode == 0 and rows else None

    # two scrapes of the node that both saw the pod: up to two resolutions
    [row] = _wait(top_pod, timeout=60, what="kubectl top pod", interval=1)
    name, cpu, memory = row
    millicores, mebibytes = _cpu_and_memory(cpu, memory)
    assert name == "busy"
    assert millicores > 0 and mebibytes >= 0

    r = cluster.kubectl("top", "node", kubelet.name)
    header, line = r.stdout.splitlines()
    assert header.split() == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    node, cpu, cpu_pct, memory, mem_pct = line.split()
    millicores, mebibytes = _cpu_and_memory(cpu, memory)
    assert node == kubelet.name and millicores > 0 and mebibytes > 0
    assert cpu_pct.endswith("%") and mem_pct.endswith("%")

    r = cluster.kubectl("top", "pod", "busy", "-n", ns, "--containers", "--no-headers")
    pod, container, cpu, memory = r.stdout.split()
    assert (pod, container) == ("busy", "app") and _cpu_and_memory(cpu, memory)[0] > 0


async def test_hpa_grows_a_busy_deployment_to_its_maximum(cluster, kubelet, ns):
    """`kubectl autoscale` on a Deployment whose pod burns more than half its 100m
    request: the HPA reads the metrics API and scales it to --max=3."""
    import asyncio
    import json

    from pyk8s.client import Client, load_kubeconfig
    from pyk8s.controllers import core_manager, manager
    from pyk8s.controllers.podautoscaler import HorizontalController, HPASettings

    async def kubectl(*args, **kw):
        return await asyncio.to_thread(cluster.kubectl, *args, **kw)

    client = Client(load_kubeconfig(cluster.kubeconfig))
    ctx = core_manager.new_context(client)
    runners = [manager.CONTROLLERS[n](ctx) for n in ("deployment-controller",
                                                      "replicaset-controller")]
    # the metrics API scrapes every 15 s; a shorter HPA period only saves waiting (not
    # too short: each failed sync before the first metrics costs event budget, and the
    # spam filter would then drop the SuccessfulRescale event)
    runners.append(HorizontalController(ctx, settings=HPASettings(sync_period=5.0)))
    tasks = [asyncio.create_task(c.run()) for c in runners]
    try:
        template = {"metadata": {"labels": {"app": "burn"}},
                    "spec": {"nodeName": kubelet.name, "automountServiceAccountToken": False,
                             "terminationGracePeriodSeconds": 1,
                             "containers": [{"name": "app", "image": "busybox",
                                             "command": ["sh", "-c", BURN],
                                             "resources": {"requests": {"cpu": "100m"}}}]}}
        await kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "burn"},
             "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "burn"}},
                      "template": template}}))
        await kubectl("autoscale", "deployment", "burn", "-n", ns, "--cpu-percent=50",
                      "--min=1", "--max=3")

        def grown():
            d = json.loads(cluster.kubectl("get", "deployment", "burn", "-n", ns,
                                           "-o", "json").stdout)
            return d if d["spec"]["replicas"] == 3 else None

        deadline = asyncio.get_running_loop().time() + 120
        while not await asyncio.to_thread(grown):
            assert tasks and not any(t.done() for t in tasks), [t for t in tasks if t.done()]
            assert asyncio.get_running_loop().time() < deadline, \
                (await kubectl("describe", "hpa", "burn", "-n", ns)).stdout
            await asyncio.sleep(1)

        # the controller writes the HPA's status after the new scale: poll for the
        # status of the decision to go to 3, with the metric behind it
        def decided():
            hpa = json.loads(cluster.kubectl("get", "hpa", "burn", "-n", ns, "-o",
                                             "json").stdout)
            status = hpa.get("status") or {}
            return status if status.get("desiredReplicas") == 3 and \
                status.get("currentMetrics") else None

        deadline = asyncio.get_running_loop().time() + 60
        while not (status := await asyncio.to_thread(decided)):
            assert asyncio.get_running_loop().time() < deadline, \
                (await kubectl("describe", "hpa", "burn", "-n", ns)).stdout
            await asyncio.sleep(0.5)
        [metric] = status["currentMetrics"]
        assert metric["resource"]["current"]["averageUtilization"] > 50

        def rescaled():  # events are written in the background: poll for them
            items = json.loads(cluster.kubectl("get", "events", "-n", ns, "-o",
                                               "json").stdout)["items"]
            return [e["message"] for e in items if e["reason"] == "SuccessfulRescale"]

        for _ in range(30):
            messages = await asyncio.to_thread(rescaled)
            if any(msg.startswith("New size: 3;") for msg in messages):
                break
            await asyncio.sleep(0.5)
        assert "New size: 3; reason: cpu resource utilization (percentage of request) " \
               "above target" in messages
    finally:
        # stop the busy pods while the controllers still run: later tests share the node
        await kubectl("delete", "hpa", "burn", "-n", ns, check=False)
        await kubectl("scale", "deployment", "burn", "-n", ns, "--replicas=0", check=False)
        for _ in range(60):
            left = await kubectl("get", "pods", "-n", ns, "-l", "app=burn", "-o", "name",
                                 check=False)
            if left.returncode == 0 and not left.stdout.strip():
                break
            await asyncio.sleep(0.5)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await ctx.informers.stop()
        await ctx.events.shutdown(timeout=2.0)
        await client.close()
