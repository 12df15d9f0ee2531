"""EndpointSlices from Services and Pods, and mirrored from selectorless Endpoints.

Role: upstream's ``pkg/controller/endpointslice`` with the reconciler of
``staging/src/k8s.io/endpointslice/reconciler.go`` (``reconcile``), and
``pkg/controller/endpointslicemirroring`` (``mirror``). Both reconcilers are pure:
they take the Service (or Endpoints), the pods and nodes, and the existing slices,
and return which slices to create, update and delete; the controllers execute that.

Invariants:
- Every slice of a Service carries ``kubernetes.io/service-name``,
  ``endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`` (the
  mirroring controller: ``endpointslicemirroring-controller.k8s.io``), the Service's
  other labels, ``service.kubernetes.io/headless`` when headless, and a controller
  ownerReference to the Service (the mirror's: to the Endpoints), so the garbage
  collector removes them with their owner.
- A slice holds at most ``max_endpoints_per_slice`` (100) endpoints, all with the
  same ports; endpoints are placed into existing slices before new ones are made,
  and a Service with no endpoints keeps one empty placeholder slice.
- Endpoint conditions are upstream's: ``serving`` = pod Ready, ``terminating`` =
  being deleted, ``ready`` = serving and not terminating (always true with
  ``publishNotReadyAddresses``); terminating pods stay listed.
- The controllers never act on a stale cache: a slice they wrote and the informer
  does not show yet makes the sync fail and retry (upstream's EndpointSliceTracker).
"""
from __future__ import annotations

import copy
import ipaddress
import logging
from dataclasses import dataclass, field

from pyk8s.api import meta as m
from pyk8s.client import ApiError, is_not_found
from pyk8s.client import resources as r

from . import podutil
from .corecontext import ControllerContext, CoreController
from .endpoints import (LEADER_ANNOTATION, SERVICE_NAME_LABEL, SKIP_MIRROR_LABEL, find_port,
                        is_service_ip_set, pod_ips, pod_reference, pods_for_service,
                        repack_subsets, services_for_pod, should_pod_be_in_endpoints,
                        should_set_hostname, _namespace_terminating)

log = logging.getLogger(__name__)

MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
HEADLESS_LABEL = "service.kubernetes.io/headless"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MIRROR_CONTROLLER_NAME = "endpointslicemirroring-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
RESERVED_LABELS = (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)


@dataclass
class Plan:
    create: list[dict] = field(default_factory=list)
    update: list[dict] = field(default_factory=list)
    delete: list[dict] = field(default_factory=list)

    def extend(self, other: "Plan") -> None:
        self.create += other.create
        self.update += other.update
        self.delete += other.delete


# --- endpoints of pods ----------------------------------------------------------------

def address_types(svc: dict) -> list[str]:
    """``getAddressTypesForService``."""
    spec = svc.get("spec") or {}
    fams = [f for f in ("IPv4", "IPv6") if f in (spec.get("ipFamilies") or [])]
    if fams:
        return fams
    if is_service_ip_set(svc):
        return ["IPv6" if ipaddress.ip_address(spec["clusterIP"]).version == 6 else "IPv4"]
    return ["IPv4", "IPv6"]


def _family(ip: str) -> str | None:
    try:
        return "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    except ValueError:
        return None


def endpoint_ports(svc: dict, pod: dict) -> list[dict]:
    """``getEndpointPorts``: the Service's ports resolved for ``pod``."""
    spec = svc.get("spec") or {}
    ports = []
    for sp in spec.get("ports") or []:
        num = find_port(pod, sp)
        if num is None:
            continue
        port = {"name": sp.get("name", ""), "port": num, "protocol": sp.get("protocol", "TCP")}
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        ports.append(port)
    return ports


def pod_to_endpoint(pod: dict, node: dict | None, svc: dict, address_type: str) -> dict:
    """``podToEndpoint``."""
    serving = podutil.is_pod_ready(pod)
    terminating = podutil.deletion_timestamp(pod) is not None
    ready = bool((svc.get("spec") or {}).get("publishNotReadyAddresses")) or (
        serving and not terminating)
    ep: dict = {"addresses": [ip for ip in pod_ips(pod) if _family(ip) == address_type],
                "conditions": {"ready": ready, "serving": serving, "terminating": terminating}}
    if should_set_hostname(pod, svc):
        ep["hostname"] = pod["spec"]["hostname"]
    ep["targetRef"] = pod_reference(pod)
    if podutil.node_name(pod):
        ep["nodeName"] = podutil.node_name(pod)
    zone = m.labels(node).get(ZONE_LABEL) if node else None
    if zone:
        ep["zone"] = zone
    return ep


