"""Priority (plugin/pkg/admission/priority): a pod's priority from its PriorityClass.

On create a pod gets ``spec.priority`` and ``spec.preemptionPolicy`` from the class it
names, or from the global default class (priority 0 and PreemptLowerPriority when
there is none); a class that does not exist, or a hand-written priority that differs
from the class's, is refused. Only one PriorityClass may be the global default. The
two system classes exist from the first start (``bootstrap_classes``).
"""
from __future__ import annotations

from ...api import errors
from ...registry.generic import WriteOptions
from . import Plugin, Request

SYSTEM_CLASSES = (
    ("system-node-critical", 2000001000,
     "Used for system critical pods that must not be moved from their current node."),
    ("system-cluster-critical", 2000000000,
     "Used for system critical pods that must run in the cluster, but can be moved to "
     "another node if necessary."),
)


async def bootstrap_classes(server) -> None:
    store = server.stores[("scheduling.k8s.io", "v1", "priorityclasses")]
    for name, value, description in SYSTEM_CLASSES:
        if store.cache.objects.get(store.key("", name)) is not None:
            continue
        try:
            await store.create("", {"apiVersion": "scheduling.k8s.io/v1",
                                    "kind": "PriorityClass", "metadata": {"name": name},
                                    "value": value, "description": description},
                               WriteOptions())
        except errors.APIError as err:
            if err.code != 409:
                raise


class Priority(Plugin):
    name = "Priority"

    def _classes(self):
        return self.server.stores[("scheduling.k8s.io", "v1", "priorityclasses")]

    def default_class(self) -> dict | None:
        defaults = [pc for pc in self._classes().cache.objects.values() if pc.get("globalDefault")]
        return min(defaults, key=lambda pc: pc.get("value", 0)) if defaults else None

    async def admit(self, req: Request) -> None:
        if not req.is_("", "pods") or req.obj is None:
            return
        spec = req.obj.setdefault("spec", {})
        if req.operation == "UPDATE":
            old = (req.old or {}).get("spec") or {}
            for key in ("priority", "preemptionPolicy"):
                if spec.get(key) is None and old.get(key) is not None:
                    spec[key] = old[key]
            return
        if req.operation != "CREATE":
            return
        name = spec.get("priorityClassName") or ""
        if not name:
            pc = self.default_class()
            if pc is not None:
                spec["priorityClassName"] = pc["metadata"]["name"]
        else:
            store = self._classes()
            pc = store.cache.objects.get(store.key("", name))
            if pc is None:
                raise req.forbidden(f"no PriorityClass with name {name} was found")
        priority = pc.get("value", 0) if pc else 0
        policy = (pc or {}).get("preemptionPolicy") or "PreemptLowerPriority"
        if spec.get("priority") is not None and spec["priority"] != priority:
            raise req.forbidden(f"the integer value of priority ({spec['priority']}) must not "
                                f"be provided in pod spec; priority admission controller "
                                f"computed {priority} from the given PriorityClass name")
        spec["priority"] = priority
        if spec.get("preemptionPolicy") and spec["preemptionPolicy"] != policy:
            raise req.forbidden(f"the string value of PreemptionPolicy "
                                f"({spec['preemptionPolicy']}) must not be provided in pod "
                                f"spec; priority admission controller computed {policy} from "
                                f"the given PriorityClass name")
        spec["preemptionPolicy"] = policy

    async def validate(self, req: Request) -> None:
        if not req.is_("scheduling.k8s.io", "priorityclasses") or req.obj is None:
            return
        if req.operation not in ("CREATE", "UPDATE") or not req.obj.get("globalDefault"):
            return
        current = self.default_class()
        if current is not None and (req.operation == "CREATE" or
                                    current["metadata"]["name"] != req.name):
            raise req.forbidden(f"PriorityClass {current['metadata']['name']} is already "
                                f"marked as default. Only one default can exist")
