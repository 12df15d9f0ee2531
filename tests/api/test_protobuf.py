"""What kubectl 1.32 sends as protobuf decodes to what it would send as JSON.

The truth is the real kubectl: a small recording HTTP server on 127.0.0.1 answers
/version and plain-JSON discovery, records every POST/PUT body and echoes JSON; each
typed command is run once for real (its body is protobuf) and once with
`--dry-run=client -o json` (the JSON form of the same object, no request made), and
the two must agree after dropping JSON nulls (Go writes unset pointers and zero
timestamps as null; the decoder leaves them out). Hand-built bodies cover the types
kubectl's commands do not reach (timestamps, durations, unknown fields, errors).
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import threading

import pytest
from aiohttp import web

from pyk8s.api import proto_schema
from pyk8s.api import protobuf
from pyk8s.api.protobuf import ProtobufError, decode, encode_supported

KUBECTL = "/usr/bin/kubectl"
PROTOBUF = "application/vnd.kubernetes.protobuf"

needs_kubectl = pytest.mark.skipif(not os.path.exists(KUBECTL), reason="no /usr/bin/kubectl")

# group-version -> [(resource, kind, namespaced, verbs)]
RESOURCES = {
    "v1": [
        ("pods", "Pod", True), ("configmaps", "ConfigMap", True),
        ("secrets", "Secret", True), ("services", "Service", True),
        ("namespaces", "Namespace", False), ("serviceaccounts", "ServiceAccount", True),
        ("resourcequotas", "ResourceQuota", True), ("nodes", "Node", False),
    ],
    "apps/v1": [("deployments", "Deployment", True)],
    "batch/v1": [("jobs", "Job", True), ("cronjobs", "CronJob", True)],
    "networking.k8s.io/v1": [("ingresses", "Ingress", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "scheduling.k8s.io/v1": [("priorityclasses", "PriorityClass", False)],
    "rbac.authorization.k8s.io/v1": [
        ("roles", "Role", True), ("rolebindings", "RoleBinding", True),
        ("clusterroles", "ClusterRole", False),
        ("clusterrolebindings", "ClusterRoleBinding", False),
    ],
    "authorization.k8s.io/v1": [
        ("selfsubjectaccessreviews", "SelfSubjectAccessReview", False),
        ("selfsubjectrulesreviews", "SelfSubjectRulesReview", False),
    ],
    "authentication.k8s.io/v1": [("selfsubjectreviews", "SelfSubjectReview", False)],
    "certificates.k8s.io/v1": [
        ("certificatesigningrequests", "CertificateSigningRequest", False),
    ],
}


class RecordingServer:
    """Answers discovery, records writes, replies with `reply` (or an echo)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.objects: dict[str, dict] = {}   # path -> JSON answered to GET
        self.reply: dict | None = None

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path
        if request.method == "GET":
            return self._get(path)
        body = await request.read()
        self.requests.append({
            "method": request.method, "path": path, "body": body,
            "content_type": request.headers.get("Content-Type", ""),
        })
        return web.json_response(self.reply or {"metadata": {}}, status=201)

    def _get(self, path: str) -> web.Response:
        if path == "/version":
            return web.json_response({
                "major": "1", "minor": "32", "gitVersion": "v1.32.0", "gitCommit": "0",
                "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
                "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64"})
        if path == "/api":
            return web.json_response({"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            groups = [gv.split("/") for gv in RESOURCES if "/" in gv]
            return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                 "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}}
                for g, v in groups]})
        gv = path.removeprefix("/api/").removeprefix("/apis/")
        if gv in RESOURCES:
            resources = [{"name": name, "singularName": kind.lower(),
                          "namespaced": namespaced, "kind": kind,
                          "verbs": ["create", "get", "list", "update", "patch", "delete"]}
                         for name, kind, namespaced in RESOURCES[gv]]
            return web.json_response({"kind": "APIResourceList", "apiVersion": "v1",
                                      "groupVersion": gv, "resources": resources})
        if path in self.objects:
            return web.json_response(self.objects[path])
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "reason": "NotFound", "code": 404}, status=404)


