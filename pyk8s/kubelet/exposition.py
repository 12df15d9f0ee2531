"""Prometheus text for the kubelet's /metrics/resource and /metrics/cadvisor.

Role: turn the figures ``stats.SummaryProvider`` reads into the text upstream's Go
client writes: ``resource_metrics(summary)`` (the stable resource metrics
metrics-server reads) and ``cadvisor_metrics(entries, machine)`` (cAdvisor's
container and machine metrics, as the kubelet serves them on /metrics/cadvisor:
labels ``container``, ``id``, ``image``, ``name``, ``namespace``, ``pod``; network
figures carry ``interface``, CPU ``cpu="total"``, machine figures ``boot_id``,
``machine_id``, ``system_uuid``).

Invariants:
- one writer (``exposition``) for both: families sorted by name, samples by their
  label values, label names sorted, values as Go's ``strconv.FormatFloat(v, 'g', -1,
  64)``, a family without samples left out (as the Go registry's Gather);
- only measured figures are written: a cgroup or interface that could not be read
  has no sample, never a 0.
"""
from __future__ import annotations

import datetime
import decimal
import math
import time
from typing import Any, Iterable

# the text format's version 0.0.4, as upstream's Go handlers answer
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# (labels, value, timestamp in seconds or None)
Sample = tuple[dict[str, str], float, float | None]
# cAdvisor's labels on every container sample, as the kubelet's containerPrometheusLabelsFunc
CADVISOR_LABELS = ("container", "id", "image", "name", "namespace", "pod")


