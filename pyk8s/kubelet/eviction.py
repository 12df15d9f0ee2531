"""Node-pressure eviction: upstream's pkg/kubelet/eviction (hard and soft thresholds).

Role: every `eviction_monitoring_period` the `EvictionManager` observes the node's
signals through a `StatsSource` — memory.available (capacity minus the root
cgroup's working set, as cAdvisor computes it), nodefs.available and
nodefs.inodesFree (statvfs of the kubelet's root dir), imagefs.available and
imagefs.inodesFree (statvfs of containerd's root) — and compares them with the
hard thresholds (`--eviction-hard`, upstream's defaults) and the soft ones
(`--eviction-soft`, none by default), as upstream's synchronize does:
- a threshold is met when its signal is below its value; a threshold that was
  met (past its grace period) on the last pass stays met until the signal is back
  above value + `--eviction-minimum-reclaim` (upstream's thresholdsMet with
  enforceMinReclaim);
- every met threshold puts the node under pressure at once, soft or not (memory
  signals: MemoryPressure, filesystem signals: DiskPressure; the node status
  reporter reads `pressure`);
- a met threshold drives eviction only once it has been met continuously for its
  grace period (`--eviction-soft-grace-period`; hard thresholds have none —
  upstream's thresholdsFirstObservedAt / thresholdsMetGracePeriod).
One pod is evicted per pass, for the most urgent threshold (memory first, hard
before soft): the pods are ranked as upstream's rankMemoryPressure /
rankDiskPressureFunc do (usage above requests first, then lower priority, then the
larger usage above requests) and the first that is not critical is killed — with a
1 s grace period for a hard threshold, for a soft one with the smaller of the
pod's terminationGracePeriodSeconds and `--eviction-max-pod-grace-period` (at
least 1 s, as upstream's pod workers) — its status Failed/Evicted with upstream's
message and a DisruptionTarget condition, and a Warning `Evicted` event.

Invariants:
- Pure decisions (`parse_eviction_thresholds`, `parse_threshold_config`,
  `thresholds_met`, `eviction_grace`, `rank`, `eviction_message`) are separate
  from I/O, so tests drive the manager with fake stats and a fake clock.
- Flag values are refused with upstream's messages (ParseThresholdConfig): a soft
  threshold needs a grace period; a grace period for a signal without a soft
  threshold is accepted and unused, as upstream.
- A condition stays true until its signals have been fine for
  `eviction_pressure_transition_period` (upstream's anti-flapping rule).
- Critical pods — static and mirror pods, priority at or above 2000000000 — are
  never evicted (upstream's IsCriticalPod); at most one pod is evicted per pass.
- Under pressure, new pods are refused (`admit`): all but critical ones under
  DiskPressure, BestEffort ones not tolerating the memory-pressure taint under
  MemoryPressure alone, with upstream's "The node had condition: [...]" message.
- Allocatable subtracts the hard thresholds only (`threshold_for`).
- Reading cgroups and walking pod directories happens in a thread.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
from pathlib import Path
from typing import Awaitable, Callable, Protocol

from pyk8s.api.quantities import BINARY_SI, Quantity, QuantityError, parse_quantity
from pyk8s.client.clock import Clock
from pyk8s.kubelet import pods
from pyk8s.kubelet.settings import KubeletSettings

log = logging.getLogger(__name__)

MEMORY_AVAILABLE = "memory.available"
NODEFS_AVAILABLE = "nodefs.available"
NODEFS_INODES_FREE = "nodefs.inodesFree"
IMAGEFS_AVAILABLE = "imagefs.available"
IMAGEFS_INODES_FREE = "imagefs.inodesFree"
SIGNALS = (MEMORY_AVAILABLE, NODEFS_AVAILABLE, NODEFS_INODES_FREE, IMAGEFS_AVAILABLE,
           IMAGEFS_INODES_FREE)
# the resource each signal starves, and the node condition it raises
RESOURCE = {MEMORY_AVAILABLE: "memory", NODEFS_AVAILABLE: "ephemeral-storage",
            NODEFS_INODES_FREE: "inodes", IMAGEFS_AVAILABLE: "ephemeral-storage",
            IMAGEFS_INODES_FREE: "inodes"}
MEMORY_PRESSURE, DISK_PRESSURE = "MemoryPressure", "DiskPressure"
CONDITION = {MEMORY_AVAILABLE: MEMORY_PRESSURE}
CONDITION.update({s: DISK_PRESSURE for s in SIGNALS if s != MEMORY_AVAILABLE})
# upstream evicts for memory before anything else
_PRIORITY = {MEMORY_AVAILABLE: 0}

REASON = "Evicted"
NODE_LOW = "The node was low on resource: {}. "
NODE_CONDITION = "The node had condition: [{}]. "
MEMORY_PRESSURE_TAINT = "node.kubernetes.io/memory-pressure"
THRESHOLD_MET = "Threshold quantity: {}, available: {}. "
CONTAINER_OVER = "Container {} was using {}, request is {}, has larger consumption of {}. "
HARD_EVICTION_GRACE = 1  # upstream's immediateEvictionGracePeriodSeconds
UNSUPPORTED_SIGNAL = "unsupported eviction signal {}"
GRACE_PERIOD_REQUIRED = "grace period must be specified for the soft eviction threshold {}"
SYSTEM_CRITICAL_PRIORITY = 2 * 10 ** 9
CONFIG_SOURCE = "kubernetes.io/config.source"
CONFIG_MIRROR = "kubernetes.io/config.mirror"


class ThresholdError(ValueError):
    """An eviction flag value upstream would refuse (the message is upstream's)."""


@dataclasses.dataclass(frozen=True)
class Amount:
    """A quantity (bytes or inodes) or a fraction of capacity (upstream's ThresholdValue)."""
    quantity: int | None = None
    percentage: float | None = None  # of capacity, 0..1

    def value(self, capacity: int) -> int:
        if self.quantity is not None:
            return self.quantity
        return int(capacity * (self.percentage or 0.0))


@dataclasses.dataclass(frozen=True)
class Threshold:
    signal: str
    quantity: int | None = None  # bytes or inodes
    percentage: float | None = None  # of capacity, 0..1
    grace_period: float = 0.0  # seconds the threshold must hold; 0: a hard threshold
    min_reclaim: Amount | None = None  # reclaimed past the value before it is resolved

    def value(self, capacity: int) -> int:
        if self.quantity is not None:
            return self.quantity
        return int(capacity * (self.percentage or 0.0))

    @property
    def hard(self) -> bool:
        """Upstream's isHardEvictionThreshold: no grace period."""
        return self.grace_period == 0


@dataclasses.dataclass(frozen=True)
class Observation:
    available: int
    capacity: int


@dataclasses.dataclass(frozen=True)
class PodUsage:
    """A pod's use of the starved resources; None where unknown."""
    memory: int | None = None  # working set bytes
    disk: int | None = None  # bytes of logs and local volumes
    containers: tuple[tuple[str, int], ...] = ()  # (container, memory working set)


def parse_eviction_thresholds(text: str) -> tuple[tuple[str, str], ...]:
    """`memory.available<100Mi,nodefs.available<10%` as (signal, value) pairs
    (--eviction-hard and --eviction-soft)."""
    out = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        signal, sep, value = item.partition("<")
        if not sep or not signal or not value:
            raise ThresholdError(f"invalid eviction threshold syntax {item}, expected "
                                 "<signal><operator><value>")
        _threshold(signal.strip(), value.strip())
        out.append((signal.strip(), value.strip()))
    return tuple(out)


parse_eviction_hard = parse_eviction_thresholds


def _pairs(text: str) -> dict[str, str]:
    """`a=x,b=y` as a map (pflag's mapStringString: the last value of a key wins)."""
    out: dict[str, str] = {}
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ThresholdError("malformed pair, expect string=string")
        out[key.strip()] = value.strip()
    return out


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3,
                   "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")


