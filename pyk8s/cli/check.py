"""`pyk8s check`: what this machine lacks to run a pyk8s server or node, in plain words."""
from __future__ import annotations

import os
import shutil
import socket


def checks(port: int = 6443) -> list[tuple[bool, str]]:
    out: list[tuple[bool, str]] = []
    root = os.geteuid() == 0
    out.append((root, "running as root" if root else
                "not root: the node (containerd, pod network, nftables) needs root; the "
                "control plane runs without it (pyk8s server --disable-agent)"))
    for tool, why in (("containerd", "runs the pods"), ("runc", "containerd's runtime"),
                      ("nft", "kube-proxy's rules"), ("ip", "routes and links (iproute2)"),
                      ("kubectl", "the user's tool"), ("etcd", "only for an etcd datastore")):
        found = shutil.which(tool)
        out.append((bool(found), f"{tool}: {found}" if found else
                    f"{tool} not found ({why}); make setup installs it"))
    cni = os.path.isdir("/usr/lib/cni") and os.path.exists("/usr/lib/cni/bridge")
    out.append((cni, "CNI plugins in /usr/lib/cni" if cni else
                "CNI plugins missing (/usr/lib/cni/bridge); install containernetworking-plugins"))
    cgroup = os.path.exists("/sys/fs/cgroup/cgroup.controllers") or \
        os.path.isdir("/sys/fs/cgroup/memory")
    out.append((cgroup, "cgroups mounted" if cgroup else "no cgroup filesystem mounted"))
    for p, what in ((port, "API server"), (10250, "kubelet")):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", p))
                free = True
            except OSError:
                free = False
        out.append((free, f"port {p} free ({what})" if free else
                    f"port {p} is in use: another {what} is running, or pass another port"))
    return out


def main(port: int) -> int:
    problems = 0
    for ok, text in checks(port):
        print(("ok    " if ok else "MISSING ") + text)
        problems += not ok
    return 1 if problems else 0
