"""Server-side tables print what kube-apiserver v1.32 prints for `kubectl get`."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pyk8s.apiserver import tables
from pyk8s.apiserver.printers.common import quantity_string
from pyk8s.registry import catalogue

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str = "x", **extra) -> dict:
    return {"name": name, "namespace": "default", "creationTimestamp": ago(minutes=5), **extra}


def columns(group: str, plural: str, wide: bool = True) -> list[str]:
    return [c["name"] for c in tables.column_definitions(group, plural)
            if wide or c["priority"] == 0]


def row(group: str, plural: str, obj: dict) -> dict:
    """Cells keyed by column name, as `kubectl get -o wide` lines them up."""
    return dict(zip(columns(group, plural), tables.row_cells(group, plural, obj, NOW)))


# -- durations ---------------------------------------------------------------------

S, M, H, D = 1, 60, 3600, 86400
MS = 0.001


@pytest.mark.parametrize("seconds,want", [
    (1, "1s"), (70, "70s"), (190, "3m10s"), (70 * M, "70m"), (47 * H, "47h"), (49 * H, "2d1h"),
    ((8 * 24 + 2) * H, "8d"), (367 * D, "367d"), ((365 * 2 * 24 + 25) * H, "2y1d"),
    ((365 * 8 * 24 + 2) * H, "8y"),
    # upstream's boundary table
    (-2, "<invalid>"), (-2 + MS, "0s"), (0, "0s"), (1 - MS, "0s"), (2 * M - MS, "119s"),
    (2 * M, "2m"), (2 * M + 1, "2m1s"), (10 * M - MS, "9m59s"), (10 * M, "10m"),
    (10 * M + 1, "10m"), (3 * H - MS, "179m"), (3 * H, "3h"), (3 * H + M, "3h1m"),
    (8 * H - MS, "7h59m"), (8 * H, "8h"), (8 * H + 59 * M, "8h"), (2 * D - MS, "47h"),
    (2 * D, "2d"), (2 * D + H, "2d1h"), (8 * D - MS, "7d23h"), (8 * D, "8d"),
    (8 * D + 23 * H, "8d"), (2 * 365 * D - MS, "729d"), (2 * 365 * D, "2y"),
    (2 * 365 * D + 23 * H + 59 * M, "2y"), (2 * 365 * D + D, "2y1d"), (3 * 365 * D, "3y"),
    (7 * 365 * D, "7y"), (8 * 365 * D - MS, "7y364d"), (8 * 365 * D, "8y"),
    (8 * 365 * D + 364 * D, "8y"), (9 * 365 * D, "9y"),
])
def test_human_duration_matches_upstream(seconds, want):
    assert tables.human_duration(seconds) == want
    assert tables.human_duration(timedelta(seconds=seconds)) == want


def test_human_duration_tolerates_clock_skew_below_two_seconds():
    # upstream: -2s + 1ns is still "almost now".
    assert tables.human_duration(-2 + 1e-9) == "0s"
    assert tables.short_human_duration(-2 + 1e-9) == "0s"


@pytest.mark.parametrize("seconds,want", [
    (-2, "<invalid>"), (0, "0s"), (1, "1s"), (M - MS, "59s"), (M, "1m"), (H - MS, "59m"),
    (H, "1h"), (D - MS, "23h"), (D, "1d"), (365 * D - MS, "364d"), (365 * D, "1y"),
    (2 * 365 * D, "2y"),
])
def test_short_human_duration_matches_upstream(seconds, want):
    assert tables.short_human_duration(seconds) == want


# -- pods --------------------------------------------------------------------------

def pod(statuses=None, *, phase="Running", containers=("app",), init=(), init_statuses=None,
        conditions=None, **extra) -> dict:
    spec = {"containers": [{"name": n, "image": "busybox"} for n in containers]}
    if init:
        spec["initContainers"] = [dict(c) if isinstance(c, dict) else {"name": c} for c in init]
    status = {"phase": phase, "containerStatuses": statuses or []}
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    if conditions:
        status["conditions"] = conditions
    status.update(extra.pop("status", {}))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta("web", **extra.pop("metadata", {})),
            "spec": {**spec, **extra.pop("spec", {})}, "status": status}


def running(name="app", ready=True, restarts=0, **extra) -> dict:
    return {"name": name, "ready": ready, "restartCount": restarts,
            "state": {"running": {"startedAt": ago(minutes=4)}}, **extra}


def waiting(reason, name="app", restarts=0, **extra) -> dict:
    return {"name": name, "ready": False, "restartCount": restarts,
            "state": {"waiting": {"reason": reason}}, **extra}


def terminated(name="app", exit_code=0, reason=None, signal=None, restarts=0) -> dict:
    term = {"exitCode": exit_code}
    if reason:
        term["reason"] = reason
    if signal:
        term["signal"] = signal
    return {"name": name, "ready": False, "restartCount": restarts, "state": {"terminated": term}}


def pod_line(obj: dict) -> tuple:
    cells = row("", "pods", obj)
    return cells["Ready"], cells["Status"], cells["Restarts"]


READY = [{"type": "Ready", "status": "True"}]


def test_pod_columns_and_wide_columns():
    assert columns("", "pods", wide=False) == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert columns("", "pods") == ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node",
                                   "Nominated Node", "Readiness Gates"]
    restarts = tables.column_definitions("", "pods")[3]
    assert restarts["type"] == "string" and restarts["format"] == ""
    assert tables.column_definitions("", "pods")[0]["format"] == "name"


def test_running_pod():
    obj = pod([running()], spec={"nodeName": "node-1"}, status={"podIP": "10.42.0.5",
              "podIPs": [{"ip": "10.42.0.5"}]})
    assert row("", "pods", obj) == {
        "Name": "web", "Ready": "1/1", "Status": "Running", "Restarts": "0", "Age": "5m",
        "IP": "10.42.0.5", "Node": "node-1", "Nominated Node": "<none>",
        "Readiness Gates": "<none>",
    }


def test_pending_pod_without_statuses_shows_phase_and_none_cells():
    cells = row("", "pods", pod(phase="Pending"))
    assert (cells["Ready"], cells["Status"], cells["IP"], cells["Node"]) == (
        "0/1", "Pending", "<none>", "<none>")


def test_waiting_reasons_show_as_status():
    assert pod_line(pod([waiting("ContainerCreating")], phase="Pending")) == (
        "0/1", "ContainerCreating", "0")
    assert pod_line(pod([waiting("ErrImagePull")], phase="Pending"))[1] == "ErrImagePull"


def test_crash_loop_shows_restarts_with_time_of_last_restart():
    crashing = waiting("CrashLoopBackOff", restarts=3)
    crashing["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": ago(minutes=2)}}
    assert pod_line(pod([crashing])) == ("0/1", "CrashLoopBackOff", "3 (2m ago)")


def test_restarts_sum_over_containers_and_use_the_latest_restart():
    first = running("a", restarts=2, lastState={"terminated": {"finishedAt": ago(hours=3)}})
    second = running("b", restarts=1, lastState={"terminated": {"finishedAt": ago(seconds=40)}})
    assert pod_line(pod([first, second], containers=("a", "b"), conditions=READY)) == (
        "2/2", "Running", "3 (40s ago)")


def test_last_container_decides_the_reason():
    # upstream walks containers from last to first, so the first one's reason wins.
    statuses = [waiting("ContainerWaitingReason", "a", restarts=3), running("b", restarts=3)]
    assert pod_line(pod(statuses, containers=("a", "b"))) == ("1/2", "ContainerWaitingReason", "6")


def test_terminated_containers():
    assert pod_line(pod([terminated(reason="Completed")], phase="Succeeded")) == (
        "0/1", "Completed", "0")
    assert pod_line(pod([terminated(exit_code=1, reason="Error")], phase="Failed"))[1] == "Error"
    assert pod_line(pod([terminated(exit_code=3)], phase="Failed"))[1] == "ExitCode:3"
    assert pod_line(pod([terminated(exit_code=137, signal=9)], phase="Failed"))[1] == "Signal:9"


def test_completed_with_a_running_container_is_running_or_not_ready():
    statuses = [running("side"), terminated("app", reason="Completed")]
    assert pod_line(pod(statuses, containers=("side", "app"), conditions=READY)) == (
        "1/2", "Running", "0")
    assert pod_line(pod(statuses, containers=("side", "app")))[1] == "NotReady"


@pytest.mark.parametrize("init_statuses,want", [
    ([waiting("PodInitializing", "i0"), waiting("PodInitializing", "i1")], "Init:0/2"),
    ([terminated("i0", reason="Completed"), running("i1", ready=False)], "Init:1/2"),
    ([waiting("CrashLoopBackOff", "i0", restarts=4)], "Init:CrashLoopBackOff"),
    ([terminated("i0", exit_code=1, reason="Error")], "Init:Error"),
    ([terminated("i0", exit_code=2)], "Init:ExitCode:2"),
    ([terminated("i0", exit_code=137, signal=9)], "Init:Signal:9"),
])
def test_init_containers(init_statuses, want):
    obj = pod([waiting("PodInitializing")], phase="Pending", init=("i0", "i1"),
              init_statuses=init_statuses)
    assert pod_line(obj)[1] == want


def test_init_restarts_count_while_initializing():
    obj = pod([waiting("PodInitializing")], phase="Pending", init=("i0",),
              init_statuses=[waiting("CrashLoopBackOff", "i0", restarts=4)])
    assert pod_line(obj) == ("0/1", "Init:CrashLoopBackOff", "4")


def test_finished_init_containers_leave_the_main_container_state():
    obj = pod([waiting("PodInitializing")], phase="Pending", init=("i0",),
              init_statuses=[terminated("i0", reason="Completed")])
    assert pod_line(obj)[1] == "PodInitializing"


def test_started_sidecar_counts_toward_ready_and_total():
    sidecar = {"name": "proxy", "restartPolicy": "Always"}
    obj = pod([running(restarts=1)], init=(sidecar,), conditions=READY,
              init_statuses=[running("proxy", restarts=2, started=True)])
    assert pod_line(obj) == ("2/2", "Running", "3")


def test_deleted_pods():
    deleting = {"deletionTimestamp": ago(seconds=10)}
    assert pod_line(pod([running()], metadata=deleting))[1] == "Terminating"
    assert pod_line(pod([terminated(reason="Completed")], phase="Succeeded",
                        metadata=deleting))[1] == "Completed"
    lost = pod([running()], metadata=deleting, status={"reason": "NodeLost"})
    assert pod_line(lost)[1] == "Unknown"


def test_pod_reason_and_scheduling_gate():
    assert pod_line(pod(phase="Failed", status={"reason": "Evicted"}))[1] == "Evicted"
    gated = pod(phase="Pending", conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}])
    assert pod_line(gated)[1] == "SchedulingGated"


def test_readiness_gates_and_nominated_node():
    obj = pod([running()], spec={"readinessGates": [{"conditionType": "a"},
                                                    {"conditionType": "b"}]},
              conditions=[{"type": "a", "status": "True"}, {"type": "b", "status": "False"}],
              status={"nominatedNodeName": "node-2"})
    cells = row("", "pods", obj)
    assert (cells["Readiness Gates"], cells["Nominated Node"]) == ("1/2", "node-2")


# -- workloads ---------------------------------------------------------------------

def template(*images: str) -> dict:
    return {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": f"c{i}", "image": img} for i, img in enumerate(images)]}}


def test_deployment_row():
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web"),
           "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "tier": "fe"}},
                    "template": template("nginx", "busybox")},
           "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    assert columns("apps", "deployments", wide=False) == [
        "Name", "Ready", "Up-to-date", "Available", "Age"]
    assert tables.row_cells("apps", "deployments", obj, NOW) == [
        "web", "2/3", 3, 2, "5m", "c0,c1", "nginx,busybox", "app=web,tier=fe"]


def test_replica_set_daemon_set_and_stateful_set_rows():
    rs = {"metadata": meta("web-123"), "spec": {"replicas": 2, "selector": {"matchExpressions": [
        {"key": "app", "operator": "In", "values": ["web", "api"]}]}, "template": template("nginx")},
        "status": {"replicas": 2, "readyReplicas": 1}}
    assert tables.row_cells("apps", "replicasets", rs, NOW) == [
        "web-123", 2, 2, 1, "5m", "c0", "nginx", "app in (api,web)"]
    ds = {"metadata": meta("agent"), "spec": {"selector": {"matchLabels": {"app": "agent"}},
          "template": {"spec": {"nodeSelector": {"os": "linux"}, "containers": []}}},
          "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                     "updatedNumberScheduled": 3, "numberAvailable": 2}}
    assert tables.row_cells("apps", "daemonsets", ds, NOW)[:8] == [
        "agent", 3, 3, 2, 3, 2, "os=linux", "5m"]
    sts = {"metadata": meta("db"), "spec": {"replicas": 3, "template": template("pg")},
           "status": {"readyReplicas": 3}}
    assert tables.row_cells("apps", "statefulsets", sts, NOW) == ["db", "3/3", "5m", "c0", "pg"]


def test_job_rows():
    done = {"metadata": meta("pi"), "spec": {"completions": 1, "parallelism": 1,
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
            "template": template("perl")},
            "status": {"succeeded": 1, "startTime": ago(minutes=5),
                       "completionTime": ago(minutes=4, seconds=50),
                       "conditions": [{"type": "Complete", "status": "True"}]}}
    assert columns("batch", "jobs", wide=False) == [
        "Name", "Status", "Completions", "Duration", "Age"]
    assert tables.row_cells("batch", "jobs", done, NOW)[:5] == [
        "pi", "Complete", "1/1", "10s", "5m"]
    busy = {"metadata": meta("w"), "spec": {"parallelism": 3},
            "status": {"startTime": ago(minutes=3)}}
    assert tables.row_cells("batch", "jobs", busy, NOW)[:4] == ["w", "Running", "0/1 of 3", "3m"]
    failed = {"metadata": meta("f"), "status": {"conditions": [
        {"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}]}}
    assert tables.row_cells("batch", "jobs", failed, NOW)[1:4] == ["Failed", "0/1", ""]


def test_cron_job_row():
    obj = {"metadata": meta("tick"), "spec": {"schedule": "*/5 * * * *", "suspend": False,
           "jobTemplate": {"spec": {"template": template("busybox")}}},
           "status": {"active": [{"name": "tick-1"}], "lastScheduleTime": ago(seconds=30)}}
    assert tables.row_cells("batch", "cronjobs", obj, NOW) == [
        "tick", "*/5 * * * *", "<none>", "False", 1, "30s", "5m", "c0", "busybox", "<none>"]


def test_hpa_rows_v2_and_v1():
    v2 = {"apiVersion": "autoscaling/v2", "metadata": meta("web"), "spec": {
        "scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1,
        "maxReplicas": 10, "metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": 80}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {
                "type": "AverageValue", "averageValue": "1024Mi"}}}]},
        "status": {"currentReplicas": 2, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 50}}}]}}
    assert tables.row_cells("autoscaling", "horizontalpodautoscalers", v2, NOW) == [
        "web", "Deployment/web", "cpu: 50%/80%, memory: <unknown>/1Gi", "1", 10, 2, "5m"]
    v1 = {"apiVersion": "autoscaling/v1", "metadata": meta("web"), "spec": {
        "scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5,
        "targetCPUUtilizationPercentage": 70}, "status": {"currentReplicas": 1}}
    assert tables.row_cells("autoscaling", "horizontalpodautoscalers", v1, NOW)[2:4] == [
        "cpu: <unknown>/70%", "<unset>"]


def test_pdb_and_controller_revision_rows():
    pdb = {"metadata": meta("web"), "spec": {"minAvailable": "50%"},
           "status": {"disruptionsAllowed": 1}}
    assert tables.row_cells("policy", "poddisruptionbudgets", pdb, NOW) == [
        "web", "50%", "N/A", 1, "5m"]
    rev = {"metadata": meta("agent-5d8", ownerReferences=[
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "controller": True}]),
        "revision": 2}
    assert tables.row_cells("apps", "controllerrevisions", rev, NOW) == [
        "agent-5d8", "daemonset.apps/agent", 2, "5m"]


# -- services, networking, nodes -----------------------------------------------------

def service(kind="ClusterIP", **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta("svc"),
            "spec": {"type": kind, **spec}}


def test_service_rows():
    assert columns("", "services", wide=False) == [
        "Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"]
    plain = service(clusterIP="10.43.0.10", clusterIPs=["10.43.0.10"], selector={"app": "web"},
                    ports=[{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}])
    assert tables.row_cells("", "services", plain, NOW) == [
        "svc", "ClusterIP", "10.43.0.10", "<none>", "80/TCP,53/UDP", "5m", "app=web"]
    node_port = service("NodePort", clusterIPs=["10.43.1.1"],
                        ports=[{"port": 80, "nodePort": 30080, "protocol": "TCP"}])
    assert row("", "services", node_port)["Port(s)"] == "80:30080/TCP"
    assert row("", "services", service("LoadBalancer"))["External-IP"] == "<pending>"
    lb = service("LoadBalancer", externalIPs=["1.2.3.4"])
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example"}]}}
    assert row("", "services", lb)["External-IP"] == "5.6.7.8,lb.example,1.2.3.4"
    external = service("ExternalName", externalName="db.example.com")
    assert row("", "services", external)["External-IP"] == "db.example.com"
    headless = service(clusterIP="None", clusterIPs=["None"])
    assert (row("", "services", headless)["Cluster-IP"], row("", "services", headless)["Port(s)"],
            row("", "services", headless)["Selector"]) == ("None", "<none>", "<none>")


def test_endpoints_and_endpoint_slices():
    ep = {"metadata": meta("web"), "subsets": [{
        "addresses": [{"ip": f"10.42.0.{i}"} for i in range(1, 5)],
        "ports": [{"port": 8080}]}]}
    assert row("", "endpoints", ep)["Endpoints"] == (
        "10.42.0.1:8080,10.42.0.2:8080,10.42.0.3:8080 + 1 more...")
    assert row("", "endpoints", {"metadata": meta("none")})["Endpoints"] == "<none>"
    eps = {"metadata": meta("web-abc"), "addressType": "IPv4",
           "ports": [{"port": 8080}, {"name": "metrics"}, {}],
           "endpoints": [{"addresses": ["10.42.0.1"]}]}
    assert tables.row_cells("discovery.k8s.io", "endpointslices", eps, NOW) == [
        "web-abc", "IPv4", "8080,metrics,*", "10.42.0.1", "5m"]


def test_ingress_row():
    ing = {"metadata": meta("web"), "spec": {"ingressClassName": "nginx", "tls": [{}],
           "rules": [{"host": "a.example"}, {}, {"host": "b.example"}, {"host": "c.example"},
                     {"host": "d.example"}]},
           "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}
    assert tables.row_cells("networking.k8s.io", "ingresses", ing, NOW) == [
        "web", "nginx", "a.example,b.example,c.example + 2 more...", "192.0.2.1", "80, 443", "5m"]


def test_node_row():
    node = {"metadata": meta("node-1", labels={"node-role.kubernetes.io/control-plane": "",
                                               "kubernetes.io/role": "master"}),
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian",
                                    "kernelVersion": "6.1", "containerRuntimeVersion": "containerd://1.7"}}}
    assert tables.row_cells("", "nodes", node, NOW) == [
        "node-1", "Ready,SchedulingDisabled", "control-plane,master", "5m", "v1.32.0",
        "192.168.1.2", "<none>", "Debian", "6.1", "containerd://1.7"]
    assert row("", "nodes", {"metadata": meta("n2")})["Status"] == "Unknown"


def test_event_rows_core_and_events_api():
    core = {"apiVersion": "v1", "metadata": meta("web.17a"), "type": "Warning", "reason": "BackOff",
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
            "source": {"component": "kubelet", "host": "node-1"}, "message": "Back-off\n",
            "firstTimestamp": ago(minutes=10), "lastTimestamp": ago(seconds=30), "count": 7}
    assert tables.row_cells("", "events", core, NOW) == [
        "30s", "Warning", "BackOff", "pod/web", "spec.containers{app}", "kubelet, node-1",
        "Back-off", "10m", 7, "web.17a"]
    new = {"apiVersion": "events.k8s.io/v1", "metadata": meta("web.17b"), "type": "Normal",
           "reason": "Scheduled", "regarding": {"kind": "Pod", "name": "web"},
           "note": "assigned", "eventTime": "2024-05-01T11:59:00.000000Z",
           "reportingController": "default-scheduler"}
    assert tables.row_cells("events.k8s.io", "events", new, NOW) == [
        "60s", "Normal", "Scheduled", "pod/web", "", "default-scheduler", "assigned", "60s", 1,
        "web.17b"]


# -- config, storage, rbac ---------------------------------------------------------

def test_config_rows():
    cm = {"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert tables.row_cells("", "configmaps", cm, NOW) == ["cfg", 3, "5m"]
    secret = {"metadata": meta("tls"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}
    assert tables.row_cells("", "secrets", secret, NOW) == ["tls", "kubernetes.io/tls", 2, "5m"]
    assert tables.row_cells("", "namespaces", {"metadata": meta("kube-system"),
                                               "status": {"phase": "Active"}}, NOW) == [
        "kube-system", "Active", "5m"]
    sa = {"metadata": meta("default")}
    assert tables.row_cells("", "serviceaccounts", sa, NOW) == ["default", 0, "5m"]


def test_storage_rows():
    pv = {"metadata": meta("pv1"), "spec": {"capacity": {"storage": "1024Mi"},
          "accessModes": ["ReadWriteMany", "ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain",
          "claimRef": {"namespace": "default", "name": "data"}, "storageClassName": "local",
          "volumeMode": "Filesystem"}, "status": {"phase": "Bound"}}
    assert tables.row_cells("", "persistentvolumes", pv, NOW) == [
        "pv1", "1Gi", "RWO,RWX", "Retain", "Bound", "default/data", "local", "<unset>", "", "5m",
        "Filesystem"]
    pvc = {"metadata": meta("data"), "spec": {"volumeName": "pv1", "storageClassName": "local",
           "volumeMode": "Filesystem"}, "status": {"phase": "Bound", "capacity": {"storage": "1Gi"},
                                                   "accessModes": ["ReadWriteOnce"]}}
    assert tables.row_cells("", "persistentvolumeclaims", pvc, NOW) == [
        "data", "Bound", "pv1", "1Gi", "RWO", "local", "<unset>", "5m", "Filesystem"]
    sc = {"metadata": meta("local", annotations={"storageclass.kubernetes.io/is-default-class": "true"}),
          "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"}
    assert tables.row_cells("storage.k8s.io", "storageclasses", sc, NOW) == [
        "local (default)", "rancher.io/local-path", "Delete", "WaitForFirstConsumer", False, "5m"]


def test_resource_quota_row():
    quota = {"metadata": meta("q"), "status": {
        "hard": {"pods": "10", "requests.cpu": "2", "limits.memory": "2Gi", "limits.cpu": "4"},
        "used": {"pods": "3", "requests.cpu": "500m", "limits.memory": "1073741824"}}}
    assert tables.row_cells("", "resourcequotas", quota, NOW) == [
        "q", "pods: 3/10, requests.cpu: 500m/2", "limits.cpu: 0/4, limits.memory: 1073741824/2Gi",
        "5m"]


def test_role_bindings_show_role_and_subjects():
    rb = {"metadata": meta("admins"), "roleRef": {"kind": "ClusterRole", "name": "admin"},
          "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "ops"},
                       {"kind": "ServiceAccount", "namespace": "ci", "name": "bot"},
                       {"kind": "User", "name": "bob"}]}
    assert columns("rbac.authorization.k8s.io", "rolebindings", wide=False) == ["Name", "Role", "Age"]
    assert tables.row_cells("rbac.authorization.k8s.io", "rolebindings", rb, NOW) == [
        "admins", "ClusterRole/admin", "5m", "alice, bob", "ops", "ci/bot"]


def test_csr_lease_and_priority_class_rows():
    csr = {"metadata": meta("node-csr"), "spec": {"signerName": "kubernetes.io/kube-apiserver-client",
           "username": "system:admin", "expirationSeconds": 86400},
           "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "LS0t"}}
    assert tables.row_cells("certificates.k8s.io", "certificatesigningrequests", csr, NOW) == [
        "node-csr", "5m", "kubernetes.io/kube-apiserver-client", "system:admin", "24h",
        "Approved,Issued"]
    lease = {"metadata": meta("node-1"), "spec": {"holderIdentity": "node-1"}}
    assert tables.row_cells("coordination.k8s.io", "leases", lease, NOW) == ["node-1", "node-1", "5m"]
    pc = {"metadata": meta("system-node-critical"), "value": 2000001000,
          "preemptionPolicy": "PreemptLowerPriority"}
    assert tables.row_cells("scheduling.k8s.io", "priorityclasses", pc, NOW) == [
        "system-node-critical", 2000001000, False, "5m", "PreemptLowerPriority"]


def test_kinds_without_a_printer_get_name_and_created_at():
    role = {"metadata": {"name": "reader", "creationTimestamp": "2024-01-02T03:04:05Z"}}
    assert tables.column_definitions("rbac.authorization.k8s.io", "roles") == [
        {"name": "Name", "type": "string", "format": "name",
         "description": tables.column_definitions("", "pods")[0]["description"], "priority": 0},
        {"name": "Created At", "type": "date", "format": "",
         "description": tables.column_definitions("", "pods")[4]["description"], "priority": 0},
    ]
    assert tables.row_cells("rbac.authorization.k8s.io", "roles", role, NOW) == [
        "reader", "2024-01-02T03:04:05Z"]
    assert tables.row_cells("", "limitranges", {"metadata": {"name": "l"}}, NOW) == [
        "l", "0001-01-01T00:00:00Z"]


def test_subresource_tables():
    scale = {"kind": "Scale", "metadata": meta("web"), "spec": {"replicas": 3},
             "status": {"replicas": 2}}
    assert columns("apps", "deployments/scale") == ["Name", "Desired", "Available", "Age"]
    assert tables.row_cells("apps", "deployments/scale", scale, NOW) == ["web", 3, 2, "5m"]
    assert columns("apps", "deployments/status") == columns("apps", "deployments")
    assert columns("", "pods/log") == ["Name", "Created At"]


def test_every_built_in_resource_has_one_cell_per_column():
    for info in catalogue.RESOURCES:
        obj = {"apiVersion": info.group_version, "kind": info.kind,
               "metadata": meta(), "spec": {}, "status": {}}
        cells = tables.row_cells(info.group, info.plural, obj, NOW)
        assert len(cells) == len(tables.column_definitions(info.group, info.plural)), info.plural


def test_every_column_definition_has_all_fields():
    for info in catalogue.RESOURCES:
        for column in tables.column_definitions(info.group, info.plural):
            assert set(column) == {"name", "type", "format", "description", "priority"}
            assert column["priority"] in (0, 1)
            assert column["type"] in ("string", "integer", "boolean", "date", "number")


# -- full tables -------------------------------------------------------------------

def test_build_table_with_partial_object_metadata():
    done = pod([terminated(reason="Completed")], phase="Succeeded")
    table = tables.build_table("", "pods", [pod([running()]), done], now=NOW,
                               list_metadata={"resourceVersion": "42"})
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert table["metadata"] == {"resourceVersion": "42"}
    assert [c["name"] for c in table["columnDefinitions"]][:5] == [
        "Name", "Ready", "Status", "Restarts", "Age"]
    first, second = table["rows"]
    assert first["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                               "metadata": done["metadata"]}
    assert "conditions" not in first
    assert second["conditions"] == [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                     "message": "The pod has completed successfully."}]
    assert second["cells"][:3] == ["web", "0/1", "Completed"]


def test_build_table_include_object_modes():
    obj = service(clusterIPs=["10.43.0.1"])
    full = tables.build_table("", "services", [obj], now=NOW, include_object="Object")
    assert full["rows"][0]["object"] is obj
    bare = tables.build_table("", "services", [obj], now=NOW, include_object="None")
    assert bare["rows"][0]["object"] is None
    with pytest.raises(ValueError):
        tables.build_table("", "services", [obj], now=NOW, include_object="Everything")


# -- custom resources --------------------------------------------------------------

WIDGET = {"apiVersion": "example.com/v1", "kind": "Widget",
          "metadata": {"name": "w1", "creationTimestamp": ago(hours=3)},
          "spec": {"size": 3, "ratio": 0.5, "tags": ["a", "b"], "labels": {"z": "1", "a": "<2>"}},
          "status": {"conditions": [{"type": "Synced", "status": "False"},
                                    {"type": "Ready", "status": "True"}],
                     "lastSeen": ago(days=2, hours=5)}}


def test_crd_without_printer_columns_shows_name_and_age():
    defs = tables.custom_column_definitions([])
    assert [(c["name"], c["type"]) for c in defs] == [("Name", "string"), ("Age", "date")]
    assert tables.custom_columns(None, WIDGET, NOW) == ["w1", "3h"]


def test_crd_printer_columns():
    cols = [
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
        {"name": "Ready", "type": "string",
         "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio", "priority": 1},
        {"name": "Tags", "type": "string", "jsonPath": ".spec.tags"},
        {"name": "Labels", "type": "string", "jsonPath": ".spec.labels"},
        {"name": "First", "type": "string", "jsonPath": ".spec.tags[0]"},
        {"name": "Seen", "type": "date", "jsonPath": ".status.lastSeen"},
        {"name": "Missing", "type": "string", "jsonPath": ".spec.nothing.here"},
        {"name": "Wrong", "type": "boolean", "jsonPath": ".spec.size"},
        {"name": "SizeText", "type": "string", "jsonPath": ".spec.size"},
    ]
    defs = tables.custom_column_definitions(cols)
    assert defs[1] == {"name": "Size", "type": "integer", "format": "",
                       "description": "Custom resource definition column (in JSONPath format): .spec.size",
                       "priority": 0}
    assert defs[3]["priority"] == 1
    assert tables.custom_columns(cols, WIDGET, NOW) == [
        "w1", 3, "True", 0.5, '["a","b"]', '{"a":"\\u003c2\\u003e","z":"1"}', "a", "2d", None,
        None, "3"]
    table = tables.build_table("example.com", "widgets", [WIDGET], now=NOW, printer_columns=cols)
    assert [c["name"] for c in table["columnDefinitions"]][0:3] == ["Name", "Size", "Ready"]
    assert table["rows"][0]["cells"][1] == 3


# -- quantities --------------------------------------------------------------------

@pytest.mark.parametrize("raw,want", [
    ("1Gi", "1Gi"), ("1024Mi", "1Gi"), ("0.5Gi", "512Mi"), ("1.5Gi", "1536Mi"), ("100", "100"),
    ("1000", "1k"), ("1500m", "1500m"), ("1.5", "1500m"), ("1000m", "1"), ("0.1", "100m"),
    ("12e6", "12e6"), ("1e3", "1e3"), ("500M", "500M"), ("1023Ki", "1023Ki"), ("0", "0"),
    (None, "0"), (2, "2"), ("512", "512"), ("100Ki", "100Ki"), ("0.5Ki", "512"),
])
def test_quantities_print_in_canonical_form(raw, want):
    assert quantity_string(raw) == want
