"""PersistentVolume binding, reclaiming and the storage-object-in-use protection.

Role: upstream's ``persistentvolume-binder-controller`` (``pv_controller.go``,
``index.go``'s ``findBestMatchForClaim``, ``util.FindMatchingVolume``) and the
``persistentvolumeclaim-protection-controller`` / ``persistentvolume-protection-
controller``:

- an unbound claim is bound to the smallest Available volume that satisfies it
  (capacity, access modes — smallest superset first —, storage class, volume mode,
  label selector, node affinity to the selected node); a claim may name its volume
  (``spec.volumeName``) and a volume may be pre-bound (``spec.claimRef``);
- a claim with no match waits: ``WaitForFirstConsumer`` classes until the scheduler
  sets ``volume.kubernetes.io/selected-node``, classes with a provisioner get the
  ``volume.kubernetes.io/storage-provisioner`` annotation (the provisioner —
  ``localpath`` for ``rancher.io/local-path`` — then creates a volume), a claim
  without class an event;
- a volume whose claim is gone is Released and reclaimed by its policy: Retain keeps
  it, Delete leaves dynamically provisioned volumes to their provisioner (and fails
  others: no in-tree deleter), Recycle fails (no recycler);
- the protection finalizers come off a claim no scheduled pod uses and a volume no
  claim is bound to.

Invariants:
- Binding writes the volume first (``claimRef`` with the claim's uid, phase Bound),
  then the claim (``volumeName``, ``pv.kubernetes.io/bind-completed``, status Bound
  with the volume's capacity and access modes); each step is idempotent, so an
  interrupted bind is finished by the next sync of either object.
- ``pv.kubernetes.io/bound-by-controller`` marks what the controller (not a user)
  bound, and only such bindings are ever undone.
"""
from __future__ import annotations

import logging

from pyk8s.api import meta as m
from pyk8s.api import selectors
from pyk8s.api.quantities import parse_quantity
from pyk8s.client import ApiError, is_not_found
from pyk8s.client import resources as r

from .corecontext import ControllerContext, CoreController
from .nodematch import required_affinity_matches

log = logging.getLogger(__name__)

BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"


# --- matching (pure) -----------------------------------------------------------------------

def claim_class(pvc: dict) -> str:
    return (pvc.get("spec") or {}).get("storageClassName") or ""


def volume_class(pv: dict) -> str:
    return (pv.get("spec") or {}).get("storageClassName") or ""


def _storage(resources: dict | None) -> object:
    return parse_quantity(((resources or {}).get("storage")) or "0")


def is_bound_to(pv: dict, pvc: dict) -> bool:
    """``IsVolumeBoundToClaim``: claimRef names the claim (and its uid, if set)."""
    ref = (pv.get("spec") or {}).get("claimRef")
    md = pvc["metadata"]
    if not ref or ref.get("name") != md["name"] or ref.get("namespace") != md.get("namespace"):
        return False
    return not ref.get("uid") or ref.get("uid") == md.get("uid")


def volume_mode_mismatch(pvc: dict, pv: dict) -> bool:
    return ((pvc.get("spec") or {}).get("volumeMode") or "Filesystem") != (
        (pv.get("spec") or {}).get("volumeMode") or "Filesystem")


