"""KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1): profiles and defaults.

Role: read a configuration document (a file, or nothing for the defaults) into typed
settings: global knobs (percentageOfNodesToScore, back-off, leader election) and one
``Profile`` per ``schedulerName`` with its plugin sets and plugin args. Defaults
follow upstream's ``apis/config/v1/default_plugins.go`` and ``defaults.go``.

Invariants:
- Each profile's plugin sets are upstream's ``mergePlugins(defaults, custom)``: the
  default plugins are enabled through ``multiPoint`` with upstream's score weights;
  a custom entry re-configuring a default plugin replaces it in place, other
  custom entries follow, ``disabled: [{name: "*"}]`` drops every default there.
- Expansion of ``multiPoint`` into extension points happens in ``runtime``, which
  knows which methods each plugin implements.
- ``schedulerName`` values are unique and every profile uses the same QueueSort
  plugin (upstream's validation), else ``ConfigurationError``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

DEFAULT_SCHEDULER_NAME = "default-scheduler"
API_VERSION = "kubescheduler.config.k8s.io/v1"

EXTENSION_POINTS = ("preEnqueue", "queueSort", "preFilter", "filter", "postFilter", "preScore",
                    "score", "reserve", "permit", "preBind", "bind", "postBind")
MULTI_POINT = "multiPoint"

# Upstream's getDefaultPlugins (v1.32), in order, with score weights (the in-tree
# EBS/GCE PD/Azure Disk limits plugins are no longer in that set).
DEFAULT_MULTI_POINT: tuple[tuple[str, int], ...] = (
    ("SchedulingGates", 0), ("PrioritySort", 0), ("NodeUnschedulable", 0), ("NodeName", 0),
    ("TaintToleration", 3), ("NodeAffinity", 2), ("NodePorts", 0), ("NodeResourcesFit", 1),
    ("VolumeRestrictions", 0), ("NodeVolumeLimits", 0), ("VolumeBinding", 0), ("VolumeZone", 0),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2), ("DefaultPreemption", 0), ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1), ("DefaultBinder", 0))


class ConfigurationError(ValueError):
    """The configuration document is invalid; the message says where."""


@dataclass
class PluginSet:
    """Enabled plugins (name, weight) in order, and disabled names (``*`` = all)."""

    enabled: list[tuple[str, int]] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)


@dataclass
class Profile:
    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    plugins: dict[str, PluginSet] = field(default_factory=dict)
    plugin_config: dict[str, dict] = field(default_factory=dict)
    percentage_of_nodes_to_score: int | None = None

    def plugin_set(self, point: str) -> PluginSet:
        return self.plugins.get(point) or PluginSet()


@dataclass
class LeaderElection:
    leader_elect: bool = True
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    resource_namespace: str = "kube-system"
    resource_name: str = "kube-scheduler"


@dataclass
class SchedulerConfiguration:
    profiles: list[Profile] = field(default_factory=list)
    percentage_of_nodes_to_score: int = 0
    pod_initial_backoff_seconds: float = 1.0
    pod_max_backoff_seconds: float = 10.0
    # Upstream's DefaultPodMaxInUnschedulablePodsDuration (not a config field there).
    pod_max_in_unschedulable_pods_duration: float = 300.0
    leader_election: LeaderElection = field(default_factory=LeaderElection)


def _duration(value: Any, where: str) -> float:
    """A Go duration string (``15s``, ``1m30s``, ``500ms``) or a number of seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    total, num = 0.0, ""
    i = 0
    try:
        while i < len(text):
            ch = text[i]
            if ch.isdigit() or ch == ".":
                num += ch
                i += 1
                continue
            unit = "ms" if text.startswith("ms", i) else ch
            total += float(num) * units[unit]
            num = ""
            i += len(unit)
    except (KeyError, ValueError):
        raise ConfigurationError(f"{where}: invalid duration {value!r}") from None
    if num:
        raise ConfigurationError(f"{where}: invalid duration {value!r}")
    return total


def _plugin_set(raw: Any, where: str) -> PluginSet:
    if raw is None:
        return PluginSet()
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{where}: must be an object")
    enabled = []
    for i, p in enumerate(raw.get("enabled") or ()):
        if not isinstance(p, dict) or not p.get("name"):
            raise ConfigurationError(f"{where}.enabled[{i}].name: Required value")
        weight = int(p.get("weight") or 0)
        if weight < 0:
            raise ConfigurationError(f"{where}.enabled[{i}].weight: must be positive")
        enabled.append((str(p["name"]), weight))
    disabled = [str(p.get("name")) for p in raw.get("disabled") or () if isinstance(p, dict)]
    return PluginSet(enabled, disabled)


def merge_plugin_set(default: PluginSet, custom: PluginSet) -> PluginSet:
    """Upstream ``mergePluginSet``."""
    disabled = list(custom.disabled) + list(default.disabled)
    disabled_set = set(disabled)
    custom_index = {name: i for i, (name, _) in enumerate(custom.enabled)}
    replaced: set[int] = set()
    enabled: list[tuple[str, int]] = []
    if "*" not in disabled_set:
        for name, weight in default.enabled:
            if name in disabled_set:
                continue
            if name in custom_index:
                i = custom_index[name]
                replaced.add(i)
                enabled.append(custom.enabled[i])
            else:
                enabled.append((name, weight))
    enabled += [p for i, p in enumerate(custom.enabled) if i not in replaced]
    return PluginSet(enabled, disabled)


