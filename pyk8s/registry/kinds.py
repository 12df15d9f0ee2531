"""Strategies for kinds with behaviour beyond schema, defaults and validation.

- Pod: starts Pending with its QoS class; graceful deletion once scheduled.
- Service: ClusterIP, NodePort and healthCheckNodePort allocation, recorded as keys under
  ``/registry/ranges/`` with create-if-absent, so two API servers on one etcd can
  never hand out the same address ("provided port is already allocated").
- Namespace: the ``kubernetes`` finalizer and phase Active.
"""
from __future__ import annotations

import base64
import ipaddress
import random
from typing import TYPE_CHECKING

from ..api import errors
from ..storage import KeyExists, KeyNotFound
from .catalogue import ResourceInfo
from .strategy import Strategy

if TYPE_CHECKING:
    from .generic import GenericStore

IP_RANGE_KEY = "/registry/ranges/serviceips/"
PORT_RANGE_KEY = "/registry/ranges/servicenodeports/"


def qos_class(pod: dict) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    containers = containers + ((pod.get("spec") or {}).get("initContainers") or [])
    requests_any = limits_any = False
    guaranteed = bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            requests_any = requests_any or bool(req)
            limits_any = limits_any or bool(lim)
        for r in ("cpu", "memory"):
            if r not in lim or str(req.get(r, lim.get(r))) != str(lim.get(r)):
                guaranteed = False
    if guaranteed:
        return "Guaranteed"
    if requests_any or limits_any:
        return "Burstable"
    return "BestEffort"


class PodStrategy(Strategy):
    def prepare_for_create(self, obj: dict) -> None:
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj)}

    def prepare_for_update(self, new: dict, old: dict, *, subresource: str = "") -> None:
        status = old.get("status") or {}
        new["status"] = status

    def grace_period(self, obj: dict, requested: int | None) -> int:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        # Never scheduled, or already finished: nothing runs, delete at once.
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0
        if requested is None:
            requested = spec.get("terminationGracePeriodSeconds", 30)
        return max(int(requested), 0)


