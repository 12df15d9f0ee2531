"""Core controllers end to end against the in-memory API with a fake clock."""
import dataclasses

import pytest

from pyk8s.client import resources as r
from pyk8s.controllers import core_manager
from pyk8s.controllers.corecontext import CoreSettings, NamespaceSettings
from pyk8s.controllers.garbagecollector import GarbageCollector
from pyk8s.controllers.namespace import NamespaceController
from pyk8s.controllers.nodelifecycle import NodeLifecycleController, TaintEvictionController
from pyk8s.controllers.serviceaccount import RootCACertPublisher, ServiceAccountsController

from .helpers import running, run_clock


def ctx_for(client, clock, **settings):
    s = dataclasses.replace(CoreSettings(), **settings)
    return core_manager.new_context(client, settings=s, clock=clock, events=None)


def ns_obj(name, phase="Active"):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": phase}}


async def test_default_service_account_and_root_ca(api, fake_client, clock):
    from pyk8s.controllers.corecontext import ServiceAccountSettings
    ctx = ctx_for(fake_client, clock,
                  serviceaccounts=ServiceAccountSettings(root_ca_pem="PEM"))
    api.add(ns_obj("team"))
    async with running(ServiceAccountsController(ctx), RootCACertPublisher(ctx)):
        await run_clock(clock, 2)
        assert api.get_object(r.SERVICEACCOUNTS, "default", namespace="team") is not None
        cm = api.get_object(r.CONFIGMAPS, "kube-root-ca.crt", namespace="team")
        assert cm["data"] == {"ca.crt": "PEM"}
        # Deleted or edited: put back.
        api.remove(r.SERVICEACCOUNTS, "default", namespace="team")
        cm["data"] = {"ca.crt": "tampered"}
        await fake_client.update(r.CONFIGMAPS, cm)
        await run_clock(clock, 2)
        assert api.get_object(r.SERVICEACCOUNTS, "default", namespace="team") is not None
        assert api.get_object(r.CONFIGMAPS, "kube-root-ca.crt",
                              namespace="team")["data"] == {"ca.crt": "PEM"}


def owned(kind, api_version, name, owner, *, block=True, ns="default"):
    md = {"name": name, "namespace": ns}
    if owner is not None:
        md["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                  "name": owner["metadata"]["name"],
                                  "uid": owner["metadata"]["uid"], "controller": True,
                                  "blockOwnerDeletion": block}]
    return {"apiVersion": api_version, "kind": kind, "metadata": md}


def with_propagation(api):
    """Make the fake API add the ``foregroundDeletion``/``orphan`` finalizer on delete, as
    the API server does for those propagation policies."""
    def reactor(req):
        policy = (req.body or {}).get("propagationPolicy") if isinstance(req.body, dict) else None
        fin = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(policy)
        stored = api._objects[req.resource].get((req.namespace or "", req.name or ""))
        if fin and stored is not None and fin not in (stored["metadata"].get("finalizers") or []):
            stored["metadata"]["finalizers"] = (stored["metadata"].get("finalizers") or []) + [fin]
        return None
    api.prepend_reactor("delete", "*", reactor=reactor)


async def make_chain(client):
    cm = await client.create(r.CONFIGMAPS, owned("ConfigMap", "v1", "owner", None))
    sec = await client.create(r.SECRETS, owned("Secret", "v1", "child", cm))
    pod = await client.create(r.SERVICEACCOUNTS, owned("ServiceAccount", "v1", "grandchild", sec))
    return cm, sec, pod


async def test_gc_background_deletes_dependents(api, fake_client, clock):
    ctx = ctx_for(fake_client, clock)
    gc = GarbageCollector(ctx)
    async with running(gc):
        await run_clock(clock, 1)
        cm, sec, sa = await make_chain(fake_client)
        await run_clock(clock, 1)
        await fake_client.delete(r.CONFIGMAPS, "owner", namespace="default")
        await run_clock(clock, 3)
        assert api.get_object(r.SECRETS, "child", namespace="default") is None
        assert api.get_object(r.SERVICEACCOUNTS, "grandchild", namespace="default") is None


async def test_gc_foreground_waits_for_blocking_dependents(api, fake_client, clock):
    ctx = ctx_for(fake_client, clock)
    with_propagation(api)
    async with running(GarbageCollector(ctx)):
        await run_clock(clock, 1)
        cm, sec, sa = await make_chain(fake_client)
        # A finalizer keeps the grandchild (and so, transitively, the owner) around.
        sa["metadata"]["finalizers"] = ["example.com/hold"]
        sa = await fake_client.update(r.SERVICEACCOUNTS, sa)
        await run_clock(clock, 1)
        await fake_client.delete(r.CONFIGMAPS, "owner", namespace="default",
                                 propagation_policy="Foreground")
        await run_clock(clock, 3)
        owner = api.get_object(r.CONFIGMAPS, "owner", namespace="default")
        assert owner is not None and owner["metadata"]["deletionTimestamp"]
        child = api.get_object(r.SECRETS, "child", namespace="default")
        assert child["metadata"].get("deletionTimestamp")           # foreground too
        assert "foregroundDeletion" in child["metadata"]["finalizers"]
        held = api.get_object(r.SERVICEACCOUNTS, "grandchild", namespace="default")
        held["metadata"]["finalizers"] = []
        await fake_client.update(r.SERVICEACCOUNTS, held)
        await run_clock(clock, 5)
        assert api.get_object(r.SERVICEACCOUNTS, "grandchild", namespace="default") is None
        assert api.get_object(r.SECRETS, "child", namespace="default") is None
        assert api.get_object(r.CONFIGMAPS, "owner", namespace="default") is None


