"""`pyk8s server`: the whole cluster in one process, like k3s.

The API server starts first; once it answers, the control-plane components
(controller manager, scheduler, ServiceLB) start with their own least-privilege
kubeconfigs, then — unless ``--disable-agent`` — the embedded node: kubelet,
kube-proxy and cluster DNS. Every component reaches the cluster only through the
HTTPS API, exactly as when run apart. Ctrl-C / SIGTERM stop them in reverse order;
pods keep running in containerd and are adopted at the next start.

Invariant: a component that fails takes the server down with a message naming it,
instead of leaving a cluster that looks up but is half-dead.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
from typing import Awaitable, Callable

log = logging.getLogger(__name__)


def say(text: str) -> None:
    print(f"pyk8s: {text}", flush=True)


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
    embedded_node_addresses(args)
    api = await start_apiserver(args)
    comps = Components()
    try:
        await start_control_plane(args, api, comps)
        if not args.disable_agent:
            await start_agent(args, api, comps)
        say(f"cluster ready; try: KUBECONFIG={api.admin_kubeconfig} kubectl get nodes")
        waiters = [asyncio.ensure_future(stop.wait()),
                   asyncio.ensure_future(comps.failed.wait())]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()
        if comps.failed.is_set() and not stop.is_set():
            say(f"shutting down: {comps.failure}")
        else:
            say("shutting down")
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
    # Upstream runs each controller with its own service account
    # (--use-service-account-credentials); until that lands the embedded controller
    # manager uses the admin identity, as a controller manager without it must.
    comps.start("controller-manager", manager.run(api.admin_kubeconfig, leader_elect=True,
                                                  settings=settings))
    say("controller manager started")
    comps.start("scheduler", scheduler.run(creds["scheduler"], leader_elect=True))
    say("scheduler started")
    from .manifests import watch_manifests
    manifests = os.path.join(api.data_dir, "server", "manifests")
    comps.start("manifests", watch_manifests(api.admin_kubeconfig, manifests))
    say(f"applying manifests from {manifests}")


async def start_agent(args, api, comps: Components) -> None:
    if os.geteuid() != 0:
        say("not root: the embedded node needs root (containerd, network); running the "
            "control plane only (use --disable-agent to silence this)")
        return
    from ..dns import server as dns
    from ..kubelet.kubelet import run as run_kubelet
    from ..kubelet.settings import KubeletSettings
    from ..proxy import server as proxy
    from pathlib import Path
    node = (args.node_name or socket.gethostname()).lower()
    kubeconfig = node_kubeconfig(api.data_dir, api.url, api.ca, node)
    # The kubelet listens on every address but takes only clients with a
    # certificate from the cluster CA (the API server's, for logs).
    settings = KubeletSettings(node_name=node, data_dir=Path(api.data_dir),
                               pod_cidr=args.pod_cidr, node_ip=args.node_ip,
                               address="0.0.0.0")
    ready = asyncio.Event()
    ca_file = os.path.join(api.data_dir, "server", "tls", "server-ca.crt")
    comps.start("kubelet", run_kubelet(settings, kubeconfig=kubeconfig, client_ca=ca_file,
                                       started=lambda _k: ready.set()))
    waiter = asyncio.ensure_future(ready.wait())
    failed = asyncio.ensure_future(comps.failed.wait())
    await asyncio.wait([waiter, failed], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    failed.cancel()
    if comps.failed.is_set():
        return
    say(f"node {node} ready")
    comps.start("kube-proxy", proxy.run(api.component_kubeconfigs["proxy"], node))
    say("kube-proxy started")
    comps.start("dns", dns.run(api.admin_kubeconfig))
    say("cluster DNS started on 10.43.0.10")
