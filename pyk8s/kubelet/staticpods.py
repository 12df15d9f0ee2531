"""Static pods from manifest files and from a URL, and their mirror pods: upstream's
config/file.go, config/http.go, config/common.go and pod/mirror_client.go.

Role: `read_manifests` turns the files of the manifest directory (YAML or JSON, one
or more Pod documents per file; names starting with "." are ignored) into pods the
kubelet runs without the API server: the name gets the `-<node>` suffix, the UID is
an MD5 of the pod plus the node and the file (so an edited file is a new pod), the
namespace defaults to "default", `spec.nodeName` is the node, a toleration for every
NoExecute taint is added, and the annotations `kubernetes.io/config.source: file`,
`kubernetes.io/config.hash: <uid>` and `kubernetes.io/config.seen` are set.
`ManifestURL.fetch` GETs the manifest URL (`--manifest-url`, with the
`--manifest-url-header` headers, 10 s timeout, at most 10 MiB) and `url_pods` reads
its body as upstream's http source does: YAML or JSON, a single v1 Pod, else a v1
PodList; the same defaults except that the UID hashes the pod with `url:<url>` (not
the node) and no toleration is added; `config.source` is `http`.
`StaticPodSource` holds both sources (the files re-read, the URL re-fetched, each on
its own period) and reports what changed in their union. `MirrorPods` keeps one
mirror Pod per static pod in the API (annotation `kubernetes.io/config.mirror:
<hash>`, a controller ownerReference to the Node) so users see it and its status,
recreates it when someone deletes it, and deletes mirrors whose static pod is gone.

Invariants:
- The same file content on the same node (the same URL body) always gives the same
  UID, so a restarted kubelet adopts the running static pod instead of restarting it.
- A file that cannot be read or holds an invalid pod is skipped with a log line;
  the other files still run (as upstream).
- A URL fetch that fails (unreachable, not 200 OK, too large, unparsable, an invalid
  pod anywhere in a PodList) keeps the URL's last good pods; an empty body (200
  with zero bytes) removes them all, as upstream. A pod named as one of the other
  source (a file's pod) is skipped with a log line.
- The union is `listed` once the files were read and the URL (if any) answered
  once: until then no mirror pod or runtime pod counts as an orphan.
- Mirror pods are never run by the kubelet; only static pods are.
- File reading is blocking and runs in a thread.
"""
from __future__ import annotations

import asyncio
import copy
import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import aiohttp
import yaml

from pyk8s.client import resources
from pyk8s.client.clock import Clock
from pyk8s.client.errors import ApiError, is_already_exists, is_not_found
from pyk8s.kubelet import pods

log = logging.getLogger(__name__)

CONFIG_SOURCE = "kubernetes.io/config.source"
CONFIG_HASH = "kubernetes.io/config.hash"
CONFIG_SEEN = "kubernetes.io/config.seen"
CONFIG_MIRROR = "kubernetes.io/config.mirror"
FILE_SOURCE = "file"
HTTP_SOURCE = "http"
MAX_CONFIG_LENGTH = 10 << 20  # upstream's maxConfigLength
URL_TIMEOUT = 10.0


class ManifestError(ValueError):
    """A manifest document that is not a valid pod."""


def annotations(pod: dict) -> dict:
    return pods.meta(pod).get("annotations") or {}


def is_mirror(pod: dict) -> bool:
    return CONFIG_MIRROR in annotations(pod)


def is_static(pod: dict) -> bool:
    return annotations(pod).get(CONFIG_SOURCE, "api") != "api"


def key(pod: dict) -> tuple[str, str]:
    m = pods.meta(pod)
    return m.get("namespace", ""), m.get("name", "")


def _pod_hash(doc: dict, node_name: str, source: str, *, url: bool = False) -> str:
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    digest = hashlib.md5(text.encode(), usedforsecurity=False)
    if url:
        digest.update(f"url:{source}".encode())
    else:
        digest.update(f"host:{node_name}".encode())
        digest.update(f"file:{source}".encode())
    return digest.hexdigest()


