"""The eviction decision of ``pods/eviction`` against PodDisruptionBudgets.

Pure (upstream: pkg/registry/core/pod/storage/eviction.go): the API server asks it
before deleting an evicted pod, and the disruption controller shares its budget
selection and condition helpers.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from . import meta as m
from . import selectors

DISRUPTION_ALLOWED = "DisruptionAllowed"
EVICTION_REFUSED = "Cannot evict pod as it would violate the pod's disruption budget."
MAX_DISRUPTED_PODS = 2000


def set_meta_condition(conditions: list[dict], new: dict, now: str) -> list[dict]:
    """``apimeta.SetStatusCondition`` for ``metav1.Condition`` lists."""
    out = [dict(c) for c in conditions]
    for cond in out:
        if cond.get("type") == new["type"]:
            if cond.get("status") != new["status"]:
                cond["lastTransitionTime"] = now
            for k in ("status", "reason", "message", "observedGeneration"):
                if k in new:
                    cond[k] = new[k]
            cond.setdefault("message", "")
            return out
    out.append({"message": "", **new, "lastTransitionTime": now})
    return out


def pdb_selector(pdb: dict) -> selectors.LabelSelector | None:
    """None when nothing can match (nil or invalid selector); empty matches all."""
    sel = (pdb.get("spec") or {}).get("selector")
    if sel is None:
        return None
    try:
        return selectors.label_selector_from_dict(sel)
    except selectors.SelectorError:
        return None


def pdbs_for_pod(pod: dict, pdbs: list[dict]) -> list[dict]:
    ns = pod["metadata"].get("namespace")
    out = []
    for pdb in pdbs:
        if pdb["metadata"].get("namespace") != ns:
            continue
        sel = pdb_selector(pdb)
        if sel is not None and sel.matches(m.labels(pod)):
            out.append(pdb)
    return out


def allowed_condition(disruptions_allowed: int, generation: int) -> dict:
    """``UpdateDisruptionAllowedCondition``'s condition."""
    if disruptions_allowed > 0:
        return {"type": DISRUPTION_ALLOWED, "status": "True", "reason": "SufficientPods",
                "observedGeneration": generation}
    return {"type": DISRUPTION_ALLOWED, "status": "False", "reason": "InsufficientPods",
            "observedGeneration": generation}


def _phase(pod: dict) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def _ready(pod: dict) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


@dataclass
class EvictionDecision:
    """What the eviction subresource answers.

    ``allowed``: delete the pod (after adding ``pod_condition`` to its status, and
    with a resourceVersion precondition when ``precondition_rv``). Otherwise answer
    ``status`` (a failure ``Status``). ``pdb`` is the budget with its status updated
    (one fewer disruption allowed, the pod under ``disruptedPods``): write it through
    the status subresource *before* deleting; on conflict re-run the check.
    """

    allowed: bool
    message: str = ""
    status: dict | None = None
    pdb: dict | None = None
    precondition_rv: bool = False
    pod_condition: dict = field(default_factory=lambda: {
        "type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting"})


def _failure(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


def _too_many(message_cause: str, retry_after: int) -> EvictionDecision:
    details: dict = {"causes": [{"reason": "DisruptionBudget", "message": message_cause}]}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
    return EvictionDecision(False, EVICTION_REFUSED,
                            _failure(429, "TooManyRequests", EVICTION_REFUSED, details))


def _forbidden(pdb: dict, why: str) -> EvictionDecision:
    name = pdb["metadata"]["name"]
    msg = f"poddisruptionbudget.policy \"{name}\" is forbidden: {why}"
    return EvictionDecision(False, msg, _failure(403, "Forbidden", msg, {
        "name": name, "group": "policy", "kind": "poddisruptionbudget"}))


def can_ignore_pdb(pod: dict) -> bool:
    """``canIgnorePDB``: terminal, pending or already terminating pods disrupt nothing."""
    return _phase(pod) in ("Succeeded", "Failed", "Pending") or \
        bool(pod["metadata"].get("deletionTimestamp"))


def check_eviction(pod: dict, pdbs: list[dict], *, now: datetime.datetime,
                   dry_run: bool = False) -> EvictionDecision:
    """The PDB part of ``EvictionREST.Create`` for ``pod`` against the budgets of its
    namespace (``pdbs`` may hold others; they are filtered here)."""
    if can_ignore_pdb(pod):
        return EvictionDecision(True)
    matching = pdbs_for_pod(pod, pdbs)
    if len(matching) > 1:
        msg = ("Internal error occurred: This pod has more than one PodDisruptionBudget, which "
               "the eviction subresource does not support.")
        return EvictionDecision(False, msg, _failure(500, "InternalError", msg, {"causes": [{
            "message": "This pod has more than one PodDisruptionBudget, which the eviction "
                       "subresource does not support."}]}))
    if not matching:
        return EvictionDecision(True)
    pdb = matching[0]
    status = pdb.get("status") or {}
    ready = _ready(pod)
    if (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") == "AlwaysAllow" and not ready:
        return EvictionDecision(True, precondition_rv=True)
    desired = status.get("desiredHealthy", 0)
    if not ready and status.get("currentHealthy", 0) >= desired and desired > 0:
        return EvictionDecision(True, precondition_rv=True)
    if status.get("observedGeneration", 0) < pdb["metadata"].get("generation", 0):
        return _too_many(f"The disruption budget {pdb['metadata']['name']} is still being "
                         f"processed by the server.", 10)
    allowed = status.get("disruptionsAllowed", 0)
    if allowed < 0:
        return _forbidden(pdb, "pdb disruptions allowed is negative")
    if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_PODS:
        return _forbidden(pdb, "DisruptedPods map too big - too many evictions not confirmed "
                               "by PDB controller")
    if allowed == 0:
        return _too_many(f"The disruption budget {pdb['metadata']['name']} needs "
                         f"{status.get('desiredHealthy', 0)} healthy pods and has "
                         f"{status.get('currentHealthy', 0)} currently", 0)
    new_status = dict(status, disruptionsAllowed=allowed - 1)
    stamp = m.format_time(now)
    if allowed - 1 == 0:
        new_status["conditions"] = set_meta_condition(
            status.get("conditions") or [],
            allowed_condition(0, status.get("observedGeneration", 0)), stamp)
    if not dry_run:
        new_status["disruptedPods"] = {**(status.get("disruptedPods") or {}),
                                       pod["metadata"]["name"]: stamp}
    return EvictionDecision(True, pdb={**pdb, "status": new_status})


def pdb_allows_eviction(pod: dict, pdbs: list[dict], *, now: datetime.datetime | None = None
                        ) -> tuple[bool, str]:
    """(allowed, message): the short form of ``check_eviction``."""
    decision = check_eviction(pod, pdbs, now=now or datetime.datetime.now(datetime.timezone.utc))
    return decision.allowed, decision.message