def endpoint_key(ep: dict) -> tuple:
    """What identifies an endpoint within a port set (``hashEndpoint``)."""
    ref = ep.get("targetRef") or {}
    return (tuple(sorted(ep.get("addresses") or [])), ep.get("hostname") or "",
            ref.get("namespace") or "", ref.get("name") or "")


def port_key(ports: list[dict] | None, address_type: str = "") -> tuple:
    return (address_type,) + tuple(sorted(
        (p.get("name") or "", p.get("port") or 0, p.get("protocol") or "TCP",
         p.get("appProtocol") or "") for p in ports or []))


# --- slices ---------------------------------------------------------------------------

def slice_prefix(name: str) -> str:
    prefix = f"{name}-"
    return prefix if len(prefix) <= 253 else name


def owned_by(eps: dict, svc: dict) -> bool:
    uid = svc["metadata"].get("uid")
    return any(ref.get("uid") == uid and ref.get("kind") == "Service"
               and ref.get("apiVersion") == "v1" and ref.get("controller")
               for ref in m.owner_references(eps))


def slice_labels(eps: dict | None, svc: dict, controller: str) -> tuple[dict, bool]:
    """``setEndpointSliceLabels``: the labels a slice of ``svc`` must have, and whether
    the slice's non-reserved labels differ from the Service's."""
    ep_labels = {k: v for k, v in m.labels(eps or {}).items() if k not in RESERVED_LABELS}
    svc_labels = {k: v for k, v in m.labels(svc).items() if k not in RESERVED_LABELS}
    changed = ep_labels != svc_labels
    if not is_service_ip_set(svc):
        svc_labels[HEADLESS_LABEL] = ""
    if eps is not None and (HEADLESS_LABEL in m.labels(eps)) != (HEADLESS_LABEL in svc_labels):
        changed = True
    svc_labels[SERVICE_NAME_LABEL] = svc["metadata"]["name"]
    svc_labels[MANAGED_BY_LABEL] = controller
    return svc_labels, changed


def new_slice(svc: dict, ports: list[dict], address_type: str, controller: str) -> dict:
    md = svc["metadata"]
    eps = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"generateName": slice_prefix(md["name"]), "namespace": md.get("namespace"),
                        "ownerReferences": [{"apiVersion": "v1", "kind": "Service",
                                             "name": md["name"], "uid": md.get("uid"),
                                             "controller": True, "blockOwnerDeletion": True}]},
           "addressType": address_type, "endpoints": [], "ports": list(ports)}
    eps["metadata"]["labels"], _ = slice_labels(eps, svc, controller)
    return eps


def _is_placeholder_of(eps: dict, placeholder: dict) -> bool:
    return (eps["metadata"].get("namespace") == placeholder["metadata"].get("namespace")
            and m.labels(eps) == m.labels(placeholder)
            and m.owner_references(eps) == m.owner_references(placeholder)
            and not eps.get("endpoints") and not eps.get("ports")
            and eps.get("addressType") == placeholder["addressType"])


def _fill_choice(slices: list[dict], count: int, maximum: int) -> dict | None:
    """``getSliceToFill``: the slice that ends up closest to full."""
    best, best_diff = None, maximum
    for eps in slices:
        diff = maximum - (count + len(eps.get("endpoints") or []))
        if 0 <= diff < best_diff:
            best, best_diff = eps, diff
            if diff == 0:
                break
    return best