def _check(doc, where: str) -> dict:
    if not isinstance(doc, dict):
        raise ManifestError(f"{where}: not an object")
    if doc.get("kind") != "Pod" or doc.get("apiVersion") != "v1":
        raise ManifestError(f"{where}: kind {doc.get('kind')!r} apiVersion "
                            f"{doc.get('apiVersion')!r}: only v1 Pods can be static pods")
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        raise ManifestError(f"{where}: metadata.name: Required value: name or "
                            "generateName is required")
    spec = doc.get("spec")
    if not isinstance(spec, dict) or not spec.get("containers"):
        raise ManifestError(f"{where}: spec.containers: Required value")
    for c in spec["containers"] + (spec.get("initContainers") or []):
        if not isinstance(c, dict) or not c.get("name") or not c.get("image"):
            raise ManifestError(f"{where}: every container needs a name and an image")
    return doc


def static_pod(doc: dict, *, node_name: str, source: str, seen: str,
               kind: str = FILE_SOURCE) -> dict:
    """A manifest document as the pod the kubelet runs (upstream's applyDefaults);
    `source` is the file (`kind` file) or the URL (`kind` http)."""
    pod = copy.deepcopy(doc)
    is_file = kind == FILE_SOURCE
    uid = pods.meta(pod).get("uid") or _pod_hash(doc, node_name, source, url=not is_file)
    meta = pod["metadata"]
    meta["uid"] = uid
    meta["name"] = f"{meta['name']}-{node_name.lower()}"
    meta["namespace"] = meta.get("namespace") or "default"
    notes = dict(meta.get("annotations") or {})
    notes.update({CONFIG_HASH: uid, CONFIG_SOURCE: kind, CONFIG_SEEN: seen})
    meta["annotations"] = notes
    spec = pod["spec"]
    spec["nodeName"] = node_name
    if is_file:  # upstream tolerates NoExecute taints for file pods only
        spec["tolerations"] = list(spec.get("tolerations") or []) + [
            {"operator": "Exists", "effect": "NoExecute"}]
    pod["status"] = {"phase": "Pending"}
    return pod


def read_manifests(directory: Path, node_name: str, seen: str) -> dict[str, dict]:
    """Every valid pod in `directory` by UID (blocking). A missing directory is empty."""
    found: dict[str, dict] = {}
    try:
        files = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    except FileNotFoundError:
        return found
    except OSError as e:
        log.warning("static pods: cannot read %s: %s", directory, e)
        return found
    for path in files:
        if not path.is_file():
            continue
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
            for i, doc in enumerate(docs):
                where = str(path) if len(docs) == 1 else f"{path} (document {i + 1})"
                pod = static_pod(_check(doc, where), node_name=node_name,
                                 source=where, seen=seen)
                if any(key(p) == key(pod) for p in found.values()):
                    raise ManifestError(f"{where}: duplicate pod {'/'.join(key(pod))}: "
                                        "skipped")
                found[pods.uid(pod)] = pod
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ManifestError) as e:
            log.warning("static pods: could not process manifest file %s: %s", path, e)
    return found


class URLError(Exception):
    """A manifest URL that did not answer usable pods; the last good set stays."""


def url_pods(data: bytes, url: str, node_name: str, seen: str) -> dict[str, dict]:
    """The pods of a manifest URL's body by UID (upstream's tryDecodeSinglePod, then
    tryDecodePodList): one invalid pod rejects the whole body."""
    try:
        doc = next(iter(yaml.safe_load_all(data.decode())), None)
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise URLError(f"{url}: couldn't parse as single or multiple pods: {e}") from None
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if kind == "Pod":
        docs = [doc]
    elif kind == "PodList" and doc.get("apiVersion") == "v1":
        items = doc.get("items") or []
        if not isinstance(items, list):
            raise URLError(f"{url}: items: not a list")
        docs = [{"apiVersion": "v1", "kind": "Pod", **item} if isinstance(item, dict)
                else item for item in items]
    else:
        text = data[:200].decode(errors="replace")
        raise URLError(f"{url}: received {text!r}, but couldn't parse as single (not a "
                       f"v1 Pod) or multiple pods (not a v1 PodList)")
    found: dict[str, dict] = {}
    for i, d in enumerate(docs):
        where = url if kind == "Pod" else f"{url} (item {i + 1})"
        try:
            pod = static_pod(_check(d, where), node_name=node_name, source=url, seen=seen,
                             kind=HTTP_SOURCE)
        except ManifestError as e:
            raise URLError(str(e)) from None
        if any(key(p) == key(pod) for p in found.values()):
            log.warning("static pods: %s: duplicate pod %s: skipped", where,
                        "/".join(key(pod)))
            continue
        found[pods.uid(pod)] = pod
    return found


