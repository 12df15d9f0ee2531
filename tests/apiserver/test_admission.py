"""The admission chain through kubectl: ResourceQuota, LimitRanger, PodSecurity,
ServiceAccount, Priority, NamespaceLifecycle, and the messages users see."""
import json

import yaml

from security_helpers import ensure_default_sa, wait_for


def pod(name: str, *, requests=None, limits=None, **spec) -> str:
    resources = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    container = {"name": name, "image": "nginx"}
    if resources:
        container["resources"] = resources
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                           "spec": dict({"containers": [container]}, **spec)})


def create(cluster, ns, manifest, check=True):
    return cluster.kubectl("create", "-n", ns, "-f", "-", input=manifest, check=check)


def test_resource_quota_messages_and_usage(cluster, ns):
    ensure_default_sa(cluster, ns)
    cluster.kubectl("create", "quota", "compute", "--hard=pods=2,requests.cpu=1,limits.memory=1Gi",
                    "-n", ns)
    r = create(cluster, ns, pod("bare"), check=False)
    assert ('Error from server (Forbidden): error when creating "STDIN": pods "bare" is '
            'forbidden: failed quota: compute: must specify limits.memory for: bare; '
            'requests.cpu for: bare') in r.stderr
    create(cluster, ns, pod("a", requests={"cpu": "600m"}, limits={"memory": "512Mi"}))
    r = create(cluster, ns, pod("b", requests={"cpu": "600m"}, limits={"memory": "256Mi"}),
               check=False)
    assert ('pods "b" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, '
            'used: requests.cpu=600m, limited: requests.cpu=1') in r.stderr
    create(cluster, ns, pod("c", requests={"cpu": "100m"}, limits={"memory": "256Mi"}))
    r = create(cluster, ns, pod("d", requests={"cpu": "100m"}, limits={"memory": "128Mi"}),
               check=False)
    assert ('exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2'
            in r.stderr)

    def described():
        out = cluster.kubectl("describe", "quota", "compute", "-n", ns).stdout
        return out if "requests.cpu   700m" in out else None
    out = wait_for(described)
    assert "limits.memory  768Mi  1Gi" in out and "pods           2      2" in out


def test_object_count_quota(cluster, ns):
    cluster.kubectl("create", "quota", "objects", "--hard=configmaps=1,count/secrets=0",
                    "-n", ns)
    cluster.kubectl("create", "configmap", "one", "-n", ns)
    r = cluster.kubectl("create", "configmap", "two", "-n", ns, check=False)
    assert ('configmaps "two" is forbidden: exceeded quota: objects, requested: configmaps=1, '
            'used: configmaps=1, limited: configmaps=1') in r.stderr
    r = cluster.kubectl("create", "secret", "generic", "s", "-n", ns, check=False)
    assert ('exceeded quota: objects, requested: count/secrets=1, used: count/secrets=0, '
            'limited: count/secrets=0') in r.stderr


def test_limit_range_defaults_and_bounds(cluster, ns):
    ensure_default_sa(cluster, ns)
    create(cluster, ns, yaml.safe_dump({
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits"},
        "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"},
                             "defaultRequest": {"cpu": "200m"}, "max": {"cpu": "1"},
                             "min": {"cpu": "100m"}, "maxLimitRequestRatio": {"cpu": "4"}}]}}))
    create(cluster, ns, pod("defaulted"))
    got = json.loads(cluster.kubectl("get", "pod", "defaulted", "-n", ns, "-o", "json").stdout)
    assert got["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "500m"},
                                                         "requests": {"cpu": "200m"}}
    assert got["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu request for container defaulted; cpu limit for container "
        "defaulted")
    r = create(cluster, ns, pod("big", requests={"cpu": "500m"}, limits={"cpu": "2"}),
               check=False)
    assert 'pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2' \
        in r.stderr
    r = create(cluster, ns, pod("tiny", requests={"cpu": "50m"}, limits={"cpu": "50m"}),
               check=False)
    assert "minimum cpu usage per Container is 100m, but request is 50m" in r.stderr
    r = create(cluster, ns, pod("skewed", requests={"cpu": "100m"}, limits={"cpu": "800m"}),
               check=False)
    assert ("cpu max limit to request ratio per Container is 4, but provided ratio is "
            "8.000000") in r.stderr


