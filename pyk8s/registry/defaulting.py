"""Defaulting of API objects, as the v1.32 API server applies it on decode.

Role: ``apply_defaults(group, version, kind, obj)`` fills in what upstream's
``SetObjectDefaults_<Kind>`` fills in, so a stored object reads back as a
Kubernetes user expects (``kubectl get -o yaml``). The per-group work lives in
``registry/defaults/<group>.py``; this module only dispatches.

Invariants:
- ``obj`` is a dict in JSON shape, mutated in place; the function returns None.
  Nulls are first read as Go reads them (a null field disappears, a null in a
  string map is ""), as a decode/encode round trip through the API server does.
- Defaulting is idempotent and never overwrites a set field (except the one place
  upstream does: a Namespace's ``kubernetes.io/metadata.name`` label).
- Values are upstream's defaults only: things upstream leaves to admission
  (tolerations, priority, service account) or to the registry (cluster IPs, IP
  families, a Job's selector, a Namespace's ``kubernetes`` finalizer) are not set
  here. Kinds without upstream defaults are left untouched.
"""
from __future__ import annotations

from typing import Callable

from .defaults import apps, autoscaling, batch, core, others

Defaulter = Callable[[dict], None]

_BY_GROUP: dict[str, dict[str, Defaulter]] = {
    "": core.KINDS,
    "apps": apps.KINDS,
    "batch": batch.KINDS,
}


def _autoscaling(version: str) -> Defaulter:
    return autoscaling.hpa_v1 if version == "v1" else autoscaling.hpa_v2


def defaulter_for(group: str, version: str, kind: str) -> Defaulter | None:
    """The defaulting function of a kind, or None when upstream defines none."""
    if group == "autoscaling" and kind == "HorizontalPodAutoscaler":
        return _autoscaling(version)
    found = _BY_GROUP.get(group, {}).get(kind)
    if found is not None:
        return found
    return others.KINDS.get((group, kind))


def apply_defaults(group: str, version: str, kind: str, obj: dict) -> None:
    """Fill ``obj``'s unset fields with upstream's v1.32 defaults, in place."""
    if not isinstance(obj, dict):
        return
    # Upstream decodes JSON into structs, so a null reads as the zero value.
    core.drop_nulls(obj)
    defaulter = defaulter_for(group, version, kind)
    if defaulter is not None:
        defaulter(obj)
