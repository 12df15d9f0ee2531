"""Subresources (status, scale, binding, eviction, finalize; log, exec, attach,
portforward and proxy are passed on to kubelets and pods by nodeproxy.py and
resourceproxy.py).

Each subresource is the parent's GenericStore with a different transform, so the
store's compare-and-swap, validation and watch semantics apply unchanged.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..api import meta as metautil
from ..api import patches
from ..registry.catalogue import ResourceInfo
from ..registry.generic import DeleteOptions
from ..api import errors
from . import handlers
from .requests import Target, content_type, decode_body

if TYPE_CHECKING:
    from .app import APIServer

SCALABLE = {("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets"),
            ("", "replicationcontrollers")}
NOT_SERVED_HERE = {"token",
                   "ephemeralcontainers", "resize"}


def selector_string(selector: dict | None) -> str:
    """A LabelSelector as the string form kubectl and HPAs read from Scale status."""
    if not selector:
        return ""
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))  # RC map
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        op, key, vals = e.get("operator"), e.get("key"), sorted(e.get("values") or [])
        if op == "In":
            terms.append(f"{key} in ({','.join(vals)})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({','.join(vals)})")
        elif op == "Exists":
            terms.append(key)
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(sorted(terms))


BUILTIN_SCALE = {"specReplicasPath": ".spec.replicas",
                 "statusReplicasPath": ".status.replicas"}


def _get_path(obj: dict, path: str):
    cur = obj
    for part in path.strip(".").split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _set_path(obj: dict, path: str, value) -> None:
    parts = path.strip(".").split(".")
    cur = obj
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value


def to_scale(obj: dict, paths: dict | None = None) -> dict:
    """The autoscaling/v1 Scale view of a scalable object (built-in or custom)."""
    meta = obj["metadata"]
    if paths is None:
        paths = BUILTIN_SCALE
        selector = selector_string((obj.get("spec") or {}).get("selector"))
        default_replicas = 1
    else:
        sel_path = paths.get("labelSelectorPath")
        selector = (_get_path(obj, sel_path) or "") if sel_path else ""
        default_replicas = 0
    spec_replicas = _get_path(obj, paths["specReplicasPath"])
    status_replicas = _get_path(obj, paths["statusReplicasPath"]) or 0
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                              "creationTimestamp") if k in meta},
            "spec": {"replicas": default_replicas if spec_replicas is None
                     else spec_replicas},
            "status": {"replicas": status_replicas, "selector": selector}}


async def serve(server: "APIServer", request: web.Request, info: ResourceInfo,
                t: Target) -> web.StreamResponse:
    subs = {s.name: s for s in info.subresources}
    sub = subs.get(t.subresource)
    if sub is None:
        raise errors.page_not_found()
    store = server.stores[(t.group, t.version, t.plural)]
    method = request.method
    if t.subresource == "status":
        if method == "GET":
            return await handlers.get(store, request, t)
        if method == "PUT":
            return await handlers.update(store, request, t)
        if method == "PATCH":
            return await handlers.patch(store, request, t)
    elif t.subresource == "scale" and ((t.group, t.plural) in SCALABLE or
                                       getattr(store.strategy, "scale", None)):
        return await _scale(store, request, t, getattr(store.strategy, "scale", None))
    elif t.subresource == "binding" and method == "POST":
        return await _bind(store, request, t)
    elif t.subresource == "eviction" and method == "POST":
        return await _evict(server, store, request, t)
    elif t.subresource == "finalize" and method == "PUT":
        return await _finalize(store, request, t)
    elif t.subresource == "log" and t.plural == "pods" and method == "GET":
        from .nodeproxy import serve_log
        return await serve_log(server, request, t)
    elif (t.subresource in ("exec", "attach", "portforward") and t.plural == "pods"
          and method in ("GET", "POST")):
        from .nodeproxy import serve_stream
        return await serve_stream(server, request, t)
    elif t.subresource == "proxy" and t.plural in ("pods", "services", "nodes"):
        from .resourceproxy import serve_proxy
        return await serve_proxy(server, request, t)
    elif t.subresource in NOT_SERVED_HERE:
        # Not built (ephemeral containers, in-place resize): upstream's answer to a
        # subresource it does not serve.
        raise errors.page_not_found()
    raise errors.method_not_allowed(method.lower(), f"{t.plural}/{t.subresource}", t.group)


async def _scale(store, request: web.Request, t: Target,
                 paths: dict | None = None) -> web.Response:
    if request.method == "GET":
        return handlers.respond(to_scale(await store.get(t.namespace, t.name), paths))
    opts = handlers.write_options(request)
    body = decode_body(await request.read(), content_type(request))
    ctype = content_type(request)

    def transform(old: dict) -> dict:
        scale = to_scale(old, paths)
        if request.method == "PUT":
            wanted = body
            rv = (body.get("metadata") or {}).get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(t.plural, t.group, t.name, errors.MODIFIED)
        else:
            try:
                wanted = patches.apply_patch(scale, body, ctype if ctype in (
                    patches.JSON_PATCH, patches.MERGE_PATCH) else patches.MERGE_PATCH)
            except patches.PatchError as err:
                raise errors.APIError(err.code, "BadRequest" if err.code == 400
                                      else "Invalid", str(err)) from None
        replicas = (wanted.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise errors.invalid("Scale", "autoscaling", t.name, [errors.cause(
                "spec.replicas", f"Invalid value: {replicas}: must be greater than or "
                "equal to 0")])
        _set_path(old, (paths or BUILTIN_SCALE)["specReplicasPath"], replicas)
        return old
    if request.method not in ("PUT", "PATCH"):
        raise errors.method_not_allowed(request.method.lower(), f"{t.plural}/scale", t.group)
    out = await store.patch(t.namespace, t.name, transform, opts, subresource="scale")
    return handlers.respond(to_scale(out, paths))


async def _bind(store, request: web.Request, t: Target) -> web.Response:
    body = decode_body(await request.read(), content_type(request))
    node = ((body or {}).get("target") or {}).get("name", "")
    if not node:
        raise errors.invalid("Binding", "", t.name, [errors.cause(
            "target.name", "Required value", "FieldValueRequired")])

    def transform(pod: dict) -> dict:
        spec = pod.setdefault("spec", {})
        if pod["metadata"].get("deletionTimestamp"):
            raise errors.conflict("pods/binding", "", t.name,
                                  f"pod {t.name} is being deleted, cannot be assigned to a "
                                  f"host")
        if spec.get("nodeName"):
            raise errors.conflict("pods/binding", "", t.name,
                                  f"pod {t.name} is already assigned to node "
                                  f"\"{spec['nodeName']}\"")
        spec["nodeName"] = node
        status = pod.setdefault("status", {})
        conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True",
                      "lastProbeTime": None, "lastTransitionTime": metautil.now()})
        status["conditions"] = conds
        return pod
    await store.patch(t.namespace, t.name, transform, handlers.write_options(request),
                      subresource="binding")
    return handlers.respond({"kind": "Status", "apiVersion": "v1", "metadata": {},
                             "status": "Success", "code": 201}, 201)


async def _evict(server: "APIServer", store, request: web.Request, t: Target) -> web.Response:
    """Delete the pod unless that would break its PodDisruptionBudget (429)."""
    import datetime
    from ..api.eviction import check_eviction
    from ..registry.generic import WriteOptions, prefix_end
    body = decode_body(await request.read(), content_type(request)) or {}
    opts_body = body.get("deleteOptions") or {}
    dry_run = bool(opts_body.get("dryRun"))
    pdb_store = server.stores[("policy", "v1", "poddisruptionbudgets")]
    for _ in range(5):
        pod, rev = await store.read_latest(t.namespace, t.name)
        prefix = pdb_store.prefix(t.namespace)
        pdbs = [o for _, o in pdb_store.cache.items(prefix, prefix_end(prefix))]
        decision = check_eviction(pod, pdbs, now=datetime.datetime.now(datetime.timezone.utc),
                                  dry_run=dry_run)
        if not decision.allowed:
            return handlers.respond(decision.status, decision.status["code"])
        if decision.pdb is not None and not dry_run:
            try:
                await pdb_store.update(t.namespace, decision.pdb["metadata"]["name"],
                                       decision.pdb, WriteOptions(), subresource="status")
            except errors.APIError as err:
                if err.code == 409:
                    continue  # the budget changed meanwhile: decide again
                raise
        break
    else:
        raise errors.conflict("pods", "", t.name, errors.MODIFIED)
    delete_rv = str(rev) if decision.precondition_rv else None
    if not dry_run:
        def add_condition(obj: dict) -> dict:
            status = obj.setdefault("status", {})
            conds = [c for c in status.get("conditions") or []
                     if c.get("type") != "DisruptionTarget"]
            conds.append(dict(decision.pod_condition, lastTransitionTime=metautil.now()))
            status["conditions"] = conds
            return obj
        patched = await store.patch(t.namespace, t.name, add_condition, WriteOptions(),
                                    subresource="status")
        if delete_rv:
            delete_rv = patched["metadata"]["resourceVersion"]
    await store.delete(t.namespace, t.name, DeleteOptions(
        grace_period=opts_body.get("gracePeriodSeconds"),
        precondition_uid=(opts_body.get("preconditions") or {}).get("uid"),
        precondition_rv=delete_rv,
        dry_run=dry_run))
    return handlers.respond({"kind": "Status", "apiVersion": "v1", "metadata": {},
                             "status": "Success", "code": 201}, 201)


async def _finalize(store, request: web.Request, t: Target) -> web.Response:
    body = decode_body(await request.read(), content_type(request))
    finalizers = list(((body or {}).get("spec") or {}).get("finalizers") or [])

    def transform(ns: dict) -> dict:
        ns.setdefault("spec", {})["finalizers"] = finalizers
        return ns
    # The store removes a deleted namespace once its last finalizer is gone.
    out = await store.patch("", t.name, transform, handlers.write_options(request),
                            subresource="finalize")
    return handlers.respond(out)