def go_float(value: float) -> str:
    """A sample value as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it."""
    v = float(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "0"
    sign, digits, exponent = decimal.Decimal(repr(v)).normalize().as_tuple()
    ds = "".join(map(str, digits))
    point = len(ds) + int(exponent)  # digits before the decimal point
    neg = "-" if sign else ""
    exp = point - 1
    if exp < -4 or exp >= 6:  # shortest form: %e from an exponent of 6 up
        mantissa = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{neg}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{neg}0.{'0' * -point}{ds}"
    whole, frac = ds[:point].ljust(point, "0"), ds[point:]
    return f"{neg}{whole}{'.' + frac if frac else ''}"


def _labels(pairs: dict[str, str]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return "{" + ",".join(f'{k}="{esc(pairs[k])}"' for k in sorted(pairs)) + "}" \
        if pairs else ""


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def exposition(families: Iterable[tuple[str, str, str, list[Sample]]]) -> str:
    """(name, type, help, samples) -> the text format."""
    lines: list[str] = []
    for name, kind, help_, samples in sorted(families, key=lambda f: f[0]):
        if not samples:
            continue
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value, stamp in sorted(
                samples, key=lambda s: [s[0][k] for k in sorted(s[0])]):
            suffix = f" {int(stamp * 1000)}" if stamp is not None else ""
            lines.append(f"{name}{_labels(labels)} {go_float(value)}{suffix}")
    return "\n".join(lines) + "\n"


def resource_metrics(summary: dict) -> str:
    """/metrics/resource text (the stable resource metrics metrics-server reads)."""
    cpu_c: list[Sample] = []
    mem_c: list[Sample] = []
    start_c: list[Sample] = []
    cpu_p: list[Sample] = []
    mem_p: list[Sample] = []
    for pod in summary["pods"]:
        ref = pod["podRef"]
        base = {"namespace": ref["namespace"], "pod": ref["name"]}
        for c in pod.get("containers") or []:
            labels = {"container": c["name"], **base}
            if "cpu" in c:
                cpu_c.append(_cpu_sample(labels, c["cpu"]))
            if "memory" in c:
                mem_c.append(_memory_sample(labels, c["memory"]))
            started = parse_time(c.get("startTime"))
            if started is not None:
                start_c.append((labels, started, started))
        if "cpu" in pod:
            cpu_p.append(_cpu_sample(base, pod["cpu"]))
        if "memory" in pod:
            mem_p.append(_memory_sample(base, pod["memory"]))
    node = summary["node"]
    stable = "[STABLE] "
    return exposition([
        ("container_cpu_usage_seconds_total", "counter",
         stable + "Cumulative cpu time consumed by the container in core-seconds", cpu_c),
        ("container_memory_working_set_bytes", "gauge",
         stable + "Current working set of the container in bytes", mem_c),
        ("container_start_time_seconds", "gauge",
         stable + "Start time of the container since unix epoch in seconds", start_c),
        ("node_cpu_usage_seconds_total", "counter",
         stable + "Cumulative cpu time consumed by the node in core-seconds",
         [_cpu_sample({}, node["cpu"])] if "cpu" in node else []),
        ("node_memory_working_set_bytes", "gauge",
         stable + "Current working set of the node in bytes",
         [_memory_sample({}, node["memory"])] if "memory" in node else []),
        ("pod_cpu_usage_seconds_total", "counter",
         stable + "Cumulative cpu time consumed by the pod in core-seconds", cpu_p),
        ("pod_memory_working_set_bytes", "gauge",
         stable + "Current working set of the pod in bytes", mem_p),
        ("scrape_error", "gauge", stable + "1 if there was an error while getting "
         "container metrics, 0 otherwise", [({}, 0, None)]),
    ])


def _cpu_sample(labels: dict, cpu: dict) -> Sample:
    return labels, cpu["usageCoreNanoSeconds"] / 1e9, parse_time(cpu["time"])


def _memory_sample(labels: dict, memory: dict) -> Sample:
    return labels, memory["workingSetBytes"], parse_time(memory["time"])


# cAdvisor's network families: (name suffix, help, interface key)
NETWORK = (
    ("receive_bytes_total", "Cumulative count of bytes received", "rxBytes"),
    ("receive_errors_total", "Cumulative count of errors encountered while receiving",
     "rxErrors"),
    ("receive_packets_dropped_total", "Cumulative count of packets dropped while receiving",
     "rxDropped"),
    ("receive_packets_total", "Cumulative count of packets received", "rxPackets"),
    ("transmit_bytes_total", "Cumulative count of bytes transmitted", "txBytes"),
    ("transmit_errors_total", "Cumulative count of errors encountered while transmitting",
     "txErrors"),
    ("transmit_packets_dropped_total",
     "Cumulative count of packets dropped while transmitting", "txDropped"),
    ("transmit_packets_total", "Cumulative count of packets transmitted", "txPackets"),
)
# cAdvisor's memory families: (name, help, MemoryStats key)
MEMORY = (
    ("container_memory_rss", "Size of RSS in bytes.", "rssBytes"),
    ("container_memory_usage_bytes", "Current memory usage in bytes, including all memory "
     "regardless of when it was accessed", "usageBytes"),
    ("container_memory_working_set_bytes", "Current working set in bytes.", "workingSetBytes"),
)


def cadvisor_metrics(entries: list[dict[str, Any]], machine: Any | None,
                     now: float | None = None) -> str:
    """/metrics/cadvisor text. ``entries``: one a cgroup, each {"id", "labels", "time"
    (ISO), and those read of "cpu" (ns), "memory" (MemoryStats keys), "interfaces"
    (net/dev figures), "start" (epoch s)}; ``machine``: the node's MachineInfo."""
    now = time.time() if now is None else now
    seen: list[Sample] = []
    cpu: list[Sample] = []
    start: list[Sample] = []
    memory: dict[str, list[Sample]] = {name: [] for name, _, _ in MEMORY}
    network: dict[str, list[Sample]] = {suffix: [] for suffix, _, _ in NETWORK}
    for entry in entries:
        labels = {k: "" for k in CADVISOR_LABELS} | entry["labels"] | {"id": entry["id"]}
        stamp = parse_time(entry["time"])
        if entry.get("start") is not None:
            start.append((labels, int(entry["start"]), None))
        seen.append((labels, int(now), now))
        if entry.get("cpu"):  # cAdvisor writes no sample for a total of 0
            cpu.append((labels | {"cpu": "total"}, entry["cpu"] / 1e9, stamp))
        for name, _, key in MEMORY:
            if key in (entry.get("memory") or {}):
                memory[name].append((labels, entry["memory"][key], stamp))
        for iface in entry.get("interfaces") or []:
            for suffix, _, key in NETWORK:
                network[suffix].append((labels | {"interface": iface["name"]}, iface[key],
                                        stamp))
    families = [
        ("container_cpu_usage_seconds_total", "counter",
         "Cumulative cpu time consumed in seconds.", cpu),
        ("container_last_seen", "gauge", "Last time a container was seen by the exporter",
         seen),
        ("container_scrape_error", "gauge",
         "1 if there was an error while getting container metrics, 0 otherwise",
         [({}, 0, None)]),
        ("container_start_time_seconds", "gauge",
         "Start time of the container since unix epoch in seconds.", start),
        ("machine_scrape_error", "gauge",
         "1 if there was an error while getting machine metrics, 0 otherwise.",
         [({}, 0 if machine is not None else 1, None)]),
    ]
    families += [(name, "gauge", help_, memory[name]) for name, help_, _ in MEMORY]
    families += [(f"container_network_{suffix}", "counter", help_, network[suffix])
                 for suffix, help_, _ in NETWORK]
    if machine is not None:
        ids = {"boot_id": machine.boot_id, "machine_id": machine.machine_id,
               "system_uuid": machine.system_uuid}
        families += [
            ("machine_cpu_cores", "gauge", "Number of logical CPU cores.",
             [(ids, machine.cpus, None)]),
            ("machine_memory_bytes", "gauge", "Amount of memory installed on the machine.",
             [(ids, machine.memory, None)])]
    return exposition(families)
