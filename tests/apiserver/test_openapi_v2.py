"""OpenAPI v2 (/openapi/v2): what kubectl validates a ``kind: List`` with, client-side.

kubectl asks for v2 only as gnostic protobuf; without it, ``kubectl apply|replace|
create -f`` of a List (``kubectl get ... -o json | kubectl replace -f -``) fails with
"failed to download openapi"."""
import json
import os
import ssl
import urllib.request
import uuid

import yaml

from security_helpers import cluster_ca, wait_for

PROTO = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


def fetch(cluster, accept: str) -> tuple[int, str, bytes]:
    tls = os.path.join(cluster.data_dir, "server", "tls")
    ctx = ssl.create_default_context(cadata=cluster_ca(cluster).cert_pem.decode())
    ctx.load_cert_chain(os.path.join(tls, "client-admin.crt"),
                        os.path.join(tls, "client-admin.key"))
    req = urllib.request.Request(cluster.url + "/openapi/v2", headers={"Accept": accept})
    with urllib.request.urlopen(req, context=ctx, timeout=60) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read()


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, pos


def fields(buf: bytes) -> list[tuple[int, object]]:
    """(field number, value) of a protobuf message: bytes for length-delimited, int
    for varints (all gnostic Document needs)."""
    out, pos = [], 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        num, wire = tag >> 3, tag & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            val, pos = buf[pos:pos + size], pos + size
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        out.append((num, val))
    return out


def one(buf: bytes, num: int):
    return next(v for n, v in fields(buf) if n == num)


def test_v2_served_as_gnostic_protobuf(cluster):
    status, ctype, body = fetch(cluster, PROTO)
    assert status == 200
    assert ctype == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    assert one(body, 1) == b"2.0"  # Document.swagger
    definitions = {}
    for _, named in [f for f in fields(one(body, 9)) if f[0] == 1]:  # NamedSchema
        definitions[one(named, 1).decode()] = one(named, 2)
    pod = definitions["io.k8s.api.core.v1.Pod"]
    extensions = {one(na, 1).decode(): yaml.safe_load(one(one(na, 2), 2).decode())
                  for n, na in fields(pod) if n == 31}  # Schema.vendor_extension
    assert extensions["x-kubernetes-group-version-kind"] == [
        {"group": "", "kind": "Pod", "version": "v1"}]
    props = {one(p, 1).decode() for n, p in fields(one(pod, 25)) if n == 1}
    assert {"apiVersion", "kind", "metadata", "spec", "status"} <= props
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in definitions


def test_v2_served_as_json_on_request(cluster):
    status, ctype, body = fetch(cluster, "application/json")
    assert status == 200 and ctype.startswith("application/json")
    doc = json.loads(body)
    assert doc["swagger"] == "2.0"
    deploy = doc["definitions"]["io.k8s.api.apps.v1.Deployment"]
    assert deploy["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}]
    assert deploy["properties"]["metadata"]["$ref"] == \
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    intorstr = doc["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert intorstr["type"] == "string" and intorstr["format"] == "int-or-string"


LIST = """apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: listed-cm}
  data: {x: "1"}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: listed-deploy}
  spec:
    replicas: 1
    selector: {matchLabels: {app: listed}}
    template:
      metadata: {labels: {app: listed}}
      spec:
        containers:
        - name: c
          image: nginx
          ports: [{containerPort: 80}]
          resources: {limits: {cpu: 1, memory: 1Gi}}
"""


def test_kubectl_apply_and_replace_a_list_with_validation(cluster, ns):
    out = cluster.kubectl("apply", "-n", ns, "-f", "-", input=LIST).stdout
    assert "configmap/listed-cm created" in out and "deployment.apps/listed-deploy created" \
        in out
    out = cluster.kubectl("replace", "-n", ns, "-f", "-",
                          input=LIST.replace('x: "1"', 'x: "2"')).stdout
    assert "configmap/listed-cm replaced" in out
    got = json.loads(cluster.kubectl("get", "cm", "listed-cm", "-n", ns, "-o", "json").stdout)
    assert got["data"] == {"x": "2"}
    # The rotation recipe: every object of a kind read back and replaced as one List.
    dump = cluster.kubectl("get", "configmaps,deployments", "-n", ns, "-o", "json").stdout
    assert json.loads(dump)["kind"] == "List"
    out = cluster.kubectl("replace", "-f", "-", input=dump).stdout
    assert "configmap/listed-cm replaced" in out and "deployment.apps/listed-deploy replaced" \
        in out


def test_unknown_field_in_a_list_item_is_refused_client_side(cluster, ns):
    bad = LIST.replace('data: {x: "1"}', 'data: {x: "1"}\n  bogus: 1')
    r = cluster.kubectl("create", "-n", ns, "-f", "-", input=bad, check=False)
    assert r.returncode == 1
    assert 'error validating data: ValidationError(ConfigMap): unknown field "bogus" in ' \
        'io.k8s.api.core.v1.ConfigMap; if you choose to ignore these errors, turn validation ' \
        'off with --validate=false' in r.stderr
    assert cluster.kubectl("get", "cm", "listed-cm", "-n", ns, check=False).returncode != 0
    ok = cluster.kubectl("create", "-n", ns, "--validate=false", "-f", "-", input=bad,
                         check=False)
    assert "configmap/listed-cm created" in ok.stdout


def test_v2_follows_crds(cluster, ns):
    group = f"v2{uuid.uuid4().hex[:6]}.example.com"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"widgets.{group}"},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {
                                      "type": "object", "properties": {"spec": {
                                          "type": "object", "properties": {
                                              "size": {"type": "integer"}}}}}}}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(crd))
    name = ".".join(reversed(group.split("."))) + ".v1.Widget"
    wait_for(lambda: name in json.loads(fetch(cluster, "application/json")[2])["definitions"],
             timeout=30)
    items = [{"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"},
              "spec": {"size": 3}}]
    doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})

    def applied():
        r = cluster.kubectl("apply", "-n", ns, "-f", "-", input=doc, check=False)
        return r if r.returncode == 0 else None
    out = wait_for(applied, timeout=30)
    assert f"widget.{group}/w created" in out.stdout
    items[0]["spec"]["colour"] = "red"
    r = cluster.kubectl("apply", "-n", ns, "-f", "-", check=False, input=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": items}))
    assert r.returncode == 1
    assert f'ValidationError(Widget.spec): unknown field "colour" in {name}.spec' in r.stderr
    cluster.kubectl("delete", "crd", f"widgets.{group}")
