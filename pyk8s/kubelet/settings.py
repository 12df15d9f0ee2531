"""Typed tunables of the kubelet, with upstream's defaults (its flags and KubeletConfiguration).

Role: every number and path the pod workers, status manager, node status and lease
loops use lives here (STYLE item 8); the kubelet passes one `KubeletSettings` down
and nothing hard-codes a constant inside a loop.

Invariants:
- Defaults equal upstream's: sync frequency 1 min, PLEG relist 1 s, container
  restart back-off 10 s doubling to 5 min (reset after 10 min of quiet), image pull
  back-off the same, node status every 10 s (reported at least every 5 min), node
  lease 40 s renewed every 10 s, minimum termination grace 2 s, 110 pods, hard
  eviction thresholds memory.available<100Mi, nodefs.available<10%,
  nodefs.inodesFree<5%, imagefs.available<15%, imagefs.inodesFree<5% (memory and
  nodefs subtracted from allocatable), no soft eviction thresholds, no minimum
  reclaim, a 0 s maximum grace period for soft evictions (the pod workers' 1 s
  floor applies), static pod manifests read every 20 s (the manifest URL, when
  given, fetched every 20 s), cluster DNS 10.43.0.10 in `cluster.local`, the
  system log handler on over /var/log.
- Every path derives from `data_dir`: the pods' directories (upstream's
  /var/lib/kubelet/pods) under `root_dir`, CRI log files (upstream's /var/log/pods)
  under `pod_logs_dir`. Two kubelets with different data dirs share nothing.
- Settings are frozen; derive a variant with `dataclasses.replace`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

# What `kubectl get node -o wide` shows as the kubelet version.
KUBELET_VERSION = "v1.32.0"

# Upstream's DefaultEvictionHard on Linux: (signal, threshold) pairs.
DEFAULT_EVICTION_HARD = (("memory.available", "100Mi"), ("nodefs.available", "10%"),
                         ("nodefs.inodesFree", "5%"), ("imagefs.available", "15%"),
                         ("imagefs.inodesFree", "5%"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class KubeletSettings:
    node_name: str
    data_dir: Path
    # The node's pod network (its /24 of the cluster CIDR); "" when the node has none.
    pod_cidr: str = ""
    node_ip: str = ""  # InternalIP; detected from the default route when empty
    node_labels: tuple[tuple[str, str], ...] = ()
    cluster_dns: tuple[str, ...] = ("10.43.0.10",)
    cluster_domain: str = "cluster.local"
    resolv_conf: Path = Path("/etc/resolv.conf")
    # cgroupfs parent of every pod: <cgroup_root>[/burstable|/besteffort]/pod<uid>
    cgroup_root: str = "/kubepods"
    max_pods: int = 110
    runtime_handler: str = ""

    # pod workers and the PLEG
    sync_frequency: float = 60.0
    relist_period: float = 1.0
    # a sync that failed to start a container (config or create errors) is retried
    # after upstream's pod worker backOffPeriod
    sync_error_retry: float = 10.0
    housekeeping_period: float = 2.0
    container_backoff_initial: float = 10.0
    container_backoff_max: float = 300.0
    image_backoff_initial: float = 10.0
    image_backoff_max: float = 300.0
    minimum_grace_period: int = 2  # upstream's minimumGracePeriodInSeconds
    # A present image satisfies imagePullPolicy Always without asking a registry
    # (these machines reach none, and asking would send traffic off the machine);
    # False restores upstream's "always pull, fall back to the local copy".
    offline_images: bool = True

    # status
    status_sync_period: float = 10.0  # the status manager's full reconcile

    # node status and lease
    node_status_update_frequency: float = 10.0
    node_status_report_frequency: float = 300.0
    node_lease_duration: int = 40
    node_lease_renew_fraction: float = 0.25
    node_lease_max_backoff: float = 7.0
    node_status_max_images: int = 50

    # node-pressure eviction (upstream's --eviction-hard and its defaults, the eviction
    # manager's 10 s monitoring interval, --eviction-pressure-transition-period)
    eviction_hard: tuple[tuple[str, str], ...] = DEFAULT_EVICTION_HARD
    # soft thresholds (--eviction-soft, (signal, value) pairs as eviction_hard): they
    # raise the pressure condition at once but evict only after holding for their
    # signal's grace period (--eviction-soft-grace-period, (signal, seconds); every
    # soft signal needs one), killing the pod with at most
    # --eviction-max-pod-grace-period seconds (capped by its own grace period)
    eviction_soft: tuple[tuple[str, str], ...] = ()
    eviction_soft_grace_period: tuple[tuple[str, float], ...] = ()
    eviction_max_pod_grace_period: int = 0
    # (signal, quantity or percentage): a met threshold of the signal, hard or soft,
    # stays met until the signal is this much above it (--eviction-minimum-reclaim)
    eviction_minimum_reclaim: tuple[tuple[str, str], ...] = ()
    eviction_monitoring_period: float = 10.0
    eviction_pressure_transition_period: float = 300.0

    # static pods: manifests in `static_pod_path` (default <data-dir>/agent/manifests),
    # read again every `file_check_frequency` (upstream's 20 s)
    static_pod_path: Path | None = None
    file_check_frequency: float = 20.0
    # and from `manifest_url` (upstream's staticPodURL, --manifest-url), fetched every
    # `http_check_frequency` with the (name, value) headers of `manifest_url_header`
    manifest_url: str = ""
    manifest_url_header: tuple[tuple[str, str], ...] = ()
    http_check_frequency: float = 20.0

    # the kubelet's HTTPS endpoint (logs for the API server)
    address: str = "127.0.0.1"
    port: int = 10250
    # `/logs/`: the node's log files (upstream's enableSystemLogHandler, a config field
    # without a flag, over /var/log/; the directory is a setting for tests)
    enable_system_log_handler: bool = True
    system_log_dir: Path = Path("/var/log")

    @property
    def root_dir(self) -> Path:
        """Upstream's /var/lib/kubelet: pod directories, the serving certificate."""
        return self.data_dir / "agent" / "kubelet"

    @property
    def pods_dir(self) -> Path:
        return self.root_dir / "pods"

    @property
    def manifests_dir(self) -> Path:
        """Where static pod manifests live (upstream's staticPodPath)."""
        return self.static_pod_path or self.data_dir / "agent" / "manifests"

    @property
    def pod_logs_dir(self) -> Path:
        """Upstream's /var/log/pods: <namespace>_<name>_<uid>/<container>/<n>.log."""
        return self.data_dir / "agent" / "pod-logs"

    @property
    def lease_renew_interval(self) -> float:
        return self.node_lease_duration * self.node_lease_renew_fraction
