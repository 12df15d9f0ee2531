"""The core controllers by name, and how to build and run them.

Role: the registry the controller manager (``manager``) runs besides the workload
controllers: ``CONTROLLERS`` maps upstream's kube-controller-manager controller
names (plus k3s' ``local-path-provisioner`` and the API server's
``apiserver-endpoints-controller``) to factories taking one ``ControllerContext``.
``core_settings`` turns the server's flags (data dir, API server addresses, CA,
service-account key) into ``CoreSettings``; ``run_controllers`` builds and runs a
selection until cancelled.

Invariants:
- A factory returns an object with ``async run()`` (running until cancelled), or
  None when its settings disable it (no CA to publish, no key to sign legacy tokens,
  no API server address to publish).
- Factories only register informers and handlers; nothing talks to the API before
  ``run()``. All controllers of one context share its informers (one watch per
  resource per process).
- ``run_controllers`` cancels every controller when one of them fails or when it is
  cancelled, and re-raises the first failure.
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Callable, Iterable, Protocol

from pyk8s.client import Client
from pyk8s.client.clock import REAL_CLOCK, Clock
from pyk8s.client.events import EventBroadcaster
from pyk8s.client.informers import SharedInformerFactory

from . import (bootstraptoken, disruption, endpoints, endpointslice, garbagecollector, localpath,
               namespace, nodeipam, nodelifecycle, podautoscaler, podgc, resourcequota,
               serviceaccount, ttlafterfinished, volumes)
from .corecontext import (ControllerContext, CoreSettings, EndpointSettings, NodeIPAMSettings,
                          ServiceAccountSettings, VolumeSettings)

log = logging.getLogger(__name__)


class Runnable(Protocol):
    async def run(self) -> None:
        """Run until cancelled."""


Factory = Callable[[ControllerContext], "Runnable | None"]


def _when(flag: Callable[[CoreSettings], Any], factory: Factory) -> Factory:
    def build(ctx: ControllerContext):
        return factory(ctx) if flag(ctx.settings) else None
    build.__doc__ = factory.__doc__
    return build


CONTROLLERS: dict[str, Factory] = {
    "garbage-collector-controller": garbagecollector.new_garbage_collector,
    "namespace-controller": namespace.new_namespace_controller,
    "serviceaccount-controller": serviceaccount.new_serviceaccount_controller,
    "serviceaccount-token-controller": _when(
        lambda s: s.serviceaccounts.signing_key_pem, serviceaccount.new_tokens_controller),
    "root-ca-certificate-publisher-controller": serviceaccount.new_root_ca_publisher,
    "token-cleaner-controller": bootstraptoken.new_token_cleaner,
    "endpoints-controller": endpoints.new_endpoints_controller,
    "endpointslice-controller": endpointslice.new_endpointslice_controller,
    "endpointslice-mirroring-controller": endpointslice.new_mirroring_controller,
    "apiserver-endpoints-controller": _when(
        lambda s: s.endpoints.apiserver_addresses, endpoints.new_apiserver_endpoints),
    "node-lifecycle-controller": nodelifecycle.new_node_lifecycle_controller,
    "taint-eviction-controller": nodelifecycle.new_taint_eviction_controller,
    "node-ipam-controller": nodeipam.new_node_ipam_controller,
    "persistentvolume-binder-controller": volumes.new_pv_binder,
    "persistentvolumeclaim-protection-controller": volumes.new_pvc_protection,
    "persistentvolume-protection-controller": volumes.new_pv_protection,
    "local-path-provisioner": localpath.new_local_path_provisioner,
    "disruption-controller": disruption.new_disruption_controller,
    "resourcequota-controller": resourcequota.new_resourcequota_controller,
    "ttl-after-finished-controller": ttlafterfinished.new_ttl_after_finished_controller,
    "pod-garbage-collector-controller": podgc.new_podgc_controller,
    "horizontal-pod-autoscaler-controller": podautoscaler.new_hpa_controller,
}


def core_settings(*, data_dir: str, apiserver_addresses: Iterable[str] = (),
                  apiserver_port: int = 6443, root_ca_pem: str = "",
                  signing_key_pem: bytes = b"", cluster_cidr: str = "10.42.0.0/16",
                  node_cidr_mask_size: int = 24, base: CoreSettings | None = None
                  ) -> CoreSettings:
    """``CoreSettings`` for a server: upstream defaults plus what only it knows."""
    import dataclasses
    base = base or CoreSettings()
    return dataclasses.replace(
        base,
        endpoints=dataclasses.replace(base.endpoints or EndpointSettings(),
                                      apiserver_addresses=tuple(apiserver_addresses),
                                      apiserver_port=apiserver_port),
        ipam=NodeIPAMSettings(cluster_cidr=cluster_cidr, node_cidr_mask_size=node_cidr_mask_size),
        volumes=dataclasses.replace(base.volumes or VolumeSettings(),
                                    storage_dir=os.path.join(data_dir, "storage")),
        serviceaccounts=dataclasses.replace(base.serviceaccounts or ServiceAccountSettings(),
                                            root_ca_pem=root_ca_pem,
                                            signing_key_pem=signing_key_pem))


def new_context(client: Client, *, settings: CoreSettings | None = None,
                clock: Clock = REAL_CLOCK, informers: SharedInformerFactory | None = None,
                events: EventBroadcaster | None = None) -> ControllerContext:
    """A context whose controllers share ``informers`` and write events through ``events``
    (a new broadcaster on ``client`` unless given)."""
    return ControllerContext(
        client=client, informers=informers or SharedInformerFactory(client, clock=clock),
        events=events if events is not None else EventBroadcaster(client, clock=clock),
        clock=clock, settings=settings or CoreSettings())


def build(ctx: ControllerContext, names: Iterable[str] | None = None) -> dict[str, Runnable]:
    """Instantiate the named controllers (all by default), skipping disabled ones."""
    out: dict[str, Runnable] = {}
    for name in (list(CONTROLLERS) if names is None else list(names)):
        controller = CONTROLLERS[name](ctx)
        if controller is None:
            log.info("controller %s is disabled by its settings", name)
            continue
        out[name] = controller
    return out


async def run_controllers(ctx: ControllerContext, names: Iterable[str] | None = None) -> None:
    """Run the named controllers until cancelled (or until one fails)."""
    controllers = build(ctx, names)
    tasks = [asyncio.create_task(c.run(), name=f"controller {n}") for n, c in controllers.items()]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in done:
            if t.exception() is not None:
                raise t.exception()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await ctx.informers.stop()
        await ctx.shutdown_events(timeout=2.0)