def go_duration(text: str) -> float:
    """Go's time.ParseDuration ("1m30s", "-5s", "500ms", "0") in seconds."""
    s, sign = text, 1.0
    if s[:1] in ("-", "+"):
        sign, s = (-1.0 if s[0] == "-" else 1.0), s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ThresholdError(f'time: invalid duration "{text}"')
    total, pos = 0.0, 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        whole, frac, unit = m.group(1), m.group(2), m.group(3)
        if not whole and not frac:
            raise ThresholdError(f'time: invalid duration "{text}"')
        if not unit:
            raise ThresholdError(f'time: missing unit in duration "{text}"')
        if unit not in _DURATION_UNITS:
            raise ThresholdError(f'time: unknown unit "{unit}" in duration "{text}"')
        total += float(f"{whole or 0}.{frac or 0}") * _DURATION_UNITS[unit]
        pos = m.end()
    return sign * total


def _grace_period(signal: str, value: float | str) -> float:
    if signal not in SIGNALS:
        raise ThresholdError(UNSUPPORTED_SIGNAL.format(signal))
    seconds = go_duration(value) if isinstance(value, str) else float(value)
    if seconds < 0:
        raise ThresholdError(f"invalid eviction grace period specified: {value}, must be "
                             "a positive value")
    return seconds


