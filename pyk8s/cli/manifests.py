"""Auto-deploying manifests: YAML in ``<data-dir>/server/manifests/`` applied at start
and whenever a file changes (as k3s does), with server-side apply under the field
manager ``pyk8s-deploy``. A file that fails to parse or apply is reported with its
name and retried at its next change; the others still apply.
"""
from __future__ import annotations

import asyncio
import logging
import os

import yaml

log = logging.getLogger(__name__)
FIELD_MANAGER = "pyk8s-deploy"


def documents(path: str) -> list[dict]:
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    out = []
    for d in docs:
        if d.get("kind") == "List":
            out += [i for i in d.get("items") or [] if i]
        else:
            out.append(d)
    return out


async def apply_file(client, path: str) -> int:
    """Apply every object of one file; returns how many were applied."""
    count = 0
    for obj in documents(path):
        if not isinstance(obj, dict) or not obj.get("apiVersion") or not obj.get("kind"):
            raise ValueError(f"{path}: every document needs apiVersion and kind")
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            raise ValueError(f"{path}: a {obj['kind']} without metadata.name")
        namespace = (obj.get("metadata") or {}).get("namespace")
        ref = await client.resolve((obj["apiVersion"], obj["kind"]))
        if ref.namespaced and not namespace:
            namespace = "default"
        await client.patch(ref, name, body=obj, namespace=namespace if ref.namespaced else None,
                           patch_type="apply", field_manager=FIELD_MANAGER, force=True)
        count += 1
    return count


async def watch_manifests(kubeconfig: str, directory: str, *, period: float = 5.0) -> None:
    """Apply the folder's manifests now and after each change, until cancelled."""
    from ..client.config import load_kubeconfig
    from ..client.rest import Client
    os.makedirs(directory, exist_ok=True)
    applied: dict[str, float] = {}
    async with Client(load_kubeconfig(kubeconfig)) as client:
        while True:
            for name in sorted(os.listdir(directory)):
                if not name.endswith((".yaml", ".yml", ".json")) or name.startswith("."):
                    continue
                path = os.path.join(directory, name)
                try:
                    mtime = os.stat(path).st_mtime
                except FileNotFoundError:
                    continue
                if applied.get(path) == mtime:
                    continue
                applied[path] = mtime
                try:
                    n = await apply_file(client, path)
                    log.info("applied %d object(s) from %s", n, name)
                except Exception as err:  # noqa: BLE001 - a bad file must not stop the rest
                    log.error("manifest %s not applied: %s", name, err)
            await asyncio.sleep(period)