class NamespaceStrategy(Strategy):
    def prepare_for_create(self, obj: dict) -> None:
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"].get("name", "")

    def prepare_for_update(self, new: dict, old: dict, *, subresource: str = "") -> None:
        if subresource != "finalize":
            # spec.finalizers change only through the finalize subresource.
            new["spec"] = old.get("spec") or {}
        labels = new["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = old["metadata"]["name"]

    def grace_period(self, obj: dict, requested: int | None) -> int:
        return 0

    def needs_finalizing(self, obj: dict) -> bool:
        return bool((obj.get("spec") or {}).get("finalizers"))

    def mark_deleting(self, obj: dict) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"


def _needs_health_check(spec: dict) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _invalid(name: str, causes: list[dict]) -> errors.APIError:
    return errors.invalid("Service", "", name, causes)


class ServiceStrategy(Strategy):
    service_cidr = ipaddress.ip_network("10.43.0.0/16")
    node_ports = (30000, 32767)

    async def allocate(self, obj: dict, old: dict | None, store: "GenericStore") -> None:
        spec = obj.setdefault("spec", {})
        old_spec = (old or {}).get("spec") or {}
        stype = spec.get("type", "ClusterIP")
        if stype == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        elif old_spec.get("clusterIP") and old_spec.get("clusterIP") != "None":
            spec["clusterIP"] = old_spec["clusterIP"]
            spec["clusterIPs"] = old_spec.get("clusterIPs") or [old_spec["clusterIP"]]
        elif spec.get("clusterIP") == "None":
            spec["clusterIPs"] = ["None"]
        else:
            ip = await self._allocate_ip(spec.get("clusterIP"), store,
                                         obj["metadata"].get("name", ""))
            spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
        if stype != "ExternalName":
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        old_ports = {p.get("nodePort") for p in old_spec.get("ports") or []}
        name = obj["metadata"].get("name", "")
        taken: list[int] = []  # ports this call allocated: freed if a later one fails
        try:
            if stype in ("NodePort", "LoadBalancer"):
                for i, port in enumerate(spec.get("ports") or []):
                    want = port.get("nodePort")
                    if want and want in old_ports:
                        continue
                    port["nodePort"] = await self._allocate_port(want, i, store, name)
                    taken.append(port["nodePort"])
            else:
                for port in spec.get("ports") or []:
                    port.pop("nodePort", None)
            await self._allocate_health_check_port(spec, old_spec, store, taken)
        except errors.APIError:
            await self._free({PORT_RANGE_KEY + str(p) for p in taken}, store)
            raise

    async def _allocate_health_check_port(self, spec: dict, old_spec: dict,
                                          store: "GenericStore", taken: list[int]) -> None:
        """``spec.healthCheckNodePort`` for LoadBalancer Services with
        ``externalTrafficPolicy: Local`` (upstream's ``allocHealthCheckNodePort``):
        kept from the old object, else the requested port or any free one of the
        NodePort range; cleared when the Service stops needing one."""
        if not _needs_health_check(spec):
            spec.pop("healthCheckNodePort", None)
            return
        if _needs_health_check(old_spec) and old_spec.get("healthCheckNodePort"):
            spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]
            return
        want = spec.get("healthCheckNodePort")
        lo, hi = self.node_ports
        if want:
            reason = ""
            if not lo <= want <= hi:
                reason = ("provided port is not in the valid range. The range of valid "
                          f"ports is {lo}-{hi}")
            else:
                try:
                    await store.store.create(PORT_RANGE_KEY + str(want), b"{}")
                except KeyExists:
                    reason = "provided port is already allocated"
            if reason:
                raise errors.APIError(500, "InternalError", "Internal error occurred: failed "
                                      f"to allocate requested HealthCheck NodePort {want}: "
                                      f"{reason}")
            taken.append(want)
            return
        size = hi - lo + 1
        start = random.randrange(size)
        for i in range(size):
            port = lo + (start + i) % size
            try:
                await store.store.create(PORT_RANGE_KEY + str(port), b"{}")
            except KeyExists:
                continue
            spec["healthCheckNodePort"] = port
            taken.append(port)
            return
        raise errors.APIError(500, "InternalError", "Internal error occurred: failed to "
                              "allocate a HealthCheck NodePort 0: range is full")

    async def _allocate_ip(self, wanted: str | None, store: "GenericStore",
                           store_name: str) -> str:
        net = self.service_cidr
        if wanted:
            try:
                addr = ipaddress.ip_address(wanted)
            except ValueError:
                raise _invalid(store_name, [errors.cause(
                    "spec.clusterIPs[0]", f'Invalid value: "{wanted}": must be a valid IP '
                    f'address, (e.g. 10.9.8.7 or 2001:db8::ffff)')]) from None
            if addr not in net or addr in (net.network_address, net.broadcast_address):
                raise _invalid(store_name, [errors.cause(
                    "spec.clusterIPs", f'Invalid value: []string{{"{wanted}"}}: failed to '
                    f'allocate IP {wanted}: provided IP is not in the valid range. The range '
                    f'of valid IPs is {net}')])
            try:
                await store.store.create(IP_RANGE_KEY + wanted, b"{}")
            except KeyExists:
                raise _invalid(store_name, [errors.cause(
                    "spec.clusterIPs", f'Invalid value: []string{{"{wanted}"}}: failed to '
                    f'allocate IP {wanted}: provided IP is already allocated')]) from None
            return wanted
        size = net.num_addresses - 2
        start = random.randrange(size)
        for i in range(size):
            # Upstream prefers the upper part of the range for dynamic addresses; any
            # free one is correct. .1 is the kubernetes Service, asked for explicitly.
            candidate = str(net.network_address + 1 + (start + i) % size)
            try:
                await store.store.create(IP_RANGE_KEY + candidate, b"{}")
                return candidate
            except KeyExists:
                continue
        raise errors.APIError(500, "InternalError",
                              "Internal error occurred: failed to allocate a serviceIP: "
                              "range is full")

    async def _allocate_port(self, wanted: int | None, index: int,
                             store: "GenericStore", store_name: str) -> int:
        lo, hi = self.node_ports
        if wanted:
            if not lo <= wanted <= hi:
                raise _invalid(store_name, [errors.cause(
                    f"spec.ports[{index}].nodePort", f"Invalid value: {wanted}: provided "
                    f"port is not in the valid range. The range of valid ports is {lo}-{hi}")])
            try:
                await store.store.create(PORT_RANGE_KEY + str(wanted), b"{}")
            except KeyExists:
                raise _invalid(store_name, [errors.cause(
                    f"spec.ports[{index}].nodePort",
                    f"Invalid value: {wanted}: provided port is already allocated")]) from None
            return wanted
        size = hi - lo + 1
        start = random.randrange(size)
        for i in range(size):
            port = lo + (start + i) % size
            try:
                await store.store.create(PORT_RANGE_KEY + str(port), b"{}")
                return port
            except KeyExists:
                continue
        raise errors.APIError(500, "InternalError", "Internal error occurred: failed to "
                              "allocate a nodePort: range is full")

    @staticmethod
    def _held(obj: dict | None) -> set[str]:
        spec = (obj or {}).get("spec") or {}
        keys = {IP_RANGE_KEY + ip for ip in spec.get("clusterIPs") or [] if ip != "None"}
        keys |= {PORT_RANGE_KEY + str(p["nodePort"]) for p in spec.get("ports") or []
                 if p.get("nodePort")}
        if spec.get("healthCheckNodePort"):
            keys.add(PORT_RANGE_KEY + str(spec["healthCheckNodePort"]))
        return keys

    async def _free(self, keys: set[str], store: "GenericStore") -> None:
        for key in keys:
            try:
                await store.store.delete(key)
            except KeyNotFound:
                continue

    async def release(self, obj: dict, store: "GenericStore") -> None:
        await self._free(self._held(obj), store)

    async def release_new(self, new: dict, old: dict, store: "GenericStore") -> None:
        await self._free(self._held(new) - self._held(old), store)

    async def release_old(self, new: dict, old: dict, store: "GenericStore") -> None:
        await self._free(self._held(old) - self._held(new), store)


