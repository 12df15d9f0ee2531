"""The controller manager: level-triggered workload controllers over the HTTP API.

Layer rule: ``pyk8s.controllers`` imports only ``pyk8s.api`` and ``pyk8s.client``.

Each workload controller is split in two:

- a pure module (``replicaset``, ``deployment`` + ``deployment_util``,
  ``statefulset``, ``daemonset``, ``job``, ``cronjob``) holding upstream's arithmetic
  and decisions as functions over plain dicts in Kubernetes' JSON shape, with the
  time passed in (``now``), so unit tests drive them with a fake clock;
- a wiring module (``*_controller``) that connects informers to a work queue and
  executes what the pure functions decide through ``pyk8s.client``.

Shared pieces: ``podutil`` (pod predicates, victim ordering, templates),
``expectations`` (no double creates), ``ownership`` (adopt/release by selector),
``hashing`` (pod-template-hash and ControllerRevision names), ``history``
(ControllerRevision helpers), ``manager`` (``run``: leader election + controllers).
"""