@pytest.fixture(scope="module")
def server():
    rec = RecordingServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    rec.port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(scope="module")
def kubectl(server, tmp_path_factory):
    home = tmp_path_factory.mktemp("kubectl-home")
    config = home / "kubeconfig"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.port}"}}],
        "users": [{"name": "me", "user": {}}],
        "contexts": [{"name": "fake", "context": {
            "cluster": "fake", "user": "me", "namespace": "default"}}],
        "current-context": "fake"}))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "KUBECONFIG": str(config)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([KUBECTL, *args], env=env, cwd=home, capture_output=True,
                              text=True, timeout=30)
    run.home = home
    return run


def without_nulls(value):
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def sent_protobuf(server, kubectl, *args: str, reply: dict | None = None) -> dict:
    """Run kubectl for real; return the decoded body of the one write it made."""
    server.requests.clear()
    server.reply = reply
    result = kubectl(*args)
    assert result.returncode == 0, result.stderr
    writes = [r for r in server.requests if r["method"] in ("POST", "PUT")]
    assert len(writes) == 1, writes
    assert writes[0]["content_type"] == PROTOBUF
    return decode(writes[0]["body"])


TYPED_COMMANDS = {
    "configmap": ["create", "configmap", "cm", "--from-literal=a=b", "--from-literal=empty="],
    "configmap-binary": ["create", "configmap", "bin", "--from-file=blob.bin",
                         "--from-file=text.txt"],
    "secret-generic": ["create", "secret", "generic", "s", "--from-literal=user=admin",
                       "--from-literal=pw=s3cr3t", "--type=Opaque"],
    "secret-docker": ["create", "secret", "docker-registry", "reg", "--docker-server=r.io",
                      "--docker-username=u", "--docker-password=p", "--docker-email=e@x"],
    "deployment": ["create", "deployment", "web", "--image=nginx", "--replicas=3",
                   "--port=8080", "--", "nginx", "-g", "daemon off;"],
    "deployment-zero-replicas": ["create", "deployment", "idle", "--image=busybox",
                                 "--replicas=0"],
    "service-clusterip": ["create", "service", "clusterip", "svc", "--tcp=80:8080",
                          "--tcp=443:https"],
    "service-headless": ["create", "service", "clusterip", "hl", "--clusterip=None"],
    "service-nodeport": ["create", "service", "nodeport", "np", "--tcp=80:80",
                         "--node-port=30080"],
    "service-loadbalancer": ["create", "service", "loadbalancer", "lb", "--tcp=443:8443"],
    "service-externalname": ["create", "service", "externalname", "ext",
                             "--external-name=example.com"],
    "namespace": ["create", "namespace", "team-a"],
    "serviceaccount": ["create", "serviceaccount", "robot"],
    "job": ["create", "job", "once", "--image=busybox", "--", "echo", "hi"],
    "cronjob": ["create", "cronjob", "tick", "--image=busybox", "--schedule=*/5 * * * *",
                "--restart=OnFailure", "--", "date"],
    "role": ["create", "role", "reader", "--verb=get,list", "--resource=pods,deployments.apps",
             "--resource-name=one"],
    "rolebinding": ["create", "rolebinding", "rb", "--clusterrole=view", "--user=alice",
                    "--group=devs", "--serviceaccount=default:robot"],
    "clusterrole": ["create", "clusterrole", "logs", "--verb=get",
                    "--non-resource-url=/logs/*"],
    "clusterrole-aggregate": ["create", "clusterrole", "agg", "--aggregation-rule=team=a"],
    "clusterrolebinding": ["create", "clusterrolebinding", "crb", "--clusterrole=view",
                           "--user=bob"],
    "quota": ["create", "quota", "q", "--hard=cpu=1500m,memory=1Gi,pods=2",
              "--scopes=NotBestEffort"],
    "priorityclass": ["create", "priorityclass", "high", "--value=1000",
                      "--description=important", "--preemption-policy=Never"],
    "priorityclass-zero": ["create", "priorityclass", "zero", "--value=0",
                           "--global-default=true"],
    "pdb-percent": ["create", "poddisruptionbudget", "pdb", "--selector=app=web",
                    "--min-available=50%"],
    "pdb-int": ["create", "poddisruptionbudget", "pdb2", "--selector=app=web",
                "--max-unavailable=1"],
    "ingress": ["create", "ingress", "ing", "--class=nginx",
                "--rule=foo.com/bar*=svc1:8080,tls=cert", "--rule=/=svc2:http",
                "--default-backend=def:80", "--annotation=a=b"],
}