def node_affinity_ok(pv: dict, node: dict | None) -> bool:
    if node is None:
        return True
    required = (((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required"))
    if not required:
        return True
    return required_affinity_matches(
        {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                                       required}}}, node)


def access_modes_ok(pvc: dict, pv: dict) -> bool:
    have = set((pv.get("spec") or {}).get("accessModes") or [])
    return set((pvc.get("spec") or {}).get("accessModes") or []) <= have


def find_matching_volume(pvc: dict, volumes: list[dict], *, node: dict | None = None,
                         delay_binding: bool = False) -> dict | None:
    """``FindMatchingVolume``: the volume pre-bound to the claim, else the smallest
    Available one that satisfies it."""
    spec = pvc.get("spec") or {}
    requested = _storage((spec.get("resources") or {}).get("requests"))
    selector = selectors.label_selector_from_dict(spec["selector"]) \
        if spec.get("selector") is not None else None
    best, best_size = None, None
    for pv in volumes:
        pspec = pv.get("spec") or {}
        if pspec.get("claimRef") and not is_bound_to(pv, pvc):
            continue
        size = _storage(pspec.get("capacity"))
        if size < requested or volume_mode_mismatch(pvc, pv):
            continue
        if (spec.get("volumeAttributesClassName") or "") != (
                pspec.get("volumeAttributesClassName") or ""):
            continue
        if pv["metadata"].get("deletionTimestamp"):
            continue
        affinity_ok = node_affinity_ok(pv, node)
        if is_bound_to(pv, pvc):
            return pv if affinity_ok else None
        if node is None and delay_binding:
            continue
        if (pv.get("status") or {}).get("phase") != "Available":
            continue
        if selector is not None and not selector.matches(m.labels(pv)):
            continue
        if volume_class(pv) != claim_class(pvc) or not affinity_ok:
            continue
        if node is not None and not access_modes_ok(pvc, pv):
            continue
        if best is None or best_size > size:
            best, best_size = pv, size
    return best


def find_best_match(pvc: dict, volumes: list[dict], *, node: dict | None = None,
                    delay_binding: bool = False) -> dict | None:
    """``findBestMatchForClaim``: volumes grouped by access modes, trying the smallest
    superset of the claim's modes first."""
    wanted = set((pvc.get("spec") or {}).get("accessModes") or [])
    groups: dict[frozenset, list[dict]] = {}
    for pv in volumes:
        modes = frozenset((pv.get("spec") or {}).get("accessModes") or [])
        if wanted <= modes:
            groups.setdefault(modes, []).append(pv)
    for modes in sorted(groups, key=lambda s: (len(s), sorted(s))):
        found = find_matching_volume(pvc, groups[modes], node=node, delay_binding=delay_binding)
        if found is not None:
            return found
    return None


def satisfies(pv: dict, pvc: dict) -> str | None:
    """``checkVolumeSatisfyClaim``: why ``pv`` cannot serve ``pvc``, or None."""
    requested = _storage(((pvc.get("spec") or {}).get("resources") or {}).get("requests"))
    if _storage((pv.get("spec") or {}).get("capacity")) < requested:
        return "requested PV is too small"
    if volume_class(pv) != claim_class(pvc):
        return "storageClassName does not match"
    if volume_mode_mismatch(pvc, pv):
        return "incompatible volumeMode"
    if not access_modes_ok(pvc, pv):
        return "incompatible accessMode"
    return None


def default_class(classes: list[dict]) -> dict | None:
    """The default StorageClass (the newest when several claim to be)."""
    defaults = [c for c in classes if m.annotations(c).get(DEFAULT_CLASS) == "true"
                or m.annotations(c).get("storageclass.beta.kubernetes.io/is-default-class")
                == "true"]
    defaults.sort(key=lambda c: (c["metadata"].get("creationTimestamp") or "",
                                 c["metadata"]["name"]), reverse=True)
    return defaults[0] if defaults else None


def claim_ref(pvc: dict) -> dict:
    md = pvc["metadata"]
    return {"kind": "PersistentVolumeClaim", "namespace": md.get("namespace"),
            "name": md["name"], "uid": md.get("uid"), "apiVersion": "v1",
            "resourceVersion": md.get("resourceVersion")}


def pod_uses_claim(pod: dict, pvc: dict) -> bool:
    """A scheduled pod naming the claim (``podUsesPVC``)."""
    spec = pod.get("spec") or {}
    if not spec.get("nodeName") or pod["metadata"].get("namespace") != pvc["metadata"].get(
            "namespace"):
        return False
    name = pvc["metadata"]["name"]
    shut_down = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") or (
        pod["metadata"].get("deletionTimestamp")
        and pod["metadata"].get("deletionGracePeriodSeconds") == 0)
    for vol in spec.get("volumes") or []:
        if (vol.get("persistentVolumeClaim") or {}).get("claimName") == name:
            return True
        if vol.get("ephemeral") is not None and not shut_down and \
                f"{pod['metadata']['name']}-{vol.get('name')}" == name and \
                m.is_controlled_by(pvc, pod):
            return True
    return False


# --- the binder ---------------------------------------------------------------------------

