"""Network benchmark: programming latency of 1,000 Services, and traffic through a
ClusterIP beside the same endpoint reached directly, in one run.

Needs root. Everything runs in network namespaces the benchmark creates and
deletes (a "node" with the blackhole routes and the proxy's table, one "pod" on its
bridge); nothing is connected to the host's namespace, so no packet leaves.

1. A real ``pyk8s apiserver`` (SQLite, temp dir) and the proxy (``ProxyServer``,
   upstream's default minimum sync period of 1 s) programming the node namespace.
2. N Services and their EndpointSlices are created through the API by 20 clients;
   each slice carries ``endpoints.kubernetes.io/last-change-trigger-time`` set just
   before its Service was created. A Service's programming latency is the time
   from there until its rules were accepted by the kernel (the proxy's
   ``kubeproxy_network_programming_duration_seconds`` samples, the later of the
   Service's and the slice's). Upstream reports about 5 s p50 at 5,000 nodes.
3. From the node, short request/response connections and one bulk stream to the
   pod, once through a ClusterIP (DNAT + masquerade) and once to the pod IP, in
   alternating rounds; the figures are printed as ratios (ClusterIP / direct).

    .venv/bin/python bench/network.py [--services 1000] [--seconds 3] [--rounds 3]
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import datetime
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pyk8s.client import Client, load_kubeconfig  # noqa: E402
from pyk8s.client import resources as r  # noqa: E402
from pyk8s.proxy.nft import HostCommands  # noqa: E402
from pyk8s.proxy.proxier import ProxySettings  # noqa: E402
from pyk8s.proxy.rules import NodeConfig  # noqa: E402
from pyk8s.proxy.server import ProxyServer  # noqa: E402

POD_IP = "10.42.9.11"
BRIDGE_IP = "10.42.9.1"
REQ_PORT, BULK_PORT = 8080, 9000
CLONE_NEWNET = 0x40000000

# The pod's servers, run by a separate interpreter inside the pod's namespace so the
# client and the server do not share one Python process.
POD_SERVER = f"""
import asyncio
async def req(reader, writer):
    await reader.readline()
    writer.write(b"ok\\n")
    await writer.drain()
    writer.close()
async def bulk(reader, writer):
    total = 0
    while chunk := await reader.read(1 << 20):
        total += len(chunk)
    writer.write(str(total).encode())
    await writer.drain()
    writer.close()
async def main():
    a = await asyncio.start_server(req, "0.0.0.0", {REQ_PORT}, backlog=1024)
    b = await asyncio.start_server(bulk, "0.0.0.0", {BULK_PORT})
    print("ready", flush=True)
    await asyncio.gather(a.serve_forever(), b.serve_forever())
