"""``kubectl apply --server-side`` as users see it: create, unchanged re-apply,
conflicts between managers, ``--force-conflicts``, pruning of dropped fields and
upstream-shaped ``managedFields``."""
import json

import yaml

DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web{extra_label}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: {image}
        ports: [{{containerPort: 80}}]
"""


def manifest(replicas=2, image="nginx:1.25", tier=None):
    return DEPLOY.format(replicas=replicas, image=image,
                         extra_label=f", tier: {tier}" if tier else "")


def ssa(cluster, ns, text, *args, check=True):
    return cluster.kubectl("apply", "--server-side", "-n", ns, "-f", "-", *args,
                           input=text, check=check)


def get(cluster, ns, *args):
    out = cluster.kubectl("get", "deployment", "web", "-n", ns, "-o", "json", *args).stdout
    return json.loads(out)


def entries(obj):
    return {(e["manager"], e["operation"]): e for e in obj["metadata"]["managedFields"]}


def test_apply_creates_then_reapply_changes_nothing(cluster, ns):
    r = ssa(cluster, ns, manifest())
    assert r.stdout.strip() == "deployment.apps/web serverside-applied"
    first = get(cluster, ns, "--show-managed-fields")
    assert first["spec"]["replicas"] == 2
    assert first["spec"]["strategy"]["type"] == "RollingUpdate"  # defaults still apply
    assert list(entries(first)) == [("kubectl", "Apply")]

    r = ssa(cluster, ns, manifest())
    assert r.stdout.strip() == "deployment.apps/web serverside-applied"
    second = get(cluster, ns, "--show-managed-fields")
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert second["metadata"]["managedFields"] == first["metadata"]["managedFields"]


def test_conflicting_apply_fails_with_kubectls_conflict_text(cluster, ns):
    ssa(cluster, ns, manifest(replicas=2))
    r = ssa(cluster, ns, manifest(replicas=3), "--field-manager=other", check=False)
    assert r.returncode == 1
    assert ('error: Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas'
            in r.stderr)
    assert "re-run the apply\n  command with the `--force-conflicts` flag" in r.stderr
    assert get(cluster, ns)["spec"]["replicas"] == 2


def test_several_conflicts_are_listed_per_manager(cluster, ns):
    ssa(cluster, ns, manifest(replicas=2))
    r = ssa(cluster, ns, manifest(replicas=3, image="nginx:1.26"), "--field-manager=other",
            check=False)
    assert r.returncode == 1
    assert ('Apply failed with 2 conflicts: conflicts with "kubectl":\n'
            '- .spec.replicas\n'
            '- .spec.template.spec.containers[name="web"].image') in r.stderr


def test_same_value_from_another_manager_is_shared_not_a_conflict(cluster, ns):
    ssa(cluster, ns, manifest(replicas=2))
    ssa(cluster, ns, manifest(replicas=2), "--field-manager=other")
    owners = entries(get(cluster, ns, "--show-managed-fields"))
    assert set(owners) == {("kubectl", "Apply"), ("other", "Apply")}
    for e in owners.values():
        assert "f:replicas" in e["fieldsV1"]["f:spec"]


def test_force_conflicts_takes_the_field_over(cluster, ns):
    ssa(cluster, ns, manifest(replicas=2))
    r = ssa(cluster, ns, manifest(replicas=3), "--field-manager=other", "--force-conflicts")
    assert r.returncode == 0
    d = get(cluster, ns, "--show-managed-fields")
    assert d["spec"]["replicas"] == 3
    owners = entries(d)
    assert "f:replicas" in owners[("other", "Apply")]["fieldsV1"]["f:spec"]
    assert "f:replicas" not in owners[("kubectl", "Apply")]["fieldsV1"]["f:spec"]
    # kubectl no longer owns replicas, so its own re-apply now conflicts with "other".
    r = ssa(cluster, ns, manifest(replicas=2), check=False)
    assert 'conflict with "other": .spec.replicas' in r.stderr


def test_field_dropped_from_the_manifest_is_removed(cluster, ns):
    ssa(cluster, ns, manifest(tier="frontend"))
    assert get(cluster, ns)["metadata"]["labels"] == {"app": "web", "tier": "frontend"}
    ssa(cluster, ns, manifest())
    assert get(cluster, ns)["metadata"]["labels"] == {"app": "web"}


def test_field_dropped_but_owned_by_another_manager_stays(cluster, ns):
    ssa(cluster, ns, manifest(tier="frontend"))
    ssa(cluster, ns, manifest(tier="frontend"), "--field-manager=other")
    ssa(cluster, ns, manifest())
    assert get(cluster, ns)["metadata"]["labels"] == {"app": "web", "tier": "frontend"}


def test_show_managed_fields_is_upstream_shaped(cluster, ns):
    ssa(cluster, ns, manifest())
    out = cluster.kubectl("get", "deployment", "web", "-n", ns, "-o", "yaml",
                          "--show-managed-fields").stdout
    (entry,) = yaml.safe_load(out)["metadata"]["managedFields"]
    assert set(entry) == {"apiVersion", "fieldsType", "fieldsV1", "manager", "operation",
                          "time"}
    assert (entry["manager"], entry["operation"], entry["apiVersion"],
            entry["fieldsType"]) == ("kubectl", "Apply", "apps/v1", "FieldsV1")
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {'k:{"name":"web"}': {
                    ".": {},
                    "f:image": {},
                    "f:name": {},
                    "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {
                        ".": {}, "f:containerPort": {}}},
                }}},
            },
        },
    }
    plain = yaml.safe_load(cluster.kubectl("get", "deployment", "web", "-n", ns, "-o",
                                           "yaml").stdout)
    assert "managedFields" not in plain["metadata"]  # kubectl hides them by default


def test_apply_with_an_unknown_field_is_refused(cluster, ns):
    bad = manifest().replace("replicas: 2", "replicas: 2\n  replicaz: 3")
    r = ssa(cluster, ns, bad, "--validate=false", check=False)
    assert r.returncode == 1
    assert (f"failed to create typed patch object ({ns}/web; apps/v1, Kind=Deployment): "
            ".spec.replicaz: field not declared in schema") in r.stderr


def test_apply_of_a_configmap_merges_data_keys_per_manager(cluster, ns):
    cm = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\n"
          "data: {{{body}}}\n")
    cluster.kubectl("apply", "--server-side", "-n", ns, "-f", "-",
                    input=cm.format(body="a: '1'"))
    cluster.kubectl("apply", "--server-side", "-n", ns, "-f", "-", "--field-manager=two",
                    input=cm.format(body="b: '2'"))
    data = json.loads(cluster.kubectl("get", "cm", "settings", "-n", ns, "-o",
                                      "json").stdout)["data"]
    assert data == {"a": "1", "b": "2"}
    cluster.kubectl("apply", "--server-side", "-n", ns, "-f", "-", "--field-manager=two",
                    input=cm.format(body=""))
    data = json.loads(cluster.kubectl("get", "cm", "settings", "-n", ns, "-o",
                                      "json").stdout).get("data")
    assert data == {"a": "1"}


GADGETS = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.apply.example.org
spec:
  group: apply.example.org
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              parts:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string}
                    count: {type: integer}
"""