class ManifestURL:
    """The manifest URL and its headers; `fetch` GETs the body (upstream's sourceURL)."""

    def __init__(self, url: str, headers: tuple[tuple[str, str], ...] = (), *,
                 timeout: float = URL_TIMEOUT):
        self.url, self.headers, self.timeout = url, list(headers), timeout
        self.failures = 0

    async def fetch(self) -> bytes:
        """The body of a 200 answer; URLError for anything else."""
        try:
            async with aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self.timeout)) as session:
                async with session.get(self.url, headers=self.headers) as r:
                    data = await r.content.read(MAX_CONFIG_LENGTH + 1)
                    if len(data) > MAX_CONFIG_LENGTH:
                        raise URLError(f"{self.url}: the read limit is reached")
                    if r.status != 200:
                        raise URLError(f"{self.url}: {r.status} {r.reason}")
                    return data
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
            raise URLError(f"Get {self.url!r}: {e or type(e).__name__}") from None

    def failed(self, error: Exception) -> None:
        """Log a failure: the first three plainly, then at debug level (as upstream)."""
        if self.failures < 3:
            log.warning("Failed to read pods from URL: %s", error)
        elif self.failures == 3:
            log.warning("Failed to read pods from URL. Dropping verbosity of this message "
                        "to debug: %s", error)
        else:
            log.debug("Failed to read pods from URL: %s", error)
        self.failures += 1

    def succeeded(self) -> None:
        if self.failures:
            log.info("Successfully read pods from URL")
        self.failures = 0


@dataclasses.dataclass
class Changes:
    added: list[dict]
    removed: list[dict]


class StaticPodSource:
    """The manifest directory (re-read by `read`) and the manifest URL (re-fetched by
    `fetch`); `pods` is their union by UID, a file's pod first when names clash."""

    def __init__(self, directory: Path, node_name: str, *, clock: Clock,
                 url: ManifestURL | None = None):
        self.directory, self.node_name, self.clock = directory, node_name, clock
        self.url = url
        self.pods: dict[str, dict] = {}
        self.sources: dict[str, dict[str, dict]] = {}  # file/http -> pods by UID
        self._clashes: set[str] = set()

    @property
    def listed(self) -> bool:
        """Every source answered once (upstream's sourcesReady)."""
        return FILE_SOURCE in self.sources and (self.url is None
                                                or HTTP_SOURCE in self.sources)

    def _seen(self) -> str:
        return self.clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    async def read(self) -> Changes:
        fresh = await asyncio.to_thread(read_manifests, self.directory, self.node_name,
                                        self._seen())
        return self._set(FILE_SOURCE, fresh)

    async def fetch(self) -> Changes:
        """Fetch the URL once; a failure is logged and changes nothing."""
        assert self.url is not None
        try:
            data = await self.url.fetch()
            fresh = url_pods(data, self.url.url, self.node_name, self._seen()) if data \
                else None
        except URLError as e:
            self.url.failed(e)
            return Changes(added=[], removed=[])
        if fresh is None:
            # upstream empties the source (so it counts as answered) and reports an error
            self.url.failed(URLError(f"zero-length data received from {self.url.url}"))
            return self._set(HTTP_SOURCE, {})
        self.url.succeeded()
        return self._set(HTTP_SOURCE, fresh)

    def _set(self, source: str, fresh: dict[str, dict]) -> Changes:
        self.sources[source] = fresh
        union: dict[str, dict] = {}
        names: set[tuple[str, str]] = set()
        clashes: set[str] = set()
        for kind in (FILE_SOURCE, HTTP_SOURCE):
            for uid, pod in self.sources.get(kind, {}).items():
                if key(pod) in names:
                    clashes.add(uid)
                    if uid not in self._clashes:
                        log.warning("static pods: %s pod %s is also a pod of another "
                                    "source: skipped", kind, "/".join(key(pod)))
                    continue
                names.add(key(pod))
                union[uid] = self.pods.get(uid, pod)  # a known pod keeps its first-seen time
        self._clashes = clashes
        added = [p for uid, p in union.items() if uid not in self.pods]
        removed = [p for uid, p in self.pods.items() if uid not in union]
        self.pods = union
        return Changes(added=added, removed=removed)

    def by_key(self, namespace: str, name: str) -> dict | None:
        return next((p for p in self.pods.values() if key(p) == (namespace, name)), None)


