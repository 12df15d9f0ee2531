"""containerd's config and process, the CNI conflist, and node cleanup helpers."""
from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from pyk8s.cri import cni
from pyk8s.cri.containerd import (
    Containerd, ContainerdConfig, mounts_under, remove_cgroup_parent, render_config,
    unmount_under, wait_ready,
)

from .helpers import missing_requirements

CRI = "io.containerd.grpc.v1.cri"


def test_config_carries_what_this_machine_needs(tmp_path):
    c = ContainerdConfig(base_dir=tmp_path / "ctd", cni_conf_dir=tmp_path / "net.d")
    toml = tomllib.loads(render_config(c))
    assert toml["version"] == 2
    assert (toml["root"], toml["state"]) == (str(c.root), str(c.state))
    assert toml["grpc"]["address"] == str(c.address)
    cri = toml["plugins"][CRI]
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.9"
    assert cri["restrict_oom_score_adj"] is True
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["containerd"]["snapshotter"] == "overlayfs"
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"] == {"SystemdCgroup": False, "Root": str(c.runc_root)}
    assert cri["cni"]["bin_dir"] == "/usr/lib/cni"
    assert cri["cni"]["conf_dir"] == str(c.cni_conf_dir)
    for path in (c.root, c.state, c.address, c.runc_root):
        assert str(path).startswith(str(c.base_dir))


def test_bridge_conflist(tmp_path):
    conflist = cni.bridge_conflist(subnet="10.42.3.0/24", bridge="cni-pyk8s0",
                                   ipam_dir=tmp_path / "ipam")
    bridge, portmap = conflist["plugins"]
    assert (bridge["type"], bridge["bridge"], bridge["isGateway"]) == (
        "bridge", "cni-pyk8s0", True)
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.42.3.0/24", "gateway": "10.42.3.1"}]]
    assert bridge["ipam"]["dataDir"] == str(tmp_path / "ipam")
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}}
    path = cni.write_conflist(tmp_path / "net.d", conflist)
    assert json.loads(path.read_text()) == conflist
    with pytest.raises(ValueError):
        cni.bridge_conflist(subnet="10.42.3.0/24", bridge="a-bridge-name-too-long")


async def test_a_containerd_that_dies_at_start_reports_why(tmp_path):
    c = ContainerdConfig(base_dir=tmp_path / "ctd", cni_conf_dir=tmp_path / "net.d")
    with pytest.raises(RuntimeError, match="exited with 1"):
        await Containerd.start(c, binary="false", timeout=10)


async def test_waiting_for_a_socket_has_a_deadline(tmp_path):
    with pytest.raises(TimeoutError, match="did not answer within 0.2s"):
        await wait_ready(tmp_path / "none.sock", timeout=0.2)


def test_remove_cgroup_parent_removes_children_first(tmp_path):
    for hierarchy in ("memory", "cpu,cpuacct"):
        (tmp_path / hierarchy / "pyk8s-x" / "podA" / "ctr").mkdir(parents=True)
        (tmp_path / hierarchy / "other").mkdir()
    removed = remove_cgroup_parent("/pyk8s-x", root=tmp_path)
    assert len(removed) == 6
    assert sorted(p.name for p in tmp_path.glob("*/*")) == ["other", "other"]
    with pytest.raises(ValueError):
        remove_cgroup_parent("/", root=tmp_path)


def needs_root(test):
    return pytest.mark.root(pytest.mark.skipif(
        missing_requirements() is not None, reason=str(missing_requirements()))(test))


@needs_root
async def test_unmount_under(tmp_path):
    (tmp_path / "a").mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(tmp_path / "a")], check=True)
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(tmp_path / "a")], check=True)
        (tmp_path / "a" / "c").mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(tmp_path / "a" / "c")],
                       check=True)
        assert len(mounts_under(tmp_path)) == 2  # stacked mounts share a mount point
        assert await unmount_under(tmp_path) == [str(tmp_path / "a"),
                                                 str(tmp_path / "a" / "c")]
        assert mounts_under(tmp_path) == []
    finally:
        for _ in range(3):
            subprocess.run(["umount", "-R", str(tmp_path / "a")], capture_output=True)


@needs_root
async def test_start_adopt_and_stop_by_pid(tmp_path):
    c = ContainerdConfig(base_dir=tmp_path / "ctd", cni_conf_dir=tmp_path / "net.d")
    first = await Containerd.start(c)
    try:
        assert first.version.runtime_name == "containerd"
        assert int(c.pid_path.read_text()) == first.pid
        # a restarted kubelet finds its containerd still running and adopts it
        again = await Containerd.start(c)
        assert again.pid == first.pid
        # without our pidfile it is someone else's: never start a second one on it
        c.pid_path.unlink()
        with pytest.raises(RuntimeError, match="already serves"):
            await Containerd.start(c)
        c.pid_path.write_text(f"{first.pid}\n")
        assert await again.stop() is None  # adopted: stopped, but not ours to reap
        assert not Path(f"/proc/{first.pid}").exists() or _zombie(first.pid)
        assert not c.pid_path.exists()
    finally:
        await first.stop()
        await unmount_under(tmp_path)
    assert first._process.returncode == 0  # our child: reaped, exit status known


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def test_pidfile_for_a_reused_pid_is_ignored(tmp_path):
    from pyk8s.cri.containerd import _adoptable
    c = ContainerdConfig(base_dir=tmp_path, cni_conf_dir=tmp_path / "net.d")
    c.pid_path.write_text(f"{os.getpid()}\n")  # alive, but not a containerd of c
    assert _adoptable(c) is None
