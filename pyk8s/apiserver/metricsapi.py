"""The resource metrics API, ``metrics.k8s.io/v1beta1``, built into the API server.

Role: what metrics-server serves through the aggregation layer upstream, served here
directly (pyk8s has no aggregation layer): ``nodes`` (NodeMetrics, cluster-scoped) and
``pods`` (PodMetrics, namespaced; a list across namespaces too), verbs ``get`` and
``list`` with ``labelSelector`` (and ``fieldSelector`` for pods, as metrics-server). A
``Scraper`` polls every node's kubelet ``/stats/summary`` each ``resolution`` seconds
(metrics-server's ``--metric-resolution``; ``pyk8s apiserver --metric-resolution``) over
HTTPS with the API server's kubelet client certificate, and keeps each node's last two
successful scrapes. CPU is a rate between those two cumulative readings
(``usageCoreNanoSeconds`` delta over the time between the scrapes), memory is the
latest working set; ``timestamp`` is the latest scrape's time and ``window`` the time
between the two.

Invariants:
- a node or pod has metrics only after two scrapes of its node that both saw it (a
  container that restarted in between, or whose counter went back, starts over); a
  node missing from the latest round (unreachable, gone) loses its figures, as
  metrics-server replaces its store with each round's batch;
- a pod is reported only when every container in the latest scrape has a rate;
- nothing here blocks the event loop: the scrapes are concurrent aiohttp requests
  with a timeout, the loop sleeps between rounds; simulated nodes (runtime
  ``fake://``, pyk8s hollow nodes) have no kubelet server and are never contacted, nor
  is a node whose kubelet address is a name rather than an IP (no DNS lookups);
- a name without metrics answers 404 ``<resource>.metrics.k8s.io "<name>" not found``
  (pods: ``<namespace>/<name>``), as metrics-server; watch is not served (405).
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ipaddress
import logging
import time
from typing import TYPE_CHECKING

import aiohttp
import orjson
from aiohttp import web

from ..api import errors, selectors
from ..api.quantities import BINARY_SI, Quantity
from ..registry.catalogue import ResourceInfo
from ..registry.generic import WriteOptions
from . import fields, handlers
from .nodeproxy import kubelet_address
from .printers.common import Column
from .requests import Target, bool_param, wants_table

if TYPE_CHECKING:
    from .app import APIServer

log = logging.getLogger(__name__)

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
DEFAULT_RESOLUTION = 15.0
KUBELET_TIMEOUT = 10.0  # metrics-server's --kubelet-request-timeout

RESOURCES = (
    ResourceInfo(GROUP, VERSION, "NodeMetrics", "nodes", "nodemetrics", namespaced=False,
                 verbs=("get", "list"), storage=False),
    ResourceInfo(GROUP, VERSION, "PodMetrics", "pods", "podmetrics", namespaced=True,
                 verbs=("get", "list"), storage=False),
)

# metrics-server's deployment manifest ships this role; pyk8s has no such deployment,
# so the API server keeps it as a default object.
READER_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
    "metadata": {"name": "system:aggregated-metrics-reader",
                 "labels": {"k8s-app": "metrics-server",
                            "rbac.authorization.k8s.io/aggregate-to-admin": "true",
                            "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                            "rbac.authorization.k8s.io/aggregate-to-view": "true"}},
    "rules": [{"apiGroups": [GROUP], "resources": ["pods", "nodes"],
               "verbs": ["get", "list", "watch"]}],
}


# -- samples ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Point:
    """One cumulative CPU reading and the working set at that time."""

    cpu_ns: int
    memory: int
    start: str = ""  # the container's start time: a new one never rates against the old


@dataclasses.dataclass
class Scrape:
    """One node's summary as the scraper keeps it."""

    time: float  # wall clock (seconds) when the answer arrived
    node: Point | None
    pods: dict[tuple[str, str], dict[str, Point]]


