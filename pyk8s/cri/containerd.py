"""containerd as the node's CRI runtime: its config, and its process when we start it.

Each node gets its own containerd with everything under one base directory: root,
state, socket, runc root, opt dir, log. Two nodes on one machine differ only in that
directory and their CNI config, so they coexist.

Facts about containerd 1.6 on these machines that the config encodes:
- `restrict_oom_score_adj = true`: without it every sandbox fails ("can't get final
  child's PID from pipe") because root here lacks CAP_SYS_RESOURCE;
- `netns_mounts_under_state_dir = true`: pod network namespaces live under the state
  dir, not /var/run/netns, so a node's leftovers are found under its base dir;
- the runc root is per instance, so two containerds never see each other's runc state.

`Containerd.start` owns the process it spawns (recorded in a pidfile, stopped by
PID: SIGTERM, then SIGKILL) and adopts the one a previous run left running;
`Containerd.existing` wraps an endpoint someone else runs and never stops it.
Containers survive a containerd stop (their shims keep running): removing pods is
the kubelet's business, so is `unmount_under` for a node torn down for good.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from pyk8s.cri.remote import RemoteRuntime
from pyk8s.cri.runtime import CRIError, VersionInfo

# Upstream kubelet's default --pod-infra-container-image; built offline by
# pyk8s.kubelet.images.
DEFAULT_SANDBOX_IMAGE = "registry.k8s.io/pause:3.9"
# The containerd namespace the CRI plugin keeps its images and containers in.
CRI_NAMESPACE = "k8s.io"
# sun_path of a sockaddr_un is 108 bytes including the trailing NUL.
_MAX_SOCKET_PATH = 107


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContainerdConfig:
    """Where one containerd keeps its files and which CNI config it uses."""

    base_dir: Path
    cni_conf_dir: Path
    cni_bin_dir: Path = Path("/usr/lib/cni")
    sandbox_image: str = DEFAULT_SANDBOX_IMAGE
    snapshotter: str = "overlayfs"
    log_level: str = "info"

    @property
    def root(self) -> Path:
        return self.base_dir / "root"

    @property
    def state(self) -> Path:
        return self.base_dir / "state"

    @property
    def address(self) -> Path:
        return self.base_dir / "containerd.sock"

    @property
    def config_path(self) -> Path:
        return self.base_dir / "config.toml"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "containerd.log"

    @property
    def pid_path(self) -> Path:
        return self.base_dir / "containerd.pid"

    @property
    def runc_root(self) -> Path:
        return self.state / "runc"


def _s(value: object) -> str:
    """A TOML basic string (JSON's escapes are a subset TOML accepts)."""
    return json.dumps(str(value))


def render_config(c: ContainerdConfig) -> str:
    """containerd's config.toml (version 2) for `c`."""
    cri = '[plugins."io.containerd.grpc.v1.cri"'
    return f"""\
# Written by pyk8s; rewritten at every start.
version = 2
root = {_s(c.root)}
state = {_s(c.state)}
# Snapshotters this node never uses; skipping them keeps startup quiet and quick.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = {_s(c.address)}

[debug]
  level = {_s(c.log_level)}

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = {_s(c.root / "opt")}

  {cri}]
    sandbox_image = {_s(c.sandbox_image)}
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false

    {cri}.containerd]
      snapshotter = {_s(c.snapshotter)}
      default_runtime_name = "runc"

      {cri}.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"

        {cri}.containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = {_s(c.runc_root)}

    {cri}.cni]
      bin_dir = {_s(c.cni_bin_dir)}
      conf_dir = {_s(c.cni_conf_dir)}
      max_conf_num = 1
"""


def write_config(c: ContainerdConfig) -> Path:
    """Create the directories and write config.toml; returns its path."""
    if len(str(c.address)) > _MAX_SOCKET_PATH - len(".ttrpc"):
        raise ValueError(f"containerd socket path too long for a unix socket: {c.address}")
    for d in (c.base_dir, c.root, c.state, c.cni_conf_dir):
        d.mkdir(parents=True, exist_ok=True)
    c.config_path.write_text(render_config(c))
    return c.config_path


class _Process:
    """A containerd process by PID: our child (a Popen), or one adopted from a pidfile."""

    def __init__(self, pid: int, popen: subprocess.Popen | None = None):
        self.pid = pid
        self._popen = popen
        self.returncode: int | None = None

    def alive(self) -> bool:
        if self._popen is not None:
            self.returncode = self._popen.poll()  # also reaps our child
            return self.returncode is None
        # not our child: its parent reaps it, and /proc/<pid> goes away
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state != "Z"

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)


