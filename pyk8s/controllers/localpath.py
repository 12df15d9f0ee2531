"""The ``local-path`` StorageClass and its provisioner (k3s' local-path-provisioner).

Role: what rancher's ``local-path-provisioner`` does for k3s, as a controller over the
API. It keeps a default StorageClass ``local-path`` (provisioner
``rancher.io/local-path``, WaitForFirstConsumer, reclaim Delete) and:

- for a claim of that class the binder handed to it (``volume.kubernetes.io/
  storage-provisioner``) and the scheduler placed (``volume.kubernetes.io/
  selected-node``), creates PersistentVolume ``pvc-<claim uid>``: a ``hostPath``
  (DirectoryOrCreate, so the kubelet makes it on first mount) at
  ``<storage_dir>/pvc-<uid>_<namespace>_<name>`` on that node, with node affinity to
  the node's hostname, the claim's access modes and request as capacity, pre-bound to
  the claim (the binder completes the binding);
- for a Released volume it made with reclaim policy Delete, runs a helper pod on the
  volume's node that removes the directory, then deletes the volume.

Invariants:
- The volume name is derived from the claim uid, so provisioning is idempotent: a
  repeated sync finds the volume and creates nothing.
- The volume is deleted only after the helper pod Succeeded (or when its node no
  longer exists: its data is gone with it); helper pods are removed afterwards.
"""
from __future__ import annotations

import logging
import os

from pyk8s.api import meta as m
from pyk8s.client import ApiError, is_already_exists, is_not_found
from pyk8s.client import resources as r

from .corecontext import ControllerContext, CoreController
from .volumes import PROVISIONED_BY, SELECTED_NODE, STORAGE_PROVISIONER, claim_ref

log = logging.getLogger(__name__)

SELECTED_NODE_ANNOTATION = "local.path.provisioner/selected-node"
HELPER_LABEL = "local-path-provisioner/helper"
HOSTNAME_LABEL = "kubernetes.io/hostname"


def storage_class(name: str, provisioner: str) -> dict:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name,
                         "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": provisioner, "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer"}


def volume_name(pvc: dict) -> str:
    return f"pvc-{pvc['metadata']['uid']}"


def volume_path(storage_dir: str, pvc: dict) -> str:
    md = pvc["metadata"]
    return os.path.join(storage_dir, f"pvc-{md['uid']}_{md['namespace']}_{md['name']}")


def wants_volume(pvc: dict, sc: dict | None, provisioner: str) -> bool:
    """A pending claim of our class handed to us and not bound yet."""
    return (sc is not None and sc.get("provisioner") == provisioner
            and m.annotations(pvc).get(STORAGE_PROVISIONER) == provisioner
            and not (pvc.get("spec") or {}).get("volumeName")
            and not pvc["metadata"].get("deletionTimestamp"))


def provisioned_volume(pvc: dict, sc: dict, node: dict, *, storage_dir: str,
                       provisioner: str) -> dict:
    """The PersistentVolume local-path creates for ``pvc`` on ``node``."""
    host = m.labels(node).get(HOSTNAME_LABEL) or node["metadata"]["name"]
    spec = pvc.get("spec") or {}
    size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "0")
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": volume_name(pvc),
                     "annotations": {PROVISIONED_BY: provisioner,
                                     SELECTED_NODE_ANNOTATION: node["metadata"]["name"]}},
        "spec": {
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
            "capacity": {"storage": size},
            "claimRef": claim_ref(pvc),
            "hostPath": {"path": volume_path(storage_dir, pvc), "type": "DirectoryOrCreate"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": HOSTNAME_LABEL, "operator": "In", "values": [host]}]}]}},
            "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
            "storageClassName": sc["metadata"]["name"],
            "volumeMode": spec.get("volumeMode") or "Filesystem",
        }}


def helper_pod(pv: dict, *, namespace: str, image: str) -> dict:
    """A pod that removes the volume's directory on its node."""
    path = (pv["spec"].get("hostPath") or {}).get("path") or ""
    parent = os.path.dirname(path.rstrip("/")) or "/"
    node = m.annotations(pv).get(SELECTED_NODE_ANNOTATION, "")
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"helper-pod-delete-{pv['metadata']['name']}",
                     "namespace": namespace, "labels": {HELPER_LABEL: "delete"}},
        "spec": {
            "nodeName": node, "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "helper-pod", "image": image,
                            "command": ["rm", "-rf", path],
                            "volumeMounts": [{"name": "data", "mountPath": parent}]}],
            "volumes": [{"name": "data", "hostPath": {"path": parent,
                                                      "type": "DirectoryOrCreate"}}],
        }}


