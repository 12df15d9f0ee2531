"""The kubelet's resource figures: /stats/summary, /metrics, /metrics/resource, /pods.

Role: ``routes(kubelet)`` adds, to the kubelet's HTTPS app,

- ``GET /stats/summary``: upstream's stats/v1alpha1 Summary — the node's CPU, memory,
  filesystems (nodefs = the kubelet's root dir, imageFs = containerd's root), the
  ``pods`` system container, rlimits, and per pod its containers' CPU
  (``usageCoreNanoSeconds``, ``usageNanoCores``) and memory (``usageBytes``,
  ``workingSetBytes``, ``rssBytes``, page faults), log and writable-layer usage,
  volume usage and ephemeral storage, and the network (the node's interfaces as
  pid 1 sees them, a pod's from its processes' network namespace; cAdvisor's
  ``lo``/``veth``/``docker``/``nerdctl`` devices left out, ``eth0`` the default);
- ``GET /metrics``: Prometheus text with a few of upstream's kubelet metrics
  (``kubelet_node_name``, ``kubelet_running_pods``, ``kubelet_running_containers``,
  ``kubelet_pod_start_duration_seconds``) and the process collector;
- ``GET /metrics/resource``: the resource metrics metrics-server scrapes
  (``node|pod|container_cpu_usage_seconds_total``, ``*_memory_working_set_bytes``,
  ``container_start_time_seconds``, ``scrape_error``);
- ``GET /metrics/cadvisor``: cAdvisor's metrics for the same figures (``exposition``)
  per cgroup: the machine (``/``), the pods' cgroup, each pod's, its sandbox's (with
  the network) and each running container's;
- ``GET /pods``: a PodList of the pods the kubelet runs, with the statuses it holds.

Figures come from cgroup files (v1 or v2 alike, ``Cgroups``): a pod's cgroup is
``sandboxes.pod_cgroup_parent`` and a container's is ``<pod cgroup>/<container id>``
(containerd's cgroupfs layout), its sandbox's ``<pod cgroup>/<sandbox id>``; the
writable layer's size from CRI container stats; network figures from
``/proc/<pid>/net/dev`` of a process in the cgroup (cAdvisor's way).

Invariants:
- ``usageNanoCores`` is a rate between two readings at least ``RATE_WINDOW`` apart;
  a sampler reads every cgroup each ``SAMPLE_PERIOD`` while the app runs (as
  cAdvisor's housekeeping), so rates exist shortly after start; a figure that cannot
  be read is left out, never reported as 0;
- file reads and directory walks run in a thread; the sampler stops with the app.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import orjson
from aiohttp import web

from pyk8s.cri.runtime import CRIError, SandboxState, normalize_image
from pyk8s.kubelet import exposition, pods, sandboxes
from pyk8s.kubelet.exposition import cadvisor_metrics, parse_time, resource_metrics
from pyk8s.kubelet.images import PAUSE_IMAGE

log = logging.getLogger(__name__)

CGROUP = Path("/sys/fs/cgroup")
PROC = Path("/proc")
RATE_WINDOW = 1.0  # seconds between two CPU readings for a rate
SAMPLE_PERIOD = 10.0  # cAdvisor's housekeeping interval
TERMINAL = ("Succeeded", "Failed")
IGNORED_DEVICES = ("lo", "veth", "docker", "nerdctl")  # cAdvisor's isIgnoredDevice
DEFAULT_INTERFACE = "eth0"  # upstream's defaultNetworkInterfaceName
NET_DEV_KEYS = ("rxBytes", "rxPackets", "rxErrors", "rxDropped", "txBytes", "txPackets",
                "txErrors", "txDropped")


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_keyed(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


class Cgroups:
    """One machine's cgroup tree, v1 (a hierarchy per controller) or v2 (unified)."""

    def __init__(self, root: Path = CGROUP):
        self.root = root
        self.v2 = (root / "cgroup.controllers").exists()

    def _v1(self, controller: str, rel: str) -> Path:
        names = (controller, "cpu,cpuacct", "cpuacct,cpu") if controller == "cpuacct" \
            else (controller,)
        for name in names:  # cpuacct is often a link to the joint cpu,cpuacct hierarchy
            if (self.root / name / rel).exists():
                return self.root / name / rel
        return self.root / controller / rel

    def exists(self, path: str) -> bool:
        rel = path.strip("/")
        return (self.root / rel if self.v2 else self._v1("memory", rel)).is_dir()

    def cpu_ns(self, path: str) -> int | None:
        """Cumulative CPU time of the cgroup in nanoseconds."""
        rel = path.strip("/")
        if self.v2:
            usec = _read_keyed(self.root / rel / "cpu.stat").get("usage_usec")
            return usec * 1000 if usec is not None else None
        return _read_int(self._v1("cpuacct", rel) / "cpuacct.usage")

    def memory(self, path: str) -> dict[str, int] | None:
        """usageBytes, workingSetBytes, rssBytes, pageFaults, majorPageFaults."""
        rel = path.strip("/")
        if self.v2:
            base = self.root / rel
            usage = _read_int(base / "memory.current")
            if usage is None and not rel:  # the v2 root has no memory.current
                return None
            stat = _read_keyed(base / "memory.stat")
            rss, inactive = stat.get("anon", 0), stat.get("inactive_file", 0)
            faults, major = stat.get("pgfault"), stat.get("pgmajfault")
        else:
            base = self._v1("memory", rel)
            usage = _read_int(base / "memory.usage_in_bytes")
            stat = _read_keyed(base / "memory.stat")
            rss, inactive = stat.get("total_rss", 0), stat.get("total_inactive_file", 0)
            faults, major = stat.get("total_pgfault"), stat.get("total_pgmajfault")
        if usage is None:
            return None
        out = {"usageBytes": usage, "workingSetBytes": max(usage - inactive, 0),
               "rssBytes": rss}
        if faults is not None:
            out["pageFaults"] = faults
        if major is not None:
            out["majorPageFaults"] = major
        return out

    def processes(self, path: str) -> int | None:
        rel = path.strip("/")
        base = self.root / rel if self.v2 else self._v1("pids", rel)
        return _read_int(base / "pids.current")

    def _dir(self, rel: str) -> Path:
        if self.v2:
            return self.root / rel
        # v1: any hierarchy lists the processes; runc joins them all
        return next((d for c in ("pids", "memory", "cpuacct") if (d := self._v1(c, rel)).is_dir()),
                    self._v1("memory", rel))

    def pids(self, path: str) -> Iterator[int]:
        """The processes in the cgroup and its descendants (cgroup.procs), the
        cgroup's own first."""
        for top, dirs, _ in os.walk(self._dir(path.strip("/"))):
            dirs.sort()
            try:
                text = (Path(top) / "cgroup.procs").read_text()
            except OSError:
                continue
            yield from (int(p) for p in text.split() if p.isdigit() and p != "0")

    def created(self, path: str) -> float | None:
        """When the cgroup was made (its directory's mtime, as cAdvisor's raw handler)."""
        try:
            return self._dir(path.strip("/")).stat().st_mtime
        except OSError:
            return None


