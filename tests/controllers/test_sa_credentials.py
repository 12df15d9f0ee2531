"""--use-service-account-credentials: every controller acts as its own service account.

A real `pyk8s server --disable-agent` with an audit log: the embedded controller
manager authenticates as system:kube-controller-manager (its own certificate), and
each controller through a bound token of kube-system/<controller>; what users see is
checked with kubectl (the accounts, the objects, `auth can-i`) and in the audit log
(who wrote what). The token renewal is checked against a fake clock.
"""
import asyncio
import datetime
import json
import os
import subprocess
import sys

import pytest

from pyk8s.apiserver.authz import bootstrap_policy
from pyk8s.client import ApiError, ClientConfig, FakeClock
from pyk8s.client.transport import Request, Response
from pyk8s.controllers import clientbuilder, manager
from support.cluster import KUBECTL, start_on_free_port, stop_process
from support.waiting import wait_for

POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: Metadata
  verbs: ["create", "update", "patch"]
- level: None
"""

NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "status": {
    "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
    "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}


class Server:
    def __init__(self, data_dir):
        self.data_dir = str(data_dir)
        self.audit = os.path.join(self.data_dir, "audit.log")
        self.env = dict(os.environ, KUBECONFIG=os.path.join(self.data_dir, "kubeconfig.yaml"),
                        HOME=self.data_dir)

    def kubectl(self, *args, check=True, input=None):
        r = subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=self.env,
                           timeout=60, input=input)
        assert not check or r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
        return r

    def audit_events(self):
        with open(self.audit) as f:
            return [json.loads(line) for line in f if line.strip()]

    def writers(self, verb, resource, namespace=None, subresource=None):
        """Who made the successful ``verb`` requests on ``resource``."""
        out = set()
        for e in self.audit_events():
            ref = e.get("objectRef") or {}
            if e["verb"] == verb and ref.get("resource") == resource \
                    and ref.get("subresource") == subresource \
                    and (namespace is None or ref.get("namespace") == namespace) \
                    and (e.get("responseStatus") or {}).get("code", 0) < 300:
                out.add(e["user"]["username"])
        return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not os.path.exists(KUBECTL):
        pytest.skip("kubectl is not installed")
    d = tmp_path_factory.mktemp("sacreds")
    (d / "policy.yaml").write_text(POLICY)
    s = Server(d)
    procs: list[subprocess.Popen] = []

    def start(port: int) -> None:
        with open(d / "server.log", "ab") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "pyk8s.cli.main", "server", "--data-dir", str(d),
                 "--https-port", str(port), "--disable-agent",
                 "--audit-policy-file", str(d / "policy.yaml"), "--audit-log-path", s.audit],
                stdout=log, stderr=subprocess.STDOUT))
        wait_for(lambda: "cluster ready" in (d / "server.log").read_text(errors="replace")
                 or procs[-1].poll() is not None, "the server")
        if procs[-1].poll() is not None:
            raise RuntimeError((d / "server.log").read_text(errors="replace"))
    try:
        start_on_free_port(start, str(d / "server.log"))
        yield s
    finally:
        for proc in procs:
            stop_process(proc, 30)


def test_the_controllers_service_accounts_exist(server):
    wanted = {"deployment-controller", "replicaset-controller", "generic-garbage-collector",
              "namespace-controller", "node-controller", "endpoint-controller",
              "endpointslice-controller", "persistent-volume-binder", "resourcequota-controller",
              "daemon-set-controller", "job-controller", "cronjob-controller",
              "statefulset-controller", "horizontal-pod-autoscaler", "root-ca-cert-publisher",
              "pod-garbage-collector", "service-account-controller", "token-cleaner",
              "local-path-provisioner-service-account"}

    def accounts():
        out = server.kubectl("get", "sa", "-n", "kube-system", "-o", "name").stdout.split()
        names = {n.split("/", 1)[1] for n in out}
        return names if wanted <= names else None
    wait_for(accounts, "the controllers' service accounts")


def test_the_manager_runs_as_its_own_least_privileged_user(server):
    who = server.kubectl("--kubeconfig", os.path.join(server.data_dir, "server", "cred",
                                                      "controller.kubeconfig"),
                         "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert who.stdout == "system:kube-controller-manager"
    can = lambda *a: server.kubectl("auth", "can-i", *a, check=False).stdout.strip()  # noqa
    kcm = "--as=system:kube-controller-manager"
    assert can("create", "pods", kcm) == "no"
    assert can("create", "replicasets.apps", kcm) == "no"
    assert can("delete", "nodes", kcm) == "no"
    assert can("list", "pods", "--all-namespaces", kcm) == "yes"   # shared informers
    assert can("create", "serviceaccounts/token", "-n", "kube-system", kcm) == "yes"
    dc = "--as=system:serviceaccount:kube-system:deployment-controller"
    assert can("create", "replicasets.apps", dc) == "yes"
    assert can("create", "pods", dc) == "no"
    rc = "--as=system:serviceaccount:kube-system:replicaset-controller"
    assert can("create", "pods", rc) == "yes"
    assert can("create", "replicasets.apps", rc) == "no"
    # the controller manager's lease is its own identity's to take
    holder = wait_for(lambda: server.kubectl(
        "get", "lease", "-n", "kube-system", "kube-controller-manager", "-o",
        "jsonpath={.spec.holderIdentity}", check=False).stdout, "the lease holder")
    assert holder
    assert server.writers("create", "leases", "kube-system") >= {
        "system:kube-controller-manager"} or server.writers(
        "update", "leases", "kube-system") >= {"system:kube-controller-manager"}


def test_deployment_objects_are_written_by_each_controller(server):
    server.kubectl("create", "-f", "-", input=json.dumps(NODE))
    server.kubectl("create", "namespace", "sacreds")
    wait_for(lambda: server.kubectl("get", "sa", "default", "-n", "sacreds",
                                    check=False).returncode == 0, "the default ServiceAccount")
    server.kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2",
                   "-n", "sacreds")

    def scheduled():
        pods = json.loads(server.kubectl("get", "pods", "-n", "sacreds", "-l", "app=web",
                                         "-o", "json").stdout)["items"]
        return len(pods) == 2 and all(p["spec"].get("nodeName") == "n1" for p in pods)
    wait_for(scheduled, "two pods of the deployment on n1")
    rs = json.loads(server.kubectl("get", "rs", "-n", "sacreds", "-o", "json").stdout)["items"]
    assert [r["metadata"]["ownerReferences"][0]["name"] for r in rs] == ["web"]
    # the deployment's status is its controller's to write
    wait_for(lambda: server.kubectl("get", "deploy", "web", "-n", "sacreds", "-o",
                                    "jsonpath={.status.replicas}").stdout == "2",
             "the deployment's status")
    sa = "system:serviceaccount:kube-system:"

    def audited():
        return (server.writers("create", "replicasets", "sacreds") == {sa + "deployment-controller"}
                and server.writers("create", "pods", "sacreds") == {sa + "replicaset-controller"}
                and server.writers("update", "deployments", "sacreds", "status")
                == {sa + "deployment-controller"})
    wait_for(audited, "the audit log to name the controllers")
    # events each controller records go through its own client
    wait_for(lambda: {sa + "deployment-controller", sa + "replicaset-controller"}
             <= server.writers("create", "events", "sacreds"), "the controllers' events")
    assert not any(u == "system:kube-controller-manager" or u == "system:admin"
                   for u in server.writers("create", "events", "sacreds"))
    agents = {e["userAgent"] for e in server.audit_events()
              if (e.get("objectRef") or {}).get("resource") == "replicasets"
              and e["verb"] == "create"}
    assert len(agents) == 1
    agent = agents.pop()
    assert agent.startswith("kube-controller-manager/v1.32.0 (")
    assert agent.endswith("/system:serviceaccount:kube-system:deployment-controller")


# -- every controller has an identity with a role -------------------------------------

def test_every_controller_has_an_identity_with_a_role():
    bound = {s["name"] for _, _, subjects in bootstrap_policy.cluster_role_bindings()
             for s in subjects if s["kind"] == "ServiceAccount"}
    bound |= {s["name"] for _, _, _, subjects in bootstrap_policy.namespace_role_bindings()
              for s in subjects if s["kind"] == "ServiceAccount"}
    for name in manager.CONTROLLERS:
        assert (name in manager.SERVICE_ACCOUNTS) != (name in manager.ROOT_CONTROLLERS), name
        if name in manager.SERVICE_ACCOUNTS:
            assert manager.SERVICE_ACCOUNTS[name] in bound, name


# -- the token source: renewal before expiry, and on 401 -------------------------------

class StubRoot:
    """The root client's part: service accounts and the TokenRequest API."""

    def __init__(self, clock, fail=0):
        self.clock, self.fail = clock, fail
        self.requests, self.accounts = [], set()

    async def get(self, res, name, namespace=None):
        if res.plural == "serviceaccounts" and name not in self.accounts:
            raise ApiError({"code": 404, "reason": "NotFound", "message": "not found"})
        return {"metadata": {"name": name}}

    async def create(self, res, body, namespace=None):
        self.accounts.add(body["metadata"]["name"])
        return body

    async def request(self, method, path, body=None, **_):
        if self.fail:
            self.fail -= 1
            raise ApiError({"code": 500, "reason": "InternalError", "message": "boom"})
        self.requests.append((path, body["spec"]["expirationSeconds"]))
        exp = self.clock.now() + datetime.timedelta(seconds=body["spec"]["expirationSeconds"])
        return {"spec": body["spec"], "status": {
            "token": f"token-{len(self.requests)}",
            "expirationTimestamp": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}}