class PersistentVolumeController(CoreController):
    def __init__(self, ctx: ControllerContext):
        s = ctx.settings.volumes
        super().__init__(ctx, name="persistentvolume-binder-controller", workers=1)
        self.recorder = ctx.recorder("persistentvolume-controller")
        self.volumes = self.informer(r.PERSISTENTVOLUMES)
        self.claims = self.informer(r.PERSISTENTVOLUMECLAIMS)
        self.classes = self.informer(r.STORAGECLASSES)
        self.nodes = self.informer(r.NODES)
        self.volumes.add_event_handler(on_add=self._pv, on_update=lambda o, n: self._pv(n),
                                       resync_period=s.sync_period)
        self.claims.add_event_handler(on_add=self._pvc, on_update=lambda o, n: self._pvc(n),
                                      resync_period=s.sync_period)
        self.volumes.add_event_handler(on_delete=self._pv_deleted)

    def _pv(self, pv: dict) -> None:
        self.queue.add("pv/" + pv["metadata"]["name"])

    def _pvc(self, pvc: dict) -> None:
        self.queue.add("pvc/" + m.object_key(pvc))

    def _pv_deleted(self, pv: dict) -> None:
        ref = (pv.get("spec") or {}).get("claimRef")
        if ref:
            self.queue.add(f"pvc/{ref.get('namespace')}/{ref.get('name')}")

    async def sync(self, key: str) -> None:
        kind, _, rest = key.partition("/")
        if kind == "pv":
            pv = self.volumes.store.get(rest)
            if pv is not None:
                await self.sync_volume(pv)
        else:
            pvc = self.claims.store.get(rest)
            if pvc is not None:
                await self.sync_claim(pvc)

    # --- claims ---------------------------------------------------------------------

    async def sync_claim(self, pvc: dict) -> None:
        if m.annotations(pvc).get(BIND_COMPLETED):
            await self._sync_bound_claim(pvc)
        else:
            await self._sync_unbound_claim(pvc)

    def _class(self, name: str) -> dict | None:
        return self.classes.store.get(name) if name else None

    async def _sync_unbound_claim(self, pvc: dict) -> None:
        spec = pvc.get("spec") or {}
        if not spec.get("volumeName"):
            sc = self._class(claim_class(pvc))
            selected = m.annotations(pvc).get(SELECTED_NODE)
            delay = bool(sc and sc.get("volumeBindingMode") == "WaitForFirstConsumer"
                         and not selected)
            node = self.nodes.store.get(selected) if selected else None
            pv = find_best_match(pvc, self.volumes.store.list(), node=node, delay_binding=delay)
            if pv is not None:
                await self.bind(pv, pvc)
                return
            if "storageClassName" not in spec and await self._assign_default_class(pvc):
                return
            if delay:
                self.recorder.event(pvc, "Normal", reason="WaitForFirstConsumer",
                                    message="waiting for first consumer to be created before "
                                            "binding")
            elif claim_class(pvc):
                await self._provision(pvc, sc)
                return
            else:
                self.recorder.event(pvc, "Normal", reason="FailedBinding",
                                    message="no persistent volumes available for this claim "
                                            "and no storage class is set")
            await self._claim_phase(pvc, "Pending")
            return
        pv = self.volumes.store.get(spec["volumeName"])
        if pv is None:
            await self._claim_phase(pvc, "Pending")
            return
        if not (pv.get("spec") or {}).get("claimRef"):
            why = satisfies(pv, pvc)
            if why:
                self.recorder.event(pvc, "Warning", reason="VolumeMismatch",
                                    message=f"Cannot bind to requested volume "
                                            f"\"{pv['metadata']['name']}\": {why}")
                await self._claim_phase(pvc, "Pending")
                return
            await self.bind(pv, pvc)
        elif is_bound_to(pv, pvc):
            await self.bind(pv, pvc)
        else:
            self.recorder.event(pvc, "Warning", reason="FailedBinding",
                                message=f"volume \"{pv['metadata']['name']}\" already bound to "
                                        f"a different claim.")
            if BOUND_BY_CONTROLLER in m.annotations(pvc):
                raise RuntimeError(f"invalid binding of claim {m.object_key(pvc)} to volume "
                                   f"{pv['metadata']['name']}: volume already claimed")
            await self._claim_phase(pvc, "Pending")

    async def _sync_bound_claim(self, pvc: dict) -> None:
        name = (pvc.get("spec") or {}).get("volumeName")
        if not name:
            await self._claim_lost(pvc, "ClaimLost", "Bound claim has lost reference to "
                                   "PersistentVolume. Data on the volume is lost!")
            return
        pv = self.volumes.store.get(name)
        if pv is None:
            await self._claim_lost(pvc, "ClaimLost", "Bound claim has lost its PersistentVolume. "
                                   "Data on the volume is lost!")
            return
        ref = (pv.get("spec") or {}).get("claimRef")
        if not ref or ref.get("uid") == pvc["metadata"].get("uid"):
            await self.bind(pv, pvc)
        else:
            await self._claim_lost(pvc, "ClaimMisbound", "Two claims are bound to the same "
                                   "volume, this one is bound incorrectly")

    async def _claim_lost(self, pvc: dict, reason: str, message: str) -> None:
        if (pvc.get("status") or {}).get("phase") != "Lost":
            self.recorder.event(pvc, "Warning", reason=reason, message=message)
        await self._claim_phase(pvc, "Lost")

    async def _assign_default_class(self, pvc: dict) -> bool:
        sc = default_class(self.classes.store.list())
        if sc is None:
            return False
        new = {**pvc, "spec": {**pvc["spec"], "storageClassName": sc["metadata"]["name"]}}
        await self.client.update(r.PERSISTENTVOLUMECLAIMS, new)
        return True

    async def _provision(self, pvc: dict, sc: dict | None) -> None:
        if sc is None:
            self.recorder.event(pvc, "Warning", reason="ProvisioningFailed",
                                message=f"storageclass.storage.k8s.io \"{claim_class(pvc)}\" "
                                        f"not found")
            await self._claim_phase(pvc, "Pending")
            return
        provisioner = sc.get("provisioner") or ""
        if provisioner == "kubernetes.io/no-provisioner":
            # Static volumes only: nothing will ever be provisioned for this class.
            self.recorder.event(pvc, "Warning", reason="ProvisioningFailed",
                                message=f"no volume plugin matched name: {provisioner}")
            await self._claim_phase(pvc, "Pending")
            return
        ann = m.annotations(pvc)
        if ann.get(STORAGE_PROVISIONER) != provisioner or \
                ann.get(BETA_STORAGE_PROVISIONER) != provisioner:
            new = {**pvc, "metadata": {**pvc["metadata"], "annotations": {
                **ann, STORAGE_PROVISIONER: provisioner, BETA_STORAGE_PROVISIONER: provisioner}}}
            pvc = await self.client.update(r.PERSISTENTVOLUMECLAIMS, new)
        self.recorder.event(pvc, "Normal", reason="ExternalProvisioning",
                            message=f"Waiting for a volume to be created either by the external "
                                    f"provisioner '{provisioner}' or manually by the system "
                                    f"administrator. If volume creation is delayed, please "
                                    f"verify that the provisioner is running and correctly "
                                    f"registered.")
        await self._claim_phase(pvc, "Pending")

    async def _claim_phase(self, pvc: dict, phase: str, pv: dict | None = None) -> dict:
        status = dict(pvc.get("status") or {})
        want = dict(status, phase=phase)
        if pv is not None:
            want["accessModes"] = list((pv.get("spec") or {}).get("accessModes") or [])
            want["capacity"] = dict((pv.get("spec") or {}).get("capacity") or {})
        elif phase != "Bound":
            want.pop("accessModes", None)
            want.pop("capacity", None)
        if want == status:
            return pvc
        return await self.client.update_status(r.PERSISTENTVOLUMECLAIMS, {**pvc, "status": want})

    # --- binding ----------------------------------------------------------------------

    async def bind(self, pv: dict, pvc: dict) -> None:
        """``bind``: volume to claim, volume Bound, claim to volume, claim Bound."""
        pv = await self._bind_volume(pv, pvc)
        pv = await self._volume_phase(pv, "Bound")
        pvc = await self._bind_claim(pvc, pv)
        await self._claim_phase(pvc, "Bound", pv)

    async def _bind_volume(self, pv: dict, pvc: dict) -> dict:
        spec = pv.get("spec") or {}
        ref = spec.get("claimRef")
        ann = dict(m.annotations(pv))
        changed = False
        if not ref or ref.get("uid") != pvc["metadata"].get("uid") or \
                ref.get("name") != pvc["metadata"]["name"]:
            if not ref:
                ann[BOUND_BY_CONTROLLER] = "yes"
            spec = {**spec, "claimRef": claim_ref(pvc)}
            changed = True
        if not changed:
            return pv
        new = {**pv, "spec": spec, "metadata": {**pv["metadata"], "annotations": ann}}
        return await self.client.update(r.PERSISTENTVOLUMES, new)

    async def _bind_claim(self, pvc: dict, pv: dict) -> dict:
        spec = pvc.get("spec") or {}
        ann = dict(m.annotations(pvc))
        changed = False
        if spec.get("volumeName") != pv["metadata"]["name"]:
            ann[BOUND_BY_CONTROLLER] = "yes"
            spec = {**spec, "volumeName": pv["metadata"]["name"]}
            changed = True
        if ann.get(BIND_COMPLETED) != "yes":
            ann[BIND_COMPLETED] = "yes"
            changed = True
        if not changed:
            return pvc
        new = {**pvc, "spec": spec, "metadata": {**pvc["metadata"], "annotations": ann}}
        return await self.client.update(r.PERSISTENTVOLUMECLAIMS, new)

    async def _volume_phase(self, pv: dict, phase: str, message: str = "") -> dict:
        status = pv.get("status") or {}
        if status.get("phase") == phase and (status.get("message") or "") == message:
            return pv
        want = {**status, "phase": phase}
        if message:
            want["message"] = message
        else:
            want.pop("message", None)
        if status.get("phase") != phase:
            want["lastPhaseTransitionTime"] = self.now_str()
        return await self.client.update_status(r.PERSISTENTVOLUMES, {**pv, "status": want})

    # --- volumes ----------------------------------------------------------------------

    async def sync_volume(self, pv: dict) -> None:
        ref = (pv.get("spec") or {}).get("claimRef")
        if not ref or not ref.get("uid"):
            await self._volume_phase(pv, "Available")
            return
        phase = (pv.get("status") or {}).get("phase")
        pvc = self.claims.store.get_object(ref.get("namespace"), ref.get("name") or "")
        if pvc is None or pvc["metadata"].get("uid") != ref.get("uid"):
            if phase not in ("Released", "Failed"):
                pvc = await self._fresh_claim(ref)
            if pvc is not None and pvc["metadata"].get("uid") != ref.get("uid"):
                pvc = None
        if pvc is None:
            if phase not in ("Released", "Failed"):
                pv = await self._volume_phase(pv, "Released")
            await self.reclaim(pv)
            return
        claim_volume = (pvc.get("spec") or {}).get("volumeName")
        if not claim_volume:
            if volume_mode_mismatch(pvc, pv):
                self.recorder.event(pv, "Warning", reason="VolumeMismatch",
                                    message=f"Cannot bind PersistentVolume to requested "
                                            f"PersistentVolumeClaim \"{pvc['metadata']['name']}\" "
                                            f"due to incompatible volumeMode.")
                return
            # The claim's sync finishes the binding (a provisioner writes only the PV).
            self._pvc(pvc)
        elif claim_volume == pv["metadata"]["name"]:
            await self._volume_phase(pv, "Bound")
        elif PROVISIONED_BY in m.annotations(pv) and \
                pv["spec"].get("persistentVolumeReclaimPolicy") == "Delete":
            if phase not in ("Released", "Failed"):
                pv = await self._volume_phase(pv, "Released")
            await self.reclaim(pv)
        else:
            await self._unbind(pv)

    async def _fresh_claim(self, ref: dict) -> dict | None:
        try:
            return await self.client.get(r.PERSISTENTVOLUMECLAIMS, ref.get("name") or "",
                                         namespace=ref.get("namespace"))
        except ApiError as err:
            if is_not_found(err):
                return None
            raise

    async def _unbind(self, pv: dict) -> None:
        ann = dict(m.annotations(pv))
        spec = dict(pv["spec"])
        if BOUND_BY_CONTROLLER in ann:
            spec.pop("claimRef", None)
            ann.pop(BOUND_BY_CONTROLLER)
        else:
            spec["claimRef"] = {k: v for k, v in spec["claimRef"].items() if k != "uid"}
        new = await self.client.update(r.PERSISTENTVOLUMES, {
            **pv, "spec": spec, "metadata": {**pv["metadata"], "annotations": ann}})
        await self._volume_phase(new, "Available")

    async def reclaim(self, pv: dict) -> None:
        """``reclaimVolume``."""
        policy = (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") or "Retain"
        if policy == "Retain":
            return
        if (pv.get("status") or {}).get("phase") == "Failed":
            return
        if policy == "Recycle":
            self.recorder.event(pv, "Warning", reason="VolumeFailedRecycle",
                                message="No recycler plugin found for the volume!")
            await self._volume_phase(pv, "Failed", "No recycler plugin found for the volume!")
        elif policy == "Delete":
            if PROVISIONED_BY in m.annotations(pv):
                return  # its provisioner deletes it
            msg = (f"error getting deleter volume plugin for volume \"{pv['metadata']['name']}\":"
                   f" no deletable volume plugin matched")
            self.recorder.event(pv, "Warning", reason="VolumeFailedDelete", message=msg)
            await self._volume_phase(pv, "Failed", msg)


# --- protection --------------------------------------------------------------------------

async def _drop_finalizer(client, res, obj: dict, finalizer: str) -> None:
    new = {**obj, "metadata": dict(obj["metadata"])}
    m.remove_finalizer(new, finalizer)
    new["metadata"].setdefault("finalizers", [])
    try:
        await client.update(res, new)
    except ApiError as err:
        if not is_not_found(err):
            raise


async def _add_finalizer(client, res, obj: dict, finalizer: str) -> None:
    new = {**obj, "metadata": dict(obj["metadata"])}
    new["metadata"]["finalizers"] = list(obj["metadata"].get("finalizers") or [])
    m.add_finalizer(new, finalizer)
    await client.update(res, new)


class PVCProtectionController(CoreController):
    def __init__(self, ctx: ControllerContext):
        super().__init__(ctx, name="persistentvolumeclaim-protection-controller", workers=1)
        self.claims = self.informer(r.PERSISTENTVOLUMECLAIMS)
        self.pods = self.informer(r.PODS)
        self.claims.add_event_handler(on_add=self.enqueue, on_update=lambda o, n: self.enqueue(n))
        self.pods.add_event_handler(on_update=lambda o, n: self._pod(n), on_delete=self._pod)

    def _pod(self, pod: dict) -> None:
        ns = pod["metadata"].get("namespace")
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            if vol.get("ephemeral") is not None:
                claim = f"{pod['metadata']['name']}-{vol.get('name')}"
            if claim:
                self.enqueue(m.key(ns, claim))

    async def sync(self, key: str) -> None:
        pvc = self.claims.store.get(key)
        if pvc is None:
            return
        deleting = bool(pvc["metadata"].get("deletionTimestamp"))
        if deleting and m.has_finalizer(pvc, PVC_PROTECTION):
            if not await self._in_use(pvc):
                await _drop_finalizer(self.client, r.PERSISTENTVOLUMECLAIMS, pvc, PVC_PROTECTION)
            return
        if not deleting and not m.has_finalizer(pvc, PVC_PROTECTION):
            await _add_finalizer(self.client, r.PERSISTENTVOLUMECLAIMS, pvc, PVC_PROTECTION)

    async def _in_use(self, pvc: dict) -> bool:
        ns = pvc["metadata"].get("namespace")
        if any(pod_uses_claim(p, pvc) for p in self.pods.store.list_namespace(ns)):
            return True
        # The cache may not show a pod that was just scheduled: ask the API.
        listing = await self.client.list_all(r.PODS, namespace=ns)
        return any(pod_uses_claim(p, pvc) for p in listing["items"])


class PVProtectionController(CoreController):
    def __init__(self, ctx: ControllerContext):
        super().__init__(ctx, name="persistentvolume-protection-controller", workers=1)
        self.volumes = self.informer(r.PERSISTENTVOLUMES)
        self.volumes.add_event_handler(on_add=self.enqueue,
                                       on_update=lambda o, n: self.enqueue(n))

    async def sync(self, key: str) -> None:
        pv = self.volumes.store.get(key)
        if pv is None:
            return
        deleting = bool(pv["metadata"].get("deletionTimestamp"))
        if deleting and m.has_finalizer(pv, PV_PROTECTION):
            if (pv.get("status") or {}).get("phase") != "Bound":
                await _drop_finalizer(self.client, r.PERSISTENTVOLUMES, pv, PV_PROTECTION)
            return
        if not deleting and not m.has_finalizer(pv, PV_PROTECTION):
            await _add_finalizer(self.client, r.PERSISTENTVOLUMES, pv, PV_PROTECTION)


def new_pv_binder(ctx: ControllerContext) -> PersistentVolumeController:
    return PersistentVolumeController(ctx)


def new_pvc_protection(ctx: ControllerContext) -> PVCProtectionController:
    return PVCProtectionController(ctx)


def new_pv_protection(ctx: ControllerContext) -> PVProtectionController:
    return PVProtectionController(ctx)
