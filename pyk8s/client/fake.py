"""An in-memory Kubernetes API behind a ``FakeTransport``: the client's test twin.

Role: unit tests of controllers, the scheduler and the client machinery run the real
``rest.Client``, informers and leader election against ``FakeAPI`` instead of an API
server (STYLE item 5; client-go's fake clientset with its reactors). It implements
get, list (selectors, limit/continue), create (generateName), update (optimistic
concurrency, status subresource), patch (merge, strategic, JSON), delete
(finalizers, pod graceful deletion), deletecollection and watch (history window,
410, bookmarks), plus the discovery documents.

Invariants:
- ``resourceVersion`` is one global counter; every write that changes an object
  bumps it and appends one event to the history that watches replay.
- Stored objects are private copies: callers never share dicts with the store.
- A watch from resourceVersion R replays every event after R, then follows live;
  R older than the history window (``compact()``) answers 410 Expired. A watch
  without R (or R = "0") starts with synthetic ADDED events for the current state.
- An object leaving a watch's selection is DELETED to that watch, one entering it
  ADDED, as the API server's watch cache does.
- Not implemented (answered 415, never faked): server-side apply. Not modelled:
  admission, validation, namespace existence, garbage collection (a controller's job).
"""
from __future__ import annotations

import asyncio
import base64
import datetime
import contextlib
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Iterable
from urllib.parse import unquote

import orjson

from pyk8s.api import meta as m
from pyk8s.api.patches import PatchError, apply_patch, clone
from pyk8s.api.schemas import definition_for
from pyk8s.api.selectors import SelectorError, parse_field_selector, parse_label_selector

from . import resources as r
from .clock import REAL_CLOCK, Clock
from .errors import ApiError, status
from .resources import Resource
from .transport import Request, Response

# Resources whose status is written only through /status, as upstream's strategies.
STATUS_RESOURCES = frozenset({
    r.PODS, r.NODES, r.NAMESPACES, r.SERVICES, r.PERSISTENTVOLUMECLAIMS,
    r.PERSISTENTVOLUMES, r.REPLICATIONCONTROLLERS, r.RESOURCEQUOTAS, r.DEPLOYMENTS,
    r.REPLICASETS, r.STATEFULSETS, r.DAEMONSETS, r.JOBS, r.CRONJOBS,
    r.HORIZONTALPODAUTOSCALERS, r.PODDISRUPTIONBUDGETS, r.INGRESSES, r.VOLUMEATTACHMENTS})
# Resources whose metadata.generation counts spec changes.
GENERATION_RESOURCES = frozenset({
    r.REPLICATIONCONTROLLERS, r.DEPLOYMENTS, r.REPLICASETS, r.STATEFULSETS, r.DAEMONSETS,
    r.JOBS, r.CRONJOBS, r.HORIZONTALPODAUTOSCALERS, r.PODDISRUPTIONBUDGETS, r.INGRESSES,
    r.NETWORKPOLICIES, r.CUSTOMRESOURCEDEFINITIONS})
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_MODIFIED = ("the object has been modified; please apply your changes to the latest "
             "version and try again")


@dataclass(kw_only=True)
class FakeRequest:
    """A request as the fake routes it; what reactors see."""

    verb: str  # get list watch create update patch delete deletecollection
    resource: Resource
    namespace: str | None
    name: str | None
    subresource: str | None
    params: dict[str, str]
    body: Any = None
    content_type: str | None = None


Reactor = Callable[[FakeRequest], Any]


@dataclass(eq=False)
class _Watch:
    resource: Resource
    namespace: str | None
    predicate: Callable[[dict], bool]
    bookmarks: bool
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    closed: bool = False
    timer: Any = None

    def send(self, line: bytes | None) -> None:
        if not self.closed:
            self.queue.put_nowait(line)
            if line is None:
                self.closed = True


