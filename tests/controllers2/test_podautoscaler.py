"""The HorizontalPodAutoscaler controller: upstream's replica arithmetic and limits as
pure functions, then the controller against a real API server with a fake metrics
source, seen through kubectl (scale of the Deployment, HPA status, events)."""
from __future__ import annotations

import asyncio
import datetime
import json
import time
import uuid

import pytest

from pyk8s.client import Client, load_kubeconfig
from pyk8s.controllers import core_manager
from pyk8s.controllers.podautoscaler import (Conditions, HorizontalController, HPASettings,
                                             MetricsError, Normalizer, PodMetric,
                                             ReplicaCalculator, duration_seconds)

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
LONG_AGO = "2026-01-01T11:00:00Z"


def pod(name: str, *, cpu: str = "100m", phase: str = "Running", ready: str = "True",
        ready_since: str = LONG_AGO, started: str = LONG_AGO) -> dict:
    return {"metadata": {"name": name, "namespace": "ns"},
            "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": cpu}}}]},
            "status": {"phase": phase, "startTime": started,
                       "conditions": [{"type": "Ready", "status": ready,
                                       "lastTransitionTime": ready_since}]}}


def usage(**milli: int) -> dict[str, PodMetric]:
    return {name: PodMetric(v, NOW, 15.0) for name, v in milli.items()}


calc = ReplicaCalculator(HPASettings(), NOW)


def test_utilization_above_target_scales_by_the_ratio():
    pods = [pod("a"), pod("b")]
    assert calc.resource_replicas(2, 50, "cpu", pods, usage(a=90, b=90)) == (4, 90, 90)


def test_within_tolerance_keeps_the_current_count():
    pods = [pod("a"), pod("b")]
    assert calc.resource_replicas(2, 50, "cpu", pods, usage(a=54, b=54))[0] == 2


def test_missing_pods_count_as_idle_on_scale_up_and_full_on_scale_down():
    pods = [pod("a"), pod("b")]
    # up: a at 100% of a 50% target, b missing counts as 0 -> ratio 1.0: no change
    assert calc.resource_replicas(2, 50, "cpu", pods, usage(a=100))[0] == 2
    # down: a at 10%, b missing counts as 100% -> 55% of a 50% target: no change
    assert calc.resource_replicas(2, 50, "cpu", pods, usage(a=10))[0] == 2
    pods = [pod("a"), pod("b"), pod("c")]
    assert calc.resource_replicas(3, 50, "cpu", pods, usage(a=200, b=200))[0] == 8  # 133% of 50%: ceil(2.66 * 3)


def test_unready_and_pending_pods_do_not_scale_up():
    fresh = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    pods = [pod("a"), pod("b", ready="False", ready_since=fresh, started=fresh),
            pod("c", phase="Pending")]
    # only a counts; b and c are taken as using nothing on a scale-up
    assert calc.resource_replicas(3, 50, "cpu", pods, usage(a=100, b=500))[0] == 3
    with pytest.raises(MetricsError, match="did not receive metrics"):
        calc.resource_replicas(1, 50, "cpu", [pod("c", phase="Pending")], usage(c=10))


def test_missing_request_is_an_error():
    with pytest.raises(MetricsError, match="missing request for cpu in container app of Pod a"):
        calc.resource_replicas(1, 50, "cpu", [pod("a", cpu=None)], usage(a=10))


def test_average_value_target():
    pods = [pod("a"), pod("b")]
    assert calc.raw_replicas(2, 100, "cpu", pods, usage(a=300, b=300)) == (6, 300)
    assert calc.raw_replicas(2, 100, "cpu", pods, usage(a=95, b=105)) == (2, 100)


