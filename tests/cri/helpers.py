"""Small helpers shared by the CRI tests."""
from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Awaitable, Callable

from pyk8s.kubelet import images


async def poll(check: Callable[[], Awaitable], *, timeout: float = 30.0,
               interval: float = 0.05, what: str = "condition"):
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
    """Why the real-containerd tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (containerd, network namespaces, mounts)"
    for tool in ("containerd", "runc", "ctr", "gcc", "ip", "umount"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    if not Path("/usr/lib/cni/bridge").exists():
        return "containernetworking-plugins not installed (/usr/lib/cni/bridge)"
    missing = images.missing_build_tools()
    if missing:
        return f"cannot build images, missing: {', '.join(missing)}"
    return None
