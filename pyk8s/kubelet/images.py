"""Container images without a registry: built from the machine's Debian packages.

These machines reach no registry, so a node builds the images pods need most as OCI
image-layout archives and imports them into its containerd (`ctr images import`):

- `registry.k8s.io/pause:3.9`: pause.c next to this file, compiled `gcc -static`;
- `docker.io/library/busybox`: busybox-static, its applets linked in /bin;
- `docker.io/library/nginx`: Debian's nginx binary with the shared libraries `ldd`
  lists, upstream's config layout, a "Welcome to nginx!" page on port 80, run in the
  foreground (`daemon off;`), plus busybox for a shell.

Each image is one uncompressed layer; archives are deterministic (sorted entries,
fixed mtimes and owners), so the same machine yields the same image ids every time.
Tags: `latest` and the packaged version (`busybox:1.35`, `busybox:1.35.0`,
`nginx:1.22`, `nginx:1.22.1`), so `busybox` and `nginx` resolve as on Docker Hub.

Archives users drop into `<data-dir>/agent/images/` (OCI or `docker save`, as k3s'
air-gap images) are imported too: `.tar`, and compressed as k3s takes them,
`.tar.gz`/`.tgz` and `.tar.bz2`/`.tbz` (Python's gzip and bz2), `.tar.zst`/`.tzst`
(the `zstd` tool) and `.tar.lz4` (the `lz4` tool), decompressed on the way into
`ctr images import -`. Files of other kinds are skipped with a log line; a compressed
archive whose tool is missing is skipped with a warning naming it. `pyk8s images
import FILE` takes the same compressed kinds. Blocking work (gcc, ldd, tar writing,
decompression) runs in subprocesses or threads.
"""
from __future__ import annotations

import asyncio
import bz2
import dataclasses
import gzip
import hashlib
import io
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import tarfile
import zlib
from pathlib import Path
from typing import Iterable

PAUSE_IMAGE = "registry.k8s.io/pause:3.9"
BUSYBOX_IMAGE = "docker.io/library/busybox:latest"
NGINX_IMAGE = "docker.io/library/nginx:latest"
CRI_NAMESPACE = "k8s.io"
log = logging.getLogger(__name__)

PAUSE_SOURCE = Path(__file__).with_name("pause.c")
BUSYBOX_BINARY = Path("/bin/busybox")
NGINX_BINARY = Path("/usr/sbin/nginx")
NGINX_MIME_TYPES = Path("/etc/nginx/mime.types")
GCC_FLAGS = ("-static", "-Os", "-s", "-Wall", "-Wl,--build-id=none")

# Every file in every layer carries this mtime (2023-01-01T00:00:00Z) and root owner.
EPOCH = 1672531200
CREATED = "2023-01-01T00:00:00Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"


class ImageBuildError(RuntimeError):
    """An image could not be built (missing package file, gcc failure...)."""


class ImageImportError(RuntimeError):
    """`ctr images import` failed for an archive."""


@dataclasses.dataclass(frozen=True, slots=True)
class BuiltImage:
    names: tuple[str, ...]  # fully qualified references, `latest` first
    path: Path  # the OCI archive
    image_id: str  # sha256 of the config: CRI's image id


def data_paths(data_dir: Path) -> tuple[Path, Path]:
    """(where built archives and the pause binary are cached, the air-gap drop dir)."""
    agent = data_dir / "agent"
    return agent / "builtin-images", agent / "images"


# ---- layers ---------------------------------------------------------------------