def parse_summary(summary: dict, at: float) -> Scrape:
    """The figures of a stats/v1alpha1 Summary metrics-server reads: the node's and each
    container's cumulative CPU and working set; a figure missing is left out."""
    def point(stats: dict, start: str = "") -> Point | None:
        cpu = (stats.get("cpu") or {}).get("usageCoreNanoSeconds")
        memory = (stats.get("memory") or {}).get("workingSetBytes")
        if cpu is None or memory is None:
            return None
        return Point(int(cpu), int(memory), start)

    pods: dict[tuple[str, str], dict[str, Point]] = {}
    for pod in summary.get("pods") or []:
        ref = pod.get("podRef") or {}
        containers: dict[str, Point] = {}
        for c in pod.get("containers") or []:
            p = point(c, c.get("startTime") or "")
            if p is not None and c.get("name"):
                containers[c["name"]] = p
        if ref.get("name") and containers:
            pods[(ref.get("namespace") or "", ref["name"])] = containers
    return Scrape(at, point(summary.get("node") or {}), pods)


def rate(old: Point | None, new: Point | None, seconds: float) -> int | None:
    """Nanocores between two readings, or None when they cannot be compared."""
    if old is None or new is None or seconds <= 0 or old.start != new.start \
            or new.cpu_ns < old.cpu_ns:
        return None
    return int((new.cpu_ns - old.cpu_ns) / seconds)


def _timestamp(at: float) -> str:
    t = datetime.datetime.fromtimestamp(at, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def go_duration(seconds: float) -> str:
    """A duration as Go's time.Duration.String prints it (ms precision)."""
    ms = int(round(seconds * 1000))
    if ms == 0:
        return "0s"
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs = f"{ms // 1000}.{ms % 1000:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    if minutes:
        return f"{minutes}m{secs}"
    return secs


def usage(cpu_nanocores: int, memory: int) -> dict[str, str]:
    return {"cpu": str(Quantity.from_scaled(cpu_nanocores, -9)),
            "memory": str(Quantity.from_value(memory, BINARY_SI))}


class MetricsStore:
    """The last two scrapes of each node, replaced round by round."""

    def __init__(self) -> None:
        self.latest: dict[str, Scrape] = {}
        self.previous: dict[str, Scrape] = {}

    def store(self, batch: dict[str, Scrape]) -> None:
        self.previous = {n: self.latest[n] for n in batch if n in self.latest}
        self.latest = dict(batch)

    def _pair(self, node: str) -> tuple[Scrape, Scrape] | None:
        old, new = self.previous.get(node), self.latest.get(node)
        return (old, new) if old is not None and new is not None else None

    def node_metrics(self, node: str) -> tuple[str, str, dict[str, str]] | None:
        """(timestamp, window, usage) of one node."""
        pair = self._pair(node)
        if pair is None:
            return None
        old, new = pair
        cpu = rate(old.node, new.node, new.time - old.time)
        if cpu is None:
            return None
        return _timestamp(new.time), go_duration(new.time - old.time), usage(cpu, new.node.memory)

    def pod_metrics(self, node: str, namespace: str, name: str
                    ) -> tuple[str, str, list[dict]] | None:
        """(timestamp, window, containers) of one pod on ``node``."""
        pair = self._pair(node)
        if pair is None:
            return None
        old, new = pair
        now_c = new.pods.get((namespace, name))
        then_c = old.pods.get((namespace, name)) or {}
        if not now_c:
            return None
        containers = []
        for cname, point in sorted(now_c.items()):
            cpu = rate(then_c.get(cname), point, new.time - old.time)
            if cpu is None:
                return None
            containers.append({"name": cname, "usage": usage(cpu, point.memory)})
        return _timestamp(new.time), go_duration(new.time - old.time), containers


# -- scraping --------------------------------------------------------------------------

class Scraper:
    """Polls every node's kubelet each ``resolution`` seconds into a MetricsStore."""

    def __init__(self, server: "APIServer", resolution: float = DEFAULT_RESOLUTION):
        self.server = server
        self.resolution = resolution
        self.metrics = MetricsStore()
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="metrics scraper")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        timeout = min(KUBELET_TIMEOUT, max(self.resolution * 0.9, 0.5))
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout))
        while True:
            started = time.monotonic()
            try:
                await self.scrape_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not stop the scraper for good
                log.exception("metrics scrape failed")
            await asyncio.sleep(max(self.resolution - (time.monotonic() - started), 0.05))

    def _targets(self) -> list[dict]:
        nodes = self.server.stores[("", "v1", "nodes")]
        out = []
        for node in list(nodes.cache.objects.values()):
            info = (node.get("status") or {}).get("nodeInfo") or {}
            if (info.get("containerRuntimeVersion") or "").startswith("fake://"):
                continue  # a simulated node: no kubelet server to ask
            out.append(node)
        return out

    async def scrape_once(self) -> None:
        """One round: every node at once; the successful answers become the batch."""
        nodes = self._targets()
        ssl_ctx = await asyncio.to_thread(self.server.kubelet_client.ssl_context)
        results = await asyncio.gather(*(self._scrape(n, ssl_ctx) for n in nodes))
        self.metrics.store({n["metadata"]["name"]: s for n, s in zip(nodes, results)
                            if s is not None})

    async def _scrape(self, node: dict, ssl_ctx) -> Scrape | None:
        name = node["metadata"]["name"]
        try:
            host, port = kubelet_address(node)
            ipaddress.ip_address(host)
        except (errors.APIError, ValueError):
            return None  # no address, or a name: never resolved (no lookups leave here)
        url = f"https://{host}:{port}/stats/summary?only_cpu_and_memory=true"
        try:
            async with self._session.get(url, ssl=ssl_ctx) as resp:
                if resp.status != 200:
                    log.info("scraping node %s: kubelet answered %s", name, resp.status)
                    return None
                body = await resp.read()
            return parse_summary(orjson.loads(body), time.time())
        except (aiohttp.ClientError, asyncio.TimeoutError, orjson.JSONDecodeError,
                ValueError, TypeError) as err:
            log.info("scraping node %s failed: %s", name, err or type(err).__name__)
            return None