def parse_grace_periods(text: str) -> tuple[tuple[str, float], ...]:
    """`memory.available=1m30s,...` (--eviction-soft-grace-period): (signal, seconds)."""
    return tuple((signal, _grace_period(signal, value))
                 for signal, value in _pairs(text).items())


def _min_reclaim(signal: str, value: str) -> Amount:
    if signal not in SIGNALS:
        raise ThresholdError(UNSUPPORTED_SIGNAL.format(signal))
    if value.endswith("%"):
        try:
            percent = float(value[:-1])
        except ValueError:
            raise ThresholdError(f"invalid eviction minimum reclaim {value}") from None
        if percent <= 0:
            raise ThresholdError(f"eviction percentage minimum reclaim {signal} must be "
                                 f"positive: {value}")
        return Amount(percentage=percent / 100)
    try:
        quantity = parse_quantity(value)
    except QuantityError as e:
        raise ThresholdError(str(e)) from None
    if quantity.sign() < 0:
        raise ThresholdError(f"negative eviction minimum reclaim specified for {signal}")
    return Amount(quantity=quantity.value())


def parse_minimum_reclaims(text: str) -> tuple[tuple[str, str], ...]:
    """`memory.available=0Mi,nodefs.available=500Mi` (--eviction-minimum-reclaim)."""
    pairs = _pairs(text)
    for signal, value in pairs.items():
        _min_reclaim(signal, value)
    return tuple(pairs.items())


def _threshold(signal: str, value: str) -> Threshold:
    if signal not in SIGNALS:
        raise ThresholdError(UNSUPPORTED_SIGNAL.format(signal))
    if value.endswith("%"):
        try:
            percent = float(value[:-1])
        except ValueError:
            raise ThresholdError(f"invalid eviction threshold {value}") from None
        if percent <= 0 or percent > 100:
            raise ThresholdError(f"eviction percentage threshold {signal} must be positive "
                                 f"and at most 100%: {value}")
        return Threshold(signal, percentage=percent / 100)
    try:
        quantity = parse_quantity(value)
    except QuantityError:
        raise ThresholdError(f"invalid eviction threshold {value}") from None
    if quantity.sign() < 0:
        raise ThresholdError(f"eviction threshold {signal} must be positive: {value}")
    return Threshold(signal, quantity=quantity.value())


