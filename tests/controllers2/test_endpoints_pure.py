"""Endpoints and EndpointSlices computed from Services and Pods (pure)."""
from pyk8s.controllers import endpoints as ep
from pyk8s.controllers import endpointslice as es


def svc(name="web", *, ports=None, selector=None, cluster_ip="10.43.0.10", publish=False,
        labels=None, uid="svc-uid"):
    spec = {"selector": selector if selector is not None else {"app": "web"},
            "clusterIP": cluster_ip, "ipFamilies": ["IPv4"],
            "ports": ports if ports is not None else [
                {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}
    if publish:
        spec["publishNotReadyAddresses"] = True
    md = {"name": name, "namespace": "default", "uid": uid}
    if labels:
        md["labels"] = labels
    return {"apiVersion": "v1", "kind": "Service", "metadata": md, "spec": spec}


def pod(name, ip, *, ready=True, node="n1", port=8080, deleting=False, phase="Running",
        hostname=None, subdomain=None):
    md = {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": {"app": "web"}}
    if deleting:
        md["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    spec = {"nodeName": node, "containers": [
        {"name": "c", "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}]}]}
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    status = {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}] if ip else [],
              "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec, "status": status}


def test_find_port_named_and_numeric():
    p = pod("a", "10.42.0.5")
    assert ep.find_port(p, {"targetPort": "http", "protocol": "TCP"}) == 8080
    assert ep.find_port(p, {"targetPort": "http", "protocol": "UDP"}) is None
    assert ep.find_port(p, {"targetPort": 9090}) == 9090
    assert ep.find_port(p, {"targetPort": "nope"}) is None


def test_ready_and_not_ready_addresses():
    s = svc()
    e = ep.endpoints_for(s, None, [pod("a", "10.42.0.5"), pod("b", "10.42.0.6", ready=False)])
    assert e["subsets"] == [{
        "addresses": [{"ip": "10.42.0.5", "nodeName": "n1", "targetRef": {
            "kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}}],
        "notReadyAddresses": [{"ip": "10.42.0.6", "nodeName": "n1", "targetRef": {
            "kind": "Pod", "namespace": "default", "name": "b", "uid": "uid-b"}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]
    # Nothing changed: no write.
    assert ep.endpoints_for(s, {**e, "metadata": {**e["metadata"], "resourceVersion": "5"}},
                            [pod("a", "10.42.0.5"), pod("b", "10.42.0.6", ready=False)]) is None


def test_terminal_terminating_and_ipless_pods_are_left_out():
    s = svc()
    pods = [pod("a", "10.42.0.5", phase="Succeeded"), pod("b", "10.42.0.6", deleting=True),
            pod("c", "")]
    assert ep.endpoints_for(s, None, pods)["subsets"] == []
    # publishNotReadyAddresses keeps the terminating one, as ready.
    e = ep.endpoints_for(svc(publish=True), None, pods)
    assert [a["ip"] for a in e["subsets"][0]["addresses"]] == ["10.42.0.6"]


def test_pods_with_different_ports_split_subsets():
    pods = [pod("a", "10.42.0.5", port=8080), pod("b", "10.42.0.6", port=9090)]
    subsets = ep.endpoints_for(svc(), None, pods)["subsets"]
    assert sorted((s["addresses"][0]["ip"], s["ports"][0]["port"]) for s in subsets) == [
        ("10.42.0.5", 8080), ("10.42.0.6", 9090)]


def test_headless_service_hostname_and_label():
    s = svc("db", cluster_ip="None", ports=[])
    p = pod("db-0", "10.42.0.7", hostname="db-0", subdomain="db")
    e = ep.endpoints_for(s, None, [p])
    assert e["metadata"]["labels"] == {"service.kubernetes.io/headless": ""}
    assert e["subsets"][0]["addresses"][0]["hostname"] == "db-0"
    assert "ports" not in e["subsets"][0]


def test_truncation_over_capacity():
    pods = [pod(f"p{i}", f"10.42.{i // 200}.{i % 200 + 1}") for i in range(5)]
    e = ep.endpoints_for(svc(), None, pods, capacity=3)
    assert sum(len(s["addresses"]) for s in e["subsets"]) == 3
    assert e["metadata"]["annotations"]["endpoints.kubernetes.io/over-capacity"] == "truncated"


def test_services_for_pod_ignores_selectorless():
    p = pod("a", "10.42.0.5")
    assert [s["metadata"]["name"] for s in ep.services_for_pod(
        [svc("x"), svc("y", selector={"app": "other"}), svc("z", selector={})], p)] == ["x"]


def test_apiserver_endpoints_and_slice():
    e = ep.apiserver_endpoints(["192.0.2.10"], 6443)
    assert e["metadata"]["labels"] == {"endpointslice.kubernetes.io/skip-mirror": "true"}
    assert e["subsets"] == [{"addresses": [{"ip": "192.0.2.10"}],
                             "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]
    s = ep.slice_from_endpoints(e)
    assert s["metadata"]["name"] == "kubernetes"
    assert s["metadata"]["labels"] == {"kubernetes.io/service-name": "kubernetes"}
    assert s["endpoints"] == [{"addresses": ["192.0.2.10"], "conditions": {"ready": True}}]
    assert s["ports"] == [{"name": "https", "port": 6443, "protocol": "TCP"}]


# --- EndpointSlices ---------------------------------------------------------------------------

NODES = {"n1": {"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1"}}}}


def test_slice_endpoints_conditions_and_topology():
    s = svc()
    plan, skipped = es.reconcile(s, [pod("a", "10.42.0.5"), pod("b", "10.42.0.6", ready=False),
                                     pod("c", "10.42.0.7", deleting=True)], NODES, [])
    assert skipped == [] and len(plan.create) == 1
    eps = plan.create[0]
    assert eps["metadata"]["generateName"] == "web-"
    assert eps["metadata"]["labels"] == {"kubernetes.io/service-name": "web",
                                         "endpointslice.kubernetes.io/managed-by":
                                             "endpointslice-controller.k8s.io"}
    assert eps["metadata"]["ownerReferences"][0]["kind"] == "Service"
    assert eps["addressType"] == "IPv4"
    assert eps["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    by_ip = {e["addresses"][0]: e for e in eps["endpoints"]}
    assert by_ip["10.42.0.5"]["conditions"] == {"ready": True, "serving": True,
                                                "terminating": False}
    assert by_ip["10.42.0.6"]["conditions"] == {"ready": False, "serving": False,
                                                "terminating": False}
    assert by_ip["10.42.0.7"]["conditions"] == {"ready": False, "serving": True,
                                                "terminating": True}
    assert by_ip["10.42.0.5"]["nodeName"] == "n1" and by_ip["10.42.0.5"]["zone"] == "z1"


def test_at_most_100_endpoints_per_slice():
    pods = [pod(f"p{i}", f"10.42.{i // 250}.{i % 250 + 1}") for i in range(250)]
    plan, _ = es.reconcile(svc(), pods, NODES, [])
    assert sorted(len(s["endpoints"]) for s in plan.create) == [50, 100, 100]


def test_placeholder_slice_for_no_endpoints_is_kept():
    plan, _ = es.reconcile(svc(), [], NODES, [])
    assert len(plan.create) == 1 and plan.create[0]["endpoints"] == []
    placeholder = {**plan.create[0], "metadata": {**plan.create[0]["metadata"], "name": "web-x"}}
    again, _ = es.reconcile(svc(), [], NODES, [placeholder])
    assert (again.create, again.update, again.delete) == ([], [], [])


def test_existing_slice_updated_in_place_and_unchanged_left_alone():
    s = svc()
    plan, _ = es.reconcile(s, [pod("a", "10.42.0.5")], NODES, [])
    existing = {**plan.create[0], "metadata": {**plan.create[0]["metadata"], "name": "web-abc"}}
    same, _ = es.reconcile(s, [pod("a", "10.42.0.5")], NODES, [existing])
    assert (same.create, same.update, same.delete) == ([], [], [])
    changed, _ = es.reconcile(s, [pod("a", "10.42.0.5", ready=False)], NODES, [existing])
    assert changed.create == [] and len(changed.update) == 1
    assert changed.update[0]["metadata"]["name"] == "web-abc"
    assert changed.update[0]["endpoints"][0]["conditions"]["ready"] is False
    # The last endpoint goes: the slice is recycled as the placeholder.
    gone, _ = es.reconcile(s, [], NODES, [existing])
    assert gone.delete == [] and gone.update[0]["endpoints"] == []


def test_service_labels_copied_and_headless_marked():
    s = svc(labels={"team": "a"}, cluster_ip="None")
    plan, _ = es.reconcile(s, [pod("a", "10.42.0.5")], NODES, [])
    labels = plan.create[0]["metadata"]["labels"]
    assert labels["team"] == "a" and labels["service.kubernetes.io/headless"] == ""


def test_pods_on_unknown_nodes_are_skipped():
    plan, skipped = es.reconcile(svc(), [pod("a", "10.42.0.5", node="gone")], NODES, [])
    assert skipped == ["a"]


def test_slice_tracker_detects_stale_cache():
    t = es.SliceTracker()
    made = {"metadata": {"uid": "s1", "resourceVersion": "10"}}
    t.wrote("default/web", made)
    assert t.stale("default/web", [])                      # not in the cache yet
    assert t.stale("default/web", [{"metadata": {"uid": "s1", "resourceVersion": "9"}}])
    assert not t.stale("default/web", [made])


def test_mirroring_selectorless_endpoints():
    e = {"apiVersion": "v1", "kind": "Endpoints",
         "metadata": {"name": "ext", "namespace": "default", "uid": "e1",
                      "labels": {"team": "a"}},
         "subsets": [{"addresses": [{"ip": "192.0.2.1"}],
                      "notReadyAddresses": [{"ip": "192.0.2.2"}],
                      "ports": [{"name": "p", "port": 5432, "protocol": "TCP"}]}]}
    result = es.mirror(e, [])
    (eps,) = result.plan.create
    assert eps["metadata"]["labels"] == {
        "team": "a", "kubernetes.io/service-name": "ext",
        "endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io"}
    assert eps["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
    assert eps["endpoints"] == [{"addresses": ["192.0.2.1"], "conditions": {"ready": True}},
                                {"addresses": ["192.0.2.2"], "conditions": {"ready": False}}]
    existing = {**eps, "metadata": {**eps["metadata"], "name": "ext-1"}}
    assert es.mirror(e, [existing]).plan.update == []
