"""Static pods from manifest files, and their mirror pods: upstream's config/file.go,
config/common.go and pod/mirror_client.go.

Role: `read_manifests` turns the files of the manifest directory (YAML or JSON, one
or more Pod documents per file; names starting with "." are ignored) into pods the
kubelet runs without the API server: the name gets the `-<node>` suffix, the UID is
an MD5 of the pod plus the node and the file (so an edited file is a new pod), the
namespace defaults to "default", `spec.nodeName` is the node, a toleration for every
NoExecute taint is added, and the annotations `kubernetes.io/config.source: file`,
`kubernetes.io/config.hash: <uid>` and `kubernetes.io/config.seen` are set.
`StaticPodSource` re-reads the directory and reports what changed. `MirrorPods`
keeps one mirror Pod per static pod in the API (annotation
`kubernetes.io/config.mirror: <hash>`, a controller ownerReference to the Node) so
users see it and its status, recreates it when someone deletes it, and deletes
mirrors whose static pod is gone.

Invariants:
- The same file content on the same node always gives the same UID, so a
  restarted kubelet adopts the running static pod instead of restarting it.
- A file that cannot be read or holds an invalid pod is skipped with a log line;
  the other files still run (as upstream).
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


def _pod_hash(doc: dict, node_name: str, source: str) -> str:
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    digest = hashlib.md5(text.encode(), usedforsecurity=False)
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


def static_pod(doc: dict, *, node_name: str, source: str, seen: str) -> dict:
    """A manifest document as the pod the kubelet runs (upstream's applyDefaults)."""
    pod = copy.deepcopy(doc)
    uid = pods.meta(pod).get("uid") or _pod_hash(doc, node_name, source)
    meta = pod["metadata"]
    meta["uid"] = uid
    meta["name"] = f"{meta['name']}-{node_name.lower()}"
    meta["namespace"] = meta.get("namespace") or "default"
    notes = dict(meta.get("annotations") or {})
    notes.update({CONFIG_HASH: uid, CONFIG_SOURCE: FILE_SOURCE, CONFIG_SEEN: seen})
    meta["annotations"] = notes
    spec = pod["spec"]
    spec["nodeName"] = node_name
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


@dataclasses.dataclass
class Changes:
    added: list[dict]
    removed: list[dict]


class StaticPodSource:
    """The manifest directory, re-read on demand; `pods` is the current set by UID."""

    def __init__(self, directory: Path, node_name: str, *, clock: Clock):
        self.directory, self.node_name, self.clock = directory, node_name, clock
        self.pods: dict[str, dict] = {}
        self.listed = False

    async def read(self) -> Changes:
        seen = self.clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        fresh = await asyncio.to_thread(read_manifests, self.directory, self.node_name, seen)
        for uid, pod in fresh.items():  # first-seen time is kept for a known pod
            if uid in self.pods:
                fresh[uid] = self.pods[uid]
        added = [p for uid, p in fresh.items() if uid not in self.pods]
        removed = [p for uid, p in self.pods.items() if uid not in fresh]
        self.pods = fresh
        self.listed = True
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