@needs_kubectl
@pytest.mark.parametrize("name", TYPED_COMMANDS)
def test_typed_create_decodes_to_the_json_form(server, kubectl, name):
    (kubectl.home / "blob.bin").write_bytes(bytes(range(256)))
    (kubectl.home / "text.txt").write_text("hello\n")
    args = TYPED_COMMANDS[name]
    cut = args.index("--") if "--" in args else len(args)   # flags go before the command
    dry = kubectl(*args[:cut], "--dry-run=client", "-o", "json", *args[cut:])
    assert dry.returncode == 0, dry.stderr
    expected = json.loads(dry.stdout)

    decoded = sent_protobuf(server, kubectl, *args, reply=expected)

    assert decoded == without_nulls(expected)


@needs_kubectl
def test_zero_pointer_values_survive(server, kubectl):
    decoded = sent_protobuf(server, kubectl, "create", "deployment", "z", "--image=x",
                            "--replicas=0")
    assert decoded["spec"]["replicas"] == 0
    pc = sent_protobuf(server, kubectl, "create", "priorityclass", "p0", "--value=0")
    assert pc["value"] == 0
    assert "globalDefault" not in pc   # a plain bool with omitempty: Go leaves false out


@needs_kubectl
def test_binary_configmap_data_is_base64(server, kubectl):
    (kubectl.home / "blob.bin").write_bytes(bytes(range(256)))
    decoded = sent_protobuf(server, kubectl, "create", "configmap", "b",
                            "--from-file=blob.bin")
    assert base64.b64decode(decoded["binaryData"]["blob.bin"]) == bytes(range(256))


@needs_kubectl
def test_auth_can_i_sends_self_subject_access_review(server, kubectl):
    reply = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
             "metadata": {}, "spec": {}, "status": {"allowed": True}}
    decoded = sent_protobuf(server, kubectl, "auth", "can-i", "get", "deployments.apps",
                            "--subresource=scale", "-n", "kube-system", reply=reply)
    assert decoded == {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "metadata": {},
        "spec": {"resourceAttributes": {"namespace": "kube-system", "verb": "get",
                                        "group": "apps", "resource": "deployments",
                                        "subresource": "scale"}},
        "status": {"allowed": False}}

    decoded = sent_protobuf(server, kubectl, "auth", "can-i", "get", "/healthz",
                            reply=reply)
    assert decoded["spec"] == {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}}


@needs_kubectl
def test_auth_can_i_list_sends_self_subject_rules_review(server, kubectl):
    reply = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
             "metadata": {}, "spec": {}, "status": {
                 "resourceRules": [], "nonResourceRules": [], "incomplete": False}}
    decoded = sent_protobuf(server, kubectl, "auth", "can-i", "--list", "-n", "prod",
                            reply=reply)
    assert decoded == {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
        "metadata": {}, "spec": {"namespace": "prod"}, "status": {"incomplete": False}}


@needs_kubectl
def test_auth_whoami_sends_self_subject_review(server, kubectl):
    reply = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
             "metadata": {}, "status": {"userInfo": {"username": "me"}}}
    decoded = sent_protobuf(server, kubectl, "auth", "whoami", reply=reply)
    assert decoded == {"apiVersion": "authentication.k8s.io/v1",
                       "kind": "SelfSubjectReview", "metadata": {}, "status": {"userInfo": {}}}


