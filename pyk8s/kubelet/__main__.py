"""`python -m pyk8s.kubelet`: run one node's kubelet (the `pyk8s agent` of later).

Flags follow upstream's kubelet where one exists (--kubeconfig, --node-ip,
--pod-cidr, --container-runtime-endpoint, --cluster-dns, --cluster-domain,
--address, --port, --tls-cert-file, --tls-private-key-file, --client-ca-file,
--anonymous-auth, --authentication-token-webhook, --authorization-mode,
--pod-manifest-path, --file-check-frequency, --manifest-url, --manifest-url-header,
--http-check-frequency, --sync-frequency, --eviction-hard,
--eviction-soft, --eviction-soft-grace-period, --eviction-max-pod-grace-period,
--eviction-minimum-reclaim, --eviction-pressure-transition-period); eviction flags
are refused as upstream's ParseThresholdConfig refuses them (a soft threshold
without a grace period too), with its message;
SIGINT/SIGTERM stop the kubelet and leave containerd and the pods running.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import socket
import sys
from pathlib import Path

from pyk8s.kubelet import eviction
from pyk8s.kubelet.auth import AuthConfig
from pyk8s.kubelet.eviction import ThresholdError
from pyk8s.kubelet.kubelet import run
from pyk8s.kubelet.node import DEFAULT_BRIDGE
from pyk8s.kubelet.settings import DEFAULT_EVICTION_HARD, KubeletSettings


def default_data_dir() -> str:
    return "/var/lib/pyk8s" if os.geteuid() == 0 else os.path.expanduser("~/.pyk8s")


_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def duration(text: str) -> float:
    """A Go duration ("20s", "1m30s", "500ms") in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _flag(parse):
    """An argparse type from an eviction parser (its ThresholdError is the message)."""
    def convert(text: str):
        try:
            return parse(text)
        except ThresholdError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    convert.__name__ = parse.__name__
    return convert


eviction_hard = _flag(eviction.parse_eviction_thresholds)
eviction_soft = _flag(eviction.parse_eviction_thresholds)
eviction_grace_periods = _flag(eviction.parse_grace_periods)
eviction_minimum_reclaim = _flag(eviction.parse_minimum_reclaims)


def url_headers(text: str) -> list[tuple[str, str]]:
    """`a:hello,b:again` as (name, value) pairs (upstream's
    ColonSeparatedMultimapStringString; the flag may repeat, its pairs add up)."""
    pairs = []
    for pair in text.split(","):
        if not pair:
            continue
        name, colon, value = pair.partition(":")
        if not colon:
            raise argparse.ArgumentTypeError("malformed pair, expect string:string")
        pairs.append((name.strip(), value.strip()))
    return pairs


