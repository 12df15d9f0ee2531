"""One object, two served shapes: autoscaling v1/v2 HPAs and core/events.k8s.io Events."""
import json

from kubernetes import client as k8s


def test_hpa_v1_and_v2_views(client, cluster, ns):
    v1 = k8s.AutoscalingV1Api(client)
    v1.create_namespaced_horizontal_pod_autoscaler(ns, k8s.V1HorizontalPodAutoscaler(
        metadata=k8s.V1ObjectMeta(name="h"),
        spec=k8s.V1HorizontalPodAutoscalerSpec(
            scale_target_ref=k8s.V1CrossVersionObjectReference(
                api_version="apps/v1", kind="Deployment", name="web"),
            min_replicas=2, max_replicas=5, target_cpu_utilization_percentage=60)))
    v2 = json.loads(cluster.kubectl("get", "hpa.v2.autoscaling", "h", "-n", ns, "-o",
                                    "json").stdout)
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]
    # A v2-only field survives reads and writes through v1.
    cluster.kubectl("patch", "hpa.v2.autoscaling", "h", "-n", ns, "--type=merge", "-p",
                    '{"spec":{"behavior":{"scaleDown":{"stabilizationWindowSeconds":30}}}}')
    h1 = v1.read_namespaced_horizontal_pod_autoscaler("h", ns)
    assert h1.spec.target_cpu_utilization_percentage == 60
    v1.patch_namespaced_horizontal_pod_autoscaler("h", ns, {"spec": {"maxReplicas": 7}})
    v2 = json.loads(cluster.kubectl("get", "hpa.v2.autoscaling", "h", "-n", ns, "-o",
                                    "json").stdout)
    assert v2["spec"]["maxReplicas"] == 7
    assert v2["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 30
    assert "annotations" not in v2["metadata"]


def test_events_in_both_groups(client, cluster, ns):
    core = k8s.CoreV1Api(client)
    core.create_namespaced_event(ns, k8s.CoreV1Event(
        metadata=k8s.V1ObjectMeta(name="e1"), reason="Tested", message="hello",
        type="Normal", involved_object=k8s.V1ObjectReference(kind="Pod", name="p",
                                                             namespace=ns)))
    ev = k8s.EventsV1Api(client).read_namespaced_event("e1", ns)
    assert (ev.reason, ev.note, ev.regarding.name) == ("Tested", "hello", "p")
    out = cluster.kubectl("get", "events", "-n", ns).stdout
    assert "Tested" in out and "hello" in out
    listed = k8s.EventsV1Api(client).list_namespaced_event(
        ns, field_selector="regarding.name=p").items
    assert [e.metadata.name for e in listed] == ["e1"]