def parse_threshold_config(hard, soft=(), grace_periods=(), minimum_reclaim=()
                           ) -> list[Threshold]:
    """Upstream's ParseThresholdConfig: the hard thresholds, then the soft ones with
    their grace periods; every threshold of a signal gets its minimum reclaim."""
    hard_t = [_threshold(signal, value) for signal, value in hard]
    soft_t = [_threshold(signal, value) for signal, value in soft]
    periods = {signal: _grace_period(signal, value) for signal, value in grace_periods}
    reclaims = {signal: _min_reclaim(signal, value) for signal, value in minimum_reclaim}
    for i, t in enumerate(soft_t):
        if t.signal not in periods:
            raise ThresholdError(GRACE_PERIOD_REQUIRED.format(t.signal))
        soft_t[i] = dataclasses.replace(t, grace_period=periods[t.signal])
    return [dataclasses.replace(t, min_reclaim=reclaims.get(t.signal))
            for t in hard_t + soft_t]


def thresholds(settings: KubeletSettings) -> list[Threshold]:
    return parse_threshold_config(settings.eviction_hard, settings.eviction_soft,
                                  settings.eviction_soft_grace_period,
                                  settings.eviction_minimum_reclaim)


def threshold_for(settings: KubeletSettings, signal: str, capacity: int) -> int:
    """The hard threshold of `signal` in bytes (0 without one): allocatable subtracts it."""
    return max((_threshold(s, v).value(capacity) for s, v in settings.eviction_hard
                if s == signal), default=0)


def _urgency(t: Threshold) -> tuple[int, int]:
    """Memory before the other signals (upstream's byEvictionPriority), hard before soft."""
    return (_PRIORITY.get(t.signal, 1), 0 if t.hard else 1)


def thresholds_met(wanted: list[Threshold], observed: dict[str, Observation],
                   enforce_min_reclaim: bool = False) -> list[Threshold]:
    """The thresholds whose signal is below its value (plus the minimum reclaim with
    `enforce_min_reclaim`), regardless of grace periods; memory first."""
    met = []
    for t in wanted:
        o = observed.get(t.signal)
        if o is None:
            continue
        quantity = t.value(o.capacity)
        if enforce_min_reclaim and t.min_reclaim is not None:
            quantity += t.min_reclaim.value(o.capacity)
        if o.available < quantity:
            met.append(t)
    return sorted(met, key=_urgency)


def eviction_grace(pod: dict, threshold: Threshold, max_pod_grace_period: int) -> int:
    """The grace period of a pod evicted for `threshold` (upstream's synchronize, with
    AllowOverwriteTerminationGracePeriodSeconds off as in v1.32): 1 s for a hard one;
    for a soft one the pod's terminationGracePeriodSeconds capped at the maximum, and
    never under 1 s (the pod workers' floor)."""
    if threshold.hard:
        return HARD_EVICTION_GRACE
    grace = int(max_pod_grace_period)
    own = pods.spec(pod).get("terminationGracePeriodSeconds")
    if own is not None:
        grace = min(grace, int(own))
    return max(grace, HARD_EVICTION_GRACE)


def binary(value: int) -> str:
    return Quantity.from_value(value, BINARY_SI).canonical()


# ---- ranking ----------------------------------------------------------------------------

def priority(pod: dict) -> int:
    value = pods.spec(pod).get("priority")
    return int(value) if value is not None else 0


def is_critical(pod: dict) -> bool:
    """Static, mirror and system-critical pods (upstream's IsCriticalPod)."""
    annotations = pods.meta(pod).get("annotations") or {}
    if annotations.get(CONFIG_SOURCE, "api") != "api" or CONFIG_MIRROR in annotations:
        return True
    return priority(pod) >= SYSTEM_CRITICAL_PRIORITY