async def ensure_reader_role(server: "APIServer") -> None:
    """Create system:aggregated-metrics-reader once; a user's copy is left alone."""
    store = server.stores[("rbac.authorization.k8s.io", "v1", "clusterroles")]
    if store.key("", READER_ROLE["metadata"]["name"]) in store.cache.objects:
        return
    try:
        await store.create("", dict(READER_ROLE), WriteOptions())
    except errors.APIError as err:
        if err.code != 409:
            raise


# -- serving ---------------------------------------------------------------------------

TABLE_COLUMNS = (Column("Name", format="name", description="Name of the resource"),
                 Column("CPU"), Column("Memory"), Column("Window"))


def _not_found(plural: str, name: str) -> errors.APIError:
    resource = "nodemetrics" if plural == "nodes" else "podmetrics"
    return errors.not_found(resource, GROUP, name)


def _node_object(node: dict, figures: tuple[str, str, dict]) -> dict:
    timestamp, window, use = figures
    meta = {"name": node["metadata"]["name"], "creationTimestamp": _timestamp(time.time())}
    if node["metadata"].get("labels"):
        meta["labels"] = node["metadata"]["labels"]
    return {"kind": "NodeMetrics", "apiVersion": API_VERSION, "metadata": meta,
            "timestamp": timestamp, "window": window, "usage": use}


def _pod_object(pod: dict, figures: tuple[str, str, list]) -> dict:
    timestamp, window, containers = figures
    m = pod["metadata"]
    meta = {"name": m["name"], "namespace": m.get("namespace", ""),
            "creationTimestamp": _timestamp(time.time())}
    if m.get("labels"):
        meta["labels"] = m["labels"]
    return {"kind": "PodMetrics", "apiVersion": API_VERSION, "metadata": meta,
            "timestamp": timestamp, "window": window, "containers": containers}


def _row(obj: dict) -> list:
    if obj["kind"] == "NodeMetrics":
        use = obj["usage"]
    else:
        cpu = sum(Quantity.parse(c["usage"]["cpu"]).nanos for c in obj["containers"])
        mem = sum(Quantity.parse(c["usage"]["memory"]).value() for c in obj["containers"])
        use = {"cpu": str(Quantity(cpu)), "memory": str(Quantity.from_value(mem, BINARY_SI))}
    return [obj["metadata"]["name"], use["cpu"], use["memory"], obj["window"]]