def _reconcile_port_map(svc: dict, existing: list[dict], desired: dict[tuple, dict],
                        ports: list[dict], address_type: str, maximum: int,
                        controller: str) -> Plan:
    """``reconcileByPortMapping``: keep what is placed, fill, then create."""
    by_name: dict[str, dict] = {}
    unchanged: list[str] = []
    to_update: list[str] = []
    to_delete: list[str] = []
    for eps in existing:
        name = eps["metadata"]["name"]
        by_name[name] = eps
        kept, updated = [], False
        for ep in eps.get("endpoints") or []:
            want = desired.pop(endpoint_key(ep), None)
            if want is not None:
                kept.append(want)
                updated = updated or want != ep
        labels, labels_changed = slice_labels(eps, svc, controller)
        if updated or len(kept) != len(eps.get("endpoints") or []):
            if not kept:
                to_delete.append(name)
            else:
                new = copy.deepcopy(eps)
                new["endpoints"], new["metadata"]["labels"] = kept, labels
                by_name[name] = new
                to_update.append(name)
        elif labels_changed or m.labels(eps) != labels:
            new = copy.deepcopy(eps)
            new["metadata"]["labels"] = labels
            by_name[name] = new
            to_update.append(name)
        else:
            unchanged.append(name)
    pending = [desired[k] for k in sorted(desired)]
    if pending and to_update:
        # Fill the fullest of the slices being written anyway.
        for name in sorted(to_update, key=lambda n: -len(by_name[n]["endpoints"])):
            eps = by_name[name]
            while pending and len(eps["endpoints"]) < maximum:
                eps["endpoints"].append(pending.pop(0))
    plan = Plan()
    while pending:
        target = None
        if len(pending) < maximum and unchanged:
            target = _fill_choice([by_name[n] for n in unchanged], len(pending), maximum)
        if target is None:
            target = new_slice(svc, ports, address_type, controller)
        else:
            target = copy.deepcopy(target)
            by_name[target["metadata"]["name"]] = target
        target.setdefault("endpoints", [])
        while pending and len(target["endpoints"]) < maximum:
            target["endpoints"].append(pending.pop(0))
        name = target["metadata"].get("name")
        if name:
            to_update.append(name)
            unchanged.remove(name)
        else:
            plan.create.append(target)
    plan.update = [by_name[n] for n in to_update]
    plan.delete = [by_name[n] for n in to_delete]
    return plan


def reconcile(svc: dict, pods: list[dict], nodes: dict[str, dict], existing: list[dict], *,
              max_per_slice: int = 100, controller: str = CONTROLLER_NAME
              ) -> tuple[Plan, list[str]]:
    """``Reconciler.Reconcile``: the slice changes for ``svc``, plus pods skipped because
    their node is unknown (the caller retries later for those)."""
    plan, skipped = Plan(), []
    families = address_types(svc)
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    for family in families:
        mine = [s for s in existing if s.get("addressType") == family]
        by_ports: dict[tuple, list[dict]] = {}
        stale: list[dict] = []
        for eps in mine:
            if owned_by(eps, svc):
                by_ports.setdefault(port_key(eps.get("ports")), []).append(eps)
            else:
                stale.append(eps)
        desired: dict[tuple, dict[tuple, dict]] = {}
        desired_ports: dict[tuple, list[dict]] = {}
        for pod in pods:
            if not should_pod_be_in_endpoints(pod, True):
                continue
            ports = endpoint_ports(svc, pod)
            pk = port_key(ports)
            desired.setdefault(pk, {})
            desired_ports.setdefault(pk, ports)
            node = nodes.get(podutil.node_name(pod))
            if node is None and not publish:
                skipped.append(pod["metadata"]["name"])
                continue
            ep = pod_to_endpoint(pod, node, svc, family)
            if ep["addresses"]:
                desired[pk][endpoint_key(ep)] = ep
        fam_plan = Plan(delete=stale)
        for pk in sorted(desired):
            fam_plan.extend(_reconcile_port_map(svc, by_ports.get(pk, []), desired[pk],
                                                desired_ports[pk], family, max_per_slice,
                                                controller))
        for pk, slices in by_ports.items():
            if pk not in desired:
                fam_plan.delete += slices
        if len(mine) == len(fam_plan.delete) and not fam_plan.create:
            placeholder = new_slice(svc, [], family, controller)
            if len(fam_plan.delete) == 1 and _is_placeholder_of(fam_plan.delete[0], placeholder):
                fam_plan.delete = []
            else:
                fam_plan.create.append(placeholder)
        plan.extend(_recycle(fam_plan, svc))
    for eps in existing:
        if eps.get("addressType") not in families:
            plan.delete.append(eps)
    return plan, skipped


