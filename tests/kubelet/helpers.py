"""Pods as the API server stores them, and small waits shared by the kubelet tests."""
from __future__ import annotations

import asyncio
import copy
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Awaitable, Callable

from pyk8s.kubelet import images

NODE = "node-a"


def container(name: str = "app", image: str = "busybox", **extra) -> dict:
    c = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
         "terminationMessagePath": "/dev/termination-log",
         "terminationMessagePolicy": "File", "resources": {}}
    c.update(extra)
    return c


def pod(name: str = "web", *, containers: list[dict] | None = None,
        init: list[dict] | None = None, restart: str = "Always", namespace: str = "default",
        node: str = NODE, uid: str | None = None, **spec) -> dict:
    """A pod with the defaults the API server fills in."""
    body = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": uid or str(uuid.uuid4()),
                         "resourceVersion": "1", "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"containers": containers or [container()], "restartPolicy": restart,
                     "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                     "nodeName": node, "schedulerName": "default-scheduler",
                     "securityContext": {}},
            "status": {"phase": "Pending", "qosClass": "BestEffort"}}
    if init:
        body["spec"]["initContainers"] = init
    body["spec"].update(spec)
    return body


def with_status(p: dict, status: dict) -> dict:
    p = copy.deepcopy(p)
    p["status"] = status
    return p


async def poll(check: Callable[[], Awaitable], *, timeout: float = 20.0,
               interval: float = 0.1, what: str = "condition"):
    """Await `check()` until it returns something truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def missing_requirements() -> str | None:
    """Why a real node cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (containerd, network namespaces, mounts)"
    for tool in ("containerd", "runc", "ctr", "gcc", "ip", "umount", "kubectl"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    if not Path("/usr/lib/cni/bridge").exists():
        return "containernetworking-plugins not installed (/usr/lib/cni/bridge)"
    missing = images.missing_build_tools()
    if missing:
        return f"cannot build images, missing: {', '.join(missing)}"
    return None