asyncio.run(main())
"""


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def socket_in(netns: str, kind=socket.SOCK_STREAM) -> socket.socket:
    """A socket created inside ``netns`` (by a thread that entered it)."""
    out: dict = {}
    libc = ctypes.CDLL(None, use_errno=True)

    def enter():
        fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                out["error"] = OSError(ctypes.get_errno(), "setns")
                return
        finally:
            os.close(fd)
        out["sock"] = socket.socket(socket.AF_INET, kind)

    t = threading.Thread(target=enter)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    out["sock"].setblocking(False)
    return out["sock"]


class Lab:
    def __init__(self):
        prefix = "pyk8s-b" + uuid.uuid4().hex[:6]
        self.node, self.pod = prefix + "-node", prefix + "-pod"
        self.server: subprocess.Popen | None = None

    def setup(self) -> None:
        for ns in (self.node, self.pod):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        n = self.node
        sh("ip", "netns", "exec", n, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        sh("ip", "-n", n, "route", "add", "blackhole", "10.42.0.0/16")
        sh("ip", "-n", n, "route", "add", "blackhole", "10.43.0.0/16")
        sh("ip", "-n", n, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", n, "addr", "add", f"{BRIDGE_IP}/24", "dev", "br0")
        sh("ip", "-n", n, "link", "set", "br0", "up")
        sh("ip", "-n", n, "link", "add", "v0", "type", "veth", "peer", "name", "eth0",
           "netns", self.pod)
        sh("ip", "-n", n, "link", "set", "v0", "master", "br0")
        sh("ip", "-n", n, "link", "set", "v0", "up")
        sh("ip", "-n", self.pod, "addr", "add", f"{POD_IP}/24", "dev", "eth0")
        sh("ip", "-n", self.pod, "link", "set", "eth0", "up")
        sh("ip", "-n", self.pod, "route", "add", "default", "via", BRIDGE_IP)
        self.server = subprocess.Popen(["ip", "netns", "exec", self.pod, sys.executable, "-c",
                                        POD_SERVER], stdout=subprocess.PIPE)
        if self.server.stdout.readline().strip() != b"ready":
            raise SystemExit("the pod's server did not start")

    def close(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(10)
        for ns in (self.pod, self.node):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]


async def start_apiserver(d: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(os.path.join(d, "server.log"), "wb")
    proc = subprocess.Popen([sys.executable, "-m", "pyk8s.cli.main", "apiserver", "--data-dir",
                             d, "--https-port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    kubeconfig = os.path.join(d, "kubeconfig.yaml")
    deadline = time.monotonic() + 60
    while True:
        if os.path.exists(kubeconfig):
            client = Client(load_kubeconfig(kubeconfig))
            try:
                await client.get(r.NAMESPACES, "default")
                return proc, kubeconfig
            except Exception:  # not serving yet
                pass
            finally:
                await client.close()
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("API server did not start; see its log")
        await asyncio.sleep(0.1)  # polling for readiness, bounded by the deadline


async def create_services(client: Client, ns: str, n: int, clients: int = 20) -> list[str]:
    ips: list[str] = [""] * n
    sem = asyncio.Semaphore(clients)

    async def one(i: int) -> None:
        async with sem:
            trigger = datetime.datetime.now(datetime.timezone.utc)
            svc = await client.create(r.SERVICES, {"metadata": {"name": f"s{i}"}, "spec": {
                "ports": [{"name": "http", "port": 80, "targetPort": REQ_PORT}]}}, namespace=ns)
            ips[i] = svc["spec"]["clusterIP"]
            await client.create(r.ENDPOINTSLICES, {
                "metadata": {"name": f"s{i}-1", "labels": {"kubernetes.io/service-name": f"s{i}"},
                             "annotations": {"endpoints.kubernetes.io/last-change-trigger-time":
                                             trigger.isoformat().replace("+00:00", "Z")}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": REQ_PORT, "protocol": "TCP"}],
                "endpoints": [{"addresses": [POD_IP], "conditions": {"ready": True},
                               "nodeName": "bench-node"}]}, namespace=ns)
    await asyncio.gather(*(one(i) for i in range(n)))
    return ips


async def create_bulk_service(client: Client, ns: str) -> str:
    svc = await client.create(r.SERVICES, {"metadata": {"name": "bulk"}, "spec": {
        "ports": [{"name": "data", "port": BULK_PORT}]}}, namespace=ns)
    await client.create(r.ENDPOINTSLICES, {
        "metadata": {"name": "bulk-1", "labels": {"kubernetes.io/service-name": "bulk"}},
        "addressType": "IPv4", "ports": [{"name": "data", "port": BULK_PORT, "protocol": "TCP"}],
        "endpoints": [{"addresses": [POD_IP], "conditions": {"ready": True}}]}, namespace=ns)
    return svc["spec"]["clusterIP"]


async def requests_per_second(netns: str, host: str, port: int, seconds: float,
                              workers: int = 16) -> float:
    loop = asyncio.get_running_loop()
    done = 0
    end = loop.time() + seconds

    async def worker() -> None:
        nonlocal done
        while loop.time() < end:
            sock = socket_in(netns)
            try:
                await loop.sock_connect(sock, (host, port))
                await loop.sock_sendall(sock, b"GET\n")
                if await loop.sock_recv(sock, 16) == b"ok\n":
                    done += 1
            finally:
                sock.close()
    t0 = loop.time()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return done / (loop.time() - t0)


async def bulk_mb_per_second(netns: str, host: str, port: int, megabytes: int) -> float:
    loop = asyncio.get_running_loop()
    sock = socket_in(netns)
    chunk = b"x" * (1 << 20)
    try:
        await loop.sock_connect(sock, (host, port))
        t0 = time.perf_counter()
        for _ in range(megabytes):
            await loop.sock_sendall(sock, chunk)
        sock.shutdown(socket.SHUT_WR)
        reply = await loop.sock_recv(sock, 64)
        elapsed = time.perf_counter() - t0
    finally:
        sock.close()
    if int(reply or b"0") != megabytes << 20:
        raise SystemExit("bulk transfer lost data")
    return megabytes / elapsed


async def run(args) -> None:
    if os.geteuid() != 0:
        raise SystemExit("bench/network.py needs root (network namespaces, nftables)")
    lab = Lab()
    with tempfile.TemporaryDirectory() as d:
        proc, kubeconfig = await start_apiserver(d)
        client = Client(load_kubeconfig(kubeconfig))
        server = None
        try:
            lab.setup()
            ns = "bench-net"
            await client.create(r.NAMESPACES, {"metadata": {"name": ns}})
            cfg = NodeConfig(node_name="bench-node", table="pyk8s-bench-" + uuid.uuid4().hex[:6])
            server = ProxyServer(client, [cfg], settings=ProxySettings(),
                                 host=HostCommands(netns=lab.node))
            await server.start()
            metrics = server.proxier.metrics
            t0 = time.perf_counter()
            ips = await create_services(client, ns, args.services)
            create_rate = args.services / (time.perf_counter() - t0)
            deadline = time.monotonic() + 120
            while True:
                per_service: dict = {}
                for key, seconds in list(metrics.samples):
                    if key[0] == ns:
                        per_service[key] = max(seconds, per_service.get(key, 0.0))
                if len(per_service) >= args.services or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)  # polling the proxy's samples, bounded
            await server.proxier.wait_applied(timeout=60)
            lat = list(per_service.values())
            rps_svc, rps_pod, bulk_svc, bulk_pod = [], [], [], []
            for _ in range(args.rounds):  # alternate the paths so drift hits both alike
                rps_svc.append(await requests_per_second(lab.node, ips[0], 80, args.seconds))
                rps_pod.append(await requests_per_second(lab.node, POD_IP, REQ_PORT, args.seconds))
            bulk_ip = await create_bulk_service(client, ns)
            await server.proxier.wait_applied(timeout=60)
            for _ in range(args.rounds):
                bulk_svc.append(await bulk_mb_per_second(lab.node, bulk_ip, BULK_PORT,
                                                         args.megabytes))
                bulk_pod.append(await bulk_mb_per_second(lab.node, POD_IP, BULK_PORT,
                                                         args.megabytes))
        finally:
            if server is not None:
                await server.stop()
                await server.cleanup()
            await client.close()
            lab.close()
            proc.terminate()
            proc.wait(10)
    rs, rp = statistics.median(rps_svc), statistics.median(rps_pod)
    bs, bp = statistics.median(bulk_svc), statistics.median(bulk_pod)
    print(f"network: programming latency for {len(lat)}/{args.services} Services "
          f"(created at {create_rate:.0f}/s, min sync 1 s): p50 {pct(lat, 0.5):.2f} s, "
          f"p99 {pct(lat, 0.99):.2f} s (upstream ~5 s p50 at 5,000 nodes); "
          f"requests via ClusterIP {rs:,.0f}/s vs direct {rp:,.0f}/s = {rs / rp:.2f}x; "
          f"bulk via ClusterIP {bs:,.0f} MB/s vs direct {bp:,.0f} MB/s = {bs / bp:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--megabytes", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