async def settle(clock, seconds):
    """Move the fake clock, then let every woken task run as far as it can."""
    clock.advance(seconds)
    for _ in range(100):
        await asyncio.sleep(0)


def test_tokens_are_requested_for_an_hour_and_renewed_at_80_percent():
    async def main():
        clock = FakeClock(datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc))
        root = StubRoot(clock)
        cfg = ClientConfig(server="https://127.0.0.1:1")
        source = clientbuilder.TokenSource(root, cfg, namespace="kube-system",
                                           name="deployment-controller", clock=clock)
        await source.fetch()
        assert root.accounts == {"deployment-controller"}   # created when missing
        assert root.requests == [(
            "/api/v1/namespaces/kube-system/serviceaccounts/deployment-controller/token", 3600)]
        assert cfg.auth_headers() == {"Authorization": "Bearer token-1"}
        source.start()
        await settle(clock, 0)
        await settle(clock, 2879)          # 80 % of an hour is 2880 s
        assert cfg.token == "token-1"
        await settle(clock, 2)
        assert cfg.token == "token-2"
        source.reset()                     # a 401: renew now
        await settle(clock, 0)
        assert cfg.token == "token-3"
        await source.stop()
    asyncio.run(main())


def test_a_failed_renewal_keeps_the_token_and_retries():
    async def main():
        clock = FakeClock(datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc))
        root = StubRoot(clock)
        cfg = ClientConfig(server="https://127.0.0.1:1")
        source = clientbuilder.TokenSource(root, cfg, namespace="kube-system", name="x",
                                           clock=clock, backoff=())
        await source.fetch()
        source.start()
        await settle(clock, 0)             # the renewer waits for its time
        root.fail = 1
        await settle(clock, 2881)
        assert cfg.token == "token-1"      # still the valid one
        await settle(clock, clientbuilder.RETRY_AFTER_FAILURE + 1)
        assert cfg.token == "token-2"
        await source.stop()
    asyncio.run(main())


