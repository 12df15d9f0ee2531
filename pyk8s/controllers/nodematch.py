"""Node selection for DaemonSet pods: node selectors, required node affinity and taints.

Role: the parts of ``component-helpers/scheduling/corev1/nodeaffinity`` and
``v1helper`` taint/toleration matching that the DaemonSet controller needs to decide
whether a node should run a daemon pod (``NodeShouldRunDaemonPod``'s predicates).

Invariants:
- ``required_affinity_matches`` is ``GetRequiredNodeAffinity(pod).Match(node)``: the
  pod's nodeSelector AND any one of its required node-affinity terms; a term matches
  when all its matchExpressions (labels) and matchFields (``metadata.name``) do; an
  empty term list matches nothing, a missing one everything.
- A toleration tolerates a taint as ``Toleration.ToleratesTaint``: empty effect or key
  match anything, operator Exists ignores the value, Equal (or empty) compares it.
"""
from __future__ import annotations

from typing import Callable

from pyk8s.api import meta as m


def _requirement_matches(req: dict, values: dict[str, str]) -> bool:
    key, op = req.get("key", ""), req.get("operator", "")
    vals = req.get("values") or []
    present = key in values
    if op == "In":
        return present and values[key] in vals
    if op == "NotIn":
        return not present or values[key] not in vals
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        if not present or len(vals) != 1:
            return False
        try:
            have, want = int(values[key]), int(vals[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def _term_matches(term: dict, node: dict) -> bool:
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False
    labels = m.labels(node)
    node_fields = {"metadata.name": node["metadata"]["name"]}
    return (all(_requirement_matches(r, labels) for r in exprs)
            and all(_requirement_matches(r, node_fields) for r in fields))


def required_affinity_matches(pod_spec: dict, node: dict) -> bool:
    labels = m.labels(node)
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    return any(_term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])


def tolerates(toleration: dict, taint: dict) -> bool:
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return op == "Exists"


def find_untolerated_taint(taints: list[dict], tolerations: list[dict],
                           include: Callable[[dict], bool]) -> dict | None:
    for taint in taints:
        if not include(taint):
            continue
        if not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None