@needs_kubectl
def test_create_token_sends_token_request(server, kubectl):
    reply = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "metadata": {"name": "robot"}, "spec": {"audiences": ["api"]},
             "status": {"token": "abc", "expirationTimestamp": "2030-01-01T00:00:00Z"}}
    decoded = sent_protobuf(server, kubectl, "create", "token", "robot", "--duration=1h",
                            "--audience=api", "--audience=vault",
                            "--bound-object-kind=Pod", "--bound-object-name=p1",
                            "--bound-object-uid=u-1", reply=reply)
    assert server.requests[0]["path"] == "/api/v1/namespaces/default/serviceaccounts/robot/token"
    assert decoded == {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "metadata": {},
        "spec": {"audiences": ["api", "vault"], "expirationSeconds": 3600,
                 "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p1",
                                    "uid": "u-1"}},
        "status": {"token": ""}}


@needs_kubectl
def test_certificate_approve_puts_the_csr_with_a_condition(server, kubectl):
    request = base64.b64encode(b"-----BEGIN CERTIFICATE REQUEST-----\n...").decode()
    csr = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
           "metadata": {"name": "node-csr", "uid": "c1", "resourceVersion": "7",
                        "creationTimestamp": "2024-05-06T07:08:09Z"},
           "spec": {"request": request, "signerName": "kubernetes.io/kube-apiserver-client",
                    "usages": ["client auth"], "username": "alice", "groups": ["devs"],
                    "extra": {"scope": ["a", "b"]}, "expirationSeconds": 600},
           "status": {}}
    server.objects["/apis/certificates.k8s.io/v1/certificatesigningrequests/node-csr"] = csr
    decoded = sent_protobuf(server, kubectl, "certificate", "approve", "node-csr", reply=csr)
    assert server.requests[0]["path"].endswith("/certificatesigningrequests/node-csr/approval")
    condition = decoded["status"]["conditions"][0]
    updated = condition.pop("lastUpdateTime")
    assert len(updated) == 20 and updated.endswith("Z")
    assert condition == {"type": "Approved", "status": "True", "reason": "KubectlApprove",
                         "message": "This CSR was approved by kubectl certificate approve."}
    assert decoded["metadata"] == csr["metadata"]
    assert decoded["spec"] == csr["spec"]


# --- hand-built bodies -----------------------------------------------------------------

def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def fld(num: int, value) -> bytes:
    """One field: an int is a varint, bytes/str are length-delimited."""
    if isinstance(value, int):
        return _varint(num << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return b"k8s\x00" + fld(1, fld(1, api_version) + fld(2, kind)) + fld(2, raw) + \
        fld(3, "") + fld(4, "")


def test_lease_microtime_and_zero_pointer():
    spec = (fld(1, "node-1") + fld(2, 0) + fld(3, fld(1, 1700000000) + fld(2, 123456789))
            + fld(5, 4))
    decoded = decode(envelope("coordination.k8s.io/v1", "Lease",
                              fld(1, fld(1, "n1") + fld(8, b"")) + fld(2, spec)))
    assert decoded == {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "n1"},
        "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 0,
                 "acquireTime": "2023-11-14T22:13:20.123456Z", "leaseTransitions": 4}}


def test_time_negative_ints_and_unknown_fields_are_skipped():
    unknown = (fld(900, 5) + fld(901, b"\x01\x02") + _varint(902 << 3 | 1) + b"\0" * 8
               + _varint(903 << 3 | 5) + b"\0" * 4
               + _varint(904 << 3 | 3) + fld(1, 1) + _varint(904 << 3 | 4))
    meta = fld(1, "e") + fld(8, fld(1, 86400)) + unknown + fld(10, -5)
    decoded = decode(envelope("v1", "Namespace", fld(1, meta) + unknown))
    assert decoded["metadata"] == {"name": "e", "creationTimestamp": "1970-01-02T00:00:00Z",
                                   "deletionGracePeriodSeconds": -5}


