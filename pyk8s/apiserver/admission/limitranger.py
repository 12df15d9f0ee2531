"""LimitRanger (plugin/pkg/admission/limitranger).

Mutating: a pod created in a namespace with a LimitRange of type Container gets the
range's ``default`` limits and ``defaultRequest`` requests for every resource a
container leaves unset, and the ``kubernetes.io/limit-ranger`` annotation saying
what was set. Validating: every container (type Container), the pod's sum (type
Pod) and a PersistentVolumeClaim's storage request (type PersistentVolumeClaim)
must respect ``min``, ``max`` and ``maxLimitRequestRatio``; all violations are
reported together, as upstream's aggregate error.

The range's own defaults (``default`` from ``max``, ``defaultRequest`` from
``default`` or ``min``) are applied when reading it, as upstream's defaulting does.
"""
from __future__ import annotations

from ...api.quantities import Quantity, QuantityError, parse_quantity
from . import Plugin, Request

ANNOTATION = "kubernetes.io/limit-ranger"


def _q(value) -> Quantity | None:
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


def _item_defaults(item: dict) -> dict:
    """upstream's SetDefaults_LimitRangeItem for a Container item."""
    item = {k: dict(v) if isinstance(v, dict) else v for k, v in item.items()}
    if item.get("type") == "Container":
        default = item.setdefault("default", {})
        request = item.setdefault("defaultRequest", {})
        for k, v in (item.get("max") or {}).items():
            default.setdefault(k, v)
        for k, v in default.items():
            request.setdefault(k, v)
        for k, v in (item.get("min") or {}).items():
            request.setdefault(k, v)
    return item


def _containers(spec: dict):
    for kind, key in (("init container", "initContainers"), ("container", "containers")):
        for c in spec.get(key) or ():
            yield kind, c


def _values(request: Quantity, limit: Quantity | None, enforced: Quantity):
    """Milli values when none overflows, else whole values, as upstream compares."""
    big = 2 ** 63 // 1000
    qs = [q for q in (request, limit, enforced) if q is not None]
    if all(abs(q.value()) <= big for q in qs):
        return [q.milli_value() if q is not None else None for q in (request, limit, enforced)]
    return [q.value() if q is not None else None for q in (request, limit, enforced)]


def min_constraint(kind: str, res: str, enforced: Quantity, requests: dict,
                   limits: dict) -> str | None:
    req, lim = _q(requests.get(res)), _q(limits.get(res))
    if req is None:
        return f"minimum {res} usage per {kind} is {enforced}.  No request is specified"
    r, l, e = _values(req, lim, enforced)
    if r < e:
        return f"minimum {res} usage per {kind} is {enforced}, but request is {req}"
    if lim is not None and l < e:
        return f"minimum {res} usage per {kind} is {enforced}, but limit is {lim}"
    return None


def max_constraint(kind: str, res: str, enforced: Quantity, requests: dict,
                   limits: dict) -> str | None:
    req, lim = _q(requests.get(res)), _q(limits.get(res))
    if lim is None:
        return f"maximum {res} usage per {kind} is {enforced}.  No limit is specified"
    _, l, e = _values(req or lim, lim, enforced)
    if l > e:
        return f"maximum {res} usage per {kind} is {enforced}, but limit is {lim}"
    if req is not None:
        r, _, e = _values(req, None, enforced)
        if r > e:
            return f"maximum {res} usage per {kind} is {enforced}, but request is {req}"
    return None


def max_request_constraint(kind: str, res: str, enforced: Quantity,
                           requests: dict) -> str | None:
    req = _q(requests.get(res))
    if req is None:
        return f"maximum {res} usage per {kind} is {enforced}.  No request is specified"
    r, _, e = _values(req, None, enforced)
    if r > e:
        return f"maximum {res} usage per {kind} is {enforced}, but request is {req}"
    return None


def ratio_constraint(kind: str, res: str, enforced: Quantity, requests: dict,
                     limits: dict) -> str | None:
    req, lim = _q(requests.get(res)), _q(limits.get(res))
    if req is None or req.is_zero():
        return (f"{res} max limit to request ratio per {kind} is {enforced}, but no request "
                f"is specified or request is 0")
    if lim is None or lim.is_zero():
        return (f"{res} max limit to request ratio per {kind} is {enforced}, but no limit is "
                f"specified or limit is 0")
    r, l, _ = _values(req, lim, enforced)
    observed = l / r
    if enforced.value() <= 2 ** 63 // 1000:
        over = observed * 1000 > enforced.milli_value()
    else:
        over = observed > enforced.value()
    if over:
        return (f"{res} max limit to request ratio per {kind} is {enforced}, but provided "
                f"ratio is {observed:f}")
    return None