def test_legacy_limits_and_downscale_stabilization():
    n = Normalizer(HPASettings())
    cond = Conditions([], "t")
    assert n.legacy("k", cond, 1, 10, 1, 20, NOW) == 4  # max(2*1, 4)
    assert [c["reason"] for c in cond.items] == ["ReadyForNewScale", "ScaleUpLimit"]
    cond = Conditions([], "t")
    assert n.legacy("k", cond, 4, 1, 1, 20, NOW + datetime.timedelta(seconds=30)) == 8
    assert cond.items[0]["reason"] == "ScaleDownStabilized"
    later = NOW + datetime.timedelta(seconds=400)
    assert n.legacy("k", Conditions([], "t"), 4, 1, 1, 20, later) == 1


def test_behavior_policies_limit_the_rate():
    n = Normalizer(HPASettings())
    behavior = {"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
                "scaleDown": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                              "policies": [{"type": "Percent", "value": 50,
                                            "periodSeconds": 60}]}}
    cond = Conditions([], "t")
    assert n.with_behavior("k", cond, behavior, 2, 10, 1, 20, NOW) == 3
    assert cond.items[-1]["reason"] == "ScaleUpLimit"
    n.store_scale_event("k", behavior, 2, 3, NOW)
    # one pod already added in this period: no more until it ends
    assert n.with_behavior("k", Conditions([], "t"), behavior, 3, 10, 1, 20,
                           NOW + datetime.timedelta(seconds=10)) == 3
    assert n.with_behavior("k", Conditions([], "t"), behavior, 8, 1, 1, 20,
                           NOW + datetime.timedelta(seconds=20)) == 4


def test_conditions_move_transition_time_only_on_change():
    cond = Conditions([{"type": "AbleToScale", "status": "True", "reason": "x",
                        "message": "m", "lastTransitionTime": "old"}], "new")
    cond.set("AbleToScale", "True", "SucceededGetScale", "ok")
    assert cond.items[0]["lastTransitionTime"] == "old"
    cond.set("AbleToScale", "False", "FailedGetScale", "no")
    assert cond.items[0]["lastTransitionTime"] == "new"


def test_go_durations():
    assert duration_seconds("15.5s") == 15.5 and duration_seconds("1m0s") == 60.0


# --- against a real API server ----------------------------------------------------------

class FakeMetrics:
    """Every selected pod uses ``cpu`` millicores."""

    def __init__(self):
        self.cpu = 0
        self.pods: list[str] = []

    async def resource_metric(self, resource, namespace, selector, container):
        if not self.pods:
            raise MetricsError("no metrics returned from resource metrics API")
        now = datetime.datetime.now(datetime.timezone.utc)
        return {p: PodMetric(self.cpu, now, 15.0) for p in self.pods}, now


def kubectl_json(cluster, *args):
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


