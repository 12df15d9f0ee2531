"""Offline images: archives built from Debian packages, imported into containerd."""
from __future__ import annotations

import asyncio
import hashlib
import io
import json
import signal
import struct
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from pyk8s.cri.containerd import DEFAULT_SANDBOX_IMAGE
from pyk8s.cri.remote import RemoteRuntime
from pyk8s.cri.runtime import CRIError, ContainerState
from pyk8s.kubelet import images

from .helpers import poll

needs_toolchain = pytest.mark.skipif(
    bool(images.missing_build_tools()),
    reason=f"cannot build images, missing: {', '.join(images.missing_build_tools())}")


def read_archive(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def layer_of(files: dict[str, bytes]) -> tarfile.TarFile:
    index = json.loads(files["index.json"])
    manifest = json.loads(files["blobs/sha256/" + index["manifests"][0]["digest"][7:]])
    blob = files["blobs/sha256/" + manifest["layers"][0]["digest"][7:]]
    return tarfile.open(fileobj=io.BytesIO(blob))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if images.missing_build_tools():
        pytest.skip(f"cannot build images, missing: {', '.join(images.missing_build_tools())}")
    return {b.names[0]: b for b in asyncio.run(images.build_images(
        tmp_path_factory.mktemp("images")))}


def test_pause_is_the_default_sandbox_image():
    assert images.PAUSE_IMAGE == DEFAULT_SANDBOX_IMAGE


@needs_toolchain
async def test_archives_are_deterministic(built, tmp_path):
    again = await images.build_images(tmp_path)
    for b in again:
        first = built[b.names[0]]
        assert b.image_id == first.image_id
        assert b.path.read_bytes() == first.path.read_bytes()


@needs_toolchain
def test_archives_are_consistent_oci_layouts(built):
    for b in built.values():
        files = read_archive(b.path)
        assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
        for name, blob in files.items():
            if name.startswith("blobs/sha256/"):
                assert hashlib.sha256(blob).hexdigest() == name.rsplit("/", 1)[1]
        index = json.loads(files["index.json"])
        names = [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]]
        assert tuple(names) == b.names
        manifest = json.loads(files["blobs/sha256/" + index["manifests"][0]["digest"][7:]])
        config_digest = manifest["config"]["digest"]
        config = json.loads(files["blobs/sha256/" + config_digest[7:]])
        assert config_digest == b.image_id
        assert config["rootfs"]["diff_ids"] == [manifest["layers"][0]["digest"]]
        with tarfile.open(b.path) as tar:
            assert {m.mtime for m in tar.getmembers()} == {images.EPOCH}


@needs_toolchain
def test_image_tags(built):
    assert built[images.PAUSE_IMAGE].names == (images.PAUSE_IMAGE,)
    busybox = built[images.BUSYBOX_IMAGE].names
    assert busybox[0] == "docker.io/library/busybox:latest"
    assert any(n.startswith("docker.io/library/busybox:1.") for n in busybox[1:])
    assert built[images.NGINX_IMAGE].names[0] == "docker.io/library/nginx:latest"


@needs_toolchain
def test_busybox_and_nginx_layers(built):
    busybox = layer_of(read_archive(built[images.BUSYBOX_IMAGE].path))
    sh = busybox.getmember("bin/sh")
    assert sh.issym() and sh.linkname == "busybox"
    assert busybox.getmember("etc/passwd").isfile()
    assert busybox.getmember("tmp").mode == 0o1777

    nginx = layer_of(read_archive(built[images.NGINX_IMAGE].path))
    names = set(nginx.getnames())
    for lib in images.shared_libraries(images.NGINX_BINARY):
        assert str(lib).lstrip("/") in names, lib
    assert {"usr/sbin/nginx", "etc/nginx/nginx.conf", "etc/nginx/mime.types",
            "bin/sh"} <= names
    page = nginx.extractfile("usr/share/nginx/html/index.html").read().decode()
    assert "Welcome to nginx!" in page
    default = nginx.extractfile("etc/nginx/conf.d/default.conf").read().decode()
    assert "listen       80;" in default


@needs_toolchain
async def test_pause_exits_zero_on_sigterm(tmp_path):
    binary = await images.compile_pause(tmp_path)
    assert not _has_interpreter(binary), "pause must be static: the image has no libc"
    proc = subprocess.Popen([binary], stderr=subprocess.DEVNULL)
    try:
        # wait until its SIGTERM handler is installed (SigCgt in /proc)
        def catches_term() -> bool:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
            return False
        deadline = time.monotonic() + 5
        while not catches_term():
            assert time.monotonic() < deadline, "pause never installed its handler"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _has_interpreter(binary: Path) -> bool:
    """Whether the ELF64 binary has a PT_INTERP program header (a dynamic loader)."""
    data = binary.read_bytes()
    assert data[:5] == b"\x7fELF\x02", "not an ELF64 binary"
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return any(struct.unpack_from("<I", data, phoff + i * phentsize)[0] == 3
               for i in range(phnum))