def _check(kind: str, item: dict, requests: dict, limits: dict) -> list[str]:
    errs = []
    for res, v in sorted((item.get("min") or {}).items()):
        errs.append(min_constraint(kind, res, parse_quantity(v), requests, limits))
    for res, v in sorted((item.get("max") or {}).items()):
        errs.append(max_constraint(kind, res, parse_quantity(v), requests, limits))
    for res, v in sorted((item.get("maxLimitRequestRatio") or {}).items()):
        errs.append(ratio_constraint(kind, res, parse_quantity(v), requests, limits))
    return [e for e in errs if e]


def pod_totals(spec: dict) -> tuple[dict, dict]:
    """The pod's requests and limits: sum of containers, at least each init container."""
    totals: list[dict] = [{}, {}]
    for i, part in enumerate(("requests", "limits")):
        acc: dict[str, Quantity] = {}
        for c in spec.get("containers") or ():
            for k, v in ((c.get("resources") or {}).get(part) or {}).items():
                q = _q(v)
                if q is not None:
                    acc[k] = acc.get(k, Quantity()) + q
        for c in spec.get("initContainers") or ():
            for k, v in ((c.get("resources") or {}).get(part) or {}).items():
                q = _q(v)
                if q is not None and (k not in acc or q > acc[k]):
                    acc[k] = q
        totals[i] = {k: str(v) for k, v in acc.items()}
    return totals[0], totals[1]


class LimitRanger(Plugin):
    name = "LimitRanger"

    def _ranges(self, namespace: str) -> list[dict]:
        store = self.server.stores[("", "v1", "limitranges")]
        prefix = store.key(namespace, "")
        return [o for k, o in store.cache.objects.items() if k.startswith(prefix)]

    def _applies(self, req: Request) -> bool:
        if req.subresource or req.obj is None:
            return False
        if req.is_("", "pods"):
            return req.operation == "CREATE"
        return req.is_("", "persistentvolumeclaims") and req.operation in ("CREATE", "UPDATE")

    async def admit(self, req: Request) -> None:
        if not self._applies(req) or not req.is_("", "pods"):
            return
        notes = []
        spec = req.obj.setdefault("spec", {})
        for lr in sorted(self._ranges(req.namespace), key=lambda o: o["metadata"]["name"]):
            for item in (lr.get("spec") or {}).get("limits") or ():
                if item.get("type") != "Container":
                    continue
                item = _item_defaults(item)
                for kind, c in _containers(spec):
                    notes += _default_container(kind, c, item)
        if notes:
            meta = req.obj["metadata"]
            meta.setdefault("annotations", {})[ANNOTATION] = \
                "LimitRanger plugin set: " + "; ".join(notes)

    async def validate(self, req: Request) -> None:
        if not self._applies(req) or req.obj is None:
            return
        errs: list[str] = []
        spec = req.obj.get("spec") or {}
        for lr in sorted(self._ranges(req.namespace), key=lambda o: o["metadata"]["name"]):
            for item in (lr.get("spec") or {}).get("limits") or ():
                kind = item.get("type")
                if req.resource == "pods" and kind == "Container":
                    for _, c in _containers(spec):
                        res = c.get("resources") or {}
                        errs += _check("Container", item, res.get("requests") or {},
                                       res.get("limits") or {})
                elif req.resource == "pods" and kind == "Pod":
                    requests, limits = pod_totals(spec)
                    errs += _check("Pod", item, requests, limits)
                elif req.resource == "persistentvolumeclaims" and \
                        kind == "PersistentVolumeClaim":
                    requests = (spec.get("resources") or {}).get("requests") or {}
                    for res, v in sorted((item.get("min") or {}).items()):
                        errs.append(min_constraint(kind, res, parse_quantity(v), requests, {}))
                    for res, v in sorted((item.get("max") or {}).items()):
                        errs.append(max_request_constraint(kind, res, parse_quantity(v),
                                                           requests))
        errs = [e for e in errs if e]
        if errs:
            raise req.forbidden(errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]")


def _default_container(kind: str, c: dict, item: dict) -> list[str]:
    res = c.setdefault("resources", {})
    set_requests, set_limits = [], []
    for k, v in sorted((item.get("default") or {}).items()):
        limits = res.setdefault("limits", {})
        if k not in limits:
            limits[k] = str(parse_quantity(v))
            set_limits.append(k)
    for k, v in sorted((item.get("defaultRequest") or {}).items()):
        requests = res.setdefault("requests", {})
        if k not in requests:
            requests[k] = str(parse_quantity(v))
            set_requests.append(k)
    for part in ("limits", "requests"):
        if part in res and not res[part]:
            del res[part]
    notes = []
    if set_requests:
        notes.append(f"{', '.join(set_requests)} request for {kind} {c.get('name', '')}")
    if set_limits:
        notes.append(f"{', '.join(set_limits)} limit for {kind} {c.get('name', '')}")
    return notes