async def wait_ready(address: str | Path, *, timeout: float, interval: float = 0.05,
                     process: _Process | None = None,
                     log_path: Path | None = None) -> VersionInfo:
    """Poll until the CRI socket answers Version; raise TimeoutError at the deadline.

    With `process`, fail at once (RuntimeError with the log's tail) if it exits.
    """
    deadline = time.monotonic() + timeout
    last_error = "socket not created"
    while True:
        if process is not None and not process.alive():
            raise RuntimeError(f"containerd exited with {process.returncode} before it "
                               f"answered: {_tail(log_path)}")
        version = await _answers(address, min(1.0, max(deadline - time.monotonic(), interval)))
        if isinstance(version, VersionInfo):
            return version
        last_error = version
        if time.monotonic() >= deadline:
            raise TimeoutError(f"CRI endpoint {address} did not answer within {timeout}s "
                               f"({last_error}); {_tail(log_path)}")
        await asyncio.sleep(interval)


async def _answers(address: str | Path, timeout: float) -> VersionInfo | str:
    """The runtime's Version if the socket answers, else why not."""
    if not Path(address).is_socket():
        return "socket not created"
    runtime = RemoteRuntime(str(address))
    try:
        return await runtime.version(timeout=timeout)
    except CRIError as e:
        return f"{e.code}: {e.message}"
    finally:
        await runtime.close()


def _tail(path: Path | None, lines: int = 15) -> str:
    if path is None or not path.exists():
        return ""
    return "log tail:\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _adoptable(config: ContainerdConfig) -> _Process | None:
    """The containerd a previous run started with this config, if it still runs."""
    try:
        pid = int(config.pid_path.read_text())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if str(config.config_path).encode() not in argv:
        return None  # the PID was reused by something else
    process = _Process(pid)
    return process if process.alive() else None


class Containerd:
    """A containerd endpoint, and its process if this object started (or adopted) it."""

    def __init__(self, address: str | Path, *, process: _Process | None = None,
                 config: ContainerdConfig | None = None, version: VersionInfo | None = None):
        self.address = str(address)
        self.config = config
        self.version = version
        self._process = process

    @property
    def pid(self) -> int | None:
        """PID of the containerd we run; None for an existing endpoint."""
        return self._process.pid if self._process is not None else None

    @property
    def endpoint(self) -> str:
        return "unix://" + self.address

    @classmethod
    async def start(cls, config: ContainerdConfig, *, binary: str = "containerd",
                    timeout: float = 30.0) -> Containerd:
        """Write the config, spawn containerd, wait until its CRI answers Version.

        If the containerd a previous run started with this config still runs (the
        kubelet restarted, its pods kept running), it is adopted, not restarted.
        A different process answering on the socket is an error: two containerds
        must never share a root. On failure the spawned process is stopped again
        and the error carries its log tail.
        """
        adopted = await asyncio.to_thread(_adoptable, config)
        if adopted is not None:
            version = await wait_ready(config.address, timeout=timeout, process=adopted,
                                       log_path=config.log_path)
            return cls(config.address, process=adopted, config=config, version=version)
        if isinstance(await _answers(config.address, 1.0), VersionInfo):
            raise RuntimeError(f"a containerd not started by pyk8s already serves "
                               f"{config.address}; use Containerd.existing")
        await asyncio.to_thread(write_config, config)
        process = await asyncio.to_thread(_spawn, binary, config)
        try:
            version = await wait_ready(config.address, timeout=timeout, process=process,
                                       log_path=config.log_path)
        except BaseException:
            await _terminate(process, timeout=10.0)
            raise
        return cls(config.address, process=process, config=config, version=version)

    @classmethod
    async def existing(cls, endpoint: str, *, timeout: float = 30.0) -> Containerd:
        """Use a runtime someone else runs (`--container-runtime-endpoint`)."""
        address = endpoint.removeprefix("unix://")
        version = await wait_ready(address, timeout=timeout)
        return cls(address, version=version)

    def runtime(self, **kwargs) -> RemoteRuntime:
        """A new CRI client for this endpoint (close it when done)."""
        return RemoteRuntime(self.endpoint, **kwargs)

    async def stop(self, *, timeout: float = 10.0) -> int | None:
        """Stop the containerd this object runs (SIGTERM, SIGKILL at the deadline).

        Returns its exit status (None if adopted: not ours to reap); a no-op
        returning None for an existing endpoint.
        """
        if self._process is None:
            return None
        returncode = await _terminate(self._process, timeout=timeout)
        if self.config is not None:
            with contextlib.suppress(FileNotFoundError):
                self.config.pid_path.unlink()
        return returncode