def gadget(**spec):
    return json.dumps({"apiVersion": "apply.example.org/v1", "kind": "Gadget",
                       "metadata": {"name": "g"}, "spec": spec})


def wait_served(cluster, ns, deadline=20.0):
    import time
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if cluster.kubectl("get", "gadgets", "-n", ns, check=False).returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError("gadgets are not served")


def test_custom_resources_merge_list_items_by_their_schema_keys(cluster, ns):
    cluster.kubectl("apply", "--server-side", "-f", "-", input=GADGETS)
    wait_served(cluster, ns)
    ssa(cluster, ns, gadget(size=1, parts=[{"name": "a", "count": 1}]))
    ssa(cluster, ns, gadget(parts=[{"name": "b", "count": 2}]), "--field-manager=other")
    g = json.loads(cluster.kubectl("get", "gadget", "g", "-n", ns, "-o", "json",
                                   "--show-managed-fields").stdout)
    assert g["spec"] == {"size": 1, "parts": [{"name": "a", "count": 1},
                                              {"name": "b", "count": 2}]}
    other = [e for e in g["metadata"]["managedFields"] if e["manager"] == "other"][0]
    assert other["fieldsV1"] == {"f:spec": {"f:parts": {'k:{"name":"b"}': {
        ".": {}, "f:count": {}, "f:name": {}}}}}
    r = ssa(cluster, ns, gadget(parts=[{"name": "a", "count": 5}]), "--field-manager=other",
            check=False)
    assert ('Apply failed with 1 conflict: conflict with "kubectl": '
            '.spec.parts[name="a"].count') in r.stderr
    ssa(cluster, ns, gadget(size=1))  # kubectl drops part "a"
    g = json.loads(cluster.kubectl("get", "gadget", "g", "-n", ns, "-o", "json").stdout)
    assert g["spec"] == {"size": 1, "parts": [{"name": "b", "count": 2}]}