# ---- in containerd (root) ----------------------------------------------------------

@pytest.mark.root
async def test_images_resolve_by_short_names(node, runtime: RemoteRuntime):
    ids = {b.names[0]: b.image_id for b in node.built}
    for ref, canonical in [("busybox", images.BUSYBOX_IMAGE), ("nginx", images.NGINX_IMAGE),
                           ("nginx:latest", images.NGINX_IMAGE),
                           ("docker.io/library/busybox:latest", images.BUSYBOX_IMAGE),
                           (images.PAUSE_IMAGE, images.PAUSE_IMAGE)]:
        image = await runtime.image_status(ref)
        assert image is not None, ref
        assert image.id == ids[canonical]
        assert canonical in image.repo_tags
    assert await runtime.image_status("example.invalid/nothing:1") is None
    listed = {t for i in await runtime.list_images() for t in i.repo_tags}
    assert set(ids) <= listed


@pytest.mark.root
async def test_pull_of_a_present_image_fails_offline(node, runtime: RemoteRuntime):
    # containerd 1.6's PullImage always asks the registry, even for a present image:
    # the kubelet must check ImageStatus first and use what is there.
    with pytest.raises(CRIError) as err:
        await runtime.pull_image("busybox")
    assert "failed to resolve reference" in err.value.message
    assert await runtime.image_status("busybox") is not None


def _docker_archive(repo_tag: str, layer: bytes, config: dict) -> bytes:
    config_blob = json.dumps(config).encode()
    config_name = hashlib.sha256(config_blob).hexdigest() + ".json"
    layer_name = hashlib.sha256(layer).hexdigest() + "/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [repo_tag],
                            "Layers": [layer_name]}]).encode()
    out = images.Layer()
    for name, data in ((config_name, config_blob), (layer_name, layer),
                       ("manifest.json", manifest)):
        out.file(name, data)
    return out.tar()


@pytest.mark.root
async def test_airgap_archives_are_imported(node, runtime: RemoteRuntime):
    layer = images.Layer()
    layer.file("hello.txt", "air-gapped\n")
    oci, oci_id = images.oci_archive(repository="example.invalid/pyk8s/airgap-oci",
                                     tags=["1.0"], layer=layer.tar(),
                                     config={"Cmd": ["/hello.txt"]})
    docker = _docker_archive("example.invalid/pyk8s/airgap-docker:2.0", layer.tar(), {
        "architecture": images._arch(), "os": "linux",
        "config": {"Cmd": ["/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [
            "sha256:" + hashlib.sha256(layer.tar()).hexdigest()]}})
    _, drop_dir = images.data_paths(node.data_dir)
    drop_dir.mkdir(parents=True, exist_ok=True)
    (drop_dir / "oci.tar").write_bytes(oci)
    (drop_dir / "docker.tar").write_bytes(docker)
    (drop_dir / "notes.txt").write_text("not an archive: ignored")
    try:
        assert [p.name for p in images.airgap_archives(node.data_dir)] == [
            "docker.tar", "oci.tar"]
        await images.ensure_images(node.data_dir, address=node.address)
        image = await runtime.image_status("example.invalid/pyk8s/airgap-oci:1.0")
        assert image is not None and image.id == oci_id
        assert await runtime.image_status("example.invalid/pyk8s/airgap-docker:2.0")
    finally:
        for name in ("oci.tar", "docker.tar", "notes.txt"):
            (drop_dir / name).unlink()
        for ref in ("example.invalid/pyk8s/airgap-oci:1.0",
                    "example.invalid/pyk8s/airgap-docker:2.0"):
            await runtime.remove_image(ref)
    assert await runtime.image_status("example.invalid/pyk8s/airgap-oci:1.0") is None


@pytest.mark.root
async def test_pause_reaps_orphans_in_a_shared_pid_namespace(node, runtime: RemoteRuntime,
                                                             pods):
    pod = await pods("reaper", share_pid=True)
    # the subshell exits at once, so `sleep 0.2` is re-parented to PID 1: pause
    config = {"metadata": {"name": "orphans"}, "image": {"image": "busybox"},
              "command": ["sh", "-c", "(sleep 0.2 &); exec sleep 3600"],
              "log_path": "orphans/0.log"}
    cid = await runtime.create_container(pod.id, config, pod.config)
    await runtime.start_container(cid)

    async def ps() -> str:
        return (await runtime.exec_sync(cid, ["ps", "-o", "pid,stat,args"])).stdout.decode()
    assert "/pause" in await ps()

    async def reaped() -> bool:
        table = await ps()
        return "sleep 0.2" not in table and " Z " not in table
    await poll(reaped, timeout=10, what="pause to reap the orphaned sleep")
    assert (await runtime.container_status(cid)).state == ContainerState.RUNNING