class Layer:
    """A filesystem tree built in memory and written as a deterministic tar."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[bytes, int, str, bytes]] = {}

    def _parents(self, path: str) -> None:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in self._entries:
                self._entries[parent] = (tarfile.DIRTYPE, 0o755, "", b"")

    def dir(self, path: str, mode: int = 0o755) -> None:
        path = path.strip("/")
        self._parents(path)
        self._entries[path] = (tarfile.DIRTYPE, mode, "", b"")

    def file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        path = path.strip("/")
        self._parents(path)
        self._entries[path] = (tarfile.REGTYPE, mode, "",
                               data.encode() if isinstance(data, str) else data)

    def copy(self, path: str, source: Path, mode: int | None = None) -> None:
        """The content of host file `source` (symlinks followed) at `path`."""
        try:
            data = source.read_bytes()
            st_mode = source.stat().st_mode
        except OSError as e:
            raise ImageBuildError(f"cannot read {source}: {e}") from None
        self.file(path, data, mode if mode is not None else st_mode & 0o7777)

    def symlink(self, path: str, target: str) -> None:
        path = path.strip("/")
        self._parents(path)
        self._entries[path] = (tarfile.SYMTYPE, 0o777, target, b"")

    def tar(self) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(self._entries):
                kind, mode, link, data = self._entries[path]
                info = tarfile.TarInfo(path)
                info.type, info.mode, info.linkname = kind, mode, link
                info.mtime, info.uid, info.gid, info.uname, info.gname = EPOCH, 0, 0, "", ""
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        return buf.getvalue()


def _base_files(layer: Layer, *, users: Iterable[str], groups: Iterable[str]) -> None:
    for d in ("dev", "proc", "sys", "root", "home", "var", "etc"):
        layer.dir(d, 0o700 if d == "root" else 0o755)
    layer.dir("tmp", 0o1777)
    layer.file("etc/passwd", "".join(u + "\n" for u in users))
    layer.file("etc/group", "".join(g + "\n" for g in groups))
    layer.file("etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n")


def _busybox_into(layer: Layer) -> list[str]:
    """busybox-static at /bin/busybox with a /bin symlink per applet."""
    layer.copy("bin/busybox", BUSYBOX_BINARY, 0o755)
    applets = _applets()
    for applet in applets:
        if applet != "busybox":
            layer.symlink(f"bin/{applet}", "busybox")
    return applets


def _applets() -> list[str]:
    try:
        out = subprocess.run([str(BUSYBOX_BINARY), "--list"], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise ImageBuildError(f"busybox --list failed (is busybox-static installed?): {e}")
    return sorted({a for a in out.split() if "/" not in a})


# ---- OCI archives ---------------------------------------------------------------

def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oci_archive(*, repository: str, tags: Iterable[str], layer: bytes,
                config: dict) -> tuple[bytes, str]:
    """An OCI image-layout tar of a one-layer image; returns (archive, image id).

    Every tag gets an index entry annotated with the full name
    (`io.containerd.image.name`, which `ctr images import` uses as is) and the tag
    (`org.opencontainers.image.ref.name`, for other OCI tools).
    """
    arch = _arch()
    layer_digest = _digest(layer)
    config_blob = _canonical({
        "architecture": arch, "os": "linux", "created": CREATED,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": CREATED, "created_by": "pyk8s.kubelet.images"}],
    })
    manifest = _canonical({
        "schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": _digest(config_blob),
                   "size": len(config_blob)},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": layer_digest, "size": len(layer)}],
    })
    index = _canonical({
        "schemaVersion": 2, "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST, "digest": _digest(manifest), "size": len(manifest),
            "platform": {"architecture": arch, "os": "linux"},
            "annotations": {"io.containerd.image.name": f"{repository}:{tag}",
                            "org.opencontainers.image.ref.name": tag},
        } for tag in tags],
    })
    files = {"oci-layout": _canonical({"imageLayoutVersion": "1.0.0"}), "index.json": index}
    for blob in (layer, config_blob, manifest):
        files["blobs/sha256/" + _digest(blob).removeprefix("sha256:")] = blob
    out = Layer()
    for path, data in files.items():
        out.file(path, data)
    return out.tar(), _digest(config_blob)


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.exists() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _save(cache_dir: Path, stem: str, repository: str, tags: list[str], layer: Layer,
          config: dict) -> BuiltImage:
    archive, image_id = oci_archive(repository=repository, tags=tags, layer=layer.tar(),
                                    config=config)
    path = cache_dir / f"{stem}.oci.tar"
    _write_if_changed(path, archive)
    return BuiltImage(names=tuple(f"{repository}:{t}" for t in tags), path=path,
                      image_id=image_id)


def _split(image: str) -> tuple[str, str]:
    repository, _, tag = image.rpartition(":")
    return repository, tag


# ---- the three images -----------------------------------------------------------

async def compile_pause(cache_dir: Path, *, gcc: str = "gcc") -> Path:
    """pause.c -> a static binary, cached under `cache_dir` by source and flags."""
    source = PAUSE_SOURCE.read_bytes()
    key = hashlib.sha256(source + "\0".join(GCC_FLAGS).encode()).hexdigest()[:16]
    binary = cache_dir / f"pause-{key}"
    if binary.exists():
        return binary
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_suffix(".tmp")
    try:
        proc = await asyncio.create_subprocess_exec(
            gcc, *GCC_FLAGS, "-o", str(tmp), str(PAUSE_SOURCE),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    except FileNotFoundError:
        raise ImageBuildError(f"{gcc} not found: install gcc (and libc6-dev)") from None
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise ImageBuildError(f"gcc -static pause.c failed:\n{out.decode(errors='replace')}")
    tmp.replace(binary)
    return binary


def build_pause(cache_dir: Path, binary: Path) -> BuiltImage:
    layer = Layer()
    layer.copy("pause", binary, 0o755)
    repository, tag = _split(PAUSE_IMAGE)
    return _save(cache_dir, "pause", repository, [tag], layer, {
        "Env": [PATH_ENV], "Entrypoint": ["/pause"], "User": "65535:65535",
        "WorkingDir": "/"})


def _version_tags(version: str) -> list[str]:
    major, minor, *_ = version.split(".")
    return ["latest", f"{major}.{minor}", version]


_BUSYBOX_USERS = [
    "root:x:0:0:root:/root:/bin/sh", "daemon:x:1:1:daemon:/usr/sbin:/bin/false",
    "bin:x:2:2:bin:/bin:/bin/false", "sys:x:3:3:sys:/dev:/bin/false",
    "sync:x:4:100:sync:/bin:/bin/sync", "mail:x:8:8:mail:/var/spool/mail:/bin/false",
    "www-data:x:33:33:www-data:/var/www:/bin/false",
    "operator:x:37:37:Operator:/var:/bin/false", "nobody:x:65534:65534:nobody:/home:/bin/false",
]
_BUSYBOX_GROUPS = [
    "root:x:0:", "daemon:x:1:", "bin:x:2:", "sys:x:3:", "adm:x:4:", "tty:x:5:",
    "disk:x:6:", "wheel:x:10:root", "mail:x:12:", "www-data:x:33:", "operator:x:37:",
    "users:x:100:", "nogroup:x:65534:",
]


def _binary_version(pattern: str, *argv: str) -> str:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True)
    except OSError as e:
        raise ImageBuildError(f"{argv[0]}: {e}") from None
    match = re.search(pattern, proc.stdout + proc.stderr)
    if not match:
        raise ImageBuildError(f"cannot read the version of {argv[0]}")
    return match.group(1)


def build_busybox(cache_dir: Path) -> BuiltImage:
    version = _binary_version(r"BusyBox v(\d+\.\d+\.\d+)", str(BUSYBOX_BINARY))
    layer = Layer()
    _base_files(layer, users=_BUSYBOX_USERS, groups=_BUSYBOX_GROUPS)
    layer.dir("var/www")
    layer.dir("usr/sbin")
    _busybox_into(layer)
    repository, _ = _split(BUSYBOX_IMAGE)
    return _save(cache_dir, "busybox", repository, _version_tags(version), layer,
                 {"Env": [PATH_ENV], "Cmd": ["sh"]})


NGINX_CONF = """\
user  nginx;
worker_processes  auto;

