"""CustomResourceDefinitions as a kubectl user meets them."""
import json
import time

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd],
          categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, default: 3, description: how big}
              replicas: {type: integer}
              color: {type: string, enum: [red, blue]}
          status:
            type: object
            properties:
              replicas: {type: integer}
"""


def wait_established(cluster, name, deadline=20.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        r = cluster.kubectl("get", "crd", name, "-o", "json", check=False)
        if r.returncode == 0:
            conds = {c["type"]: c["status"] for c in
                     json.loads(r.stdout).get("status", {}).get("conditions", [])}
            if conds.get("Established") == "True":
                return
        time.sleep(0.1)
    raise AssertionError(f"CRD {name} not Established in {deadline} s")


def widget(name, **spec):
    return json.dumps({"apiVersion": "example.com/v1", "kind": "Widget",
                       "metadata": {"name": name}, "spec": spec})


def test_crd_lifecycle(cluster, ns):
    cluster.kubectl("apply", "-f", "-", input=CRD)
    wait_established(cluster, "widgets.example.com")
    try:
        out = cluster.kubectl("apply", "-n", ns, "-f", "-",
                              input=widget("w1", color="red", replicas=1)).stdout
        assert out.strip() == "widget.example.com/w1 created"
        # Printer columns and the schema default.
        table = cluster.kubectl("get", "wd", "-n", ns).stdout.splitlines()
        assert table[0].split() == ["NAME", "SIZE", "AGE"]
        assert table[1].split()[:2] == ["w1", "3"]
        # Scale subresource.
        cluster.kubectl("scale", "widget", "w1", "-n", ns, "--replicas=4")
        got = json.loads(cluster.kubectl("get", "widget", "w1", "-n", ns, "-o",
                                         "json").stdout)
        assert got["spec"]["replicas"] == 4 and got["metadata"]["generation"] == 2
        # Status is its own subresource: the main resource ignores status writes.
        cluster.kubectl("patch", "widget", "w1", "-n", ns, "--type=merge",
                        "-p", '{"status":{"replicas":9}}')
        got = json.loads(cluster.kubectl("get", "widget", "w1", "-n", ns, "-o",
                                         "json").stdout)
        assert "status" not in got
        cluster.kubectl("patch", "widget", "w1", "-n", ns, "--type=merge",
                        "--subresource=status", "-p", '{"status":{"replicas":9}}')
        got = json.loads(cluster.kubectl("get", "widget", "w1", "-n", ns, "-o",
                                         "json").stdout)
        assert got["status"] == {"replicas": 9}
        # Schema validation and strict unknown fields.
        r = cluster.kubectl("apply", "-n", ns, "-f", "-", check=False,
                            input=widget("w2", color="green", size="x"))
        assert 'The Widget "w2" is invalid' in r.stderr
        assert 'spec.color: Unsupported value: "green": supported values: "red", "blue"' \
            in r.stderr
        assert "spec.size in body must be of type integer" in r.stderr
        r = cluster.kubectl("apply", "-n", ns, "-f", "-", check=False,
                            input=widget("w3", bogus=1))
        assert 'unknown field "spec.bogus"' in r.stderr
        # Categories and explain.
        assert "widget.example.com/w1" in cluster.kubectl("get", "all", "-n", ns, "-o",
                                                          "name").stdout
        assert "how big" in cluster.kubectl("explain", "widget.spec.size").stdout
    finally:
        cluster.kubectl("delete", "crd", "widgets.example.com", "--timeout=30s")
    r = cluster.kubectl("get", "widgets", "-n", ns, check=False)
    assert r.returncode == 1
    # kubectl's discovery cache may still know the resource: then the server says 404.
    assert ('the server doesn\'t have a resource type "widgets"' in r.stderr or
            'Unable to list "example.com/v1, Resource=widgets": the server could not find '
            'the requested resource' in r.stderr)
