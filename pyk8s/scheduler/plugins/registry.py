"""The in-tree plugin registry: plugin name -> factory(args, handle).

Role: upstream ``plugins/registry.go``. Adding a policy is one module and one line
here; profiles pick plugins by these names.
"""
from __future__ import annotations

from typing import Any, Callable

from . import (balanced_allocation, default_binder, default_preemption, image_locality, inter_pod_affinity,
               node_affinity, node_name, node_ports, node_resources_fit, node_unschedulable, node_volume_limits,
               pod_topology_spread, priority_sort, scheduling_gates, taint_toleration, volume_binding,
               volume_restrictions, volume_zone)

Factory = Callable[[dict, Any], Any]


def in_tree_registry() -> dict[str, Factory]:
    return {
        scheduling_gates.NAME: scheduling_gates.new,
        priority_sort.NAME: priority_sort.new,
        node_unschedulable.NAME: node_unschedulable.new,
        node_name.NAME: node_name.new,
        taint_toleration.NAME: taint_toleration.new,
        node_affinity.NAME: node_affinity.new,
        node_ports.NAME: node_ports.new,
        node_resources_fit.NAME: node_resources_fit.new,
        volume_restrictions.NAME: volume_restrictions.new,
        node_volume_limits.NAME: node_volume_limits.new,
        volume_binding.NAME: volume_binding.new,
        volume_zone.NAME: volume_zone.new,
        pod_topology_spread.NAME: pod_topology_spread.new,
        inter_pod_affinity.NAME: inter_pod_affinity.new,
        default_preemption.NAME: default_preemption.new,
        balanced_allocation.NAME: balanced_allocation.new,
        image_locality.NAME: image_locality.new,
        default_binder.NAME: default_binder.new,
    }