def fold_string_data(secret: dict) -> None:
    """``stringData`` is write-only: its keys are merged into ``data`` (base64), as
    upstream's conversion does, and never stored."""
    string_data = secret.pop("stringData", None)
    if string_data:
        data = secret.setdefault("data", {}) or {}
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        secret["data"] = data


class SecretStrategy(Strategy):
    def prepare_for_create(self, obj: dict) -> None:
        super().prepare_for_create(obj)
        fold_string_data(obj)

    def prepare_for_update(self, new: dict, old: dict, *, subresource: str = "") -> None:
        fold_string_data(new)


class NodeStrategy(Strategy):
    def prepare_for_create(self, obj: dict) -> None:
        """Nodes allow all fields, including status, to be set on create (upstream's
        node strategy): a kubelet registers with its capacity and conditions."""


class JobStrategy(Strategy):
    def prepare_for_create(self, obj: dict) -> None:
        super().prepare_for_create(obj)
        # Upstream generates the selector (controller-uid) and labels before
        # defaulting and validation, unless manualSelector is set.
        from .defaults.batch import generate_job_selector
        generate_job_selector(obj)


STRATEGIES: dict[tuple[str, str], type[Strategy]] = {
    ("batch", "Job"): JobStrategy,
    ("", "Secret"): SecretStrategy,
    ("", "Node"): NodeStrategy,
    ("", "Pod"): PodStrategy,
    ("", "Namespace"): NamespaceStrategy,
    ("", "Service"): ServiceStrategy,
}


def strategy_for(info: ResourceInfo, version: str, kind: str) -> Strategy:
    return STRATEGIES.get((info.group, kind), Strategy)(info, version, kind)
