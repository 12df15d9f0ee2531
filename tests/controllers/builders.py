"""Object factories for the controller unit tests: pods, ReplicaSets, Deployments, ...

Objects look like what the API server stores (defaults applied where the
controllers read them), with deterministic uids and timestamps from a fake clock.
"""
from __future__ import annotations

import copy
import datetime
import itertools

T0 = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
_uids = itertools.count(1)


def ts(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def uid() -> str:
    return f"uid-{next(_uids):06d}"


def template(image: str = "nginx:1.24", labels: dict | None = None) -> dict:
    return {"metadata": {"labels": dict(labels or {"app": "web"})},
            "spec": {"containers": [{"name": "c", "image": image}],
                     "restartPolicy": "Always"}}


def pod(name: str, *, phase: str = "Running", ready: bool = True, node: str = "n1",
        created: float = 0, ready_since: float | None = None, restarts: int = 0,
        labels: dict | None = None, owner: dict | None = None, annotations: dict | None = None,
        deleting: bool = False, ns: str = "default") -> dict:
    meta = {"name": name, "namespace": ns, "uid": uid(), "creationTimestamp": ts(at(created)),
            "labels": dict(labels or {"app": "web"})}
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                    "name": owner["metadata"]["name"],
                                    "uid": owner["metadata"]["uid"], "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = ts(at(created + 1))
    status = {"phase": phase}
    if phase in ("Running", "Pending"):
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False",
                                 "lastTransitionTime": ts(at(ready_since if ready_since is not None
                                                             else created))}]
    if restarts:
        status["containerStatuses"] = [{"name": "c", "restartCount": restarts}]
    spec = {"containers": [{"name": "c", "image": "nginx"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def replicaset(name: str, replicas: int, *, labels: dict | None = None,
               min_ready: int = 0, generation: int = 1) -> dict:
    labels = labels or {"app": "web"}
    spec = {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
            "template": template(labels=labels)}
    if min_ready:
        spec["minReadySeconds"] = min_ready
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "default", "uid": uid(),
                         "generation": generation, "creationTimestamp": ts(T0)},
            "spec": spec, "status": {}}


def deployment(name: str = "web", replicas: int = 4, *, max_surge="25%", max_unavailable="25%",
               strategy: str = "RollingUpdate", image: str = "nginx:1.24",
               progress_deadline: int | None = 600, history_limit: int = 10,
               min_ready: int = 0) -> dict:
    spec = {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": template(image), "revisionHistoryLimit": history_limit,
            "strategy": {"type": strategy}}
    if strategy == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = {"maxSurge": max_surge, "maxUnavailable": max_unavailable}
    if progress_deadline is not None:
        spec["progressDeadlineSeconds"] = progress_deadline
    if min_ready:
        spec["minReadySeconds"] = min_ready
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default", "uid": uid(), "generation": 1,
                         "creationTimestamp": ts(T0)},
            "spec": spec, "status": {}}


def node(name: str, *, labels: dict | None = None, taints: list | None = None) -> dict:
    spec = {"taints": taints} if taints else {}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": uid(), "labels": {"kubernetes.io/hostname": name,
                                                                 **(labels or {})}},
            "spec": spec}


def clone(obj: dict) -> dict:
    return copy.deepcopy(obj)