def tolerates_memory_pressure(pod: dict) -> bool:
    """Whether a toleration of the pod matches the memory-pressure NoSchedule taint."""
    for t in pods.spec(pod).get("tolerations") or []:
        if t.get("effect") not in (None, "", "NoSchedule"):
            continue
        operator = t.get("operator") or "Equal"
        if not t.get("key") and operator == "Exists":
            return True
        if t.get("key") == MEMORY_PRESSURE_TAINT and (operator == "Exists"
                                                     or not t.get("value")):
            return True
    return False


def admit(pod: dict, pressure: frozenset[str]) -> str | None:
    """Why a new pod may not start under `pressure` (upstream's Admit), or None."""
    if not pressure or is_critical(pod):
        return None
    if pressure == {MEMORY_PRESSURE}:
        if pods.pod_qos(pod) != pods.BEST_EFFORT or tolerates_memory_pressure(pod):
            return None
    ordered = sorted(pressure, key=lambda c: c != MEMORY_PRESSURE)
    return NODE_CONDITION.format(" ".join(ordered))


def _request(pod: dict, resource: str) -> int:
    """The pod's request of `resource` (max of init containers, sum of the others)."""
    name = "memory" if resource == "memory" else "ephemeral-storage"

    def req(c: dict) -> int:
        q = pods.quantity(c, "requests", name)
        return q.value() if q is not None else 0

    regular = sum(req(c) for c in pods.containers(pod))
    init = max((req(c) for c in pods.init_containers(pod)), default=0)
    return max(regular, init)


def _usage(usage: PodUsage | None, resource: str) -> int | None:
    if usage is None:
        return None
    return usage.memory if resource == "memory" else usage.disk


def rank(candidates: list[dict], resource: str, usage: dict[str, PodUsage]) -> list[dict]:
    """Pods in eviction order for `resource` ("memory" or a disk resource).

    Upstream's orderedBy(exceedRequests, priority, usage-minus-request): pods without
    stats and pods using more than they requested first, then lower priority, then
    the larger consumption above the request.
    """
    def key(pod: dict):
        used = _usage(usage.get(pods.uid(pod)), resource)
        request = _request(pod, resource)
        if used is None:
            return (0, priority(pod), 0)
        exceeds = used > request
        return (0 if exceeds else 1, priority(pod), -(used - request))

    return sorted(candidates, key=key)


def eviction_message(resource: str, threshold: Threshold, observation: Observation,
                     pod: dict, usage: PodUsage | None) -> str:
    """Upstream's evictionMessage: the resource, the threshold, the greedy containers."""
    text = NODE_LOW.format(resource)
    quantity = threshold.value(observation.capacity)
    if resource in ("memory", "ephemeral-storage"):
        text += THRESHOLD_MET.format(binary(quantity), binary(max(observation.available, 0)))
    else:
        text += THRESHOLD_MET.format(quantity, max(observation.available, 0))
    if resource == "memory" and usage is not None:
        for name, used in usage.containers:
            container = pods.find_container(pod, name) or {}
            q = pods.quantity(container, "requests", "memory")
            request = q.value() if q is not None else 0
            if used > request:
                text += CONTAINER_OVER.format(name, binary(used), binary(request),
                                              binary(used - request))
    return text


# ---- observations -----------------------------------------------------------------------

class StatsSource(Protocol):
    async def observe(self) -> dict[str, Observation]:
        """The node's current signals (signals that cannot be read are left out)."""
        ...

    async def pod_usage(self, pod: dict) -> PodUsage:
        """What the pod uses of memory and local disk."""
        ...


CGROUP = Path("/sys/fs/cgroup")


