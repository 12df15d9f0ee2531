"""ServiceAccount (plugin/pkg/admission/serviceaccount).

A pod created without ``serviceAccountName`` runs as ``default``; the service account
must exist (``error looking up service account <ns>/<name>: serviceaccount "<name>"
not found``). Unless the pod or its service account opts out
(``automountServiceAccountToken: false``), every container gets the projected
``kube-api-access-<random>`` volume (a bound token that the kubelet refreshes, the
cluster CA from the ``kube-root-ca.crt`` ConfigMap, the namespace) mounted
read-only at /var/run/secrets/kubernetes.io/serviceaccount, and a pod without
imagePullSecrets inherits its service account's. Mirror pods are left alone but may
reference no service account, secret or configmap.
"""
from __future__ import annotations

import random

from . import Plugin, Request

DEFAULT_SA = "default"
VOLUME_PREFIX = "kube-api-access-"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
MIRROR = "kubernetes.io/config.mirror"
NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
TOKEN_EXPIRATION = 3607


def token_volume_source() -> dict:
    return {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt",
                       "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}


def should_automount(sa: dict, pod: dict) -> bool:
    spec = pod.get("spec") or {}
    if spec.get("automountServiceAccountToken") is not None:
        return bool(spec["automountServiceAccountToken"])
    if sa.get("automountServiceAccountToken") is not None:
        return bool(sa["automountServiceAccountToken"])
    return True


def mount_token(pod: dict) -> None:
    spec = pod.setdefault("spec", {})
    volumes = spec.setdefault("volumes", [])
    existing = next((v["name"] for v in volumes
                     if v.get("name", "").startswith(VOLUME_PREFIX)), None)
    name = existing or VOLUME_PREFIX + "".join(random.choices(NAME_CHARS, k=5))
    needed = False
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or ():
            mounts = c.setdefault("volumeMounts", [])
            if any(m.get("mountPath") == MOUNT_PATH for m in mounts):
                continue
            mounts.append({"name": name, "readOnly": True, "mountPath": MOUNT_PATH})
            needed = True
    if needed and existing is None:
        volumes.append({"name": name, "projected": token_volume_source()})
    if not volumes:
        del spec["volumes"]


class ServiceAccount(Plugin):
    name = "ServiceAccount"

    def _service_account(self, namespace: str, name: str) -> dict | None:
        store = self.server.stores[("", "v1", "serviceaccounts")]
        return store.cache.objects.get(store.key(namespace, name))

    async def admit(self, req: Request) -> None:
        if not req.is_("", "pods") or req.operation != "CREATE":
            return
        pod = req.obj
        spec = pod.setdefault("spec", {})
        if MIRROR in (pod["metadata"].get("annotations") or {}):
            return
        if not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = DEFAULT_SA
        name = spec["serviceAccountName"]
        # The deprecated alias v1 clients still read (upstream fills it on conversion).
        spec.setdefault("serviceAccount", name)
        sa = self._service_account(req.namespace, name)
        if sa is None:
            await self.server.cache.sync()
            sa = self._service_account(req.namespace, name)
        if sa is None:
            raise req.forbidden(f"error looking up service account {req.namespace}/{name}: "
                                f'serviceaccount "{name}" not found')
        if should_automount(sa, pod):
            mount_token(pod)
        if not spec.get("imagePullSecrets") and sa.get("imagePullSecrets"):
            spec["imagePullSecrets"] = [{"name": s.get("name", "")}
                                        for s in sa["imagePullSecrets"]]

    async def validate(self, req: Request) -> None:
        if not req.is_("", "pods") or req.operation != "CREATE":
            return
        pod = req.obj
        if MIRROR not in (pod["metadata"].get("annotations") or {}):
            return
        from ..authz.node import pod_references
        spec = pod.get("spec") or {}
        if spec.get("serviceAccountName"):
            raise req.forbidden("a mirror pod may not reference service accounts")
        if pod_references(pod, "secret"):
            raise req.forbidden("a mirror pod may not reference secrets")
        if pod_references(pod, "configmap"):
            raise req.forbidden("a mirror pod may not reference configmaps")
        for v in spec.get("volumes") or ():
            if any(src.get("serviceAccountToken") for src in
                   (v.get("projected") or {}).get("sources") or ()):
                raise req.forbidden("a mirror pod may not use ServiceAccountToken volume "
                                    "projections")