def go_bool(text: str) -> bool:
    """A boolean flag value as Go's strconv.ParseBool reads it."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyk8s-kubelet", description="the pyk8s kubelet")
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--kubeconfig", default="",
                   help="default: <data-dir>/kubeconfig.yaml")
    p.add_argument("--hostname-override", default="", help="the node's name")
    p.add_argument("--node-ip", default="")
    p.add_argument("--pod-cidr", default="")
    p.add_argument("--bridge", default=DEFAULT_BRIDGE)
    p.add_argument("--container-runtime-endpoint", default="")
    p.add_argument("--cluster-dns", default="10.43.0.10")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--cgroup-root", default="/kubepods")
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=10250)
    p.add_argument("--tls-cert-file", default="")
    p.add_argument("--tls-private-key-file", default="")
    p.add_argument("--client-ca-file", default="")
    p.add_argument("--anonymous-auth", type=go_bool, nargs="?", const=True, default=True,
                   help="serve requests without credentials as system:anonymous "
                        "(default true)")
    p.add_argument("--authentication-token-webhook", type=go_bool, nargs="?", const=True,
                   default=False, help="check bearer tokens with TokenReviews")
    p.add_argument("--authorization-mode", choices=("AlwaysAllow", "Webhook"),
                   default="AlwaysAllow", help="Webhook: ask SubjectAccessReviews")
    p.add_argument("--node-labels", default="", help="key=value,key=value")
    p.add_argument("--pod-manifest-path", default="",
                   help="static pod manifests (default <data-dir>/agent/manifests)")
    p.add_argument("--file-check-frequency", type=duration, default=20.0,
                   help="how often the manifest directory is read again (default 20s)")
    p.add_argument("--manifest-url", default="",
                   help="URL for accessing additional Pod specifications to run")
    p.add_argument("--manifest-url-header", type=url_headers, action="append", default=[],
                   help="comma-separated name:value HTTP headers for --manifest-url, e.g. "
                        "'a:hello,b:again'; may repeat, a repeated name adds a value")
    p.add_argument("--http-check-frequency", type=duration, default=20.0,
                   help="how often the manifest URL is fetched again (default 20s)")
    p.add_argument("--sync-frequency", type=duration, default=60.0,
                   help="max period between syncing a pod and its config (default 1m0s)")
    p.add_argument("--eviction-hard", type=eviction_hard, default=DEFAULT_EVICTION_HARD,
                   help="hard eviction thresholds, e.g. memory.available<100Mi,"
                        "nodefs.available<10%%")
    p.add_argument("--eviction-soft", type=eviction_soft, default=(),
                   help="soft eviction thresholds, e.g. memory.available<1.5Gi, held for "
                        "their grace period before a pod is evicted")
    p.add_argument("--eviction-soft-grace-period", type=eviction_grace_periods, default=(),
                   help="how long each soft threshold must hold, e.g. "
                        "memory.available=1m30s")
    p.add_argument("--eviction-max-pod-grace-period", type=int, default=0,
                   help="maximum grace period (seconds) of a pod evicted for a soft "
                        "threshold (default 0)")
    p.add_argument("--eviction-minimum-reclaim", type=eviction_minimum_reclaim, default=(),
                   help="how far past its threshold a signal must recover, e.g. "
                        "memory.available=0Mi,nodefs.available=500Mi")
    p.add_argument("--eviction-pressure-transition-period", type=duration, default=300.0,
                   help="how long a pressure condition outlives its threshold (default 5m0s)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def settings_from(args: argparse.Namespace) -> KubeletSettings:
    labels = tuple(tuple(item.split("=", 1)) for item in args.node_labels.split(",")
                   if "=" in item)
    return KubeletSettings(
        node_name=(args.hostname_override or socket.gethostname()).lower(),
        data_dir=Path(args.data_dir).absolute(), pod_cidr=args.pod_cidr,
        node_ip=args.node_ip, node_labels=labels,
        cluster_dns=tuple(d for d in args.cluster_dns.split(",") if d),
        cluster_domain=args.cluster_domain, cgroup_root=args.cgroup_root,
        address=args.address, port=args.port,
        static_pod_path=Path(args.pod_manifest_path).absolute() if args.pod_manifest_path
        else None, file_check_frequency=args.file_check_frequency,
        manifest_url=args.manifest_url,
        manifest_url_header=tuple(h for flag in args.manifest_url_header for h in flag),
        http_check_frequency=args.http_check_frequency,
        sync_frequency=args.sync_frequency, eviction_hard=args.eviction_hard,
        eviction_soft=args.eviction_soft,
        eviction_soft_grace_period=args.eviction_soft_grace_period,
        eviction_max_pod_grace_period=args.eviction_max_pod_grace_period,
        eviction_minimum_reclaim=args.eviction_minimum_reclaim,
        eviction_pressure_transition_period=args.eviction_pressure_transition_period)


def check_eviction(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit as for a bad flag when the eviction flags do not fit together."""
    try:
        eviction.parse_threshold_config(args.eviction_hard, args.eviction_soft,
                                        args.eviction_soft_grace_period,
                                        args.eviction_minimum_reclaim)
    except ThresholdError as e:
        p.error(str(e))


async def _main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    settings = settings_from(args)
    kubeconfig = args.kubeconfig or str(settings.data_dir / "kubeconfig.yaml")

    def started(kubelet) -> None:
        print(f"pyk8s: kubelet {settings.node_name} ready (pod CIDR "
              f"{kubelet.node_status.pod_cidr})", flush=True)

    await run(settings, kubeconfig=kubeconfig, container_runtime_endpoint=(
        args.container_runtime_endpoint), bridge=args.bridge, tls_cert=args.tls_cert_file,
        tls_key=args.tls_private_key_file, client_ca=args.client_ca_file, stop=stop,
        started=started, auth=AuthConfig(
            anonymous=args.anonymous_auth, token_webhook=args.authentication_token_webhook,
            authorization_mode=args.authorization_mode))


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    check_eviction(p, args)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