def test_quantities_int_or_string_and_maps():
    limits = fld(1, "cpu") + fld(2, fld(1, "250m"))
    port = fld(1, "http") + fld(3, 80) + fld(4, fld(1, 1) + fld(3, "web"))
    svc = fld(1, fld(1, "s")) + fld(2, fld(1, port))
    assert decode(envelope("v1", "Service", svc))["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "web"}]
    rq = fld(1, fld(1, "q")) + fld(2, fld(1, limits))
    assert decode(envelope("v1", "ResourceQuota", rq))["spec"] == {"hard": {"cpu": "250m"}}


@pytest.mark.parametrize("nanos,text", [
    (0, "0s"), (7, "7ns"), (1_500, "1.5µs"), (1_500_000, "1.5ms"), (90 * 10**9, "1m30s"),
    (3600 * 10**9, "1h0m0s"), (-(2 * 3600 + 3) * 10**9 - 5 * 10**8, "-2h0m3.5s"),
])
def test_durations_read_as_go_prints_them(nanos, text):
    # No built-in kind of these groups has a metav1.Duration field; the type still decodes.
    assert protobuf._SPECIAL["meta_v1.Duration"](memoryview(fld(1, nanos))) == text


def test_raw_extension_holds_json():
    item = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})
    decoded = decode(envelope("v1", "List", fld(1, b"") + fld(2, fld(1, item))))
    assert decoded["items"] == [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}]


def test_shared_meta_kinds_decode_under_any_group_version():
    body = envelope("apps/v1", "DeleteOptions", fld(1, 0) + fld(4, "Foreground"))
    assert decode(body) == {"apiVersion": "apps/v1", "kind": "DeleteOptions",
                            "gracePeriodSeconds": 0, "propagationPolicy": "Foreground"}


@pytest.mark.parametrize("body", [
    b"",
    b"{\"kind\": \"Pod\"}",
    b"k8s\x00\x0a",                                        # truncated length
    b"k8s\x00" + b"\xff" * 11,                             # endless varint
    envelope("v1", "Nope", b""),                           # unknown kind
    envelope("v1", "", b""),                               # no kind
    envelope("v1", "Pod", fld(1, 7)),                      # metadata as a varint
    envelope("v1", "Pod", fld(1, b"\x0a\x05ab")),          # truncated inside metadata
    envelope("v1", "List", fld(2, fld(1, b"{not json"))),  # bad embedded JSON
    envelope("v1", "ConfigMap", fld(2, fld(1, "k") + fld(2, 5))),  # map value a varint
    b"k8s\x00" + fld(1, fld(1, "v1") + fld(2, "Pod")) + fld(3, "gzip"),
])
def test_malformed_bodies_raise(body):
    with pytest.raises(ProtobufError):
        decode(body)


def test_every_reference_resolves_and_every_group_is_covered():
    scalars = {"string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "double",
               "float", "sint32", "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64"}
    for ref, table in proto_schema.MESSAGES.items():
        for num, (_name, _wire, typ, card, _zero) in table.items():
            assert typ in scalars or typ in proto_schema.MESSAGES, (ref, num, typ)
            assert card in ("opt", "rep", "map")
    for api_version, kind in [
        ("v1", "Pod"), ("v1", "Secret"), ("apps/v1", "StatefulSet"), ("batch/v1", "CronJob"),
        ("autoscaling/v1", "Scale"), ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("networking.k8s.io/v1", "NetworkPolicy"), ("rbac.authorization.k8s.io/v1", "Role"),
        ("coordination.k8s.io/v1", "Lease"), ("discovery.k8s.io/v1", "EndpointSlice"),
        ("storage.k8s.io/v1", "StorageClass"), ("policy/v1", "Eviction"),
        ("certificates.k8s.io/v1", "CertificateSigningRequest"), ("events.k8s.io/v1", "Event"),
        ("scheduling.k8s.io/v1", "PriorityClass"), ("node.k8s.io/v1", "RuntimeClass"),
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"),
        ("authentication.k8s.io/v1", "TokenRequest"),
        ("authorization.k8s.io/v1", "SubjectAccessReview"),
        ("policy/v1", "DeleteOptions"), ("v1", "Status"),
    ]:
        assert encode_supported(api_version, kind), (api_version, kind)
    assert not encode_supported("example.com/v1", "Widget")
    assert not encode_supported("apps/v1", "Pod")


def test_objects_nested_without_end_are_refused():
    body = envelope("v1", "List", b"")
    for _ in range(1500):
        body = envelope("v1", "List", fld(2, fld(1, body)))
    with pytest.raises(ProtobufError):
        decode(body)
