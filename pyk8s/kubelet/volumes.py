"""Pod volumes on the node: emptyDir, hostPath and the API-backed data volumes.

Role: before a pod's containers start, `VolumeManager.setup` materialises each
volume of the pod under `<pods_dir>/<uid>/volumes/<plugin>/<name>`: an emptyDir is
a directory (a tmpfs mount for `medium: Memory`); a hostPath is checked (or
created) by its type; configMap, secret, downwardAPI and projected volumes
(including serviceAccountToken through the TokenRequest API) are written as files.
`mounts` turns a container's volumeMounts (subPath, readOnly, propagation) into CRI
mounts; `teardown` unmounts and removes everything once the pod is gone.

Invariants:
- Data volumes are written as upstream's AtomicWriter does: files in a timestamped
  `..<time>` directory, a `..data` symlink swapped atomically by rename, and
  user-visible symlinks `<path> -> ..data/<path>`; a reader never sees a half
  written volume. Unchanged content is not rewritten. Every sync of the pod (at
  least every `sync_frequency`) writes them again from the API, so a running pod
  sees its ConfigMaps, Secrets and labels change; a subPath mount is bound to the
  file of its time and does not follow (as upstream).
- A bound service-account token is requested again once 80% of its lifetime has
  passed (or after 24 h), as the kubelet's token manager does.
- A missing non-optional ConfigMap or Secret, or a volume type the node does not
  support, raises `VolumeError` with upstream's message (the pod keeps waiting).
- Blocking file work runs in a thread.
"""
from __future__ import annotations

import asyncio
import base64
import datetime
import os
import shutil
import tempfile
from pathlib import Path

from pyk8s.api.quantities import parse_quantity
from pyk8s.client import resources
from pyk8s.client.clock import Clock
from pyk8s.client.errors import ApiError, is_not_found
from pyk8s.kubelet import pods
from pyk8s.kubelet.containers import resource_field_value
from pyk8s.kubelet.settings import KubeletSettings

PLUGINS = {"emptyDir": "kubernetes.io~empty-dir", "configMap": "kubernetes.io~configmap",
           "secret": "kubernetes.io~secret", "downwardAPI": "kubernetes.io~downward-api",
           "projected": "kubernetes.io~projected"}
DEFAULT_MODE = 0o644
TOKEN_DEFAULT_EXPIRATION = 3600
DATA_DIR = "..data"


class VolumeError(Exception):
    """A volume cannot be set up (FailedMount)."""


def _time_dir(target: Path, now: datetime.datetime) -> Path:
    """A fresh `..<time>.<random>` directory in `target` (upstream's os.MkdirTemp)."""
    fresh = Path(tempfile.mkdtemp(prefix=now.strftime("..%Y_%m_%d_%H_%M_%S."), dir=target))
    os.chmod(fresh, 0o755)
    return fresh


def write_atomic(target: Path, files: dict[str, tuple[bytes, int]],
                 now: datetime.datetime) -> bool:
    """Publish `files` (path -> (content, mode)) in `target`; False if unchanged."""
    target.mkdir(parents=True, exist_ok=True)
    current = target / DATA_DIR
    if current.is_symlink():
        old = target / os.readlink(current)
        if _same(old, files):
            return False
    else:
        old = None
    fresh = _time_dir(target, now)
    for rel, (data, mode) in files.items():
        path = fresh / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.chmod(path, mode)
    tmp = target / "..data_tmp"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(fresh.name)
    tmp.replace(current)
    tops = {rel.split("/", 1)[0] for rel in files}
    for top in tops:
        link = target / top
        if not link.is_symlink():
            link.symlink_to(f"{DATA_DIR}/{top}")
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.is_symlink() and entry.name not in tops:
            entry.unlink()
    if old is not None and old.exists():
        shutil.rmtree(old)
    return True


