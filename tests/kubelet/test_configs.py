"""Pod -> PodSandboxConfig and container -> ContainerConfig, as CRI receives them."""
from pathlib import Path

import pytest

from pyk8s.api.quantities import parse_quantity
from pyk8s.cri import api_pb2 as pb
from pyk8s.cri import messages
from pyk8s.kubelet import containers as ctr
from pyk8s.kubelet import sandboxes
from pyk8s.kubelet.settings import KubeletSettings

from .helpers import container, pod

SETTINGS = KubeletSettings(node_name="node-a", data_dir=Path("/data"),
                           cgroup_root="/kubepods")
HOST_RESOLV = "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"


def test_sandbox_config_has_identity_hostname_dns_ports_and_cgroup():
    p = pod(containers=[container(ports=[{"containerPort": 80, "protocol": "TCP"},
                                         {"containerPort": 53, "hostPort": 5353,
                                          "protocol": "UDP"}])])
    config = sandboxes.sandbox_config(p, 2, SETTINGS, HOST_RESOLV)
    m = p["metadata"]
    assert config["metadata"] == {"name": "web", "namespace": "default", "uid": m["uid"],
                                  "attempt": 2}
    assert config["hostname"] == "web"
    assert config["log_directory"] == f"/data/agent/pod-logs/default_web_{m['uid']}"
    assert config["labels"]["io.kubernetes.pod.uid"] == m["uid"]
    assert config["dns_config"] == {
        "servers": ["10.43.0.10"],
        "searches": ["default.svc.cluster.local", "svc.cluster.local", "cluster.local",
                     "corp.example"],
        "options": ["ndots:5"]}
    assert config["port_mappings"] == [
        {"protocol": "TCP", "container_port": 80},
        {"protocol": "UDP", "container_port": 53, "host_port": 5353}]
    linux = config["linux"]
    assert linux["cgroup_parent"] == f"/kubepods/besteffort/pod{m['uid']}"
    assert linux["security_context"]["namespace_options"] == \
        {"network": "POD", "pid": "CONTAINER", "ipc": "POD"}
    # the shape CRI accepts
    parsed = messages.parse(config, pb.PodSandboxConfig)
    assert parsed.linux.security_context.namespace_options.pid == pb.CONTAINER


@pytest.mark.parametrize("resources, parent", [
    ({"requests": {"cpu": "100m", "memory": "64Mi"},
      "limits": {"cpu": "100m", "memory": "64Mi"}}, "/kubepods/pod"),
    ({"requests": {"cpu": "100m"}}, "/kubepods/burstable/pod"),
    ({}, "/kubepods/besteffort/pod"),
])
def test_cgroup_parent_follows_the_qos_class(resources, parent):
    p = pod(containers=[container(resources=resources)])
    p["status"].pop("qosClass")
    assert sandboxes.pod_cgroup_parent(SETTINGS, p) == parent + p["metadata"]["uid"]


def test_host_network_pods_keep_the_node_hostname_and_dns():
    p = pod(hostNetwork=True, hostPID=True)
    config = sandboxes.sandbox_config(p, 0, SETTINGS, HOST_RESOLV)
    assert config["hostname"] == ""
    assert config["dns_config"] == {"servers": ["192.0.2.53"], "searches": ["corp.example"],
                                    "options": ["edns0"]}
    assert config["linux"]["security_context"]["namespace_options"] == \
        {"network": "NODE", "pid": "NODE", "ipc": "POD"}


def test_dns_policy_none_and_dns_config_merge():
    p = pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.2.3.4"], "searches": ["a.b"],
                                         "options": [{"name": "ndots", "value": "2"}]})
    assert sandboxes.dns_config(p, SETTINGS, HOST_RESOLV) == {
        "servers": ["1.2.3.4"], "searches": ["a.b"], "options": ["ndots:2"]}
    p = pod(dnsConfig={"options": [{"name": "ndots", "value": "1"}, {"name": "rotate"}]})
    assert sandboxes.dns_config(p, SETTINGS, "")["options"] == ["ndots:1", "rotate"]


def test_hostname_is_truncated_and_subdomain_gives_a_domain():
    p = pod(name="x" * 70 + "-y", subdomain="svc")
    hostname, domain = sandboxes.hostname_and_domain(p, "cluster.local")
    assert hostname == "x" * 63 and domain == "svc.default.svc.cluster.local"
    hosts = sandboxes.hosts_file(p, ["10.42.0.9"], cluster_domain="cluster.local")
    assert f"10.42.0.9\t{hostname}.svc.default.svc.cluster.local\t{hostname}" in hosts


