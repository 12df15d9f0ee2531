"""`pyk8s server`: the whole cluster in one process, like k3s.

The API server starts first; once it answers, the control-plane components
(controller manager, scheduler, ServiceLB) start with their own least-privilege
kubeconfigs, then — unless ``--disable-agent`` — the embedded node: kubelet,
kube-proxy and cluster DNS. Every component reaches the cluster only through the
HTTPS API, exactly as when run apart. Ctrl-C / SIGTERM stop them in reverse order;
pods keep running in containerd and are adopted at the next start.

Invariants:
- A component that fails takes the server down with a message naming it, instead
  of leaving a cluster that looks up but is half-dead.
- One process per data dir: `pyk8s server` and `pyk8s agent` hold an flock on
  `<data-dir>/.lock` for their lifetime, taken before anything under the dir is
  touched; a second one on the same dir exits 1 at once, naming the dir.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import fcntl
import logging
import os
import socket
import sys
from typing import Awaitable, Callable

from .noderecord import NodeRecord

log = logging.getLogger(__name__)


def say(text: str) -> None:
    print(f"pyk8s: {text}", flush=True)


LOCK_FILE = ".lock"


def lock_data_dir(data_dir: str, command: str) -> int:
    """Hold an exclusive flock on `<data_dir>/.lock` until this process exits.

    Returns the lock's file descriptor (not inherited by children, so a containerd
    that outlives us does not keep the dir locked). Another process holding it
    (a server or agent already using the dir) exits this one with status 1.
    """
    data_dir = os.path.abspath(data_dir)
    os.makedirs(data_dir, exist_ok=True)
    path = os.path.join(data_dir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            os.close(fd)
            raise
        try:
            holder = os.pread(fd, 256, 0).decode(errors="replace").strip()
        except OSError:
            holder = ""
        os.close(fd)
        # the holder wrote "<command> <pid>"
        other, _, pid = holder.partition(" ")
        print(f"pyk8s: another pyk8s {other or command} is using {data_dir}"
              + (f" (pid {pid})" if pid else "")
              + "; stop it first or choose another --data-dir", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{command} {os.getpid()}\n".encode(), 0)
    return fd


@dataclasses.dataclass(frozen=True)
class ClusterNetwork:
    """The ranges and DNS address a node uses (k3s' defaults for flags a command lacks):
    the pod range for routes, masquerade and kube-proxy's local-traffic detector, the
    Service range, and the cluster DNS address (kubelet clusterDNS, the kube-dns
    Service, where DNS answers)."""
    cluster_cidr: str
    service_cidr: str
    dns_ip: str


def network_from_flags(args: argparse.Namespace) -> ClusterNetwork:
    """The network the flags describe; exits with a message when they are invalid."""
    import ipaddress
    from ..cri import cni
    try:
        cluster = str(ipaddress.ip_network(getattr(args, "cluster_cidr", "") or cni.CLUSTER_CIDR))
        service = str(ipaddress.ip_network(getattr(args, "service_cidr", "") or cni.SERVICE_CIDR))
        dns = getattr(args, "cluster_dns", "") or cni.cluster_dns_ip(service)
        if ipaddress.ip_address(dns) not in ipaddress.ip_network(service):
            raise ValueError(f"--cluster-dns {dns} is not in --service-cidr {service}")
    except ValueError as e:
        print(f"pyk8s: {e}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    return ClusterNetwork(cluster, service, dns)


def record_network(data_dir: str, network: ClusterNetwork) -> None:
    """The cluster and Service ranges for the node's blackhole routes and masquerade
    (kubelet/node.py reads them back)."""
    from pathlib import Path
    from ..kubelet.node import record_cluster_network
    record_cluster_network(Path(data_dir), cluster_cidr=network.cluster_cidr,
                           service_cidr=network.service_cidr)


class Components:
    """Named component tasks; the first to fail stops the whole server."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, asyncio.Task]] = []
        self.failed = asyncio.Event()
        self.failure = ""

    def start(self, name: str, coro: Awaitable) -> None:
        task = asyncio.ensure_future(coro)
        task.add_done_callback(lambda t, name=name: self._done(name, t))
        self.tasks.append((name, task))

    def _done(self, name: str, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        err = task.exception()
        self.failure = f"{name} stopped: {err!r}" if err else f"{name} exited"
        if err:
            log.error("%s failed", name, exc_info=err)
        self.failed.set()

    async def stop(self, grace: float = 15.0) -> None:
        """Stop in reverse start order, each within ``grace`` seconds."""
        for name, task in reversed(self.tasks):
            if task.done():
                continue
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=grace)
            if not done:
                log.warning("%s did not stop within %.0f s; leaving it", name, grace)


def node_kubeconfig(data_dir: str, server_url: str, ca, node: str) -> str:
    """The embedded kubelet's kubeconfig (system:node:<name>), made once."""
    from ..pki import _load_or_make, kubeconfig, write_kubeconfig
    from ..pki.components import node_credentials
    tls = os.path.join(data_dir, "server", "tls")
    pair = _load_or_make(tls, f"client-kubelet-{node}", lambda: node_credentials(ca, node))
    path = os.path.join(data_dir, "agent", "kubelet.kubeconfig")
    write_kubeconfig(path, kubeconfig(server_url, ca, pair, user=f"system:node:{node}"))
    return path


def embedded_node_addresses(args: argparse.Namespace) -> None:
    """With an embedded node, pods reach the API server on the node's address (the
    ``kubernetes`` Service's endpoint): listen there too, as k3s does."""
    if args.disable_agent or os.geteuid() != 0:
        return
    if not args.node_ip:
        from ..kubelet.nodestatus import detect_node_ip
        args.node_ip = detect_node_ip()
    if args.bind_address == "127.0.0.1":
        args.bind_address = "0.0.0.0"
        if args.advertise_address == "127.0.0.1" and args.node_ip:
            args.advertise_address = args.node_ip


async def run_server(args: argparse.Namespace, start_apiserver: Callable,
                     stop: asyncio.Event) -> None:
    # before the store, the certificates or the node are touched
    lock_data_dir(args.data_dir, "server")
    network_from_flags(args)  # bad ranges fail before anything starts
    embedded_node_addresses(args)
    api = await start_apiserver(args)
    comps = Components()
    try:
        await start_control_plane(args, api, comps)
        if not args.disable_agent:
            await start_agent(args, api, comps)
        say(f"cluster ready; try: KUBECONFIG={api.admin_kubeconfig} kubectl get nodes")
        await wait_until_stopped(stop, comps)
    finally:
        await comps.stop()
        await api.close()


async def start_control_plane(args, api, comps: Components) -> None:
    from ..controllers import core_manager, manager
    from ..scheduler import server as scheduler
    creds = api.component_kubeconfigs
    tls = os.path.join(api.data_dir, "server", "tls")
    with open(os.path.join(tls, "server-ca.crt")) as f:
        root_ca = f.read()
    with open(os.path.join(tls, "service.key"), "rb") as f:
        signing_key = f.read()
    settings = core_manager.core_settings(
        data_dir=api.data_dir, apiserver_addresses=[args.node_ip] if args.node_ip else [],
        apiserver_port=args.https_port, root_ca_pem=root_ca, signing_key_pem=signing_key,
        cluster_cidr=args.cluster_cidr)
    # As kubeadm and k3s run it: the manager's own identity
    # (system:kube-controller-manager) for leader election and the shared informers,
    # each controller its own service account (--use-service-account-credentials).
    comps.start("controller-manager", manager.run(creds["controller"], leader_elect=True,
                                                  settings=settings,
                                                  use_service_account_credentials=True))
    say("controller manager started")
    # --scheduler-config: the embedded scheduler's KubeSchedulerConfiguration (what k3s
    # passes as --kube-scheduler-arg=config=FILE); its leaderElection then applies.
    sched_config = None
    if getattr(args, "scheduler_config", ""):
        from ..scheduler.configuration import ConfigurationError, load_configuration_file
        try:
            sched_config = load_configuration_file(args.scheduler_config)
        except (ConfigurationError, OSError) as e:
            print(f"pyk8s: scheduler: {e}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None
    comps.start("scheduler", scheduler.run(creds["scheduler"], config=sched_config,
                                           leader_elect=None if sched_config else True))
    say("scheduler started")
    from ..proxy import servicelb
    # LoadBalancer Services get the Ready nodes' addresses as ingress (k3s ServiceLB).
    comps.start("servicelb", servicelb.run(api.admin_kubeconfig, leader_elect=True))
    say("servicelb started")
    from .manifests import watch_manifests
    manifests = os.path.join(api.data_dir, "server", "manifests")
    comps.start("manifests", watch_manifests(api.admin_kubeconfig, manifests))
    say(f"applying manifests from {manifests}")
    await ensure_kube_dns_service(api.admin_kubeconfig, network_from_flags(args).dns_ip)


async def ensure_kube_dns_service(kubeconfig: str, dns_ip: str) -> None:
    """Register ``kube-system/kube-dns`` on the cluster DNS address (the DNS of every
    node answers there) unless it exists, so no other Service is given that address."""
    from ..client import ApiError, Client, is_already_exists, is_not_found, load_config
    from ..client import resources as r
    from ..dns.server import kube_dns_service
    async with Client(load_config(kubeconfig)) as client:
        try:
            await client.get(r.SERVICES, "kube-dns", namespace="kube-system")
            return
        except ApiError as err:
            if not is_not_found(err):
                raise
        try:
            await client.create(r.SERVICES, kube_dns_service(dns_ip), namespace="kube-system")
        except ApiError as err:
            # another server of the cluster registered it first
            if not is_already_exists(err):
                raise


async def start_agent(args, api, comps: Components) -> None:
    """The embedded node: kubelet, kube-proxy and DNS on this machine."""
    if os.geteuid() != 0:
        say("not root: the embedded node needs root (containerd, network); running the "
            "control plane only (use --disable-agent to silence this)")
        return
    from ..kubelet.settings import KubeletSettings
    from pathlib import Path
    from ..cri import cni
    node = (args.node_name or socket.gethostname()).lower()
    kubeconfig = node_kubeconfig(api.data_dir, api.url, api.ca, node)
    network = network_from_flags(args)
    # The kubelet listens on every address; its callers need a certificate from the
    # cluster CA (the API server's) or a token, and RBAC's nodes/* (kubelet/auth.py).
    settings = KubeletSettings(node_name=node, data_dir=Path(api.data_dir),
                               pod_cidr=args.pod_cidr or cni.first_pod_cidr(network.cluster_cidr),
                               node_ip=args.node_ip, address="0.0.0.0",
                               cluster_dns=(network.dns_ip,))
    ca_file = os.path.join(api.data_dir, "server", "tls", "server-ca.crt")
    await asyncio.to_thread(record_network, api.data_dir, network)
    await start_node(comps, settings=settings, kubeconfig=kubeconfig, client_ca=ca_file,
                     record=NodeRecord(dns_ip=network.dns_ip), network=network,
                     proxy_kubeconfig=api.component_kubeconfigs["proxy"],
                     dns_kubeconfig=api.admin_kubeconfig)


async def start_node(comps: Components, *, settings, kubeconfig: str, client_ca: str,
                     record: NodeRecord, network: ClusterNetwork, proxy_kubeconfig: str,
                     dns_kubeconfig: str) -> bool:
    """A node's kubelet, then (as ``record`` says) kube-proxy and cluster DNS.

    Shared by the embedded node and `pyk8s agent`. Returns False when the kubelet
    failed before it was ready (``comps.failure`` says why).
    """
    from ..dns import server as dns
    from ..kubelet.kubelet import run as run_kubelet
    from ..kubelet import auth as kubelet_auth
    from ..proxy import server as proxy
    from ..proxy.rules import NodeConfig
    from .noderecord import write_record
    node = settings.node_name
    # written before anything is set up, so `pyk8s reset` knows what to remove
    await asyncio.to_thread(write_record, str(settings.data_dir), record)
    ready = asyncio.Event()
    # callers need a certificate from the cluster CA or a token the API server
    # accepts, and RBAC's nodes/proxy (stats, log, ...) permission
    comps.start("kubelet", run_kubelet(settings, kubeconfig=kubeconfig, client_ca=client_ca,
                                       auth=kubelet_auth.SECURE,
                                       bridge=record.bridge,
                                       started=lambda _k: ready.set()))
    waiter = asyncio.ensure_future(ready.wait())
    failed = asyncio.ensure_future(comps.failed.wait())
    await asyncio.wait([waiter, failed], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    failed.cancel()
    if comps.failed.is_set():
        return False
    say(f"node {node} ready")
    if record.kube_proxy:
        comps.start("kube-proxy", proxy.run(proxy_kubeconfig, node, config=NodeConfig(
            cluster_cidrs=(network.cluster_cidr,), service_cidrs=(network.service_cidr,))))
        say("kube-proxy started")
    else:
        say("kube-proxy disabled: another node on this machine programs its Services")
    if record.dns:
        # The kube-dns Service is the control plane's to register (a node's
        # credentials may not create Services).
        comps.start("dns", dns.run(dns_kubeconfig, (network.dns_ip, 53),
                                   register_service=False))
        say(f"cluster DNS started on {network.dns_ip}")
    else:
        say(f"cluster DNS disabled: another node on this machine answers on "
            f"{network.dns_ip}")
    return True


async def run_agent(args: argparse.Namespace, stop: asyncio.Event) -> None:
    """`pyk8s agent`: TLS bootstrap to the node's own identity, then the node.

    kube-proxy and DNS run with the node's credentials (``system:node:<name>``;
    the ``pyk8s:node-proxier`` binding lets nodes list Services and
    EndpointSlices). A second node on a machine that already runs one passes
    ``--disable-kube-proxy --disable-dns``: both program the host's network
    namespace, which one node's kube-proxy and DNS already serve for every node.
    """
    from pathlib import Path
    from ..kubelet.bootstrap import BootstrapError, bootstrap
    from ..kubelet.settings import KubeletSettings
    data_dir = os.path.abspath(args.data_dir)
    lock_data_dir(data_dir, "agent")
    node = (args.node_name or socket.gethostname()).lower()
    network = network_from_flags(args)
    await asyncio.to_thread(record_network, data_dir, network)
    try:
        kubeconfig = await bootstrap(server=args.server, ca_file=args.ca_file, token=args.token,
                                     node=node, kubeconfig=os.path.join(
                                         data_dir, "agent", "kubelet.kubeconfig"))
    except BootstrapError as e:
        print(f"pyk8s: {e}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    say(f"node {node} has its certificate (system:node:{node})")
    settings = KubeletSettings(node_name=node, data_dir=Path(data_dir), pod_cidr=args.pod_cidr,
                               node_ip=args.node_ip, address="0.0.0.0",
                               port=args.kubelet_port, cgroup_root=args.cgroup_root,
                               cluster_dns=(network.dns_ip,))
    record = NodeRecord(bridge=args.bridge, cgroup_root=args.cgroup_root,
                        kube_proxy=not args.disable_kube_proxy, dns=not args.disable_dns,
                        dns_ip=network.dns_ip)
    comps = Components()
    failed = False
    try:
        if await start_node(comps, settings=settings, kubeconfig=kubeconfig,
                            client_ca=args.ca_file, record=record, network=network,
                            proxy_kubeconfig=kubeconfig, dns_kubeconfig=kubeconfig):
            await wait_until_stopped(stop, comps)
        else:
            say(f"shutting down: {comps.failure}")
        failed = comps.failed.is_set() and not stop.is_set()
    finally:
        await comps.stop()
    if failed:
        raise SystemExit(1)


async def wait_until_stopped(stop: asyncio.Event, comps: Components) -> None:
    """Until ``stop`` is set or a component fails; says which."""
    waiters = [asyncio.ensure_future(stop.wait()),
               asyncio.ensure_future(comps.failed.wait())]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for w in waiters:
        w.cancel()
    if comps.failed.is_set() and not stop.is_set():
        say(f"shutting down: {comps.failure}")
    else:
        say("shutting down")