def _same(directory: Path, files: dict[str, tuple[bytes, int]]) -> bool:
    try:
        present = {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}
        if present != set(files):
            return False
        return all((directory / rel).read_bytes() == data and
                   (directory / rel).stat().st_mode & 0o7777 == mode
                   for rel, (data, mode) in files.items())
    except OSError:
        return False


def _field_text(pod: dict, path: str) -> str:
    m = pods.meta(pod)
    if path in ("metadata.labels", "metadata.annotations"):
        source = m.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(source.items()))
    simple = {"metadata.name": m.get("name", ""), "metadata.namespace": m.get("namespace", ""),
              "metadata.uid": m.get("uid", "")}
    for prefix in ("metadata.labels", "metadata.annotations"):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return (m.get(prefix.split(".")[1]) or {}).get(path[len(prefix) + 2:-2], "")
    if path not in simple:
        raise VolumeError(f"unsupported fieldPath: {path}")
    return simple[path]


class VolumeManager:
    def __init__(self, settings: KubeletSettings, client, *, clock: Clock,
                 allocatable=dict):
        self.settings, self.client, self.clock = settings, client, clock
        self.allocatable = allocatable
        self._tokens: dict[tuple[str, str], tuple[str, float, float]] = {}
        self._claims: dict[tuple[str, str], Path] = {}  # (pod uid, volume) -> PV path

    def volume_dir(self, uid: str, kind: str, name: str) -> Path:
        return self.settings.pods_dir / uid / "volumes" / PLUGINS[kind] / name

    # ---- setup -----------------------------------------------------------------------

    async def setup(self, pod: dict) -> None:
        for volume in pods.spec(pod).get("volumes") or []:
            await self._setup_one(pod, volume)

    async def _setup_one(self, pod: dict, volume: dict) -> None:
        name, uid = volume["name"], pods.uid(pod)
        if "emptyDir" in volume:
            await self._empty_dir(uid, name, volume["emptyDir"] or {})
        elif "hostPath" in volume:
            await asyncio.to_thread(_host_path, volume["hostPath"])
        elif "persistentVolumeClaim" in volume:
            self._claims[(uid, name)] = await self._claim_path(pod, volume)
        elif any(k in volume for k in ("configMap", "secret", "downwardAPI", "projected")):
            kind = next(k for k in ("configMap", "secret", "downwardAPI", "projected")
                        if k in volume)
            source = volume[kind] or {}
            files = await self._files(pod, kind, source, name)
            default = source.get("defaultMode", 420)
            target = self.volume_dir(uid, kind, name)
            payload = {rel: (data, mode if mode is not None else default)
                       for rel, (data, mode) in files.items()}
            await asyncio.to_thread(write_atomic, target, payload, self.clock.now())
        else:
            kind = next((k for k in volume if k != "name"), "unknown")
            raise VolumeError(f"volume \"{name}\": {kind} volumes are not supported "
                              "on this node")

    async def _claim_path(self, pod: dict, volume: dict) -> Path:
        """The node path of a bound claim's volume (hostPath or local PVs, as the
        local-path provisioner makes them)."""
        claim_name = volume["persistentVolumeClaim"].get("claimName", "")
        namespace = pod["metadata"]["namespace"]
        try:
            claim = await self.client.get(resources.PERSISTENTVOLUMECLAIMS, claim_name,
                                          namespace=namespace)
        except ApiError as err:
            if is_not_found(err):
                raise VolumeError(f'persistentvolumeclaim "{claim_name}" not found') from None
            raise
        pv_name = (claim.get("spec") or {}).get("volumeName")
        if (claim.get("status") or {}).get("phase") != "Bound" or not pv_name:
            raise VolumeError(f'persistentvolumeclaim "{claim_name}" is not bound')
        pv = await self.client.get(resources.PERSISTENTVOLUMES, pv_name)
        spec = pv.get("spec") or {}
        source = spec.get("hostPath") or spec.get("local")
        if not source or not source.get("path"):
            raise VolumeError(f'volume "{pv_name}" of claim "{claim_name}" has no node path '
                              "(only hostPath and local volumes are supported on this node)")
        path = Path(source["path"])
        await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
        return path

    async def _empty_dir(self, uid: str, name: str, source: dict) -> None:
        path = self.volume_dir(uid, "emptyDir", name)
        await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
        if source.get("medium") != "Memory" or os.path.ismount(path):
            return
        options = "mode=0777"
        if source.get("sizeLimit"):
            options += f",size={parse_quantity(source['sizeLimit']).value()}"
        await _run("mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path))

    async def _files(self, pod: dict, kind: str, source: dict, volume: str
                     ) -> dict[str, tuple[bytes, int | None]]:
        if kind == "projected":
            files: dict[str, tuple[bytes, int | None]] = {}
            for s in source.get("sources") or []:
                if "serviceAccountToken" in s:
                    files.update(await self._token(pod, s["serviceAccountToken"], volume))
                for sub in ("configMap", "secret", "downwardAPI"):
                    if sub in s:
                        files.update(await self._files(pod, sub, s[sub] or {}, volume))
            return files
        if kind == "downwardAPI":
            out = {}
            for item in source.get("items") or []:
                if "fieldRef" in item:
                    text = _field_text(pod, item["fieldRef"].get("fieldPath", ""))
                else:
                    ref = item.get("resourceFieldRef") or {}
                    container = pods.find_container(pod, ref.get("containerName", "")) or {}
                    text = resource_field_value(pod, container, ref, self.allocatable())
                out[item["path"]] = (text.encode(), item.get("mode"))
            return out
        data = await self._data(pod, kind, source)
        if data is None:
            return {}
        items = source.get("items")
        if not items:
            return {key: (value, None) for key, value in data.items()}
        out = {}
        for item in items:
            if item["key"] not in data:
                if source.get("optional"):
                    continue
                raise VolumeError(
                    f"configmap references non-existent config key: {item['key']}"
                    if kind == "configMap"
                    else f"references non-existent secret key: {item['key']}")
            out[item["path"]] = (data[item["key"]], item.get("mode"))
        return out

    async def _data(self, pod: dict, kind: str, source: dict) -> dict[str, bytes] | None:
        namespace = pods.meta(pod).get("namespace")
        name = source.get("name") or source.get("secretName") or ""
        res = resources.CONFIGMAPS if kind == "configMap" else resources.SECRETS
        try:
            obj = await self.client.get(res, name, namespace=namespace)
        except ApiError as e:
            if not is_not_found(e):
                raise
            if source.get("optional"):
                return None
            raise VolumeError(f"{'configmap' if kind == 'configMap' else 'secret'} "
                              f"\"{name}\" not found") from None
        if kind == "configMap":
            data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
            data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
            return data
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}

    async def _token(self, pod: dict, source: dict, volume: str
                     ) -> dict[str, tuple[bytes, int | None]]:
        key = (pods.uid(pod), f"{volume}/{source.get('path')}/{source.get('audience', '')}")
        cached = self._tokens.get(key)
        now = self.clock.monotonic()
        if cached is None or now >= cached[2]:
            expiration = int(source.get("expirationSeconds") or TOKEN_DEFAULT_EXPIRATION)
            spec: dict = {"expirationSeconds": expiration,
                          "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                             "name": pods.meta(pod).get("name"),
                                             "uid": pods.uid(pod)}}
            if source.get("audience"):
                spec["audiences"] = [source["audience"]]
            sa = pods.spec(pod).get("serviceAccountName") or "default"
            answer = await self.client.create(
                resources.SERVICEACCOUNTS, {"apiVersion": "authentication.k8s.io/v1",
                                            "kind": "TokenRequest", "spec": spec},
                namespace=pods.meta(pod).get("namespace"), name=sa, subresource="token")
            token = (answer.get("status") or {}).get("token", "")
            lifetime = float((answer.get("spec") or {}).get("expirationSeconds") or expiration)
            refresh = now + min(lifetime * 0.8, 24 * 3600)
            cached = (token, now, refresh)
            self._tokens[key] = cached
        return {source.get("path", "token"): (cached[0].encode(), None)}

    def next_token_refresh(self, uid: str) -> float | None:
        """Seconds until a token of pod `uid` must be renewed (None without tokens)."""
        deadlines = [refresh for (u, _), (_, _, refresh) in self._tokens.items() if u == uid]
        if not deadlines:
            return None
        return max(min(deadlines) - self.clock.monotonic(), 0.0)

    # ---- mounts ----------------------------------------------------------------------

    async def mounts(self, pod: dict, container: dict) -> list[dict]:
        volumes = {v["name"]: v for v in pods.spec(pod).get("volumes") or []}
        out = []
        for m in container.get("volumeMounts") or []:
            volume = volumes.get(m.get("name"))
            if volume is None:
                raise VolumeError(f"cannot find volume \"{m.get('name')}\" to mount into "
                                  f"container \"{container['name']}\"")
            host = self._host_path(pods.uid(pod), volume)
            if m.get("subPath"):
                host = host / m["subPath"]
                if not host.exists():
                    await asyncio.to_thread(host.mkdir, parents=True, exist_ok=True)
            mount = {"container_path": m["mountPath"], "host_path": str(host),
                     "readonly": bool(m.get("readOnly"))}
            propagation = m.get("mountPropagation")
            if propagation == "HostToContainer":
                mount["propagation"] = "PROPAGATION_HOST_TO_CONTAINER"
            elif propagation == "Bidirectional":
                mount["propagation"] = "PROPAGATION_BIDIRECTIONAL"
            out.append(mount)
        return out

    def _host_path(self, uid: str, volume: dict) -> Path:
        if "hostPath" in volume:
            return Path(volume["hostPath"]["path"])
        if "persistentVolumeClaim" in volume:
            path = self._claims.get((uid, volume["name"]))
            if path is None:
                raise VolumeError(f"volume \"{volume['name']}\" is not set up yet")
            return path
        kind = next(k for k in PLUGINS if k in volume)
        return self.volume_dir(uid, kind, volume["name"])

    # ---- teardown ----------------------------------------------------------------------

    async def teardown(self, uid: str) -> None:
        """Unmount and remove every volume of pod `uid`."""
        base = self.settings.pods_dir / uid / "volumes"
        if base.exists():
            for path in await asyncio.to_thread(_mount_points, base):
                await _run("umount", path)
        for key in [k for k in self._tokens if k[0] == uid]:
            del self._tokens[key]
        for key in [k for k in self._claims if k[0] == uid]:
            del self._claims[key]


def _mount_points(base: Path) -> list[str]:
    prefix = str(base.resolve()) + "/"
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point.startswith(prefix):
                points.append(point)
    return sorted(points, key=lambda p: -p.count("/"))


def _host_path(source: dict) -> None:
    path, kind = Path(source.get("path", "")), source.get("type") or ""
    if kind == "DirectoryOrCreate":
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
    elif kind == "FileOrCreate":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o644, exist_ok=True)
    elif kind == "Directory" and not path.is_dir():
        raise VolumeError(f"hostPath type check failed: {path} is not a directory")
    elif kind == "File" and not path.is_file():
        raise VolumeError(f"hostPath type check failed: {path} is not a file")
    elif kind == "Socket" and not path.is_socket():
        raise VolumeError(f"hostPath type check failed: {path} is not a socket file")
    elif kind == "CharDevice" and not path.is_char_device():
        raise VolumeError(f"hostPath type check failed: {path} is not a character device")
    elif kind == "BlockDevice" and not path.is_block_device():
        raise VolumeError(f"hostPath type check failed: {path} is not a block device")


async def _run(*argv: str) -> None:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise VolumeError(f"{' '.join(argv)}: {err.decode().strip()}")