async def test_gc_orphan_keeps_dependents(api, fake_client, clock):
    ctx = ctx_for(fake_client, clock)
    with_propagation(api)
    async with running(GarbageCollector(ctx)):
        await run_clock(clock, 1)
        cm, sec, sa = await make_chain(fake_client)
        await run_clock(clock, 1)
        await fake_client.delete(r.CONFIGMAPS, "owner", namespace="default",
                                 propagation_policy="Orphan")
        await run_clock(clock, 3)
        assert api.get_object(r.CONFIGMAPS, "owner", namespace="default") is None
        child = api.get_object(r.SECRETS, "child", namespace="default")
        assert child is not None and not child["metadata"].get("ownerReferences")
        assert api.get_object(r.SERVICEACCOUNTS, "grandchild", namespace="default") is not None


async def test_gc_dangling_reference_to_absent_owner(api, fake_client, clock):
    ctx = ctx_for(fake_client, clock)
    ghost = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ghost",
                                                                     "uid": "never-existed"}}
    await fake_client.create(r.SECRETS, owned("Secret", "v1", "orphaned", ghost))
    async with running(GarbageCollector(ctx)):
        await run_clock(clock, 3)
        assert api.get_object(r.SECRETS, "orphaned", namespace="default") is None


def with_namespace_lifecycle(api):
    """The API server's namespace deletion: Terminating until ``/finalize`` empties the
    spec finalizers (the fake knows only metadata finalizers)."""
    def delete(req):
        stored = api._objects[r.NAMESPACES].get(("", req.name))
        if stored is None or not stored["spec"].get("finalizers"):
            return None
        new = {**stored, "metadata": {**stored["metadata"],
                                      "deletionTimestamp": "2025-01-01T00:00:00Z"},
               "status": {**stored["status"], "phase": "Terminating"}}
        return api._write(r.NAMESPACES, new, stored)

    def finalize(req):
        if req.subresource != "finalize":
            return None
        stored = api._objects[r.NAMESPACES][("", req.name)]
        new = {**stored, "spec": {"finalizers": req.body["spec"].get("finalizers") or []}}
        if not new["spec"]["finalizers"] and stored["metadata"].get("deletionTimestamp"):
            return api._write(r.NAMESPACES, new, stored, "DELETED")
        return api._write(r.NAMESPACES, new, stored)
    api.prepend_reactor("delete", "namespaces", reactor=delete)
    api.prepend_reactor("update", "namespaces", reactor=finalize)


async def test_namespace_deletion_empties_and_finalizes(api, fake_client, clock):
    ctx = ctx_for(fake_client, clock, namespace=NamespaceSettings(deletion_grace=0.5))
    with_namespace_lifecycle(api)
    api.add(ns_obj("gone"))
    await fake_client.create(r.CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                            "metadata": {"name": "c", "namespace": "gone"}})
    await fake_client.create(r.PODS, {"apiVersion": "v1", "kind": "Pod",
                                      "metadata": {"name": "p", "namespace": "gone"},
                                      "spec": {"containers": [{"name": "c", "image": "x"}]}})
    async with running(NamespaceController(ctx)):
        await run_clock(clock, 1)
        seen = []
        api.prepend_reactor("update", "namespaces", reactor=lambda req: seen.append(
            (req.subresource, req.body)) or None)
        await fake_client.delete(r.NAMESPACES, "gone")
        await run_clock(clock, 5)
        assert api.objects(r.CONFIGMAPS, "gone") == []
        assert api.objects(r.PODS, "gone") == []
        assert api.get_object(r.NAMESPACES, "gone") is None
        statuses = [body for sub, body in seen if sub == "status"]
        assert statuses[0]["status"]["phase"] == "Terminating"
        conds = {c["type"]: c["status"] for c in statuses[-1]["status"]["conditions"]}
        assert conds == dict.fromkeys(("NamespaceDeletionDiscoveryFailure",
                                       "NamespaceDeletionGroupVersionParsingFailure",
                                       "NamespaceDeletionContentFailure",
                                       "NamespaceContentRemaining",
                                       "NamespaceFinalizersRemaining"), "False")


def node(name, heartbeat):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name,
                                                             "creationTimestamp": heartbeat},
            "spec": {}, "status": {"conditions": [{"type": "Ready", "status": "True",
                                                   "lastHeartbeatTime": heartbeat,
                                                   "lastTransitionTime": heartbeat}]}}