def _recycle(plan: Plan, svc: dict) -> Plan:
    """``finalize``: turn creates into updates of slices that would be deleted."""
    keep_delete = []
    for eps in plan.delete:
        if plan.create and owned_by(eps, svc) and \
                eps.get("addressType") == plan.create[-1].get("addressType"):
            new = plan.create.pop()
            new["metadata"].pop("generateName", None)
            new["metadata"]["name"] = eps["metadata"]["name"]
            new["metadata"]["resourceVersion"] = eps["metadata"].get("resourceVersion")
            plan.update.append(new)
        else:
            keep_delete.append(eps)
    plan.delete = keep_delete
    return plan


# --- mirroring ----------------------------------------------------------------------------

def _mirror_endpoint(addr: dict, ready: bool) -> dict:
    ep: dict = {"addresses": [addr["ip"]], "conditions": {"ready": ready}}
    if addr.get("targetRef"):
        ep["targetRef"] = addr["targetRef"]
    if addr.get("nodeName"):
        ep["nodeName"] = addr["nodeName"]
    if addr.get("hostname"):
        ep["hostname"] = addr["hostname"]
    return ep


def _mirror_slice(ep: dict, ports: list[dict], address_type: str, name: str | None) -> dict:
    md = ep["metadata"]
    labels = {**m.labels(ep), SERVICE_NAME_LABEL: md["name"],
              MANAGED_BY_LABEL: MIRROR_CONTROLLER_NAME}
    annotations = {k: v for k, v in m.annotations(ep).items()
                   if k not in (TRIGGER_TIME, LAST_APPLIED)}
    meta: dict = {"namespace": md.get("namespace"), "labels": labels, "annotations": annotations,
                  "ownerReferences": [{"apiVersion": "v1", "kind": "Endpoints", "name": md["name"],
                                       "uid": md.get("uid"), "controller": True,
                                       "blockOwnerDeletion": True}]}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = slice_prefix(md["name"])
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
            "addressType": address_type, "ports": ports, "endpoints": []}


@dataclass
class MirrorResult:
    plan: Plan
    invalid: int = 0
    skipped: int = 0


def mirror(ep: dict, existing: list[dict], *, max_per_subset: int = 1000) -> MirrorResult:
    """The endpointslicemirroring reconciler: one slice per (ports, address type)."""
    desired: dict[tuple, dict[tuple, dict]] = {}
    ports_by_key: dict[tuple, list[dict]] = {}
    invalid = skipped = 0
    for subset in repack_subsets(ep.get("subsets") or []):
        ports = [{"name": p.get("name", ""), "port": p["port"],
                  "protocol": p.get("protocol", "TCP"),
                  **({"appProtocol": p["appProtocol"]} if p.get("appProtocol") else {})}
                 for p in subset.get("ports") or []]
        added = 0
        total = len(subset.get("addresses") or []) + len(subset.get("notReadyAddresses") or [])
        for field_name, ready in (("addresses", True), ("notReadyAddresses", False)):
            for addr in subset.get(field_name) or []:
                if added >= max_per_subset:
                    break
                family = _family(addr.get("ip") or "")
                if family is None:
                    invalid += 1
                    continue
                key = port_key(ports, family)
                ports_by_key[key] = ports
                endpoint = _mirror_endpoint(addr, ready)
                desired.setdefault(key, {})[endpoint_key(endpoint)] = endpoint
                added += 1
        skipped += total - added
    existing_by_key: dict[tuple, list[dict]] = {}
    for eps in existing:
        existing_by_key.setdefault(port_key(eps.get("ports"), eps.get("addressType", "")),
                                   []).append(eps)
    plan = Plan()
    compare_annotations = {k: v for k, v in m.annotations(ep).items()
                           if k not in (TRIGGER_TIME, LAST_APPLIED)}
    for key in sorted(desired):
        want = desired[key]
        slices = existing_by_key.get(key, [])
        name = None
        if slices:
            plan.delete += slices[1:]
            first = slices[0]
            have = {endpoint_key(e): e for e in first.get("endpoints") or []}
            labels = {k: v for k, v in m.labels(first).items()
                      if k not in (MANAGED_BY_LABEL, SERVICE_NAME_LABEL)}
            if have == want and labels == m.labels(ep) and \
                    m.annotations(first) == compare_annotations:
                continue
            name = first["metadata"]["name"]
        new = _mirror_slice(ep, ports_by_key[key], key[0], name)
        new["endpoints"] = [want[k] for k in sorted(want)][:max_per_subset]
        (plan.update if name else plan.create).append(new)
    for key, slices in existing_by_key.items():
        if key not in desired:
            plan.delete += slices
    return MirrorResult(plan, invalid, skipped - invalid)