def mirror_of(static: dict, node_name: str, node_uid: str) -> dict:
    """The mirror Pod to create for `static` (upstream's CreateMirrorPod)."""
    meta = pods.meta(static)
    notes = dict(meta.get("annotations") or {})
    notes[CONFIG_MIRROR] = meta["uid"]
    metadata = {"name": meta["name"], "namespace": meta["namespace"], "annotations": notes,
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node_name,
                                     "uid": node_uid, "controller": True}]}
    if meta.get("labels"):
        metadata["labels"] = dict(meta["labels"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": copy.deepcopy(static["spec"])}


class MirrorPods:
    """Mirror pods in the API, as the informer last saw them, keyed by (namespace, name)."""

    def __init__(self, client, node_name: str):
        self.client, self.node_name = client, node_name
        self.mirrors: dict[tuple[str, str], dict] = {}

    def seen(self, mirror: dict) -> None:
        self.mirrors[key(mirror)] = mirror

    def gone(self, mirror: dict) -> None:
        current = self.mirrors.get(key(mirror))
        if current is not None and pods.uid(current) == pods.uid(mirror):
            del self.mirrors[key(mirror)]

    def current(self, static: dict) -> dict | None:
        """The live mirror of `static`: same hash, not being deleted."""
        mirror = self.mirrors.get(key(static))
        if mirror is None or annotations(mirror).get(CONFIG_MIRROR) != pods.uid(static) \
                or pods.deletion_requested(mirror):
            return None
        return mirror

    async def ensure(self, static: dict, node_uid: str | None) -> bool:
        """Create the mirror if needed, deleting an outdated one first; True if created."""
        mirror = self.mirrors.get(key(static))
        if mirror is not None:
            if self.current(static) is not None:
                return False
            # outdated (another hash) or being deleted by a user: upstream deletes it
            # at once and creates a fresh one
            await self.delete(mirror)
            self.gone(mirror)
        if not node_uid:
            return False  # upstream waits for its Node before creating mirror pods
        body = mirror_of(static, self.node_name, node_uid)
        try:
            created = await self.client.create(resources.PODS, body,
                                               namespace=pods.meta(static)["namespace"])
        except ApiError as e:
            if is_already_exists(e):
                return False  # the informer will tell us which one it is
            raise
        self.seen(created)
        log.info("static pod %s: created mirror pod %s", pods.full_name(static),
                 pods.uid(created))
        return True

    async def delete(self, mirror: dict) -> None:
        namespace, name = key(mirror)
        try:
            await self.client.delete(resources.PODS, name, namespace=namespace,
                                     grace_period_seconds=0,
                                     preconditions={"uid": pods.uid(mirror)})
        except ApiError as e:
            if not is_not_found(e) and e.code != 409:
                raise
        log.info("deleted mirror pod %s/%s (%s)", namespace, name, pods.uid(mirror))

    def orphans(self, static_pods: dict[str, dict]) -> list[dict]:
        """Mirrors without a static pod of the same name and hash."""
        wanted = {(key(p), pods.uid(p)) for p in static_pods.values()}
        return [m for k, m in self.mirrors.items()
                if (k, annotations(m).get(CONFIG_MIRROR)) not in wanted
                and not pods.deletion_requested(m)]