error_log  /var/log/nginx/error.log notice;
pid        /var/run/nginx.pid;

events {
    worker_connections  1024;
}

http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;

    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';

    access_log  /var/log/nginx/access.log  main;

    sendfile        on;
    keepalive_timeout  65;

    include /etc/nginx/conf.d/*.conf;
}
"""

# Upstream also listens on [::]:80 when the pod has IPv6; pods here are IPv4 only,
# and a failing IPv6 bind would stop nginx.
NGINX_DEFAULT_CONF = """\
server {
    listen       80;
    server_name  localhost;

    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }

    error_page   500 502 503 504  /50x.html;
    location = /50x.html {
        root   /usr/share/nginx/html;
    }
}
"""

NGINX_INDEX = """\
<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
"""

NGINX_50X = """\
<!DOCTYPE html>
<html>
<head>
<title>Error</title>
</head>
<body>
<h1>An error occurred.</h1>
<p>Sorry, the page you are looking for is currently unavailable.<br/>
Please try again later.</p>
</body>
</html>
"""


def shared_libraries(binary: Path) -> list[Path]:
    """The absolute paths `ldd` resolves for `binary`, the loader included."""
    try:
        out = subprocess.run(["ldd", str(binary)], check=True, capture_output=True,
                             text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise ImageBuildError(f"ldd {binary} failed: {e}") from None
    libs = []
    for line in out.splitlines():
        # "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux... (0x...)"
        match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if match:
            libs.append(Path(match.group(1)))
    if not libs:
        raise ImageBuildError(f"ldd found no libraries for {binary}")
    return libs


def build_nginx(cache_dir: Path) -> BuiltImage:
    if not NGINX_BINARY.exists():
        raise ImageBuildError(f"{NGINX_BINARY} missing: install nginx-light")
    version = _binary_version(r"nginx/(\d+\.\d+\.\d+)", str(NGINX_BINARY), "-v")
    layer = Layer()
    _base_files(layer, users=_BUSYBOX_USERS + ["nginx:x:101:101:nginx:/nonexistent:/bin/false"],
                groups=_BUSYBOX_GROUPS + ["nginx:x:101:"])
    _busybox_into(layer)
    layer.copy("usr/sbin/nginx", NGINX_BINARY, 0o755)
    for lib in shared_libraries(NGINX_BINARY):
        # each library as a plain file at the path the loader looks for
        layer.copy(str(lib), lib.resolve(), 0o755 if "ld-linux" in lib.name else 0o644)
    layer.file("etc/nginx/nginx.conf", NGINX_CONF)
    layer.copy("etc/nginx/mime.types", NGINX_MIME_TYPES, 0o644)
    layer.file("etc/nginx/conf.d/default.conf", NGINX_DEFAULT_CONF)
    layer.file("usr/share/nginx/html/index.html", NGINX_INDEX)
    layer.file("usr/share/nginx/html/50x.html", NGINX_50X)
    # as upstream: logs go to the container's stdout/stderr, i.e. the CRI log
    layer.symlink("var/log/nginx/access.log", "/dev/stdout")
    layer.symlink("var/log/nginx/error.log", "/dev/stderr")
    for d in ("var/lib/nginx", "var/cache/nginx", "var/lock", "run"):
        layer.dir(d)
    layer.symlink("var/run", "/run")
    repository, _ = _split(NGINX_IMAGE)
    return _save(cache_dir, "nginx", repository, _version_tags(version), layer, {
        "Env": [PATH_ENV, f"NGINX_VERSION={version}"],
        "Cmd": ["nginx", "-g", "daemon off;"],
        "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGQUIT"})


async def build_images(data_dir: Path) -> list[BuiltImage]:
    """Build (or refresh) the pause, busybox and nginx archives under `data_dir`."""
    cache_dir, _ = data_paths(data_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    pause = await compile_pause(cache_dir)
    return list(await asyncio.gather(
        asyncio.to_thread(build_pause, cache_dir, pause),
        asyncio.to_thread(build_busybox, cache_dir),
        asyncio.to_thread(build_nginx, cache_dir)))


# ---- importing ------------------------------------------------------------------

# name suffix -> compression, as k3s' air-gap directory reads them
ARCHIVE_SUFFIXES = (
    (".tar", ""),
    (".tar.gz", "gzip"), (".tgz", "gzip"),
    (".tar.bz2", "bzip2"), (".tbz", "bzip2"),
    (".tar.zst", "zstd"), (".tzst", "zstd"),
    (".tar.lz4", "lz4"),
)
# decompressed in a thread with Python's own modules
PYTHON_DECOMPRESSORS = {"gzip": gzip.open, "bzip2": bz2.open}
# decompressed by a tool: its argv before the file name
TOOL_DECOMPRESSORS = {"zstd": ("zstd", "-dcq", "--"), "lz4": ("lz4", "-dcq", "--")}


def archive_compression(path: Path) -> str | None:
    """The compression of an image archive by its name ("" for a plain tar), or None
    when the name is not one of an image archive."""
    name = path.name.lower()
    for suffix, compression in ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            return compression
    return None


def missing_decompressor(compression: str) -> str:
    """The tool `compression` needs and this machine lacks, or ""."""
    tool = TOOL_DECOMPRESSORS.get(compression)
    if tool is None or shutil.which(tool[0]):
        return ""
    return tool[0]


def _decompress_into(path: Path, compression: str, fd: int) -> str:
    """Write the decompressed `path` into pipe `fd` (closed at the end); "" when it
    all went, else what went wrong."""
    with os.fdopen(fd, "wb") as out:
        try:
            with PYTHON_DECOMPRESSORS[compression](path, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
        except BrokenPipeError:
            return ""  # ctr stopped reading: its own error says why
        except (OSError, EOFError, ValueError, zlib.error) as err:
            return f"{type(err).__name__}: {err}"
    return ""


async def import_archive(path: Path, *, address: str, namespace: str = CRI_NAMESPACE,
                         snapshotter: str = "overlayfs", ctr: str = "ctr") -> str:
    """`ctr images import` an OCI or docker archive into containerd at `address`.

    A compressed archive (`archive_compression`) is decompressed on the way into
    ctr's standard input. Unpacks for `snapshotter` so the CRI plugin can run it at
    once. Returns ctr's output; raises `ImageImportError` on failure.
    """
    address = address.removeprefix("unix://")
    compression = archive_compression(path) or ""
    tool = missing_decompressor(compression)
    if tool:
        raise ImageImportError(f"cannot import {path}: decompressing {compression} needs "
                               f"`{tool}`, which is not installed")
    argv = [ctr, "-a", address, "-n", namespace, "images", "import",
            "--snapshotter", snapshotter]
    if not compression:
        proc = await _spawn_ctr(argv + [str(path)], asyncio.subprocess.DEVNULL)
        return _ctr_result(path, *await _ctr_output(proc))
    if not path.is_file():
        raise ImageImportError(f"cannot import {path}: no such file")
    read_end, write_end = os.pipe()
    try:
        proc = await _spawn_ctr(argv + ["-"], read_end)
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)  # ctr holds its own copy
    if compression in PYTHON_DECOMPRESSORS:
        # the thread owns (and closes) the write end
        feeder = asyncio.to_thread(_decompress_into, path, compression, write_end)
    else:
        try:
            decompressor = await asyncio.create_subprocess_exec(
                *TOOL_DECOMPRESSORS[compression], str(path), stdout=write_end,
                stderr=asyncio.subprocess.PIPE)
        except BaseException:
            proc.kill()
            raise
        finally:
            os.close(write_end)
        feeder = _tool_result(decompressor)
    fed, (code, out) = await asyncio.gather(feeder, _ctr_output(proc),
                                            return_exceptions=False)
    if fed:
        raise ImageImportError(f"cannot import {path}: decompressing {compression} "
                               f"failed: {fed}")
    return _ctr_result(path, code, out)


async def _spawn_ctr(argv: list[str], stdin) -> asyncio.subprocess.Process:
    try:
        return await asyncio.create_subprocess_exec(
            *argv, stdin=stdin, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
    except FileNotFoundError:
        raise ImageImportError(f"{argv[0]} not found (it ships with containerd)") from None


async def _ctr_output(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    out, _ = await proc.communicate()
    return proc.returncode, out.decode(errors="replace")


def _ctr_result(path: Path, code: int, text: str) -> str:
    if code != 0:
        raise ImageImportError(f"ctr images import {path} failed: {text.strip()}")
    return text


async def _tool_result(proc: asyncio.subprocess.Process) -> str:
    """"" when a decompressing tool succeeded, else what it said."""
    _, err = await proc.communicate()
    if proc.returncode == 0:
        return ""
    return err.decode(errors="replace").strip() or f"exit status {proc.returncode}"


def airgap_archives(data_dir: Path) -> list[Path]:
    """The archives a user dropped into `<data-dir>/agent/images/` that this machine
    can import, sorted. Other files are skipped with a log line saying why."""
    _, drop_dir = data_paths(data_dir)
    if not drop_dir.is_dir():
        return []
    archives = []
    for path in sorted(p for p in drop_dir.iterdir() if p.is_file()):
        compression = archive_compression(path)
        if compression is None:
            log.info("air-gap images: skipping %s: not an image archive (.tar, .tar.gz, "
                     ".tgz, .tar.bz2, .tbz, .tar.zst, .tzst, .tar.lz4)", path)
            continue
        tool = missing_decompressor(compression)
        if tool:
            log.warning("air-gap images: skipping %s: decompressing %s needs `%s`, which "
                        "is not installed (install it, or decompress the file to .tar)",
                        path, compression, tool)
            continue
        archives.append(path)
    return archives


async def ensure_images(data_dir: Path, *, address: str,
                        namespace: str = CRI_NAMESPACE) -> list[BuiltImage]:
    """Build the built-in images and import them and the air-gap archives.

    Called at node start, before pods run. Returns the built-in images. A broken
    air-gap archive raises `ImageImportError` naming it.
    """
    built = await build_images(data_dir)
    archives = [b.path for b in built] + airgap_archives(data_dir)
    await asyncio.gather(*(import_archive(p, address=address, namespace=namespace)
                           for p in archives))
    return built


def missing_build_tools() -> list[str]:
    """What building the images needs and is missing on this machine."""
    missing = [tool for tool in ("gcc", "ldd", "ctr") if shutil.which(tool) is None]
    missing += [str(p) for p in (BUSYBOX_BINARY, NGINX_BINARY, NGINX_MIME_TYPES)
                if not os.path.exists(p)]
    return missing