async def poll(check, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(check)
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


async def test_kubectl_autoscale_grows_and_shrinks_a_deployment(cluster, ns):
    name = "web-" + uuid.uuid4().hex[:4]
    cluster.kubectl("create", "deployment", name, "-n", ns, "--image=busybox")
    cluster.kubectl("set", "resources", "deployment", name, "-n", ns, "--requests=cpu=100m")
    # no ReplicaSet controller runs here: the test makes the pod the Deployment would have
    body = pod(f"{name}-1")
    body.update(apiVersion="v1", kind="Pod")
    body["metadata"] = {"name": f"{name}-1", "labels": {"app": name}}
    body["spec"]["automountServiceAccountToken"] = False
    cluster.kubectl("apply", "-n", ns, "-f", "-", input='{"apiVersion": "v1", "kind": '
                    '"ServiceAccount", "metadata": {"name": "default"}}')
    body["spec"]["containers"][0]["image"] = "busybox"
    body["spec"]["nodeName"] = "nowhere"
    status = body.pop("status")
    cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(body))
    cluster.kubectl("patch", "pod", body["metadata"]["name"], "-n", ns, "--subresource=status",
                    "--type=merge", "-p", json.dumps({"status": status}))
    metrics = FakeMetrics()
    metrics.pods, metrics.cpu = [f"{name}-1"], 200  # 200% of the request

    client = Client(load_kubeconfig(cluster.kubeconfig))
    ctx = core_manager.new_context(client)
    controller = HorizontalController(ctx, settings=HPASettings(sync_period=0.3),
                                      metrics=metrics)
    task = asyncio.create_task(controller.run())
    try:
        await asyncio.to_thread(cluster.kubectl, "autoscale", "deployment", name, "-n", ns,
                                "--cpu-percent=50", "--min=1", "--max=3")

        def replicas():
            d = kubectl_json(cluster, "deployment", name, "-n", ns)
            return d["spec"]["replicas"] == 3 and d

        await poll(replicas, "the deployment to grow to 3")

        def scaled_status():
            hpa = kubectl_json(cluster, "hpa", name, "-n", ns)
            return hpa if hpa.get("status", {}).get("currentReplicas") == 3 else None

        hpa = await poll(scaled_status, "the HPA status")
        status = hpa["status"]
        assert status["desiredReplicas"] == 3 and status.get("lastScaleTime")
        [current] = status["currentMetrics"]
        assert current["resource"]["name"] == "cpu"
        assert current["resource"]["current"]["averageUtilization"] == 200
        assert current["resource"]["current"]["averageValue"] == "200m"
        conds = {c["type"]: c for c in status["conditions"]}
        assert conds["AbleToScale"]["status"] == "True"
        assert conds["ScalingActive"]["reason"] == "ValidMetricFound"
        assert conds["ScalingLimited"]["status"] == "True"
        assert conds["ScalingLimited"]["reason"] == "TooManyReplicas"
        out = (await asyncio.to_thread(cluster.kubectl, "get", "hpa", name, "-n", ns)).stdout
        assert "cpu: 200%/50%" in out

        def event():
            events = kubectl_json(cluster, "events", "-n", ns,
                                  "--field-selector", f"involvedObject.name={name}")
            return [e for e in events["items"] if e["reason"] == "SuccessfulRescale"]

        [ev] = await poll(event, "the SuccessfulRescale event")
        assert ev["message"] == ("New size: 3; reason: cpu resource utilization "
                                 "(percentage of request) above target")
        assert ev["source"]["component"] == "horizontal-pod-autoscaler"

        # down again at once once the scale-down window is zero
        metrics.cpu = 10
        await asyncio.to_thread(
            cluster.kubectl, "patch", "hpa.v2.autoscaling", name, "-n", ns, "--type=merge",
            "-p", '{"spec": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}}')

        def shrunk():
            d = kubectl_json(cluster, "deployment", name, "-n", ns)
            return d["spec"]["replicas"] == 1

        await poll(shrunk, "the deployment to shrink to 1")
        # The event is recorded after the scale is written, and sent in the background.
        await poll(lambda: any(e["message"] == "New size: 1; reason: All metrics below target"
                               for e in kubectl_json(cluster, "events", "-n", ns)["items"]),
                   "the scale-down event")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ctx.informers.stop()
        await ctx.events.shutdown(timeout=2.0)
        await client.close()


async def test_a_missing_target_reports_failed_get_scale(cluster, ns):
    client = Client(load_kubeconfig(cluster.kubeconfig))
    ctx = core_manager.new_context(client)
    controller = HorizontalController(ctx, settings=HPASettings(sync_period=0.3),
                                      metrics=FakeMetrics())
    task = asyncio.create_task(controller.run())
    try:
        await asyncio.to_thread(cluster.kubectl, "create", "-n", ns, "-f", "-", input=json.dumps(
            {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
             "metadata": {"name": "ghost"},
             "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                         "name": "ghost"},
                      "minReplicas": 1, "maxReplicas": 2}}))

        def failed():
            hpa = kubectl_json(cluster, "hpa", "ghost", "-n", ns)
            conds = {c["type"]: c for c in hpa.get("status", {}).get("conditions") or []}
            return conds.get("AbleToScale")

        cond = await poll(failed, "the AbleToScale condition")
        assert cond["status"] == "False" and cond["reason"] == "FailedGetScale"
        assert 'deployments.apps "ghost" not found' in cond["message"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ctx.informers.stop()
        await ctx.events.shutdown(timeout=2.0)
        await client.close()