# --- staleness ----------------------------------------------------------------------------

def _version(obj: dict) -> int:
    md = obj.get("metadata") or {}
    if md.get("generation"):
        return int(md["generation"])
    try:
        return int(md.get("resourceVersion") or 0)
    except ValueError:
        return 0


class SliceTracker:
    """``EndpointSliceTracker``: what we wrote, so a lagging cache is noticed."""

    DELETED = -1

    def __init__(self) -> None:
        self.by_service: dict[str, dict[str, int]] = {}

    def wrote(self, service_key: str, eps: dict) -> None:
        self.by_service.setdefault(service_key, {})[eps["metadata"]["uid"]] = _version(eps)

    def deleted(self, service_key: str, eps: dict) -> None:
        self.by_service.setdefault(service_key, {})[eps["metadata"]["uid"]] = self.DELETED

    def observed_deletion(self, service_key: str, eps: dict) -> bool:
        """True if we expected this deletion."""
        gens = self.by_service.get(service_key, {})
        return gens.pop(eps["metadata"].get("uid"), None) == self.DELETED

    def forget(self, service_key: str) -> None:
        self.by_service.pop(service_key, None)

    def stale(self, service_key: str, slices: list[dict]) -> bool:
        gens = self.by_service.get(service_key)
        if not gens:
            return False
        seen = {}
        for eps in slices:
            uid = eps["metadata"].get("uid")
            seen[uid] = True
            want = gens.get(uid)
            if want is not None and (want == self.DELETED or want > _version(eps)):
                return True
        return any(v != self.DELETED and uid not in seen for uid, v in gens.items())


# --- controllers ----------------------------------------------------------------------------

class _SliceWriter(CoreController):
    """Executes a ``Plan`` and keeps the tracker in step."""

    tracker: SliceTracker

    async def execute(self, key: str, plan: Plan, namespace: str, *, may_create: bool) -> None:
        if may_create:
            for eps in plan.create:
                try:
                    made = await self.client.create(r.ENDPOINTSLICES, eps, namespace=namespace)
                except ApiError as err:
                    if _namespace_terminating(err):
                        return
                    raise
                self.tracker.wrote(key, made)
        for eps in plan.update:
            self.tracker.wrote(key, await self.client.update(r.ENDPOINTSLICES, eps,
                                                             namespace=namespace))
        for eps in plan.delete:
            try:
                await self.client.delete(r.ENDPOINTSLICES, eps["metadata"]["name"],
                                         namespace=namespace)
            except ApiError as err:
                if not is_not_found(err):
                    raise
            self.tracker.deleted(key, eps)

    def _slice_event(self, eps: dict, deleted: bool = False) -> None:
        name = m.labels(eps).get(SERVICE_NAME_LABEL)
        if not name:
            return
        key = m.key(eps["metadata"].get("namespace"), name)
        if deleted and self.tracker.observed_deletion(key, eps):
            return
        self.enqueue(key)


