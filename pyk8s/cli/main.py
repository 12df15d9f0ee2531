"""`pyk8s` entry point: sub-commands for the whole server and each component.

``server`` runs the control plane on one process (an embedded node joins it as
the kubelet work lands); ``apiserver`` runs the API server alone; ``kubectl`` runs
the real kubectl with this cluster's admin kubeconfig.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import sys

from aiohttp import web


def default_data_dir() -> str:
    return "/var/lib/pyk8s" if os.geteuid() == 0 else os.path.expanduser("~/.pyk8s")


def _metric_resolution(text: str) -> float:
    from ..apiserver.metricsapi import parse_resolution
    return parse_resolution(text)


def _compaction_interval(text: str) -> float:
    from ..storage.compactor import parse_duration
    seconds = parse_duration(text)
    if seconds < 0:
        raise ValueError(f"compaction interval must not be negative: {text}")
    return seconds


_compaction_interval.__name__ = "duration"  # argparse: "invalid duration value: 'x'"


def _add_server_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--https-port", type=int, default=6443)
    p.add_argument("--bind-address", default="127.0.0.1")
    p.add_argument("--advertise-address", default="127.0.0.1")
    p.add_argument("--datastore-endpoint", default="",
                   help="sqlite:///path (default: <data-dir>/server/db/state.db) or "
                        "etcd://host:port[,host:port...]")
    p.add_argument("--etcd-compaction-interval", default="5m", type=_compaction_interval,
                   metavar="DURATION",
                   help="how often the datastore's history is compacted, keeping one "
                        "interval of it (a duration: 5m, 30s, 1h; 0 disables). Despite "
                        "the upstream name it applies to SQLite as well as etcd; API "
                        "servers sharing one etcd compact once per interval between them "
                        "(default 5m)")
    p.add_argument("--service-cidr", default="10.43.0.0/16")
    p.add_argument("--cluster-cidr", default="10.42.0.0/16")
    p.add_argument("--tls-san", action="append", default=[])
    p.add_argument("--write-kubeconfig", default="",
                   help="where to write the admin kubeconfig (default "
                        "<data-dir>/kubeconfig.yaml)")
    p.add_argument("--anonymous-auth", default="true", choices=("true", "false"),
                   help="serve requests without credentials as system:anonymous")
    p.add_argument("--audit-policy-file", default="",
                   help="an audit.k8s.io/v1 Policy; with --audit-log-path, log who did what")
    p.add_argument("--audit-log-path", default="", help="JSON-lines audit log file")
    p.add_argument("--metric-resolution", default="15s", type=_metric_resolution,
                   help="how often the metrics API scrapes each kubelet (a duration)")
    p.add_argument("--encryption-provider-config", default="",
                   help="an apiserver.config.k8s.io/v1 EncryptionConfiguration: encrypt "
                        "those resources (e.g. secrets) in the datastore")
    p.add_argument("-v", "--verbose", action="store_true")


class RunningAPIServer:
    """A started API server and what the other components need to reach it."""

    def __init__(self, *, server, runner, data_dir: str, url: str, ca,
                 admin_kubeconfig: str, component_kubeconfigs: dict[str, str]):
        self.server, self.runner = server, runner
        self.data_dir, self.url, self.ca = data_dir, url, ca
        self.admin_kubeconfig = admin_kubeconfig
        self.component_kubeconfigs = component_kubeconfigs

    async def close(self) -> None:
        await self.runner.cleanup()
        await self.server.close()


async def start_apiserver(args: argparse.Namespace) -> RunningAPIServer:
    from ..apiserver.app import APIServer
    from ..apiserver.security import SecurityConfig
    from ..pki import ensure_server_tls, kubeconfig, write_kubeconfig
    from ..pki.components import ensure_component_credentials, renew_expiring
    from ..storage import open_store
    import ipaddress

    data_dir = os.path.abspath(args.data_dir)
    os.makedirs(data_dir, exist_ok=True)
    service_ip = str(ipaddress.ip_network(args.service_cidr).network_address + 1)
    for name in renew_expiring(data_dir):
        print(f"pyk8s: certificate {name} expires soon; issuing it again", flush=True)
    tls = ensure_server_tls(data_dir, hosts=tuple([args.advertise_address, args.bind_address]
                                                  + args.tls_san), service_ip=service_ip)
    store = open_store(args.datastore_endpoint, data_dir=data_dir,
                       compaction_interval=args.etcd_compaction_interval)
    if args.encryption_provider_config:
        from ..storage.encryption import EncryptingStore
        store = EncryptingStore.from_file(store, args.encryption_provider_config)
    advertise = f"{args.advertise_address}:{args.https_port}"
    security = SecurityConfig(data_dir=data_dir, anonymous=args.anonymous_auth == "true",
                              audit_policy_file=args.audit_policy_file,
                              audit_log_path=args.audit_log_path)
    server = APIServer(store, advertise=advertise, service_cidr=args.service_cidr,
                       security=security, metric_resolution=args.metric_resolution)
    await server.start()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*tls.serving_files)
    ctx.load_verify_locations(tls.ca_file)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False,
                           shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, args.bind_address, args.https_port, ssl_context=ctx,
                       reuse_address=True)
    await site.start()
    path = args.write_kubeconfig or os.path.join(data_dir, "kubeconfig.yaml")
    host = args.advertise_address if args.bind_address in ("0.0.0.0", "::") \
        else args.bind_address
    url = f"https://{host}:{args.https_port}"
    write_kubeconfig(path, kubeconfig(url, tls.ca, tls.admin))
    creds = ensure_component_credentials(data_dir, url, tls.ca)
    print(f"pyk8s: API server ready on {url}", flush=True)
    print(f"pyk8s: admin kubeconfig written to {path}", flush=True)
    return RunningAPIServer(server=server, runner=runner, data_dir=data_dir, url=url,
                            ca=tls.ca, admin_kubeconfig=path, component_kubeconfigs=creds)


def stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def run_apiserver(args: argparse.Namespace) -> None:
    from .server import lock_data_dir
    stop = stop_event()
    # one process per data dir: its SQLite store and certificates are not shared
    lock_data_dir(args.data_dir, "apiserver")
    api = await start_apiserver(args)
    print(f"pyk8s: try: KUBECONFIG={api.admin_kubeconfig} kubectl get namespaces",
          flush=True)
    await stop.wait()
    print("pyk8s: shutting down", flush=True)
    await api.close()


async def run_component(args: argparse.Namespace) -> None:
    """One component alone against a running API server (`pyk8s scheduler`, ...)."""
    stop = stop_event()
    kubeconfig = args.kubeconfig or os.path.join(os.path.abspath(args.data_dir),
                                                 "kubeconfig.yaml")
    if args.command == "controller-manager":
        from ..controllers import manager
        coro = manager.run(kubeconfig, leader_elect=args.leader_elect == "true",
                           use_service_account_credentials=(
                               args.use_service_account_credentials == "true"))
    elif args.command == "scheduler":
        from ..scheduler import server as scheduler
        from ..scheduler.configuration import ConfigurationError, load_configuration_file
        try:
            config = load_configuration_file(args.config) if args.config else None
        except (ConfigurationError, OSError) as e:
            print(f"pyk8s: scheduler: {e}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None
        # An explicit --leader-elect overrides the file's leaderElection.leaderElect.
        coro = scheduler.run(kubeconfig, config=config, hostname=args.hostname_override or None,
                             leader_elect=None if args.leader_elect is None else args.leader_elect == "true")
    elif args.command == "proxy":
        from ..proxy import server as proxy
        from ..proxy.rules import NodeConfig
        coro = proxy.run(kubeconfig, (args.hostname_override or socket.gethostname()).lower(),
                         config=NodeConfig(cluster_cidrs=(args.cluster_cidr,),
                                           service_cidrs=(args.service_cidr,)))
    else:
        from ..dns import server as dns
        coro = dns.run(kubeconfig, (args.cluster_dns, 53))
    task = asyncio.ensure_future(coro)
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def run_hollow(args: argparse.Namespace) -> None:
    """`pyk8s hollow-nodes`: N simulated nodes until Ctrl-C (they stay registered)."""
    from ..kubelet.hollow import run_hollow_nodes
    stop = stop_event()
    kubeconfig = args.kubeconfig or os.path.join(os.path.abspath(args.data_dir),
                                                 "kubeconfig.yaml")
    print(f"pyk8s: running {args.count} hollow nodes ({args.prefix}0...); Ctrl-C stops "
          f"them; kubectl delete nodes -l pyk8s.io/hollow-node=true removes them", flush=True)
    await run_hollow_nodes(kubeconfig, count=args.count, prefix=args.prefix, stop=stop)


def images(args: argparse.Namespace) -> int:
    """`pyk8s images import|list` against this node's containerd."""
    import subprocess
    from ..kubelet.node import containerd_config
    from pathlib import Path
    address = str(containerd_config(Path(os.path.abspath(args.data_dir))).address)
    if not os.path.exists(address):
        print(f"pyk8s: no containerd is running for {args.data_dir} (start pyk8s server)",
              file=sys.stderr)
        return 1
    if args.images_command == "list":
        return subprocess.call(["ctr", "-a", address, "-n", "k8s.io", "images", "ls", "-q"])
    from ..kubelet.images import import_archive
    for archive in args.archives:
        asyncio.run(import_archive(Path(archive), address=address))
        print(f"pyk8s: imported {archive}", flush=True)
    return 0