def test_a_401_answer_resets_the_token():
    class Inner:
        async def request(self, request):
            return Response(401, headers={}, body=b"")

        async def close(self):
            pass

    async def main():
        clock = FakeClock()
        source = clientbuilder.TokenSource(StubRoot(clock), ClientConfig(server="x"),
                                           namespace="kube-system", name="x", clock=clock)
        transport = clientbuilder._ResettingTransport(Inner(), source)
        assert not source._reset.is_set()
        await transport.request(Request("GET", "/api"))
        assert source._reset.is_set()
    asyncio.run(main())


def test_service_account_clients_present_no_client_certificate(tmp_path):
    from pyk8s.pki import ensure_server_tls, kubeconfig, write_kubeconfig
    from pyk8s.client import load_kubeconfig
    tls = ensure_server_tls(str(tmp_path), hosts=("127.0.0.1",), service_ip="10.43.0.1")
    path = str(tmp_path / "admin.kubeconfig")
    write_kubeconfig(path, kubeconfig("https://127.0.0.1:6443", tls.ca, tls.admin))
    base = load_kubeconfig(path)
    cfg = clientbuilder.anonymous_config(base, user_agent="ua")
    assert cfg.ssl_context is not base.ssl_context
    assert cfg.ssl_context.get_ca_certs(True) == base.ssl_context.get_ca_certs(True)
    assert cfg.auth_headers() == {} and cfg.user_agent == "ua"