def lease(name, renew):
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "renewTime": renew}}


def bound_pod(name, node_name, tolerate=None):
    tols = []
    if tolerate is not None:
        tols = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": tolerate}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default",
                         "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"nodeName": node_name, "tolerations": tols,
                     "containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}


@pytest.mark.timeout(60)
async def test_silent_node_turns_unknown_is_tainted_and_drained(api, fake_client, clock):
    ctx = ctx_for(fake_client, clock)
    start = "2025-01-01T00:00:00Z"
    for n in ("alive", "dead"):
        api.add(node(n, start))
        api.add(lease(n, "2025-01-01T00:00:00.000000Z"))
    api.add(bound_pod("p300", "dead", tolerate=300))
    api.add(bound_pod("p-intolerant", "dead"))
    api.add(bound_pod("p-alive", "alive", tolerate=300))
    lifecycle, evictor = NodeLifecycleController(ctx), TaintEvictionController(ctx)

    async def pass_time(seconds):
        for _ in range(int(seconds // 10)):
            # The healthy node renews its lease every 10 s (were every node silent, the
            # controller would blame itself and evict nothing).
            await run_clock(clock, 10)
            lz = api.get_object(r.LEASES, "alive", namespace="kube-node-lease")
            lz["spec"]["renewTime"] = clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            await fake_client.update(r.LEASES, lz)

    async with running(lifecycle, evictor):
        await pass_time(100)
        dead = api.get_object(r.NODES, "dead")
        ready = {c["type"]: c for c in dead["status"]["conditions"]}["Ready"]
        assert ready["status"] == "Unknown" and ready["reason"] == "NodeStatusUnknown"
        keys = {(t["key"], t["effect"]) for t in dead["spec"]["taints"]}
        assert ("node.kubernetes.io/unreachable", "NoExecute") in keys
        assert ("node.kubernetes.io/unreachable", "NoSchedule") in keys
        alive = api.get_object(r.NODES, "alive")
        assert {c["type"]: c for c in alive["status"]["conditions"]}["Ready"]["status"] == "True"
        # The intolerant pod went at once (DisruptionTarget first); the tolerant one waits.
        assert api.get_object(r.PODS, "p-intolerant", namespace="default")["metadata"].get(
            "deletionTimestamp")
        p300 = api.get_object(r.PODS, "p300", namespace="default")
        assert not p300["metadata"].get("deletionTimestamp")
        assert {c["type"]: c for c in p300["status"]["conditions"]}["Ready"]["status"] == "False"
        await pass_time(300)
        assert api.get_object(r.PODS, "p300", namespace="default")["metadata"].get(
            "deletionTimestamp")
        assert not api.get_object(r.PODS, "p-alive", namespace="default")["metadata"].get(
            "deletionTimestamp")


async def test_pod_gc_deletes_pods_of_a_vanished_node_after_quarantine(api, fake_client, clock):
    from pyk8s.controllers.podgc import PodGCController
    ctx = ctx_for(fake_client, clock)
    api.add(bound_pod("stray", "ghost-node"))
    async with running(PodGCController(ctx)):
        await run_clock(clock, 30)
        assert api.get_object(r.PODS, "stray", namespace="default") is not None
        await run_clock(clock, 40)
        assert api.get_object(r.PODS, "stray", namespace="default") is None


async def test_expired_bootstrap_token_is_deleted_when_it_expires(api, fake_client, clock):
    import base64
    from pyk8s.controllers.bootstraptoken import TokenCleaner
    ctx = ctx_for(fake_client, clock)
    expires = base64.b64encode(b"2025-01-01T00:01:00Z").decode()
    api.add({"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
             "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
             "data": {"expiration": expires}})
    async with running(TokenCleaner(ctx)):
        await run_clock(clock, 50)
        assert api.get_object(r.SECRETS, "bootstrap-token-abcdef", namespace="kube-system")
        await run_clock(clock, 20)
        assert api.get_object(r.SECRETS, "bootstrap-token-abcdef",
                              namespace="kube-system") is None


async def test_ttl_after_finished_waits_for_the_ttl(api, fake_client, clock):
    from pyk8s.controllers.ttlafterfinished import TTLAfterFinishedController
    ctx = ctx_for(fake_client, clock)
    api.add({"apiVersion": "batch/v1", "kind": "Job",
             "metadata": {"name": "j", "namespace": "default"},
             "spec": {"ttlSecondsAfterFinished": 30, "template": {}},
             "status": {"conditions": [{"type": "Complete", "status": "True",
                                        "lastTransitionTime": "2025-01-01T00:00:00Z"}]}})
    async with running(TTLAfterFinishedController(ctx)):
        await run_clock(clock, 20)
        assert api.get_object(r.JOBS, "j", namespace="default") is not None
        await run_clock(clock, 15)
        assert api.get_object(r.JOBS, "j", namespace="default") is None
