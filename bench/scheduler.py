"""Scheduler benchmark: N fake nodes, M pods, end to end through the API server.

Starts a real `pyk8s apiserver` (SQLite, temp dir) and the scheduler as a separate
process (`pyk8s.scheduler.server.run`, leader election on, as deployed), registers
fake Node objects, then creates pods as fast as a bounded pool of clients can and
watches them: a pod's latency runs from its create request to the watch event that
shows it bound. Beside it, in the same run, the API's own pod-create rate: the
physical limit the scheduler's throughput cannot exceed, since every binding is one
more write. Prints one line per scenario; a benchmark, not a test: it asserts nothing.

Scenarios: ``plain`` (requests only) and ``spread`` (a zone topology-spread
constraint plus preferred hostname anti-affinity, over 10 zones).

Each scenario also runs once with no API at all (``algorithm only``): the same nodes
and pods fed straight into a ``Scheduler`` in this process, bindings recorded in
memory and confirmed back as the informer would. That line is the scheduler's own
throughput; the end-to-end line adds the API server, informers, bindings and events
(all on the same machine), so the gap between the two is what they cost.

Anchors reported against: the ClusterLoader2 load-test bar of 100 pods/s, and
kube-scheduler's own CI (scheduler_perf) bar of about 680 pods/s on 5,000 nodes.

    .venv/bin/python bench/scheduler.py [--nodes 1000] [--pods 10000] [--scenarios plain,spread]
        [--spread-pods N] [--algorithm-only]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pyk8s.client import Client, load_kubeconfig  # noqa: E402
from pyk8s.client import resources as r  # noqa: E402

CL2_BAR = 100.0
SCHEDULER_PERF_BAR = 680.0
ZONE = "topology.kubernetes.io/zone"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_apiserver(data_dir: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(os.path.join(data_dir, "apiserver.log"), "ab")
    proc = subprocess.Popen([sys.executable, "-m", "pyk8s.cli.main", "apiserver", "--data-dir", data_dir,
                             "--https-port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    kubeconfig = os.path.join(data_dir, "kubeconfig.yaml")
    deadline = time.monotonic() + 60
    while not os.path.exists(kubeconfig):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"API server did not start; see {data_dir}/apiserver.log")
        time.sleep(0.1)
    return proc, kubeconfig


async def wait_ready(client: Client) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            await client.list(r.NAMESPACES, limit=1)
            return
        except Exception:  # noqa: BLE001 - not up yet
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def start_scheduler(kubeconfig: str, data_dir: str) -> subprocess.Popen:
    log = open(os.path.join(data_dir, "scheduler.log"), "ab")
    code = ("import asyncio, logging, pyk8s.scheduler.server as s; "
            "logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: %(message)s'); "
            f"asyncio.run(s.run({kubeconfig!r}))")
    return subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)


async def bounded(n: int, concurrency: int, fn) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await fn(i)
    await asyncio.gather(*(one(i) for i in range(n)))


def node_body(i: int) -> dict:
    name = f"node-{i:05}"
    alloc = {"cpu": "32", "memory": "128Gi", "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, ZONE: f"zone-{i % 10}"}},
            "status": {"allocatable": alloc, "capacity": alloc, "conditions": [{"type": "Ready", "status": "True"}]}}


def pod_body(name: str, scenario: str) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "busybox",
                                  "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}
    labels = {"app": scenario}
    if scenario == "spread":
        spec["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
                                              "labelSelector": {"matchLabels": labels}}]
        spec["affinity"] = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": labels},
                                                "topologyKey": "kubernetes.io/hostname"}}]}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": spec}


async def register_node(client: Client, i: int) -> None:
    """Create a Ready node; drop the not-ready taint admission puts on new nodes, as
    the node lifecycle controller does once the node reports Ready."""
    body = node_body(i)
    await client.create(r.NODES, body)
    await client.patch(r.NODES, body["metadata"]["name"], body={"spec": {"taints": None}})


async def make_namespace(client: Client, name: str) -> None:
    """A namespace and its ``default`` ServiceAccount (the controller manager's job,
    which this benchmark does not run), so pod admission accepts pods there."""
    await client.create(r.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    await client.create(r.SERVICEACCOUNTS, {"apiVersion": "v1", "kind": "ServiceAccount",
                                            "metadata": {"name": "default"}}, namespace=name)


async def create_rate(client: Client, namespace: str, n: int, concurrency: int) -> float:
    """Pods/s the API accepts with no scheduler involved (schedulerName nobody serves)."""
    body = pod_body("x", "plain")
    body["spec"]["schedulerName"] = "nobody"
    t0 = time.perf_counter()
    await bounded(n, concurrency, lambda i: client.create(
        r.PODS, {**body, "metadata": {"name": f"raw-{i}"}}, namespace=namespace))
    return n / (time.perf_counter() - t0)


async def scenario(client: Client, scenario_name: str, pods: int, concurrency: int) -> dict:
    ns = f"bench-{scenario_name}"
    await make_namespace(client, ns)
    listed = await client.list(r.PODS, namespace=ns)
    rv = listed["metadata"]["resourceVersion"]
    created: dict[str, float] = {}
    bound: dict[str, float] = {}
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal rv
        while not done.is_set():
            async for ev in client.watch(r.PODS, namespace=ns, resource_version=rv, timeout_seconds=600):
                obj = ev.object
                rv = obj["metadata"].get("resourceVersion", rv)
                name = obj["metadata"]["name"]
                if (obj.get("spec") or {}).get("nodeName") and name not in bound:
                    bound[name] = time.perf_counter()
                    if len(bound) == pods:
                        done.set()
                        return

    watcher = asyncio.create_task(watch())

    async def create(i: int) -> None:
        name = f"p-{i:05}"
        created[name] = time.perf_counter()
        await client.create(r.PODS, pod_body(name, scenario_name), namespace=ns)

    t0 = time.perf_counter()
    try:
        await bounded(pods, concurrency, create)
        t_created = time.perf_counter()
        try:
            await asyncio.wait_for(done.wait(), timeout=max(600, pods / 5))
        except asyncio.TimeoutError:
            pass
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    lat = sorted(bound[n] - created[n] for n in bound)
    end = max(bound.values()) if bound else time.perf_counter()
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [0.0] * 99
    return {"scenario": scenario_name, "bound": len(bound), "pods": pods,
            "create_s": t_created - t0, "rate": len(bound) / (end - t0), "p50": q[49], "p99": q[98]}


async def algorithm_only(scenario_name: str, nodes: int, pods: int) -> tuple[float, float]:
    """(pods/s, p99 seconds per cycle) of the scheduling algorithm alone: in-process,
    no API; a bind is recorded and confirmed back as the informer would confirm it."""
    import random

    from pyk8s.scheduler.actions import RecordingActions
    from pyk8s.scheduler.configuration import load_configuration
    from pyk8s.scheduler.listers import StaticListers
    from pyk8s.scheduler.scheduling import Scheduler

    ns = f"bench-{scenario_name}"
    listers = StaticListers({"kind": "Namespace", "metadata": {"name": ns}})
    actions = RecordingActions()
    sched = Scheduler(load_configuration(None), listers=listers, actions=actions, rng=random.Random(1))
    for i in range(nodes):
        body = node_body(i)
        body["metadata"]["uid"] = f"node-uid-{i}"
        sched.on_node_add(body)
    record = actions.bind

    async def bind(pod: dict, node_name: str) -> None:
        await record(pod, node_name)
        meta = pod["metadata"]
        old = listers.pod(meta["namespace"], meta["name"])
        new = {**old, "spec": {**old["spec"], "nodeName": node_name},
               "metadata": {**old["metadata"], "resourceVersion": "2"}}
        listers.add(new)
        sched.on_pod_update(old, new)
    actions.bind = bind  # type: ignore[method-assign]
    for i in range(pods):
        body = pod_body(f"p-{i:05}", scenario_name)
        body["metadata"].update(namespace=ns, uid=f"uid-{i}", resourceVersion="1")
        body["status"] = {"phase": "Pending"}
        listers.add(body)
        sched.on_pod_add(body)
    cycles: list[float] = []
    t0 = time.perf_counter()
    while (qpi := sched.queue.pop_nowait()) is not None:
        c0 = time.perf_counter()
        await sched.schedule_one(qpi)
        cycles.append(time.perf_counter() - c0)
        await asyncio.sleep(0)
    await sched.drain_bindings()
    elapsed = time.perf_counter() - t0
    q = statistics.quantiles(cycles, n=100) if len(cycles) >= 2 else [0.0] * 99
    if len(actions.binds) != pods:
        print(f"warning: algorithm only bound {len(actions.binds)}/{pods} pods", file=sys.stderr)
    return len(actions.binds) / elapsed, q[98]


def scenario_pods(args, name: str) -> int:
    return args.spread_pods if name == "spread" and args.spread_pods else args.pods


async def run(args) -> None:
    for name in args.scenarios.split(","):
        pods = scenario_pods(args, name)
        rate, p99 = await algorithm_only(name, args.nodes, pods)
        print(f"scheduler[{name}] algorithm only: {pods} pods on {args.nodes} nodes, {rate:.0f} pods/s "
              f"(no API; cycle p99 {p99 * 1000:.1f} ms)", flush=True)
    if args.algorithm_only:
        return
    await run_end_to_end(args)


async def run_end_to_end(args) -> None:
    with tempfile.TemporaryDirectory(prefix="pyk8s-bench-sched-") as tmp:
        api_proc, kubeconfig = start_apiserver(tmp)
        sched_proc = None
        client = Client(load_kubeconfig(kubeconfig))
        try:
            await wait_ready(client)
            await make_namespace(client, "bench-raw")
            limit = await create_rate(client, "bench-raw", min(args.pods, 2000), args.concurrency)
            t0 = time.perf_counter()
            await bounded(args.nodes, args.concurrency, lambda i: register_node(client, i))
            nodes_s = time.perf_counter() - t0
            sched_proc = start_scheduler(kubeconfig, tmp)
            # The scheduler is ready once it holds its lease.
            deadline = time.monotonic() + 60
            while True:
                try:
                    lease = await client.get(r.LEASES, "kube-scheduler", namespace="kube-system")
                    if (lease.get("spec") or {}).get("holderIdentity"):
                        break
                except Exception:  # noqa: BLE001 - no lease yet
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"scheduler did not start; see {tmp}/scheduler.log")
                await asyncio.sleep(0.2)
            print(f"setup: {args.nodes} nodes registered in {nodes_s:.1f}s; API pod-create limit "
                  f"{limit:.0f} pods/s ({args.concurrency} clients)", flush=True)
            for name in args.scenarios.split(","):
                res = await scenario(client, name, scenario_pods(args, name), args.concurrency)
                print(f"scheduler[{name}]: {res['bound']}/{res['pods']} pods bound on {args.nodes} nodes, "
                      f"{res['rate']:.0f} pods/s (create {res['pods'] / res['create_s']:.0f}/s; "
                      f"{res['rate'] / limit:.2f}x API create limit; {res['rate'] / CL2_BAR:.2f}x CL2 "
                      f"{CL2_BAR:.0f} pods/s; {res['rate'] / SCHEDULER_PERF_BAR:.2f}x scheduler_perf "
                      f"{SCHEDULER_PERF_BAR:.0f} pods/s), latency p50 {res['p50'] * 1000:.0f} ms "
                      f"p99 {res['p99'] * 1000:.0f} ms", flush=True)
        finally:
            await client.close()
            if sched_proc is not None and sched_proc.poll() is not None:
                # The scheduler must run until stopped here: show why it did not.
                with open(os.path.join(tmp, "scheduler.log"), errors="replace") as f:
                    tail = f.readlines()[-20:]
                print(f"scheduler exited early (code {sched_proc.returncode}); log tail:\n{''.join(tail)}",
                      file=sys.stderr, flush=True)
            for proc in (sched_proc, api_proc):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--pods", type=int, default=10000)
    p.add_argument("--scenarios", default="plain,spread")
    p.add_argument("--spread-pods", type=int, default=0, help="pods for the spread scenario (default: --pods)")
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--algorithm-only", action="store_true", help="only the in-process runs, no API server")
    # On SIGTERM (e.g. a timeout) unwind normally so the servers started here stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
