"""The client machinery: how every component except the API server reaches the cluster.

Layer rule: ``pyk8s.client`` imports only ``pyk8s.api`` (and third-party libraries),
never the API server, registry or storage. Modules:

- ``config``: kubeconfig and in-cluster config -> ``ClientConfig``
- ``transport``: the HTTP seam (``AiohttpTransport``); ``fake``: its in-memory twin
- ``rest``: ``Client`` (CRUD, list, watch), ``errors``: ``ApiError``
- ``discovery``: ``ResourceMapper``; ``resources``: built-in ``Resource`` names
- ``watching``: layered watch generators; ``informers``: shared informers and indexers
- ``workqueue``: rate-limited work queues; ``controller``: the worker loop skeleton
- ``leaderelection``: Lease-based leader election; ``events``: the event recorder
- ``clock``: real and fake clocks; ``settings``: typed tunables with upstream defaults
"""
from .clock import REAL_CLOCK, Clock, FakeClock, RealClock
from .config import ClientConfig, ConfigError, load_config, load_incluster_config, load_kubeconfig
from .errors import ApiError, is_already_exists, is_conflict, is_expired, is_not_found
from .resources import Resource
from .rest import Client, WatchEvent
from .transport import TransportError

__all__ = [
    "ApiError", "Client", "ClientConfig", "Clock", "ConfigError", "FakeClock", "REAL_CLOCK",
    "RealClock", "Resource", "TransportError", "WatchEvent", "is_already_exists",
    "is_conflict", "is_expired", "is_not_found", "load_config", "load_incluster_config",
    "load_kubeconfig",
]
