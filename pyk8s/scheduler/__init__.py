"""kube-scheduler for pyk8s: a plugin framework, upstream's default plugins, preemption.

Layout (upstream's ``pkg/scheduler`` in brief):

- ``framework``: extension-point protocols, ``Status``, ``CycleState``, cluster
  events, ``FitError`` (the FailedScheduling message);
- ``nodeinfo``: ``Resource``, ``PodInfo``, ``NodeInfo`` (per-node aggregates);
- ``runtime``: ``Framework``, one per profile, running the extension points;
- ``configuration``: KubeSchedulerConfiguration, default profile, plugin args;
- ``plugins``: one module per plugin and ``plugins.registry`` (name -> factory);
- ``cache``: node cache with assumed pods and incremental snapshots;
- ``queue``: activeQ / backoffQ / unschedulable pods, nominated pods;
- ``scheduling``: ``Scheduler.schedule_one`` and the binding cycle;
- ``listers`` / ``actions``: the read and write seams to the cluster, each with an
  in-memory twin for tests; ``server`` wires them to the API through pyk8s.client.

Layering: this package imports only ``pyk8s.api`` and ``pyk8s.client``.
"""