def default_plugins() -> dict[str, PluginSet]:
    return {MULTI_POINT: PluginSet(list(DEFAULT_MULTI_POINT))}


def _profile(raw: dict, index: int) -> Profile:
    where = f"profiles[{index}]"
    name = raw.get("schedulerName") or DEFAULT_SCHEDULER_NAME
    custom = raw.get("plugins") or {}
    if not isinstance(custom, dict):
        raise ConfigurationError(f"{where}.plugins: must be an object")
    merged: dict[str, PluginSet] = {}
    defaults = default_plugins()
    for point in (MULTI_POINT, *EXTENSION_POINTS):
        merged[point] = merge_plugin_set(defaults.get(point) or PluginSet(),
                                         _plugin_set(custom.get(point), f"{where}.plugins.{point}"))
    config: dict[str, dict] = {}
    for i, entry in enumerate(raw.get("pluginConfig") or ()):
        pname = (entry or {}).get("name")
        if not pname:
            raise ConfigurationError(f"{where}.pluginConfig[{i}].name: Required value")
        if pname in config:
            raise ConfigurationError(f"{where}.pluginConfig[{i}]: Duplicate value: {pname!r}")
        config[pname] = dict(entry.get("args") or {})
    pct = raw.get("percentageOfNodesToScore")
    if pct is not None and not 0 <= int(pct) <= 100:
        raise ConfigurationError(f"{where}.percentageOfNodesToScore: must be in the range [0, 100]")
    return Profile(name, merged, config, int(pct) if pct is not None else None)


def load_configuration(doc: dict | None = None) -> SchedulerConfiguration:
    """Defaulted, validated settings from a KubeSchedulerConfiguration document."""
    doc = doc or {}
    version, kind = doc.get("apiVersion"), doc.get("kind")
    # A document may leave both out (defaults only); a file may not (``load_configuration_file``).
    if version not in (None, API_VERSION) or kind not in (None, "KubeSchedulerConfiguration"):
        raise ConfigurationError(_not_registered(kind or "KubeSchedulerConfiguration", version or API_VERSION))
    cfg = SchedulerConfiguration()
    pct = doc.get("percentageOfNodesToScore")
    if pct is not None:
        if not 0 <= int(pct) <= 100:
            raise ConfigurationError("percentageOfNodesToScore: must be in the range [0, 100]")
        cfg.percentage_of_nodes_to_score = int(pct)
    if doc.get("podInitialBackoffSeconds") is not None:
        cfg.pod_initial_backoff_seconds = float(doc["podInitialBackoffSeconds"])
    if doc.get("podMaxBackoffSeconds") is not None:
        cfg.pod_max_backoff_seconds = float(doc["podMaxBackoffSeconds"])
    if cfg.pod_max_backoff_seconds < cfg.pod_initial_backoff_seconds:
        raise ConfigurationError("podMaxBackoffSeconds: must be greater than or equal to podInitialBackoffSeconds")
    le = doc.get("leaderElection") or {}
    cfg.leader_election = LeaderElection(
        leader_elect=bool(le.get("leaderElect", True)),
        lease_duration=_duration(le.get("leaseDuration", "15s"), "leaderElection.leaseDuration"),
        renew_deadline=_duration(le.get("renewDeadline", "10s"), "leaderElection.renewDeadline"),
        retry_period=_duration(le.get("retryPeriod", "2s"), "leaderElection.retryPeriod"),
        resource_namespace=le.get("resourceNamespace") or "kube-system",
        resource_name=le.get("resourceName") or "kube-scheduler")
    raw_profiles = doc.get("profiles") or [{}]
    cfg.profiles = [_profile(p or {}, i) for i, p in enumerate(raw_profiles)]
    names = [p.scheduler_name for p in cfg.profiles]
    if len(set(names)) != len(names):
        raise ConfigurationError("profiles: Duplicate value: schedulerName")
    return cfg


def _not_registered(kind: str, version: str) -> str:
    """Upstream's decoder error for a kind/version its scheme does not know."""
    return (f'no kind "{kind}" is registered for version "{version}" in scheme '
            '"pkg/scheduler/apis/config/scheme/scheme.go:30"')


def load_configuration_file(path: str) -> SchedulerConfiguration:
    """``kube-scheduler --config``: the file must name its apiVersion and kind."""
    with open(path, encoding="utf-8") as f:
        try:
            doc = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ConfigurationError(f"{path}: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigurationError(f"{path}: not a KubeSchedulerConfiguration object")
    if not doc.get("apiVersion"):
        raise ConfigurationError(f"Object 'apiVersion' is missing in '{path}'")
    if not doc.get("kind"):
        raise ConfigurationError(f"Object 'Kind' is missing in '{path}'")
    return load_configuration(doc)