def cmd_kubectl(argv: list[str]) -> int:
    data_dir = os.environ.get("PYK8S_DATA_DIR", default_data_dir())
    env = dict(os.environ)
    env.setdefault("KUBECONFIG", os.path.join(data_dir, "kubeconfig.yaml"))
    os.execvpe("kubectl", ["kubectl"] + argv, env)
    return 127


async def create_bootstrap_token(args: argparse.Namespace) -> str:
    """``pyk8s token create``: a node join token, stored as a kube-system Secret."""
    import datetime
    from ..api.bootstraptokens import new_token, token_secret
    from ..client.config import load_kubeconfig
    from ..client.rest import Client
    path = args.kubeconfig or os.path.join(os.path.abspath(args.data_dir), "kubeconfig.yaml")
    token = new_token()
    ttl = datetime.timedelta(seconds=args.ttl) if args.ttl > 0 else None
    async with Client(load_kubeconfig(path)) as client:
        await client.request("POST", "/api/v1/namespaces/kube-system/secrets",
                             body=token_secret(token, ttl=ttl, description=args.description))
    return token


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["kubectl"]:
        return cmd_kubectl(argv[1:])
    if argv[:1] == ["kubelet"]:
        from ..kubelet.__main__ import main as kubelet_main
        return kubelet_main(argv[1:])
    parser = argparse.ArgumentParser(prog="pyk8s", description="Kubernetes, in Python")
    sub = parser.add_subparsers(dest="command", required=True)
    p_server = sub.add_parser("server", help="run the control plane (k3s-style server)")
    _add_server_flags(p_server)
    p_server.add_argument("--disable-agent", action="store_true",
                          help="do not run an embedded node")
    p_server.add_argument("--node-name", default="", help="the embedded node's name")
    p_server.add_argument("--node-ip", default="", help="the embedded node's InternalIP")
    p_server.add_argument("--pod-cidr", default="",
                          help="the embedded node's pod network (default: the first /24 of "
                               "--cluster-cidr)")
    p_server.add_argument("--cluster-dns", default="",
                          help="the cluster DNS address: kube-dns Service IP and pods' "
                               "nameserver (default: the tenth address of --service-cidr)")
    p_server.add_argument("--scheduler-config", default="",
                          help="the embedded scheduler's KubeSchedulerConfiguration file "
                               "(kube-scheduler --config)")
    p_api = sub.add_parser("apiserver", help="run the API server alone")
    _add_server_flags(p_api)
    sub.add_parser("kubectl", help="run kubectl with this cluster's admin kubeconfig")
    sub.add_parser("kubelet", help="run a node's kubelet (pyk8s kubelet --help)")
    for name, what in (("controller-manager", "the controllers"),
                       ("scheduler", "the scheduler"), ("proxy", "kube-proxy (nftables)"),
                       ("dns", "cluster DNS (the kube-dns Service)")):
        p = sub.add_parser(name, help=f"run {what} against a running API server")
        p.add_argument("--data-dir", default=default_data_dir())
        p.add_argument("--kubeconfig", default="",
                       help="default: <data-dir>/kubeconfig.yaml")
        p.add_argument("--leader-elect", default=None if name == "scheduler" else "true",
                       choices=("true", "false"))
        p.add_argument("--hostname-override", default="")
        if name == "controller-manager":
            p.add_argument("--use-service-account-credentials", default="true",
                           choices=("true", "false"),
                           help="run each controller as its own kube-system service "
                                "account (as kubeadm and k3s do; default true)")
        if name == "proxy":
            p.add_argument("--cluster-cidr", default="10.42.0.0/16",
                           help="the pods' range: traffic from elsewhere to a ClusterIP is "
                                "masqueraded")
            p.add_argument("--service-cidr", default="10.43.0.0/16")
        if name == "dns":
            p.add_argument("--cluster-dns", default="10.43.0.10",
                           help="the kube-dns Service IP to answer on and register")
        if name == "scheduler":
            p.add_argument("--config", default="",
                           help="a KubeSchedulerConfiguration file (kubescheduler.config.k8s.io/v1)")
        p.add_argument("-v", "--verbose", action="store_true")
    p_agent = sub.add_parser("agent", help="join this machine to a cluster as a node "
                                           "(TLS bootstrap with a join token)")
    p_agent.add_argument("--server", required=True, help="https://host:port of the cluster")
    p_agent.add_argument("--token", help="a join token (pyk8s token create); needed only "
                         "while the node has no valid client certificate")
    p_agent.add_argument("--ca-file", required=True,
                         help="the cluster CA (server's <data-dir>/server/tls/server-ca.crt)")
    p_agent.add_argument("--data-dir", default=default_data_dir())
    p_agent.add_argument("--node-name", default="")
    p_agent.add_argument("--node-ip", default="")
    p_agent.add_argument("--pod-cidr", default="",
                         help="default: the one the control plane assigns")
    # A second node on a machine that already runs one needs its own bridge,
    # kubelet port and cgroup root, and leaves kube-proxy and DNS to the first.
    p_agent.add_argument("--bridge", default="pyk8s0",
                         help="the pod network's Linux bridge (one per node on a machine)")
    p_agent.add_argument("--kubelet-port", type=int, default=10250,
                         help="the kubelet's HTTPS port (logs, exec)")
    p_agent.add_argument("--cgroup-root", default="/kubepods",
                         help="cgroupfs parent of this node's pods")
    p_agent.add_argument("--disable-kube-proxy", action="store_true",
                         help="run no kube-proxy (another node on this machine runs one)")
    p_agent.add_argument("--disable-dns", action="store_true",
                         help="run no cluster DNS (another node on this machine runs it)")
    p_agent.add_argument("--cluster-cidr", default="10.42.0.0/16",
                         help="the cluster's pod range (the server's --cluster-cidr): "
                              "blackhole route, masquerade, kube-proxy")
    p_agent.add_argument("--service-cidr", default="10.43.0.0/16",
                         help="the cluster's Service range (the server's --service-cidr)")
    p_agent.add_argument("--cluster-dns", default="",
                         help="the cluster DNS address (default: the tenth address of "
                              "--service-cidr, as the server's)")
    p_agent.add_argument("-v", "--verbose", action="store_true")
    p_hollow = sub.add_parser("hollow-nodes", help="simulated nodes that run pods through "
                                                  "a fake runtime (scale tests)")
    p_hollow.add_argument("--count", type=int, required=True)
    p_hollow.add_argument("--prefix", default="hollow-node-")
    p_hollow.add_argument("--data-dir", default=default_data_dir())
    p_hollow.add_argument("--kubeconfig", default="", help="default: <data-dir>/kubeconfig.yaml")
    p_hollow.add_argument("-v", "--verbose", action="store_true")
    p_check = sub.add_parser("check", help="report what this machine lacks to run pyk8s")
    p_check.add_argument("--https-port", type=int, default=6443)
    p_check.add_argument("-v", "--verbose", action="store_true")
    p_images = sub.add_parser("images", help="import or list the node's images")
    images_sub = p_images.add_subparsers(dest="images_command", required=True)
    p_import = images_sub.add_parser("import", help="import OCI or docker archives")
    p_import.add_argument("archives", nargs="+")
    p_list = images_sub.add_parser("list", help="list the node's images")
    for p in (p_import, p_list):
        p.add_argument("--data-dir", default=default_data_dir())
        p.add_argument("-v", "--verbose", action="store_true")
    p_reset = sub.add_parser("reset", help="tear this machine's node down (pods, "
                                           "containerd, network rules); keeps the data")
    p_reset.add_argument("--data-dir", default=default_data_dir())
    p_reset.add_argument("-v", "--verbose", action="store_true")
    p_token = sub.add_parser("token", help="manage node join (bootstrap) tokens")
    token_sub = p_token.add_subparsers(dest="token_command", required=True)
    p_create = token_sub.add_parser("create", help="create a join token and print it")
    p_create.add_argument("--data-dir", default=default_data_dir())
    p_create.add_argument("--kubeconfig", default="")
    p_create.add_argument("--ttl", type=int, default=24 * 3600,
                          help="seconds until the token expires (0: never)")
    p_create.add_argument("--description", default="")
    p_create.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        logging.getLogger(__name__).debug("uvloop not installed; using asyncio's loop")
    if args.command == "hollow-nodes":
        asyncio.run(run_hollow(args))
        return 0
    if args.command == "agent":
        from .server import run_agent

        async def join() -> None:
            await run_agent(args, stop_event())
        asyncio.run(join())
        return 0
    if args.command == "check":
        from .check import main as check_main
        return check_main(args.https_port)
    if args.command == "images":
        return images(args)
    if args.command == "reset":
        from .reset import reset
        for note in asyncio.run(reset(os.path.abspath(args.data_dir))):
            print(f"pyk8s: {note}", flush=True)
        print("pyk8s: node reset", flush=True)
        return 0
    if args.command == "token":
        print(asyncio.run(create_bootstrap_token(args)), flush=True)
        return 0
    if args.command == "apiserver":
        asyncio.run(run_apiserver(args))
        return 0
    if args.command == "server":
        from .server import run_server

        async def serve() -> None:
            await run_server(args, start_apiserver, stop_event())
        asyncio.run(serve())
        return 0
    if args.command in ("controller-manager", "scheduler", "proxy", "dns"):
        asyncio.run(run_component(args))
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