def needs_cleanup(pv: dict, provisioner: str) -> bool:
    return (m.annotations(pv).get(PROVISIONED_BY) == provisioner
            and (pv.get("status") or {}).get("phase") == "Released"
            and (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") == "Delete")


class LocalPathProvisioner(CoreController):
    def __init__(self, ctx: ControllerContext):
        super().__init__(ctx, name="local-path-provisioner", workers=1)
        self.s = ctx.settings.volumes
        self.recorder = ctx.recorder(self.s.provisioner)
        self.claims = self.informer(r.PERSISTENTVOLUMECLAIMS)
        self.volumes = self.informer(r.PERSISTENTVOLUMES)
        self.classes = self.informer(r.STORAGECLASSES)
        self.nodes = self.informer(r.NODES)
        self.helpers = self.informer(r.PODS, namespace=self.s.helper_namespace,
                                     label_selector=HELPER_LABEL)
        self.claims.add_event_handler(on_add=self._pvc, on_update=lambda o, n: self._pvc(n))
        self.volumes.add_event_handler(on_add=self._pv, on_update=lambda o, n: self._pv(n))
        self.helpers.add_event_handler(on_update=lambda o, n: self._helper(n))
        self.queue.add("class")

    def _pvc(self, pvc: dict) -> None:
        self.queue.add("pvc/" + m.object_key(pvc))

    def _pv(self, pv: dict) -> None:
        if needs_cleanup(pv, self.s.provisioner):
            self.queue.add("pv/" + pv["metadata"]["name"])

    def _helper(self, pod: dict) -> None:
        name = pod["metadata"]["name"]
        prefix = "helper-pod-delete-"
        if name.startswith(prefix):
            self.queue.add("pv/" + name[len(prefix):])

    async def sync(self, key: str) -> None:
        kind, _, rest = key.partition("/")
        if kind == "class":
            await self._ensure_class()
        elif kind == "pvc":
            pvc = self.claims.store.get(rest)
            if pvc is not None:
                await self.provision(pvc)
        else:
            pv = self.volumes.store.get(rest)
            if pv is not None and needs_cleanup(pv, self.s.provisioner):
                await self.cleanup(pv)

    async def _ensure_class(self) -> None:
        if self.classes.store.get(self.s.storage_class) is not None:
            return
        try:
            await self.client.create(r.STORAGECLASSES,
                                     storage_class(self.s.storage_class, self.s.provisioner))
        except ApiError as err:
            if not is_already_exists(err):
                raise

    async def provision(self, pvc: dict) -> None:
        sc = self.classes.store.get((pvc.get("spec") or {}).get("storageClassName") or "")
        if not wants_volume(pvc, sc, self.s.provisioner):
            return
        if self.volumes.store.get(volume_name(pvc)) is not None:
            return
        node_name = m.annotations(pvc).get(SELECTED_NODE)
        if not node_name:
            if sc.get("volumeBindingMode") != "WaitForFirstConsumer":
                self.recorder.event(pvc, "Warning", reason="ProvisioningFailed",
                                    message="failed to provision volume with StorageClass "
                                            f"\"{sc['metadata']['name']}\": configuration error, "
                                            "no node was specified")
            return
        node = self.nodes.store.get(node_name)
        if node is None:
            self.recorder.event(pvc, "Warning", reason="ProvisioningFailed",
                                message=f"failed to provision volume with StorageClass "
                                        f"\"{sc['metadata']['name']}\": nodes \"{node_name}\" "
                                        f"not found")
            raise RuntimeError(f"node {node_name} of claim {m.object_key(pvc)} not found")
        self.recorder.event(pvc, "Normal", reason="Provisioning",
                            message=f"External provisioner is provisioning volume for claim "
                                    f"\"{m.object_key(pvc)}\"")
        pv = provisioned_volume(pvc, sc, node, storage_dir=self.s.storage_dir,
                                provisioner=self.s.provisioner)
        try:
            await self.client.create(r.PERSISTENTVOLUMES, pv)
        except ApiError as err:
            if not is_already_exists(err):
                self.recorder.event(pvc, "Warning", reason="ProvisioningFailed",
                                    message=f"failed to provision volume with StorageClass "
                                            f"\"{sc['metadata']['name']}\": {err}")
                raise
        self.recorder.event(pvc, "Normal", reason="ProvisioningSucceeded",
                            message=f"Successfully provisioned volume {pv['metadata']['name']}")

    async def cleanup(self, pv: dict) -> None:
        name = pv["metadata"]["name"]
        node = m.annotations(pv).get(SELECTED_NODE_ANNOTATION, "")
        if not node or self.nodes.store.get(node) is None:
            # The node (and the directory with it) is gone: nothing to clean up.
            await self._delete_volume(pv)
            return
        desired = helper_pod(pv, namespace=self.s.helper_namespace, image=self.s.helper_image)
        pod = self.helpers.store.get_object(self.s.helper_namespace, desired["metadata"]["name"])
        if pod is None:
            try:
                await self.client.create(r.PODS, desired)
            except ApiError as err:
                if not is_already_exists(err):
                    raise
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase == "Succeeded":
            await self._delete_volume(pv)
            await self._delete_helper(pod)
        elif phase == "Failed":
            await self._delete_helper(pod)
            self.recorder.event(pv, "Warning", reason="VolumeFailedDelete",
                                message=f"failed to delete volume {name}: helper pod failed")
            raise RuntimeError(f"helper pod for {name} failed")

    async def _delete_volume(self, pv: dict) -> None:
        try:
            await self.client.delete(r.PERSISTENTVOLUMES, pv["metadata"]["name"],
                                     preconditions={"uid": pv["metadata"]["uid"]})
        except ApiError as err:
            if not is_not_found(err):
                raise
        log.info("local-path: deleted volume %s", pv["metadata"]["name"])

    async def _delete_helper(self, pod: dict) -> None:
        try:
            await self.client.delete(r.PODS, pod["metadata"]["name"],
                                     namespace=pod["metadata"]["namespace"])
        except ApiError as err:
            if not is_not_found(err):
                raise


def new_local_path_provisioner(ctx: ControllerContext) -> LocalPathProvisioner:
    return LocalPathProvisioner(ctx)