def _spawn(binary: str, config: ContainerdConfig) -> _Process:
    with open(config.log_path, "ab") as log:
        popen = subprocess.Popen(
            [binary, "--config", str(config.config_path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            # its own session: it outlives us (pods keep running across kubelet
            # restarts) and a terminal's Ctrl-C reaches only us
            start_new_session=True)
    config.pid_path.write_text(f"{popen.pid}\n")
    return _Process(popen.pid, popen)


async def _terminate(process: _Process, *, timeout: float, interval: float = 0.05
                     ) -> int | None:
    """SIGTERM `process` by PID, poll until it exits, SIGKILL at the deadline."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not process.alive():
            break
        process.signal(sig)
        deadline = time.monotonic() + timeout
        while process.alive() and time.monotonic() < deadline:
            await asyncio.sleep(interval)
    if process.alive():
        raise TimeoutError(f"containerd (pid {process.pid}) did not exit after SIGKILL")
    return process.returncode


def mounts_under(base: Path) -> list[str]:
    """Mount points at or below `base`, deepest first (from /proc/self/mountinfo)."""
    prefix = str(base.resolve()).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            # field 5 is the mount point, with spaces etc. octal-escaped
            point = line.split()[4].encode().decode("unicode_escape")
            if (point + "/").startswith(prefix):
                found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


async def unmount_under(base: Path) -> list[str]:
    """Unmount everything below `base` (snapshots, netns, shm); returns what was.

    Passes repeat while they make progress, so stacked mounts go too.
    """
    unmounted: list[str] = []
    points = await asyncio.to_thread(mounts_under, base)
    while points:
        errors = {}
        for point in points:
            proc = await asyncio.create_subprocess_exec(
                "umount", "-R", point, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE)
            _, err = await proc.communicate()
            if proc.returncode != 0:
                errors[point] = err.decode().strip()
        unmounted += points
        left = await asyncio.to_thread(mounts_under, base)
        if left and set(left) >= set(points):
            raise RuntimeError(f"cannot unmount under {base}: {errors or left}")
        points = left
    return sorted(set(unmounted))


CGROUP_ROOT = Path("/sys/fs/cgroup")


def remove_cgroup_parent(parent: str, *, root: Path = CGROUP_ROOT) -> list[Path]:
    """Remove cgroupfs parent `parent` (e.g. a pod's) from every hierarchy.

    containerd 1.6 leaves the cgroup parents of sandboxes behind; the kubelet removes
    them once the pod's sandboxes are gone. Works on cgroup v1, hybrid and v2 layouts;
    children are removed first. A cgroup that still holds processes raises OSError
    (EBUSY). Returns the directories removed. Quick syscalls: no thread needed.
    """
    rel = parent.strip("/")
    if not rel:
        raise ValueError("refusing to remove the root cgroup")
    tops = [root / rel] + [d / rel for d in sorted(root.iterdir()) if d.is_dir()]
    removed = []
    for top in tops:
        if not top.is_dir():
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            os.rmdir(dirpath)
            removed.append(Path(dirpath))
    return removed