def read_net_dev(path: Path) -> list[dict[str, Any]] | None:
    """A /proc/<pid>/net/dev's interfaces but cAdvisor's ignored devices; None if it
    cannot be read or a line is not 16 figures (cAdvisor then trusts none)."""
    try:
        lines = path.read_text().splitlines()[2:]
    except OSError:
        return None
    out = []
    for line in lines:
        name, _, rest = line.partition(":")
        fields = rest.split()
        if len(fields) != 16 or not all(f.isdigit() for f in fields):
            return None
        name = name.strip()
        if name.lower().startswith(IGNORED_DEVICES):
            continue
        figures = [int(f) for f in fields[0:4] + fields[8:12]]
        out.append({"name": name, **dict(zip(NET_DEV_KEYS, figures))})
    return out


def network_stats(interfaces: list[dict] | None, now: str) -> dict[str, Any] | None:
    """stats/v1alpha1 NetworkStats: the default interface's figures inline (name ""
    when there is no eth0, as upstream) and every interface's."""
    if interfaces is None:
        return None
    listed = [{"name": i["name"], "rxBytes": i["rxBytes"], "rxErrors": i["rxErrors"],
               "txBytes": i["txBytes"], "txErrors": i["txErrors"]} for i in interfaces]
    default = next((i for i in listed if i["name"] == DEFAULT_INTERFACE), {"name": ""})
    out: dict[str, Any] = {"time": now, **default}
    if listed:
        out["interfaces"] = listed
    return out