def _read_stat(path: Path) -> dict[str, int]:
    out = {}
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                out[key] = int(value)
    except OSError:
        pass
    return out


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def cgroup_working_set(parent: str, root: Path = CGROUP) -> int | None:
    """Usage minus inactive file pages of a cgroup (cgroup v1 or v2), or None."""
    rel = parent.strip("/")
    v1 = root / "memory" / rel
    usage = _read_int(v1 / "memory.usage_in_bytes")
    if usage is not None:
        inactive = _read_stat(v1 / "memory.stat").get("total_inactive_file", 0)
        return max(usage - inactive, 0)
    v2 = root / rel
    usage = _read_int(v2 / "memory.current")
    if usage is not None:
        inactive = _read_stat(v2 / "memory.stat").get("inactive_file", 0)
        return max(usage - inactive, 0)
    return None


def _meminfo() -> dict[str, int]:
    out = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            fields = rest.split()
            if fields:
                out[key] = int(fields[0]) * (1024 if fields[1:] == ["kB"] else 1)
    except OSError:
        pass
    return out


def node_memory() -> Observation:
    """memory.available as upstream: capacity minus the root cgroup's working set."""
    info = _meminfo()
    capacity = info.get("MemTotal", 0)
    working = None
    if (CGROUP / "memory" / "memory.usage_in_bytes").exists():
        working = cgroup_working_set("/")
    if working is None:  # cgroup v2 root: the machine's figures
        usage = capacity - info.get("MemFree", 0)
        working = max(usage - info.get("Inactive(file)", 0), 0)
    return Observation(available=capacity - working, capacity=capacity)


def filesystem(path: Path) -> tuple[Observation, Observation]:
    """(bytes, inodes) available to unprivileged users of the filesystem of `path`."""
    path.mkdir(parents=True, exist_ok=True)
    fs = os.statvfs(path)
    return (Observation(available=fs.f_bavail * fs.f_frsize, capacity=fs.f_blocks * fs.f_frsize),
            Observation(available=fs.f_favail, capacity=fs.f_files))


def _tree_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


class NodeStats:
    """The real node: /proc/meminfo, cgroups and statvfs (blocking work in a thread)."""

    def __init__(self, settings: KubeletSettings, *, image_dir: Path | None = None,
                 cgroup_parent: Callable[[dict], str] | None = None):
        self.settings = settings
        self.image_dir = image_dir or settings.data_dir / "agent" / "containerd"
        self.cgroup_parent = cgroup_parent

    def _observe(self) -> dict[str, Observation]:
        nodefs, nodefs_inodes = filesystem(self.settings.root_dir)
        imagefs, imagefs_inodes = filesystem(self.image_dir)
        return {MEMORY_AVAILABLE: node_memory(), NODEFS_AVAILABLE: nodefs,
                NODEFS_INODES_FREE: nodefs_inodes, IMAGEFS_AVAILABLE: imagefs,
                IMAGEFS_INODES_FREE: imagefs_inodes}

    async def observe(self) -> dict[str, Observation]:
        return await asyncio.to_thread(self._observe)

    def _pod_usage(self, pod: dict) -> PodUsage:
        uid = pods.uid(pod)
        memory = None
        containers: list[tuple[str, int]] = []
        if self.cgroup_parent is not None:
            parent = self.cgroup_parent(pod)
            memory = cgroup_working_set(parent)
            # containerd (cgroupfs) puts each container in <pod cgroup>/<container id>
            for s in (pod.get("status") or {}).get("containerStatuses") or []:
                cid = (s.get("containerID") or "").split("://", 1)[-1]
                used = cgroup_working_set(f"{parent}/{cid}") if cid else None
                if used is not None and "running" in (s.get("state") or {}):
                    containers.append((s["name"], used))
        m = pods.meta(pod)
        logs = self.settings.pod_logs_dir / f"{m.get('namespace')}_{m.get('name')}_{uid}"
        disk = _tree_size(self.settings.pods_dir / uid / "volumes") + _tree_size(logs)
        return PodUsage(memory=memory, disk=disk, containers=tuple(containers))

    async def pod_usage(self, pod: dict) -> PodUsage:
        return await asyncio.to_thread(self._pod_usage, pod)


# ---- the manager ------------------------------------------------------------------------

