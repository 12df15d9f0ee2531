"""The proxy's metrics, with upstream kube-proxy's names (``pkg/proxy/metrics``).

Role: one ``ProxyMetrics`` per proxier, on its own Prometheus registry (several
proxiers in one test process must not collide). Besides the histograms it keeps the
most recent network-programming samples in memory, so tests and ``bench/network.py``
read percentiles without scraping.

Invariants:
- ``network_programming`` is observed once per changed Service per successful
  sync: seconds from the change (the EndpointSlice's
  ``endpoints.kubernetes.io/last-change-trigger-time``, else the moment the proxy
  saw the change) until the transaction holding it was accepted by the kernel.
- Failed transactions count in ``sync_failures`` and observe no latency.
"""
from __future__ import annotations

import collections
import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Buckets of kubeproxy_network_programming_duration_seconds (0.25 s .. 5 h).
PROGRAMMING_BUCKETS = (
    *[i * 0.25 for i in range(1, 4)], *[float(i) for i in range(1, 60)],
    *[float(i) for i in range(60, 300, 5)], *[float(i) for i in range(300, 1800, 30)],
    *[float(i) for i in range(1800, 18001, 60)])
SYNC_BUCKETS = tuple(0.001 * 2 ** i for i in range(15))


class ProxyMetrics:
    def __init__(self, registry: CollectorRegistry | None = None, *, keep: int = 100_000):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.sync_duration = Histogram(
            "kubeproxy_sync_proxy_rules_duration_seconds", "SyncProxyRules latency",
            buckets=SYNC_BUCKETS, registry=r)
        self.sync_full_duration = Histogram(
            "kubeproxy_sync_full_proxy_rules_duration_seconds", "full SyncProxyRules latency",
            buckets=SYNC_BUCKETS, registry=r)
        self.sync_partial_duration = Histogram(
            "kubeproxy_sync_partial_proxy_rules_duration_seconds",
            "partial SyncProxyRules latency", buckets=SYNC_BUCKETS, registry=r)
        self.network_programming = Histogram(
            "kubeproxy_network_programming_duration_seconds",
            "In Cluster Network Programming Latency in seconds",
            buckets=PROGRAMMING_BUCKETS, registry=r)
        self.sync_failures = Counter(
            "kubeproxy_sync_proxy_rules_nftables_sync_failures",
            "nftables sync failures", registry=r)
        self.last_sync = Gauge(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "The last time proxy rules were successfully synced", registry=r)
        self.service_changes = Counter(
            "kubeproxy_sync_proxy_rules_service_changes", "Service changes", registry=r)
        self.endpoint_changes = Counter(
            "kubeproxy_sync_proxy_rules_endpoint_changes", "Endpoint changes", registry=r)
        self.samples: collections.deque[tuple[tuple[str, str], float]] = \
            collections.deque(maxlen=keep)

    def observe_programming(self, service: tuple[str, str], seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.network_programming.observe(seconds)
        self.samples.append((service, seconds))

    def programming_percentile(self, q: float) -> float | None:
        """The ``q`` (0..1) quantile of the kept samples, nearest-rank; None if none."""
        values = sorted(s for _, s in self.samples)
        if not values:
            return None
        return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]