class Rates:
    """CPU rates from cumulative readings: (readings' delta) / (time's delta)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.samples: dict[str, tuple[float, int]] = {}
        self.rates: dict[str, int] = {}

    def observe(self, key: str, ns: int) -> int | None:
        now = self.clock()
        prev = self.samples.get(key)
        if prev is None or ns < prev[1]:  # new, or restarted: start over
            self.samples[key] = (now, ns)
            self.rates.pop(key, None)
            return None
        if now - prev[0] >= RATE_WINDOW:
            self.rates[key] = int((ns - prev[1]) / (now - prev[0]))
            self.samples[key] = (now, ns)
        return self.rates.get(key)

    def forget(self, keep: set[str]) -> None:
        for key in [k for k in self.samples if k not in keep]:
            self.samples.pop(key, None)
            self.rates.pop(key, None)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fs(path: Path, now: str, used: int | None = None) -> dict[str, Any] | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    out = {"time": now, "availableBytes": st.f_bavail * st.f_frsize,
           "capacityBytes": st.f_blocks * st.f_frsize,
           "usedBytes": (st.f_blocks - st.f_bfree) * st.f_frsize if used is None else used,
           "inodesFree": st.f_favail, "inodes": st.f_files}
    out["inodesUsed"] = st.f_files - st.f_ffree
    return out


def _tree(path: Path) -> tuple[int, int]:
    """(bytes on disk, inodes) under ``path``."""
    size = inodes = 0
    for root, dirs, files in os.walk(path):
        for name in files + dirs:
            try:
                size += os.lstat(os.path.join(root, name)).st_blocks * 512
                inodes += 1
            except OSError:
                continue
    return size, inodes


def _boot_time() -> str | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return datetime.datetime.fromtimestamp(
                    int(line.split()[1]), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OSError, ValueError):
        return None
    return None


def _rlimit(now: str) -> dict[str, Any] | None:
    try:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
        running = sum(1 for d in os.listdir("/proc") if d.isdigit())
    except (OSError, ValueError):
        return None
    return {"time": now, "maxpid": pid_max, "curproc": running}


def _proc_cpu_ns() -> int | None:
    """The machine's busy CPU time (v2 roots have no cumulative CPU file)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    ticks = [int(f) for f in fields]
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)  # minus idle, iowait
    return busy * (10**9 // os.sysconf("SC_CLK_TCK"))


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return out  # no /proc: the node's memory is left out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return out


def _container_id(status: dict) -> str:
    return (status.get("containerID") or "").split("://", 1)[-1]


class SummaryProvider:
    """Builds the Summary for one kubelet (``kubelet``: settings, pods_by_uid,
    status_manager, runtime)."""

    def __init__(self, kubelet, *, cgroups: Cgroups | None = None,
                 image_dir: Path | None = None, proc: Path = PROC):
        self.kubelet = kubelet
        self.settings = kubelet.settings
        self.cgroups = cgroups or Cgroups()
        self.proc = proc
        self.image_dir = image_dir or self.settings.data_dir / "agent" / "containerd"
        self.rates = Rates()

    # -- reading (in a thread) ---------------------------------------------------------

    def _cpu(self, key: str, ns: int | None, now: str) -> dict[str, Any] | None:
        if ns is None:
            return None
        out: dict[str, Any] = {"time": now, "usageCoreNanoSeconds": ns}
        rate = self.rates.observe(key, ns)
        if rate is not None:
            out["usageNanoCores"] = rate
        return out

    def _memory(self, figures: dict | None, now: str, limit: int | None = None
                ) -> dict[str, Any] | None:
        if figures is None:
            return None
        out: dict[str, Any] = {"time": now, **figures}
        if limit:
            out["availableBytes"] = max(limit - figures["workingSetBytes"], 0)
        return out

    def _interfaces(self, pids: Iterable[int]) -> list[dict] | None:
        """The network of the first of ``pids`` whose net/dev can be read (a pod's
        processes share one network namespace)."""
        for pid in pids:
            found = read_net_dev(self.proc / str(pid) / "net" / "dev")
            if found is not None:
                return found
        return None

    def _node(self, now: str, full: bool) -> dict[str, Any]:
        cg = self.cgroups
        info = _meminfo()
        capacity = info.get("MemTotal", 0)
        memory = cg.memory("/") if not cg.v2 else None
        if memory is None:  # the machine's figures (v2 root)
            usage = capacity - info.get("MemFree", 0)
            memory = {"usageBytes": usage,
                      "workingSetBytes": max(usage - info.get("Inactive(file)", 0), 0),
                      "rssBytes": info.get("AnonPages", 0)}
        root_ns = cg.cpu_ns("/") if not cg.v2 else None
        node: dict[str, Any] = {
            "nodeName": self.settings.node_name, "systemContainers": [],
            "cpu": self._cpu("/", root_ns if root_ns is not None else _proc_cpu_ns(), now),
            "memory": self._memory(memory, now, capacity)}
        boot = _boot_time()
        if boot:
            node["startTime"] = boot
        pods_cgroup = self.settings.cgroup_root
        if cg.exists(pods_cgroup):
            node["systemContainers"].append(
                {"name": "pods", "startTime": boot or now,
                 "cpu": self._cpu(pods_cgroup, cg.cpu_ns(pods_cgroup), now),
                 "memory": self._memory(cg.memory(pods_cgroup), now, capacity)})
        if full:
            image_fs = _fs(self.image_dir, now)
            node["fs"] = _fs(self.settings.root_dir, now)
            node["runtime"] = {"imageFs": image_fs, "containerFs": image_fs} if image_fs \
                else None
            node["rlimit"] = _rlimit(now)
            # the root cgroup's network is pid 1's, as cAdvisor's raw root handler
            node["network"] = network_stats(self._interfaces([1]), now)
        return {k: v for k, v in node.items() if v is not None}

    def _pod(self, pod: dict, status: dict, layers: dict[str, int], now: str,
             full: bool) -> dict[str, Any]:
        m = pods.meta(pod)
        uid = pods.uid(pod)
        cg = self.cgroups
        parent = sandboxes.pod_cgroup_parent(self.settings, pod)
        logs_dir = self.settings.pod_logs_dir / f"{m.get('namespace')}_{m.get('name')}_{uid}"
        nodefs = _fs(self.settings.root_dir, now) if full else None
        containers = []
        ephemeral = 0
        for cs in status.get("containerStatuses") or []:
            running = (cs.get("state") or {}).get("running")
            cid = _container_id(cs)
            if not running or not cid:
                continue
            path = f"{parent}/{cid}"
            entry: dict[str, Any] = {"name": cs["name"],
                                     "startTime": running.get("startedAt") or now}
            cpu = self._cpu(path, cg.cpu_ns(path), now)
            memory = self._memory(cg.memory(path), now)
            if cpu:
                entry["cpu"] = cpu
            if memory:
                entry["memory"] = memory
            if nodefs:
                log_bytes, log_inodes = _tree(logs_dir / cs["name"])
                ephemeral += log_bytes
                entry["logs"] = dict(nodefs, usedBytes=log_bytes, inodesUsed=log_inodes)
                if cid in layers:
                    entry["rootfs"] = dict(nodefs, usedBytes=layers[cid])
                    ephemeral += layers[cid]
            containers.append(entry)
        volumes = []
        volumes_dir = self.settings.pods_dir / uid / "volumes"
        try:
            plugins = sorted(volumes_dir.iterdir()) if nodefs else []
        except OSError:
            plugins = []
        for plugin in plugins:
            for vol in sorted(p for p in plugin.iterdir() if p.is_dir()):
                used, inodes = _tree(vol)
                if plugin.name == "kubernetes.io~empty-dir":
                    ephemeral += used
                stats = dict(nodefs or {"time": now}, usedBytes=used, inodesUsed=inodes,
                             name=vol.name)
                volumes.append(stats)
        out: dict[str, Any] = {
            "podRef": {"name": m.get("name"), "namespace": m.get("namespace"), "uid": uid},
            "startTime": status.get("startTime") or m.get("creationTimestamp") or now,
            "containers": containers}
        cpu = self._cpu(parent, cg.cpu_ns(parent), now)
        memory = self._memory(cg.memory(parent), now)
        if cpu:
            out["cpu"] = cpu
        if memory:
            out["memory"] = memory
        network = network_stats(self._interfaces(cg.pids(parent)), now) if full else None
        if network:
            out["network"] = network
        if volumes:
            out["volume"] = volumes
        if nodefs:
            out["ephemeral-storage"] = dict(nodefs, usedBytes=ephemeral)
        procs = cg.processes(parent) if full else None
        if procs is not None:
            out["process_stats"] = {"process_count": procs}
        return out

    def _collect(self, snapshot: list[tuple[dict, dict]], layers: dict[str, int],
                 full: bool) -> dict:
        now = _now()
        summary = {"node": self._node(now, full),
                   "pods": [self._pod(pod, status, layers, now, full)
                            for pod, status in snapshot]}
        keep = {"/", self.settings.cgroup_root}
        for pod, status in snapshot:
            parent = sandboxes.pod_cgroup_parent(self.settings, pod)
            keep.add(parent)
            keep.update(f"{parent}/{_container_id(cs)}"
                        for cs in status.get("containerStatuses") or [])
        self.rates.forget(keep)
        return summary

    # -- the event loop side -----------------------------------------------------------

    def snapshot(self) -> list[tuple[dict, dict]]:
        """(pod, status) of the pods this node runs, their statuses as the kubelet
        holds them (fresher than the API's)."""
        out = []
        for uid, pod in list(self.kubelet.pods_by_uid.items()):
            status = self.kubelet.status_manager.get(uid) or pod.get("status") or {}
            if status.get("phase") in TERMINAL:
                continue
            out.append((pod, status))
        return out

    def snapshot_all(self) -> list[tuple[dict, dict]]:
        """Every pod the kubelet knows, finished ones too (for /pods)."""
        return [(pod, self.kubelet.status_manager.get(uid) or pod.get("status") or {})
                for uid, pod in list(self.kubelet.pods_by_uid.items())]

    async def _layers(self) -> dict[str, int]:
        try:
            stats = await self.kubelet.runtime.list_container_stats()
        except Exception as err:  # a runtime without stats: sizes are left out
            log.debug("container stats unavailable: %s", err)
            return {}
        return {s.id: s.writable_layer_used_bytes for s in stats
                if s.writable_layer_used_bytes is not None}

    async def _ready_sandboxes(self) -> dict[str, list]:
        """The runtime's ready sandboxes by pod UID."""
        try:
            found = await self.kubelet.runtime.list_pod_sandboxes(state=SandboxState.READY)
        except (CRIError, OSError) as err:  # a runtime that cannot list: no sandbox figures
            log.debug("listing pod sandboxes failed: %s", err)
            return {}
        out: dict[str, list] = {}
        for sandbox in found:
            out.setdefault(sandbox.metadata.uid, []).append(sandbox)
        return out

    def _cgroup_entries(self, snapshot: list[tuple[dict, dict]],
                        ready: dict[str, list]) -> list[dict[str, Any]]:
        """/metrics/cadvisor's cgroups with the Summary's figures: the machine, the pods'
        cgroup, and per pod its own, its sandboxes' (with the network, as cAdvisor's
        containerd handler gives it to sandboxes only) and its running containers'."""
        summary = self._collect(snapshot, {}, False)
        node, cg, now = summary["node"], self.cgroups, _now()

        def entry(path: str, labels: dict, stats: dict, start: float | None,
                  interfaces: list | None = None) -> dict[str, Any]:
            return {"id": path, "labels": labels, "time": now, "start": start,
                    "cpu": (stats.get("cpu") or {}).get("usageCoreNanoSeconds"),
                    "memory": stats.get("memory"), "interfaces": interfaces}

        entries = [entry("/", {}, node, parse_time(node.get("startTime")),
                         self._interfaces([1]))]
        root = self.settings.cgroup_root
        entries += [entry(root, {}, c, cg.created(root)) for c in node["systemContainers"]]
        for (pod, status), stats in zip(snapshot, summary["pods"]):
            parent = sandboxes.pod_cgroup_parent(self.settings, pod)
            base = {"namespace": stats["podRef"]["namespace"], "pod": stats["podRef"]["name"]}
            entries.append(entry(parent, base, stats, cg.created(parent)))
            for sandbox in ready.get(pods.uid(pod), ()):
                path = f"{parent}/{sandbox.id}"
                figures = {"cpu": {"usageCoreNanoSeconds": cg.cpu_ns(path)},
                           "memory": cg.memory(path)}
                entries.append(entry(path, base | {"image": PAUSE_IMAGE, "name": sandbox.id},
                                     figures, sandbox.created_at / 1e9,
                                     self._interfaces(cg.pids(path))))
            images = {cs["name"]: (_container_id(cs), cs.get("image") or "")
                      for cs in status.get("containerStatuses") or []}
            for c in stats["containers"]:
                cid, image = images[c["name"]]
                labels = base | {"container": c["name"], "image": image and normalize_image(image),
                                 "name": cid}
                entries.append(entry(f"{parent}/{cid}", labels, c,
                                     parse_time(c.get("startTime"))))
        return entries

    async def cadvisor(self) -> str:
        """The /metrics/cadvisor text."""
        ready = await self._ready_sandboxes()
        entries = await asyncio.to_thread(self._cgroup_entries, self.snapshot(), ready)
        return cadvisor_metrics(entries, getattr(self.kubelet, "machine_info", None))

    async def summary(self, *, full: bool = True) -> dict:
        """The Summary; ``full=False`` is upstream's only_cpu_and_memory (no
        filesystems, volumes or logs: what metrics scrapers ask for)."""
        layers = await self._layers() if full else {}
        return await asyncio.to_thread(self._collect, self.snapshot(), layers, full)

    async def sample_forever(self) -> None:
        while True:
            try:
                await self.summary(full=False)
            except Exception:  # a sampler must outlive a bad reading
                log.exception("sampling resource usage failed")
            await asyncio.sleep(SAMPLE_PERIOD)


POD_START_BUCKETS = (0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360,
                     480, 600, 900, 1200, 1800, 2700, 3600)


def _running(pod: dict) -> bool:
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    return status.get("phase") == "Running" and bool(statuses) and all(
        "running" in (s.get("state") or {}) for s in statuses)


class PodStartTracker:
    """kubelet_pod_start_duration_seconds: from the kubelet first seeing a pod (its
    informer's add) to the pod running with all its containers (its own status
    write coming back). Pods already running when first seen (adopted after a
    restart) are not measured."""

    def __init__(self, histogram, clock: Callable[[], float] = time.monotonic):
        self.histogram, self.clock = histogram, clock
        self.first_seen: dict[str, float] = {}

    def on_add(self, pod: dict) -> None:
        if not _running(pod):
            self.first_seen.setdefault(pods.uid(pod), self.clock())

    def on_update(self, old: dict, new: dict) -> None:
        uid = pods.uid(new)
        if uid in self.first_seen and _running(new):
            self.histogram.observe(self.clock() - self.first_seen.pop(uid))

    def on_delete(self, pod: dict) -> None:
        self.first_seen.pop(pods.uid(pod), None)


class KubeletCollector:
    """A few of upstream's kubelet metrics, computed at scrape time."""

    def __init__(self, kubelet):
        self.kubelet = kubelet

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily
        node = GaugeMetricFamily("kubelet_node_name", "[ALPHA] The node's name. The count is "
                                 "always 1.", labels=["node"])
        node.add_metric([self.kubelet.settings.node_name], 1)
        yield node
        running_pods = 0
        states = {"running": 0, "exited": 0, "created": 0}
        for uid in list(self.kubelet.pods_by_uid):
            status = self.kubelet.status_manager.get(uid) or {}
            statuses = (status.get("containerStatuses") or []) + \
                (status.get("initContainerStatuses") or [])
            if status.get("phase") == "Running" or any(
                    "running" in (s.get("state") or {}) for s in statuses):
                running_pods += 1
            for s in statuses:
                state = s.get("state") or {}
                if "running" in state:
                    states["running"] += 1
                elif "terminated" in state:
                    states["exited"] += 1
                elif s.get("containerID"):
                    states["created"] += 1
        pods_gauge = GaugeMetricFamily("kubelet_running_pods", "[ALPHA] Number of pods that "
                                       "have a running pod sandbox")
        pods_gauge.add_metric([], running_pods)
        yield pods_gauge
        containers = GaugeMetricFamily("kubelet_running_containers", "[ALPHA] Number of "
                                       "containers currently running",
                                       labels=["container_state"])
        for state, count in states.items():
            containers.add_metric([state], count)
        yield containers


def routes(kubelet, *, cgroups: Cgroups | None = None,
           proc: Path = PROC) -> Callable[[web.Application], None]:
    """The kubelet server setup adding the stats, metrics and pods endpoints."""
    from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    from prometheus_client import Histogram
    provider = SummaryProvider(kubelet, cgroups=cgroups, proc=proc)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(KubeletCollector(kubelet))
    ProcessCollector(registry=registry)
    starts = PodStartTracker(Histogram(
        "kubelet_pod_start_duration_seconds", "[ALPHA] Duration in seconds from kubelet "
        "seeing a pod for the first time to the pod starting to run",
        buckets=POD_START_BUCKETS, registry=registry))
    informer = getattr(kubelet, "informer", None)
    if informer is not None:
        informer.add_event_handler(on_add=starts.on_add, on_update=starts.on_update,
                                   on_delete=starts.on_delete)

    async def summary(request: web.Request) -> web.Response:
        full = request.query.get("only_cpu_and_memory", "").lower() not in ("true", "1")
        return web.Response(body=orjson.dumps(await provider.summary(full=full)),
                            content_type="application/json")

    async def metrics(request: web.Request) -> web.Response:
        body = await asyncio.to_thread(generate_latest, registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def resource(request: web.Request) -> web.Response:
        text = resource_metrics(await provider.summary(full=False))
        return web.Response(text=text, headers={"Content-Type": exposition.CONTENT_TYPE})

    async def cadvisor(request: web.Request) -> web.Response:
        text = await provider.cadvisor()
        return web.Response(text=text, headers={"Content-Type": exposition.CONTENT_TYPE})

    async def pod_list(request: web.Request) -> web.Response:
        items = []
        for pod, status in provider.snapshot_all():
            items.append(dict(pod, status=status))
        return web.Response(body=orjson.dumps({"kind": "PodList", "apiVersion": "v1",
                                               "metadata": {}, "items": items}),
                            content_type="application/json")

    sampler: list[asyncio.Task] = []

    async def start_sampler(app: web.Application) -> None:
        sampler.append(asyncio.create_task(provider.sample_forever(),
                                           name="kubelet stats sampler"))

    async def stop_sampler(app: web.Application) -> None:
        for task in sampler:
            task.cancel()
        await asyncio.gather(*sampler, return_exceptions=True)

    def setup(app: web.Application) -> None:
        app.router.add_get("/stats/summary", summary)
        app.router.add_get("/stats/summary/", summary)
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/metrics/resource", resource)
        app.router.add_get("/metrics/cadvisor", cadvisor)
        app.router.add_get("/pods", pod_list)
        app.router.add_get("/pods/", pod_list)
        app.on_startup.append(start_sampler)
        app.on_cleanup.append(stop_sampler)
    return setup