def test_pod_security_levels(cluster, ns):
    ensure_default_sa(cluster, ns)
    cluster.kubectl("label", "ns", ns, "pod-security.kubernetes.io/enforce=restricted")
    r = create(cluster, ns, pod("plain"), check=False)
    assert ('pods "plain" is forbidden: violates PodSecurity "restricted:latest": '
            'allowPrivilegeEscalation != false (container "plain" must set '
            'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
            '(container "plain" must set securityContext.capabilities.drop=["ALL"]), '
            'runAsNonRoot != true (pod or container "plain" must set '
            'securityContext.runAsNonRoot=true), seccompProfile (pod or container "plain" '
            'must set securityContext.seccompProfile.type to "RuntimeDefault" or '
            '"Localhost")') in r.stderr
    hardened = yaml.safe_load(pod("hardened"))
    hardened["spec"]["securityContext"] = {"runAsNonRoot": True,
                                           "seccompProfile": {"type": "RuntimeDefault"}}
    hardened["spec"]["containers"][0]["securityContext"] = {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    create(cluster, ns, yaml.safe_dump(hardened))
    cluster.kubectl("label", "ns", ns, "--overwrite",
                    "pod-security.kubernetes.io/enforce=baseline",
                    "pod-security.kubernetes.io/warn=restricted")
    r = create(cluster, ns, pod("host", hostNetwork=True), check=False)
    assert ('violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)'
            in r.stderr)
    r = create(cluster, ns, pod("warned"))
    assert 'Warning: would violate PodSecurity "restricted:latest"' in r.stderr
    r = cluster.kubectl("create", "deployment", "web", "--image=nginx", "-n", ns)
    assert 'Warning: would violate PodSecurity "restricted:latest"' in r.stderr
    r = cluster.kubectl("label", "ns", ns, "--overwrite",
                        "pod-security.kubernetes.io/enforce=restricted")
    assert (f'Warning: existing pods in namespace "{ns}" violate the new PodSecurity enforce '
            f'level "restricted:latest"') in r.stderr
    assert "Warning: warned: allowPrivilegeEscalation != false" in r.stderr


def test_service_account_admission(cluster, ns):
    r = create(cluster, ns, pod("early", serviceAccountName="nobody"), check=False)
    assert (f'pods "early" is forbidden: error looking up service account {ns}/nobody: '
            f'serviceaccount "nobody" not found') in r.stderr
    ensure_default_sa(cluster, ns)
    create(cluster, ns, pod("mounted"))
    spec = json.loads(cluster.kubectl("get", "pod", "mounted", "-n", ns, "-o",
                                      "json").stdout)["spec"]
    assert spec["serviceAccountName"] == "default"
    volume = spec["volumes"][0]
    assert volume["name"].startswith("kube-api-access-")
    sources = volume["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    assert {"name": volume["name"], "readOnly": True,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"} in \
        spec["containers"][0]["volumeMounts"]
    create(cluster, ns, pod("unmounted", automountServiceAccountToken=False))
    spec = json.loads(cluster.kubectl("get", "pod", "unmounted", "-n", ns, "-o",
                                      "json").stdout)["spec"]
    assert "volumes" not in spec


def test_priority_classes(cluster, ns):
    ensure_default_sa(cluster, ns)
    names = cluster.kubectl("get", "priorityclasses", "-o", "name").stdout.split()
    assert "priorityclass.scheduling.k8s.io/system-node-critical" in names
    create(cluster, ns, pod("critical", priorityClassName="system-cluster-critical"))
    spec = json.loads(cluster.kubectl("get", "pod", "critical", "-n", ns, "-o",
                                      "json").stdout)["spec"]
    assert spec["priority"] == 2000000000
    assert spec["preemptionPolicy"] == "PreemptLowerPriority"
    r = create(cluster, ns, pod("lost", priorityClassName="nope"), check=False)
    assert 'pods "lost" is forbidden: no PriorityClass with name nope was found' in r.stderr


def test_namespace_lifecycle(cluster, ns):
    r = cluster.kubectl("delete", "namespace", "kube-system", check=False)
    assert ('namespaces "kube-system" is forbidden: this namespace may not be deleted'
            in r.stderr)
    r = cluster.kubectl("create", "configmap", "x", "-n", "missing-" + ns, check=False)
    assert f'namespaces "missing-{ns}" not found' in r.stderr