class EndpointSliceController(_SliceWriter):
    def __init__(self, ctx: ControllerContext):
        s = ctx.settings.endpoints
        super().__init__(ctx, name="endpointslice-controller", workers=s.slice_workers)
        self.max_per_slice = s.max_endpoints_per_slice
        self.tracker = SliceTracker()
        self.services = self.informer(r.SERVICES)
        self.pods = self.informer(r.PODS)
        self.nodes = self.informer(r.NODES)
        self.slices = self.informer(r.ENDPOINTSLICES,
                                    label_selector=f"{MANAGED_BY_LABEL}={CONTROLLER_NAME}")
        self.services.add_event_handler(on_add=self.enqueue,
                                        on_update=lambda o, n: self.enqueue(n),
                                        on_delete=self.enqueue)
        self.pods.add_event_handler(on_add=self._pod, on_delete=self._pod,
                                    on_update=lambda o, n: (self._pod(o), self._pod(n)))
        self.slices.add_event_handler(on_add=self._slice_event,
                                      on_update=lambda o, n: self._slice_event(n),
                                      on_delete=lambda o: self._slice_event(o, deleted=True))

    def _pod(self, pod: dict) -> None:
        ns = pod["metadata"].get("namespace")
        for svc in services_for_pod(self.services.store.list_namespace(ns), pod):
            self.enqueue(svc)

    async def sync(self, key: str) -> None:
        svc = self.services.store.get(key)
        if svc is None:
            self.tracker.forget(key)
            return
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName" or not spec.get("selector"):
            return
        ns = svc["metadata"].get("namespace")
        pods = pods_for_service(self.pods.store.list_namespace(ns), svc)
        existing = [s for s in self.slices.store.list_namespace(ns)
                    if m.labels(s).get(SERVICE_NAME_LABEL) == svc["metadata"]["name"]
                    and not s["metadata"].get("deletionTimestamp")]
        if self.tracker.stale(key, existing):
            raise RuntimeError("EndpointSlice informer cache is out of date")
        nodes = {n["metadata"]["name"]: n for n in self.nodes.store.list()}
        plan, skipped = reconcile(svc, pods, nodes, existing, max_per_slice=self.max_per_slice)
        await self.execute(key, plan, ns, may_create=not svc["metadata"].get("deletionTimestamp"))
        if skipped:
            raise RuntimeError(f"skipping pods {skipped} for Service {key}: node not found")


class EndpointSliceMirroringController(_SliceWriter):
    def __init__(self, ctx: ControllerContext):
        s = ctx.settings.endpoints
        super().__init__(ctx, name="endpointslice-mirroring-controller", workers=s.slice_workers)
        self.max_per_subset = s.mirror_max_endpoints
        self.recorder = ctx.recorder("endpointslice-mirroring-controller")
        self.tracker = SliceTracker()
        self.services = self.informer(r.SERVICES)
        self.endpoints = self.informer(r.ENDPOINTS)
        self.slices = self.informer(r.ENDPOINTSLICES,
                                    label_selector=f"{MANAGED_BY_LABEL}={MIRROR_CONTROLLER_NAME}")
        for inf in (self.services, self.endpoints):
            inf.add_event_handler(on_add=self.enqueue, on_update=lambda o, n: self.enqueue(n),
                                  on_delete=self.enqueue)
        self.slices.add_event_handler(on_add=self._slice_event,
                                      on_update=lambda o, n: self._slice_event(n),
                                      on_delete=lambda o: self._slice_event(o, deleted=True))

    async def sync(self, key: str) -> None:
        ns, name = m.split_key(key)
        svc = self.services.store.get(key)
        if svc is None:
            self.tracker.forget(key)
            return
        existing = [s for s in self.slices.store.list_namespace(ns)
                    if m.labels(s).get(SERVICE_NAME_LABEL) == name]
        ep = self.endpoints.store.get(key)
        if (svc.get("spec") or {}).get("selector") or ep is None \
                or m.labels(ep).get(SKIP_MIRROR_LABEL) == "true" \
                or LEADER_ANNOTATION in m.annotations(ep):
            await self.execute(key, Plan(delete=existing), ns, may_create=False)
            return
        live = [s for s in existing if not s["metadata"].get("deletionTimestamp")]
        if self.tracker.stale(key, live):
            raise RuntimeError("EndpointSlice informer cache is out of date")
        result = mirror(ep, live, max_per_subset=self.max_per_subset)
        if result.invalid:
            self.recorder.event(ep, "Warning", reason="InvalidIPAddress",
                                message=f"Skipped {result.invalid} invalid IP addresses when "
                                        f"mirroring to EndpointSlices")
        if result.skipped > 0:
            self.recorder.event(ep, "Warning", reason="TooManyAddressesToMirror",
                                message=f"A max of {self.max_per_subset} addresses can be "
                                        f"mirrored to EndpointSlices per Endpoints subset. "
                                        f"{result.skipped + result.invalid} addresses were "
                                        f"skipped")
        await self.execute(key, result.plan, ns, may_create=True)


def new_endpointslice_controller(ctx: ControllerContext) -> EndpointSliceController:
    return EndpointSliceController(ctx)


def new_mirroring_controller(ctx: ControllerContext) -> EndpointSliceMirroringController:
    return EndpointSliceMirroringController(ctx)
