"""`pyk8s` entry point: sub-commands for the whole server and each component.

``server`` runs the control plane on one process (an embedded node joins it as
the kubelet work lands); ``apiserver`` runs the API server alone; ``kubectl`` runs
the real kubectl with this cluster's admin kubeconfig.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys

from aiohttp import web


def default_data_dir() -> str:
    return "/var/lib/pyk8s" if os.geteuid() == 0 else os.path.expanduser("~/.pyk8s")


def _add_server_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--https-port", type=int, default=6443)
    p.add_argument("--bind-address", default="127.0.0.1")
    p.add_argument("--advertise-address", default="127.0.0.1")
    p.add_argument("--datastore-endpoint", default="",
                   help="sqlite:///path (default: <data-dir>/server/db/state.db) or "
                        "etcd://host:port[,host:port...]")
    p.add_argument("--service-cidr", default="10.43.0.0/16")
    p.add_argument("--cluster-cidr", default="10.42.0.0/16")
    p.add_argument("--tls-san", action="append", default=[])
    p.add_argument("--write-kubeconfig", default="",
                   help="where to write the admin kubeconfig (default "
                        "<data-dir>/kubeconfig.yaml)")
    p.add_argument("-v", "--verbose", action="store_true")


async def run_apiserver(args: argparse.Namespace) -> None:
    from ..apiserver.app import APIServer
    from ..pki import ensure_server_tls, kubeconfig, write_kubeconfig
    from ..storage import open_store
    import ipaddress

    data_dir = os.path.abspath(args.data_dir)
    os.makedirs(data_dir, exist_ok=True)
    service_ip = str(ipaddress.ip_network(args.service_cidr).network_address + 1)
    tls = ensure_server_tls(data_dir, hosts=tuple([args.advertise_address, args.bind_address]
                                                  + args.tls_san), service_ip=service_ip)
    store = open_store(args.datastore_endpoint, data_dir=data_dir)
    advertise = f"{args.advertise_address}:{args.https_port}"
    server = APIServer(store, advertise=advertise, service_cidr=args.service_cidr)
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
    write_kubeconfig(path, kubeconfig(f"https://{host}:{args.https_port}", tls.ca,
                                      tls.admin))
    print(f"pyk8s: API server ready on https://{host}:{args.https_port}", flush=True)
    print(f"pyk8s: admin kubeconfig written to {path}", flush=True)
    print(f"pyk8s: try: KUBECONFIG={path} kubectl get namespaces", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("pyk8s: shutting down", flush=True)
    await runner.cleanup()
    await server.close()


def cmd_kubectl(argv: list[str]) -> int:
    data_dir = os.environ.get("PYK8S_DATA_DIR", default_data_dir())
    env = dict(os.environ)
    env.setdefault("KUBECONFIG", os.path.join(data_dir, "kubeconfig.yaml"))
    os.execvpe("kubectl", ["kubectl"] + argv, env)
    return 127


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["kubectl"]:
        return cmd_kubectl(argv[1:])
    parser = argparse.ArgumentParser(prog="pyk8s", description="Kubernetes, in Python")
    sub = parser.add_subparsers(dest="command", required=True)
    p_server = sub.add_parser("server", help="run the control plane (k3s-style server)")
    _add_server_flags(p_server)
    p_server.add_argument("--disable-agent", action="store_true",
                          help="do not run an embedded node")
    p_api = sub.add_parser("apiserver", help="run the API server alone")
    _add_server_flags(p_api)
    sub.add_parser("kubectl", help="run kubectl with this cluster's admin kubeconfig")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        logging.getLogger(__name__).debug("uvloop not installed; using asyncio's loop")
    if args.command in ("server", "apiserver"):
        if args.command == "server" and not args.disable_agent:
            print("pyk8s: the embedded node (kubelet) has not landed yet; running the "
                  "control plane only", flush=True)
        asyncio.run(run_apiserver(args))
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
