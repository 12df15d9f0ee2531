"""A kubelet's identity (system:node:<name>): the Node authorizer lets it read only what
its own pods use, and NodeRestriction lets it write only its own objects."""
import uuid

import pytest
import yaml

from security_helpers import cert_kubeconfig, ensure_default_sa, kubectl_as


@pytest.fixture
def node(cluster):
    name = "n-" + uuid.uuid4().hex[:6]
    kubelet = cert_kubeconfig(cluster, f"system:node:{name}", ["system:nodes"])
    kubectl_as(cluster, kubelet, "create", "-f", "-", input=yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}))
    return name, kubelet


def test_node_reads_only_what_its_pods_reference(cluster, ns, node):
    name, kubelet = node
    ensure_default_sa(cluster, ns)
    for secret in ("used", "unused"):
        cluster.kubectl("create", "secret", "generic", secret, "--from-literal=k=v", "-n", ns)
    cluster.kubectl("create", "-n", ns, "-f", "-", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {"nodeName": name, "containers": [{"name": "c", "image": "nginx"}],
                 "volumes": [{"name": "s", "secret": {"secretName": "used"}}]}}))
    assert kubectl_as(cluster, kubelet, "get", "secret", "used", "-n", ns).returncode == 0
    r = kubectl_as(cluster, kubelet, "get", "secret", "unused", "-n", ns, check=False)
    assert (f'secrets "unused" is forbidden: User "system:node:{name}" cannot get resource '
            f'"secrets" in API group "" in the namespace "{ns}": no relationship found '
            f"between node '{name}' and this object") in r.stderr
    r = kubectl_as(cluster, kubelet, "get", "secrets", "-n", ns, check=False)
    assert "cannot list resource" in r.stderr
    assert kubectl_as(cluster, kubelet, "get", "pods", "-A",
                      f"--field-selector=spec.nodeName={name}").returncode == 0
    r = kubectl_as(cluster, kubelet, "create", "token", "default", "-n", ns,
                   "--bound-object-kind=Pod", "--bound-object-name=web", check=False)
    assert ('serviceaccounts "default" is forbidden: node requested token with a pod binding '
            'without a uid') in r.stderr
    uid = cluster.kubectl("get", "pod", "web", "-n", ns, "-o",
                          "jsonpath={.metadata.uid}").stdout
    assert kubectl_as(cluster, kubelet, "create", "token", "default", "-n", ns,
                      "--bound-object-kind=Pod", "--bound-object-name=web",
                      f"--bound-object-uid={uid}").stdout.count(".") == 2


def test_node_writes_only_its_own_objects(cluster, ns, node):
    name, kubelet = node
    other = "n-" + uuid.uuid4().hex[:6]
    cluster.kubectl("create", "-f", "-", input=yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": other}}))
    r = kubectl_as(cluster, kubelet, "label", "node", other, "x=y", check=False)
    assert "cannot" in r.stderr or "forbidden" in r.stderr
    r = kubectl_as(cluster, kubelet, "label", "node", name,
                   "node-restriction.kubernetes.io/pool=a", check=False)
    assert (f'nodes "{name}" is forbidden: is not allowed to modify labels: '
            f'node-restriction.kubernetes.io/pool') in r.stderr
    assert kubectl_as(cluster, kubelet, "label", "node", name, "topology.kubernetes.io/zone=a"
                      ).returncode == 0
    taints = kubectl_as(cluster, kubelet, "taint", "node", name, "k=v:NoSchedule", check=False)
    assert f'node "{name}" is not allowed to modify taints' in taints.stderr
    ensure_default_sa(cluster, ns)
    r = kubectl_as(cluster, kubelet, "run", "sneaky", "--image=nginx", "-n", ns, check=False)
    assert ('pod does not have "kubernetes.io/config.mirror" annotation, node '
            f'"{name}" can only create mirror pods') in r.stderr
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": name, "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": name}}
    kubectl_as(cluster, kubelet, "create", "-f", "-", input=yaml.safe_dump(lease))
    lease["metadata"]["name"] = other
    r = kubectl_as(cluster, kubelet, "create", "-f", "-", input=yaml.safe_dump(lease),
                   check=False)
    assert "can only access node lease with the same name as the requesting node" in r.stderr