def _respond(request: web.Request, objs: list[dict], kind: str, single: bool) -> web.Response:
    if wants_table(request.headers.get("Accept", "")):
        include = request.query.get("includeObject") or "Metadata"
        rows = []
        for obj in objs:
            row_obj: dict | None = {"kind": "PartialObjectMetadata",
                                    "apiVersion": "meta.k8s.io/v1",
                                    "metadata": obj["metadata"]}
            if include == "Object":
                row_obj = obj
            elif include == "None":
                row_obj = None
            rows.append({"cells": _row(obj), "object": row_obj})
        return handlers.respond({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                                 "metadata": {},
                                 "columnDefinitions": [c.as_dict() for c in TABLE_COLUMNS],
                                 "rows": rows})
    if single:
        return handlers.respond(objs[0])
    return handlers.respond({"kind": kind + "List", "apiVersion": API_VERSION,
                             "metadata": {}, "items": objs})


def _label_selector(query) -> selectors.LabelSelector | None:
    try:
        return selectors.parse_label_selector(query.get("labelSelector", ""))
    except selectors.SelectorError as err:
        raise errors.bad_request(str(err)) from None


async def serve(server: "APIServer", scraper: Scraper, request: web.Request,
                info: ResourceInfo, t: Target) -> web.Response:
    """GET of one NodeMetrics/PodMetrics or a list of them."""
    if request.method != "GET":
        raise errors.method_not_allowed(
            {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(
                request.method, "delete" if t.name else "deletecollection"),
            info.plural, GROUP)
    if bool_param(request.query.get("watch")):
        raise errors.method_not_allowed("watch", info.plural, GROUP)
    if t.subresource or (info.namespaced and t.name and not t.namespace):
        raise errors.page_not_found()
    metrics = scraper.metrics
    label_sel = _label_selector(request.query)
    if info.plural == "nodes":
        nodes = server.stores[("", "v1", "nodes")]
        if t.name:
            obj = nodes.cache.objects.get(nodes.key("", t.name))
            figures = metrics.node_metrics(t.name) if obj is not None else None
            if figures is None:
                raise _not_found("nodes", t.name)
            return _respond(request, [_node_object(obj, figures)], "NodeMetrics", True)
        out = []
        for node in sorted(nodes.cache.objects.values(), key=lambda n: n["metadata"]["name"]):
            if label_sel is not None and not label_sel.matches(
                    node["metadata"].get("labels") or {}):
                continue
            figures = metrics.node_metrics(node["metadata"]["name"])
            if figures is not None:
                out.append(_node_object(node, figures))
        return _respond(request, out, "NodeMetrics", False)
    pods = server.stores[("", "v1", "pods")]
    if t.name:
        pod = pods.cache.objects.get(pods.key(t.namespace, t.name))
        node = ((pod or {}).get("spec") or {}).get("nodeName")
        figures = metrics.pod_metrics(node, t.namespace, t.name) if node else None
        if figures is None:
            raise _not_found("pods", f"{t.namespace}/{t.name}")
        return _respond(request, [_pod_object(pod, figures)], "PodMetrics", True)
    field_sel = fields.parse(pods.info, request.query.get("fieldSelector", ""))
    out = []
    for pod in sorted(pods.cache.objects.values(),
                      key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"])):
        meta = pod["metadata"]
        if t.namespace and meta.get("namespace") != t.namespace:
            continue
        if label_sel is not None and not label_sel.matches(meta.get("labels") or {}):
            continue
        if field_sel is not None and not field_sel(pod):
            continue
        node = (pod.get("spec") or {}).get("nodeName")
        figures = metrics.pod_metrics(node, meta.get("namespace", ""), meta["name"]) \
            if node else None
        if figures is not None:
            out.append(_pod_object(pod, figures))
    return _respond(request, out, "PodMetrics", False)

def parse_resolution(text: str) -> float:
    """A ``--metric-resolution`` value: a Go duration (``15s``, ``500ms``, ``1m``) or
    seconds; argparse turns the ValueError into a usage error."""
    import re
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    text = text.strip()
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if parts and "".join(n + u for n, u in parts) == text:
        seconds = sum(float(n) * units[u] for n, u in parts)
    else:
        seconds = float(text)
    if seconds <= 0:
        raise ValueError(f"metric resolution must be positive: {text}")
    return seconds
