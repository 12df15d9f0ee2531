"""``componentstatuses`` (v1 ComponentStatus, deprecated in v1.19+): a health probe of
the control plane on every get and list, never stored.

Upstream's REST (pkg/registry/core/componentstatus) probes each known server when
asked and answers one ComponentStatus per server with a single ``Healthy`` condition:
``True`` with the probe's message, or ``False``/``Unknown`` with the probe's error. Every
request on the resource carries the deprecation warning
``299 - "v1 ComponentStatus is deprecated in v1.19+"``, which kubectl prints.

What is probed here:

- ``scheduler`` and ``controller-manager``: upstream GETs their healthz on
  127.0.0.1:10259/10257. pyk8s's scheduler and controller manager serve no healthz;
  both hold a leader-election Lease (kube-system/kube-scheduler,
  kube-system/kube-controller-manager) that the running leader renews. A component
  is Healthy (message ``ok``) when its Lease has a holder whose last renewal is within
  the lease duration, wherever the component runs; otherwise the error says why.
- storage: for etcd, one ``etcd-<i>`` per endpoint, each probed over its own
  ``/health`` (``{"health":"true"}`` is ``ok``), as upstream names and probes its etcd
  servers. For SQLite there is no etcd to name: the store is reported as ``sqlite-0``,
  Healthy when a read of the current revision answers.

A name that is not a component is a 500 ``Component not found: <name>``, as upstream.
"""
from __future__ import annotations

import asyncio
import datetime
from typing import TYPE_CHECKING, Awaitable, Callable

import aiohttp
import orjson
from aiohttp import web

from ..aio import wait_for
from ..api import errors, selectors
from . import fields, handlers, tables
from .requests import bool_param, wants_table

if TYPE_CHECKING:
    from ..registry.catalogue import ResourceInfo
    from .app import APIServer
    from .requests import Target

DEPRECATION = "v1 ComponentStatus is deprecated in v1.19+"
PROBE_TIMEOUT = 20.0  # upstream's probeTimeOut
LEASES = (("scheduler", "kube-scheduler"), ("controller-manager", "kube-controller-manager"))

# (status, message, error) of one probe
Result = tuple[str, str, str]


def _parse_time(text: str) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None


def _lease_probe(server: "APIServer", lease_name: str) -> Callable[[], Awaitable[Result]]:
    async def probe() -> Result:
        store = server.stores.get(("coordination.k8s.io", "v1", "leases"))
        if store is None:
            return "Unknown", "", "the Lease resource is not served"
        await store.watchcache.sync()  # a consistent read, as GenericStore.get
        lease = store.cache.objects.get(store.key("kube-system", lease_name))
        where = f"kube-system/{lease_name}"
        if lease is None:
            return "False", "", f"no leader: Lease {where} not found"
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if not holder:
            return "False", "", f"no leader: Lease {where} has no holder"
        renewed = _parse_time(spec.get("renewTime") or spec.get("acquireTime") or "")
        duration = spec.get("leaseDurationSeconds") or 15
        if renewed is None:
            return "False", "", f"no leader: Lease {where} was never renewed"
        now = datetime.datetime.now(datetime.timezone.utc)
        if renewed + datetime.timedelta(seconds=duration) < now:
            stamp = renewed.strftime("%Y-%m-%dT%H:%M:%SZ")
            return "False", "", (f"leader {holder} stopped renewing Lease {where} "
                                 f"(last renewed {stamp}, lease duration {duration}s)")
        return "True", "ok", ""
    return probe


def _backend(store):
    """The storage backend under any wrappers (encryption)."""
    seen = 0
    while hasattr(store, "inner") and seen < 5:
        store, seen = store.inner, seen + 1
    return store


def _etcd_probe(endpoint: str) -> Callable[[], Awaitable[Result]]:
    async def probe() -> Result:
        url = f"http://{endpoint}/health"
        try:
            timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.get(url) as resp:
                    body = await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as err:
            return "False", "", f'Get "{url}": {err}'
        try:
            healthy = orjson.loads(body).get("health") == "true"
        except (orjson.JSONDecodeError, AttributeError):
            healthy = False
        if resp.status != 200 or not healthy:
            return "False", "", f"etcd {endpoint} is unhealthy: {body.decode(errors='replace')}"
        return "True", "ok", ""
    return probe


def _store_probe(store) -> Callable[[], Awaitable[Result]]:
    async def probe() -> Result:
        try:
            await wait_for(store.current_revision(), PROBE_TIMEOUT)
        except asyncio.TimeoutError:
            return "False", "", f"no answer from the store within {PROBE_TIMEOUT:.0f}s"
        except Exception as err:  # any storage failure is an unhealthy store
            return "False", "", str(err) or type(err).__name__
        return "True", "ok", ""
    return probe


def components(server: "APIServer") -> dict[str, Callable[[], Awaitable[Result]]]:
    """Name → probe, in the order they are listed."""
    out = {name: _lease_probe(server, lease) for name, lease in LEASES}
    backend = _backend(server.store)
    endpoints = getattr(backend, "endpoints", None)
    if endpoints:
        for i, endpoint in enumerate(endpoints):
            out[f"etcd-{i}"] = _etcd_probe(endpoint)
    else:
        out["sqlite-0"] = _store_probe(server.store)
    return out


async def _status(name: str, probe: Callable[[], Awaitable[Result]]) -> dict:
    status, message, error = await probe()
    cond = {"type": "Healthy", "status": status}
    if message:
        cond["message"] = message
    if error:
        cond["error"] = error
    return {"kind": "ComponentStatus", "apiVersion": "v1",
            "metadata": {"name": name, "creationTimestamp": None}, "conditions": [cond]}


def _table(request: web.Request, items: list[dict]) -> dict:
    table = tables.build_table("", "componentstatuses", items, now=handlers.now(),
                               include_object=request.query.get("includeObject", "Metadata"))
    table["metadata"] = {}
    return table


async def serve(server: "APIServer", request: web.Request, info: "ResourceInfo",
                t: "Target") -> web.Response:
    warn = [DEPRECATION]
    if request.method != "GET" or bool_param(request.query.get("watch")):
        verb = "watch" if request.method == "GET" else {
            "POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete" if t.name else "deletecollection"}.get(request.method,
                                                                       request.method.lower())
        raise errors.method_not_allowed(verb, info.plural, info.group)
    probes = components(server)
    as_table = wants_table(request.headers.get("Accept", ""))
    if t.name:
        probe = probes.get(t.name)
        if probe is None:
            raise errors.internal(f"Component not found: {t.name}")
        obj = await _status(t.name, probe)
        return handlers.respond(_table(request, [obj]) if as_table else obj, warnings=warn)
    label_sel = selectors.parse_label_selector(request.query.get("labelSelector", ""))
    field_sel = fields.parse(info, request.query.get("fieldSelector", ""))
    items = await asyncio.gather(*(_status(n, p) for n, p in probes.items()))
    items = [o for o in items
             if (label_sel is None or label_sel.matches(o["metadata"].get("labels") or {}))
             and (field_sel is None or field_sel(o))]
    if as_table:
        return handlers.respond(_table(request, items), warnings=warn)
    return handlers.respond({"kind": "ComponentStatusList", "apiVersion": "v1",
                             "metadata": {}, "items": items}, warnings=warn)