# (pod, message, signal, grace period in seconds) -> evicted
EvictFunc = Callable[[dict, str, str, int], Awaitable[bool]]


class EvictionManager:
    """See the module docstring; `synchronize` is one monitoring pass."""

    def __init__(self, settings: KubeletSettings, *, clock: Clock, stats: StatsSource,
                 active_pods: Callable[[], list[dict]], evict: EvictFunc,
                 node_event: Callable[[str, str, str], None] = lambda *a: None):
        self.settings, self.clock, self.stats = settings, clock, stats
        self.thresholds = thresholds(settings)
        self.active_pods, self.evict = active_pods, evict
        self.node_event = node_event  # (type, reason, message)
        self.observations: dict[str, Observation] = {}
        self._last_observed: dict[str, float] = {}  # condition -> monotonic time
        # threshold -> when it was first met in the current run of passes that met it
        self._first_observed: dict[Threshold, float] = {}
        # the thresholds that drove eviction on the last pass (grace periods elapsed)
        self._met: list[Threshold] = []

    @property
    def pressure(self) -> frozenset[str]:
        """Node conditions under pressure now (held for the transition period)."""
        now = self.clock.monotonic()
        period = self.settings.eviction_pressure_transition_period
        return frozenset(c for c, seen in self._last_observed.items() if now - seen < period)

    def _observe(self) -> list[Threshold]:
        """Update the pressure and the grace-period clocks; the thresholds to act on."""
        met = thresholds_met(self.thresholds, self.observations)
        if self._met:  # met last pass and not yet reclaimed past their minimum
            met += [t for t in thresholds_met(self._met, self.observations,
                                              enforce_min_reclaim=True) if t not in met]
        now = self.clock.monotonic()
        self._first_observed = {t: self._first_observed.get(t, now) for t in met}
        for t in met:
            self._last_observed[CONDITION[t.signal]] = now
        ready = []
        for t, since in self._first_observed.items():
            if now - since < t.grace_period:
                log.debug("eviction manager: %s threshold met for %.0fs of its %.0fs grace "
                          "period", t.signal, now - since, t.grace_period)
                continue
            ready.append(t)
        self._met = sorted(ready, key=_urgency)
        return self._met

    async def synchronize(self) -> dict | None:
        """Observe, update the pressure, evict at most one pod; returns it."""
        if not self.thresholds:
            return None
        self.observations = await self.stats.observe()
        ready = self._observe()
        if not ready:
            return None
        threshold = ready[0]
        resource = RESOURCE[threshold.signal]
        observation = self.observations[threshold.signal]
        log.warning("eviction manager: attempting to reclaim %s (%s below %s%s)", resource,
                    threshold.signal, threshold.value(observation.capacity),
                    "" if threshold.hard else
                    f" for {threshold.grace_period:g}s, a soft threshold")
        self.node_event("Warning", "EvictionThresholdMet", f"Attempting to reclaim {resource}")
        candidates = self.active_pods()
        if not candidates:
            log.info("eviction manager: no pods to evict to reclaim %s", resource)
            return None
        usage = {pods.uid(p): await self.stats.pod_usage(p) for p in candidates}
        for pod in rank(candidates, resource, usage):
            if is_critical(pod):
                log.info("eviction manager: cannot evict critical pod %s", pods.full_name(pod))
                continue
            message = eviction_message(resource, threshold, observation, pod,
                                       usage.get(pods.uid(pod)))
            grace = eviction_grace(pod, threshold, self.settings.eviction_max_pod_grace_period)
            if await self.evict(pod, message, threshold.signal, grace):
                return pod
        return None

    async def run(self) -> None:
        while True:
            try:
                await self.synchronize()
            except Exception:  # noqa: BLE001 - the next pass may succeed
                log.exception("eviction manager: synchronize failed")
            await self.clock.sleep(self.settings.eviction_monitoring_period)
