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
    p.add_argument("--anonymous-auth", default="true", choices=("true", "false"),
                   help="serve requests without credentials as system:anonymous")
    p.add_argument("--audit-policy-file", default="",
                   help="an audit.k8s.io/v1 Policy; with --audit-log-path, log who did what")
    p.add_argument("--audit-log-path", default="", help="JSON-lines audit log file")
    p.add_argument("--encryption-provider-config", default="",
                   help="an apiserver.config.k8s.io/v1 EncryptionConfiguration: encrypt "
                        "those resources (e.g. secrets) in the datastore")
    p.add_argument("-v", "--verbose", action="store_true")


async def run_apiserver(args: argparse.Namespace) -> None:
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
    store = open_store(args.datastore_endpoint, data_dir=data_dir)
    if args.encryption_provider_config:
        from ..storage.encryption import EncryptingStore
        store = EncryptingStore.from_file(store, args.encryption_provider_config)
    advertise = f"{args.advertise_address}:{args.https_port}"
    security = SecurityConfig(data_dir=data_dir, anonymous=args.anonymous_auth == "true",
                              audit_policy_file=args.audit_policy_file,
                              audit_log_path=args.audit_log_path)
    server = APIServer(store, advertise=advertise, service_cidr=args.service_cidr,
                       security=security)
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
    ensure_component_credentials(data_dir, f"https://{host}:{args.https_port}", tls.ca)
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
    parser = argparse.ArgumentParser(prog="pyk8s", description="Kubernetes, in Python")
    sub = parser.add_subparsers(dest="command", required=True)
    p_server = sub.add_parser("server", help="run the control plane (k3s-style server)")
    _add_server_flags(p_server)
    p_server.add_argument("--disable-agent", action="store_true",
                          help="do not run an embedded node")
    p_api = sub.add_parser("apiserver", help="run the API server alone")
    _add_server_flags(p_api)
    sub.add_parser("kubectl", help="run kubectl with this cluster's admin kubeconfig")
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
    if args.command == "token":
        print(asyncio.run(create_bootstrap_token(args)), flush=True)
        return 0
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