def test_expand_follows_upstream_syntax():
    env = {"A": "1", "B": "two"}
    assert ctr.expand("$(A)-$(B)", env) == "1-two"
    assert ctr.expand("$$(A)", env) == "$(A)"
    assert ctr.expand("$(MISSING)", env) == "$(MISSING)"
    assert ctr.expand("$(A", env) == "$(A"
    assert ctr.expand("a$b$", env) == "a$b$"


async def test_environment_order_fields_and_expansion():
    p = pod(containers=[container(env=[
        {"name": "GREETING", "value": "hello"},
        {"name": "MSG", "value": "$(GREETING) from $(POD)"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                           "divisor": "1Mi"}}},
    ])])
    env = await ctr.environment(p, p["spec"]["containers"][0], source=ctr.NoConfigSource(),
                                pod_ips=["10.42.0.3"], host_ips=["192.0.2.1"],
                                allocatable={"memory": parse_quantity("2Gi")})
    # MSG is expanded with what was defined before it, as upstream
    assert env == {"GREETING": "hello", "MSG": "hello from $(POD)", "POD": "web",
                   "IP": "10.42.0.3", "MEM": "2048"}


async def test_missing_config_map_key_is_a_config_error():
    class Source(ctr.NoConfigSource):
        async def config_map(self, namespace, name):
            return {"data": {"present": "yes"}}

    c = container(env=[{"name": "X", "valueFrom": {"configMapKeyRef": {
        "name": "cfg", "key": "absent"}}}])
    with pytest.raises(ctr.ContainerConfigError,
                       match="couldn't find key absent in ConfigMap default/cfg"):
        await ctr.environment(pod(containers=[c]), c, source=Source(), pod_ips=[],
                              host_ips=[], allocatable={})


def test_container_config_resources_and_security():
    c = container(command=["sh", "-c"], args=["echo $(X)"],
                  resources={"requests": {"cpu": "250m", "memory": "64Mi"},
                             "limits": {"cpu": "500m", "memory": "128Mi"}},
                  securityContext={"capabilities": {"add": ["NET_ADMIN"]},
                                   "allowPrivilegeEscalation": False, "runAsUser": 1000})
    p = pod(containers=[c])
    p["status"]["qosClass"] = "Burstable"
    config = ctr.container_config(
        p, c, container_type="regular", restart_count=3, image="sha256:abc", mounts=[],
        env={"X": "1"}, namespaces=sandboxes.namespace_options(p), supplemental_groups=[],
        seccomp={"profile_type": "Unconfined"}, memory_capacity=1 << 30)
    assert config["metadata"] == {"name": "app", "attempt": 3}
    assert config["log_path"] == "app/3.log"
    assert config["args"] == ["echo 1"]
    assert config["annotations"]["io.kubernetes.container.restartCount"] == "3"
    resources = config["linux"]["resources"]
    assert resources["cpu_shares"] == 256 and resources["cpu_quota"] == 50000
    assert resources["cpu_period"] == 100000 and resources["memory_limit_in_bytes"] == 128 << 20
    assert resources["oom_score_adj"] == 1000 - (1000 * (64 << 20)) // (1 << 30)
    sc = config["linux"]["security_context"]
    assert sc["capabilities"]["add_capabilities"] == ["NET_ADMIN"]
    assert sc["no_new_privs"] is True and sc["run_as_user"] == {"value": 1000}
    assert "/proc/kcore" in sc["masked_paths"]
    messages.parse(config, pb.ContainerConfig)


def test_shares_and_quota_edges():
    assert ctr.milli_cpu_to_shares(0) == 2 and ctr.milli_cpu_to_shares(1) == 2
    assert ctr.milli_cpu_to_shares(10_000_000) == 262144
    assert ctr.milli_cpu_to_quota(1) == 1000 and ctr.milli_cpu_to_quota(0) == 0


def test_run_as_non_root_refuses_root_images():
    c = container(securityContext={"runAsNonRoot": True})
    with pytest.raises(ctr.ContainerConfigError, match="image will run as root"):
        ctr.check_run_as_non_root(pod(containers=[c]), c, None, "")
    ctr.check_run_as_non_root(pod(containers=[c]), c, 1000, "")