class FakeAPI:
    """The state and the verbs; ``FakeTransport(api)`` speaks HTTP-shaped requests to it."""

    def __init__(self, *, clock: Clock = REAL_CLOCK, history: int = 10000,
                 extra_resources: Iterable[Resource] = ()):
        self.clock = clock
        self.rv = 0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._floor = 0  # watches from R >= floor can be served from the history
        self._history: deque[tuple[int, Resource, str, dict]] = deque(maxlen=history)
        self._objects: dict[Resource, dict[tuple[str, str], dict]] = {}
        self._status: set[Resource] = set(STATUS_RESOURCES)
        self._generation: set[Resource] = set(GENERATION_RESOURCES)
        self._routes: dict[tuple[str, str, str], Resource] = {}
        self._watches: set[_Watch] = set()
        self._reactors: list[tuple[str, str, Reactor]] = []
        self._snapshots: dict[str, list[dict]] = {}
        for res in (*r.ALL, *extra_resources):
            self.register(res)

    # --- test controls ---------------------------------------------------------------

    def register(self, res: Resource, *, status_subresource: bool = False,
                 generation: bool = False) -> None:
        """Serve ``res`` (a custom resource, say) from now on."""
        self._routes[(res.group, res.version, res.plural)] = res
        self._objects.setdefault(res, {})
        if status_subresource:
            self._status.add(res)
        if generation:
            self._generation.add(res)

    def prepend_reactor(self, verb: str, plural: str, *, reactor: Reactor) -> None:
        """Run ``reactor`` before the verb (``*`` matches any): return None to go on,
        a dict to answer with it, or raise ``ApiError`` to fail the request."""
        self._reactors.insert(0, (verb, plural, reactor))

    def add(self, obj: dict) -> dict:
        """Store ``obj`` as is (status included), as if created; no reactors run."""
        res = self._resource_of(obj)
        return self._create(res, (obj.get("metadata") or {}).get("namespace"), clone(obj),
                            keep_status=True)

    def remove(self, res: Resource, name: str, *, namespace: str | None = None) -> dict:
        """Delete at once, finalizers or not (a DELETED event is still sent)."""
        obj = self._objects[res].get((namespace or "", name))
        if obj is None:
            raise self._not_found(res, name)
        return self._write(res, clone(obj), obj, "DELETED")

    def get_object(self, res: Resource, name: str, *,
                   namespace: str | None = None) -> dict | None:
        obj = self._objects[res].get((namespace or "", name))
        return clone(obj) if obj is not None else None

    def objects(self, res: Resource, namespace: str | None = None) -> list[dict]:
        return [clone(o) for (ns, _), o in sorted(self._objects[res].items())
                if namespace is None or ns == namespace]

    def compact(self) -> None:
        """Forget the history: watches (and continue tokens) from before now get 410."""
        self._history.clear()
        self._floor = self.rv
        self._snapshots.clear()

    def expire_watches(self) -> None:
        """End every open watch with an ERROR 410 event (the cache fell behind)."""
        self.compact()
        expired = status(410, "Expired", message=f"too old resource version: {self.rv}")
        for w in list(self._watches):
            w.send(orjson.dumps({"type": "ERROR", "object": expired}))
            w.send(None)

    def close_watches(self) -> None:
        """End every open watch cleanly, as a server-side timeout does."""
        for w in list(self._watches):
            w.send(None)

    def bookmark(self) -> None:
        """Send a BOOKMARK at the current resourceVersion to watches that allow them."""
        for w in list(self._watches):
            if w.bookmarks:
                w.send(orjson.dumps({"type": "BOOKMARK", "object": {
                    "kind": w.resource.kind, "apiVersion": w.resource.api_version,
                    "metadata": {"resourceVersion": str(self.rv)}}}))

    @property
    def watch_count(self) -> int:
        return sum(1 for w in self._watches if not w.closed)

    # --- routing ---------------------------------------------------------------------

    def _resource_of(self, obj: dict) -> Resource:
        group, version, kind = m.gvk(obj)
        for res in self._objects:
            if (res.group, res.version, res.kind) == (group, version, kind):
                return res
        raise ValueError(f"the fake API does not serve {obj.get('apiVersion')} {kind}")

    def route(self, method: str, path: str, *, params: dict[str, str]) -> FakeRequest | dict:
        """A ``FakeRequest`` for a resource path, or the discovery document for ``path``."""
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return self._discovery(parts)
        if not rest:
            return self._resource_list(group, version)
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3 and not (
                len(rest) == 3 and rest[2] in ("status", "finalize")):
            namespace, rest = rest[1], rest[2:]
        res = self._routes.get((group, version, rest[0]))
        if res is None or len(rest) > 3:
            raise page_not_found()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete"}[method]
        if name is None:
            if verb == "get":
                verb = "watch" if params.get("watch") in ("true", "1") else "list"
            elif verb == "delete":
                verb = "deletecollection"
        return FakeRequest(verb=verb, resource=res, name=name, subresource=sub, params=params,
                           namespace=namespace if res.namespaced else None)

    def _discovery(self, parts: list[str]) -> dict:
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": []}
        if parts == ["apis"]:
            groups: dict[str, list[str]] = {}
            for (group, version, _) in self._routes:
                if group and version not in groups.setdefault(group, []):
                    groups[group].append(version)
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}
                                         for v in vs],
                 "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
                for g, vs in groups.items()]}
        raise page_not_found()

    def _resource_list(self, group: str, version: str) -> dict:
        items = [res for (g, v, _), res in self._routes.items() if (g, v) == (group, version)]
        if not items:
            raise page_not_found()
        entries = []
        for res in items:
            entries.append({"name": res.plural, "singularName": res.kind.lower(),
                            "namespaced": res.namespaced, "kind": res.kind,
                            "verbs": ["create", "delete", "deletecollection", "get", "list",
                                      "patch", "update", "watch"]})
            if res in self._status:
                entries.append({"name": res.plural + "/status", "singularName": "",
                                "namespaced": res.namespaced, "kind": res.kind,
                                "verbs": ["get", "patch", "update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": entries}

    def react(self, req: FakeRequest) -> Any:
        for verb, plural, reactor in self._reactors:
            if verb in ("*", req.verb) and plural in ("*", req.resource.plural):
                answer = reactor(req)
                if answer is not None:
                    return answer
        return None

    # --- verbs -------------------------------------------------------------------------

    def handle(self, req: FakeRequest) -> dict:
        answer = self.react(req)
        if answer is not None:
            return answer
        handler = getattr(self, "_do_" + req.verb)
        return handler(req)

    def _not_found(self, res: Resource, name: str) -> ApiError:
        qual = f"{res.plural}.{res.group}" if res.group else res.plural
        return ApiError(status(404, "NotFound", message=f'{qual} "{name}" not found', details={
            "name": name, "group": res.group, "kind": res.plural}))

    def _conflict(self, res: Resource, name: str, why: str = _MODIFIED) -> ApiError:
        qual = f"{res.plural}.{res.group}" if res.group else res.plural
        return ApiError(status(409, "Conflict",
                               message=f'Operation cannot be fulfilled on {qual} "{name}": {why}',
                               details={"name": name, "group": res.group, "kind": res.plural}))

    def _current(self, req: FakeRequest) -> dict:
        obj = self._objects[req.resource].get((req.namespace or "", req.name or ""))
        if obj is None:
            raise self._not_found(req.resource, req.name or "")
        return obj

    def _do_get(self, req: FakeRequest) -> dict:
        return clone(self._current(req))

    def _do_list(self, req: FakeRequest) -> dict:
        res, p = req.resource, req.params
        token, limit = p.get("continue"), int(p.get("limit") or 0)
        if token:
            snapshot = self._snapshots.get(token)
            if snapshot is None:
                raise ApiError(status(410, "Expired", message=(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter.")))
            items, list_rv = snapshot[1:], snapshot[0]
        else:
            predicate = self._predicate(p)
            items = [clone(o) for (ns, _), o in sorted(self._objects[res].items())
                     if (req.namespace is None or ns == req.namespace) and predicate(o)]
            list_rv = str(self.rv)
        meta: dict[str, Any] = {"resourceVersion": list_rv}
        if limit and len(items) > limit:
            next_token = base64.urlsafe_b64encode(random.randbytes(12)).decode()
            self._snapshots[next_token] = [list_rv, *items[limit:]]
            items = items[:limit]
            meta["continue"] = next_token
        return {"kind": res.list_kind, "apiVersion": res.api_version, "metadata": meta,
                "items": items}

    def _predicate(self, params: dict[str, str]) -> Callable[[dict], bool]:
        try:
            labels = parse_label_selector(params.get("labelSelector") or "")
            fields = parse_field_selector(params.get("fieldSelector") or "")
        except SelectorError as err:
            raise bad_request(str(err)) from None

        def matches(obj: dict) -> bool:
            if not labels.matches(m.labels(obj)):
                return False
            return fields.empty() or fields.matches(
                {f: _field_value(obj, f) for f in fields.fields()})
        return matches

    def _do_create(self, req: FakeRequest) -> dict:
        body = req.body
        if not isinstance(body, dict):
            raise bad_request("the body of the request is not an object")
        if req.subresource:
            return self._create_subresource(req)
        ns = (body.get("metadata") or {}).get("namespace")
        if req.namespace and ns and ns != req.namespace:
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        return self._create(req.resource, req.namespace, clone(body), keep_status=False,
                            dry_run="dryRun" in req.params)

    def _create_subresource(self, req: FakeRequest) -> dict:
        if req.resource == r.PODS and req.subresource == "binding":
            pod = self._current(req)
            if (pod.get("spec") or {}).get("nodeName"):
                raise self._conflict(r.PODS, req.name or "", "pod "
                                     f"{req.name} is already assigned to node "
                                     f"\"{pod['spec']['nodeName']}\"")
            new = clone(pod)
            new["spec"]["nodeName"] = (req.body.get("target") or {}).get("name")
            self._write(r.PODS, new, pod)
            return {"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Success", "code": 201}
        raise page_not_found()

    def _create(self, res: Resource, namespace: str | None, obj: dict, *,
                keep_status: bool, dry_run: bool = False) -> dict:
        md = obj.setdefault("metadata", {})
        if res.namespaced:
            md["namespace"] = namespace or md.get("namespace") or "default"
        else:
            md.pop("namespace", None)
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + "".join(random.choices(_NAME_CHARS, k=5))
        if not md.get("name"):
            raise ApiError(status(422, "Invalid", message=(
                f'{res.kind} "" is invalid: metadata.name: Required value: name or '
                "generateName is required")))
        k = (md.get("namespace", ""), md["name"])
        if k in self._objects[res]:
            qual = f"{res.plural}.{res.group}" if res.group else res.plural
            raise ApiError(status(409, "AlreadyExists",
                                  message=f'{qual} "{md["name"]}" already exists',
                                  details={"name": md["name"], "group": res.group,
                                           "kind": res.plural}))
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        md["uid"] = md.get("uid") if keep_status and md.get("uid") else m.new_uid()
        md["creationTimestamp"] = m.format_time(self.clock.now())
        for transient in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            md.pop(transient, None)
        if res in self._generation:
            md["generation"] = 1
        if res in self._status and not keep_status:
            obj.pop("status", None)
            if res == r.PODS:
                obj["status"] = {"phase": "Pending"}
        if dry_run:
            return obj
        return self._write(res, obj, None)

    def _write(self, res: Resource, obj: dict, old: dict | None, kind: str = "") -> dict:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        k = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if kind == "DELETED":
            self._objects[res].pop(k, None)
        else:
            self._objects[res][k] = obj
            kind = "MODIFIED" if old is not None else "ADDED"
        if len(self._history) == self._history.maxlen:
            self._floor = self._history[0][0]
        self._history.append((self.rv, res, kind, clone(obj)))
        for w in list(self._watches):
            if w.resource == res:
                self._notify(w, kind, old, obj)
        return clone(obj)

    def _notify(self, w: _Watch, kind: str, old: dict | None, obj: dict) -> None:
        ns = obj["metadata"].get("namespace", "")
        if w.namespace is not None and ns != w.namespace:
            return
        now, before = w.predicate(obj), old is not None and w.predicate(old)
        if kind == "MODIFIED" and now != before:
            kind = "ADDED" if now else "DELETED"
        elif not now and not (kind == "DELETED" and before):
            return
        w.send(orjson.dumps({"type": kind, "object": obj}))

    def _do_update(self, req: FakeRequest) -> dict:
        old = self._current(req)
        new = clone(req.body) if isinstance(req.body, dict) else None
        if new is None:
            raise bad_request("the body of the request is not an object")
        return self._update(req, old, new)

    def _update(self, req: FakeRequest, old: dict, new: dict) -> dict:
        res, name = req.resource, req.name or ""
        md, old_md = new.setdefault("metadata", {}), old["metadata"]
        if md.get("name", name) != name:
            raise bad_request(f"the name of the object ({md.get('name')}) does not match the "
                              f"name on the URL ({name})")
        if md.get("resourceVersion") and md["resourceVersion"] != old_md["resourceVersion"]:
            raise self._conflict(res, name)
        if req.subresource == "status" and res in self._status:
            merged = clone(old)
            merged["status"] = new.get("status")
            new, md = merged, merged["metadata"]
        elif req.subresource:
            raise page_not_found()
        elif res in self._status:
            new["status"] = clone(old.get("status"))
            if new["status"] is None:
                new.pop("status")
        for keep in ("uid", "creationTimestamp", "deletionTimestamp",
                     "deletionGracePeriodSeconds", "generation", "namespace", "name"):
            if keep in old_md:
                md[keep] = old_md[keep]
            else:
                md.pop(keep, None)
        new["apiVersion"], new["kind"] = res.api_version, res.kind
        if res in self._generation and _spec_of(new) != _spec_of(old):
            md["generation"] = old_md.get("generation", 1) + 1
        md["resourceVersion"] = old_md["resourceVersion"]
        if new == old:
            return clone(old)  # a no-op write changes nothing, not even the version
        if "dryRun" in req.params:
            return new
        if md.get("deletionTimestamp") and not md.get("finalizers") \
                and not md.get("deletionGracePeriodSeconds"):
            return self._write(res, new, old, "DELETED")
        return self._write(res, new, old)

    def _do_patch(self, req: FakeRequest) -> dict:
        old = self._current(req)
        if req.content_type == "application/apply-patch+yaml":
            raise ApiError(status(415, "UnsupportedMediaType",
                                  message="server-side apply is not implemented by the fake API"))
        res = req.resource
        try:
            patched = apply_patch(old, req.body, req.content_type or "",
                                  schema=definition_for(res.group, res.version, res.kind))
        except PatchError as err:
            raise ApiError(status(err.code, "BadRequest" if err.code == 400 else "Invalid",
                                  message=str(err))) from None
        # ``patched`` keeps the current resourceVersion unless the patch sets one,
        # which then acts as a precondition (as upstream).
        return self._update(req, old, patched)

    def _do_delete(self, req: FakeRequest) -> dict:
        old = self._current(req)
        opts = req.body if isinstance(req.body, dict) else {}
        pre = opts.get("preconditions") or {}
        md = old["metadata"]
        if pre.get("uid") and pre["uid"] != md.get("uid"):
            raise self._conflict(req.resource, req.name or "", "Precondition failed: UID in "
                                 f"precondition: {pre['uid']}, UID in object meta: {md['uid']}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != md["resourceVersion"]:
            raise self._conflict(req.resource, req.name or "", "Precondition failed: "
                                 f"ResourceVersion in precondition: {pre['resourceVersion']}, "
                                 f"ResourceVersion in object meta: {md['resourceVersion']}")
        if "dryRun" in req.params or opts.get("dryRun"):
            return clone(old)
        grace = self._grace_period(req.resource, old, opts)
        if md.get("finalizers") or grace > 0:
            if md.get("deletionTimestamp") and grace >= md.get("deletionGracePeriodSeconds", 0):
                return clone(old)
            new = clone(old)
            new["metadata"]["deletionTimestamp"] = m.format_time(
                self.clock.now() + datetime.timedelta(seconds=grace))
            new["metadata"]["deletionGracePeriodSeconds"] = grace
            if req.resource in self._generation:
                new["metadata"]["generation"] = md.get("generation", 1) + 1
            return self._write(req.resource, new, old)
        return self._write(req.resource, clone(old), old, "DELETED")

    @staticmethod
    def _grace_period(res: Resource, pod: dict, opts: dict) -> int:
        """Pods bound to a node wait for their kubelet; everything else goes at once."""
        if res != r.PODS:
            return 0
        spec, phase = pod.get("spec") or {}, (pod.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        grace = opts.get("gracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        return max(int(grace), 0)

    def _do_deletecollection(self, req: FakeRequest) -> dict:
        listing = self._do_list(FakeRequest(
            verb="list", resource=req.resource, namespace=req.namespace, name=None,
            subresource=None, params={k: v for k, v in req.params.items()
                                      if k in ("labelSelector", "fieldSelector")}))
        deleted = []
        for obj in listing["items"]:
            sub = FakeRequest(verb="delete", resource=req.resource,
                              namespace=obj["metadata"].get("namespace"),
                              name=obj["metadata"]["name"], subresource=None, params={},
                              body=req.body)
            deleted.append(self._do_delete(sub))
        return {**listing, "items": deleted}

    def open_watch(self, req: FakeRequest) -> _Watch:
        p = req.params
        rv = p.get("resourceVersion") or ""
        w = _Watch(req.resource, req.namespace, self._predicate(p),
                   p.get("allowWatchBookmarks") in ("true", "1"))
        if rv in ("", "0"):
            for (ns, _), obj in sorted(self._objects[req.resource].items()):
                if (req.namespace is None or ns == req.namespace) and w.predicate(obj):
                    w.send(orjson.dumps({"type": "ADDED", "object": obj}))
        else:
            since = int(rv)
            if since < self._floor:
                raise ApiError(status(410, "Expired", message=(
                    f"too old resource version: {since} ({self._floor + 1})")))
            for ev_rv, res, kind, obj in self._history:
                if ev_rv > since and res == req.resource:
                    self._notify_replay(w, kind, obj)
        self._watches.add(w)
        timeout = int(p.get("timeoutSeconds") or 0)
        if timeout:
            w.timer = self.clock.call_later(timeout, lambda: w.send(None))
        return w

    def _notify_replay(self, w: _Watch, kind: str, obj: dict) -> None:
        ns = obj["metadata"].get("namespace", "")
        if (w.namespace is None or ns == w.namespace) and w.predicate(obj):
            w.send(orjson.dumps({"type": kind, "object": obj}))

    def close_watch(self, w: _Watch) -> None:
        w.closed = True
        if w.timer is not None:
            w.timer.cancel()
        self._watches.discard(w)


def page_not_found() -> ApiError:
    return ApiError(status(404, "NotFound", details={},
                           message="the server could not find the requested resource"))


def bad_request(message: str) -> ApiError:
    return ApiError(status(400, "BadRequest", message=message))


def _spec_of(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _field_value(obj: dict, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class _FakeStream:
    def __init__(self, watch: _Watch | None, *, code: int, body: bytes):
        self._watch = watch
        self.status, self.headers, self._body = code, {"Content-Type": "application/json"}, body

    async def read(self) -> bytes:
        return self._body

    async def lines(self) -> AsyncIterator[bytes]:
        if self._watch is None:
            return
        while True:
            line = await self._watch.queue.get()
            if line is None:
                return
            yield line


class FakeTransport:
    """A ``Transport`` answering from a ``FakeAPI`` (one is made if none is given)."""

    def __init__(self, api: FakeAPI | None = None):
        self.api = api or FakeAPI()

    def _decode(self, request: Request) -> tuple[dict[str, str], Any]:
        params = dict(request.params)
        body = orjson.loads(request.body) if request.body else None
        self.api.requests.append((request.method, request.path, params))
        return params, body

    async def request(self, request: Request) -> Response:
        await asyncio.sleep(0)  # a real round trip lets other tasks run
        try:
            params, body = self._decode(request)
            routed = self.api.route(request.method, request.path, params=params)
            if isinstance(routed, FakeRequest):
                routed.body, routed.content_type = body, request.content_type
                code = 201 if routed.verb == "create" else 200
                answer = self.api.handle(routed)
            else:
                code, answer = 200, routed
        except ApiError as err:
            return Response(err.code, headers={"Content-Type": "application/json"},
                            body=orjson.dumps(err.status))
        return Response(code, headers={"Content-Type": "application/json"},
                        body=orjson.dumps(answer))

    @contextlib.asynccontextmanager
    async def stream(self, request: Request) -> AsyncIterator[_FakeStream]:
        await asyncio.sleep(0)
        watch = None
        try:
            params, _ = self._decode(request)
            routed = self.api.route(request.method, request.path, params=params)
            if not isinstance(routed, FakeRequest) or routed.verb != "watch":
                raise bad_request("only watches can be streamed")
            answer = self.api.react(routed)
            if answer is not None:
                raise ApiError(status(500, "InternalError", message="a reactor answered a watch"))
            watch = self.api.open_watch(routed)
            stream = _FakeStream(watch, code=200, body=b"")
        except ApiError as err:
            stream = _FakeStream(None, code=err.code, body=orjson.dumps(err.status))
        try:
            yield stream
        finally:
            if watch is not None:
                self.api.close_watch(watch)

    async def close(self) -> None:
        return None
