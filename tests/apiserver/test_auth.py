"""Authentication and RBAC, through real kubectl and the official client: who a request
is, what it may do, and the messages users see when it may not."""
import json
import uuid

import kubernetes
import pytest

from security_helpers import cert_kubeconfig, kubectl_as, raw, token_kubeconfig, wait_for


def test_anonymous_requests_reach_only_health_and_version(cluster):
    assert raw(cluster, "GET", "/healthz") == (200, "ok")
    status, version = raw(cluster, "GET", "/version")
    assert status == 200 and version["minor"] == "32"
    status, body = raw(cluster, "GET", "/api")
    assert status == 403
    assert body["message"] == 'forbidden: User "system:anonymous" cannot get path "/api"'
    status, body = raw(cluster, "GET", "/api/v1/namespaces/default/pods")
    assert (status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == ('pods is forbidden: User "system:anonymous" cannot list '
                               'resource "pods" in API group "" in the namespace "default"')


def test_invalid_bearer_token_is_unauthorized(cluster):
    r = kubectl_as(cluster, token_kubeconfig(cluster, "not-a-token"), "get", "pods",
                   check=False)
    assert r.returncode != 0
    assert "error: You must be logged in to the server" in r.stderr
    status, body = raw(cluster, "GET", "/api", token="not-a-token")
    assert (status, body["reason"], body["message"]) == (401, "Unauthorized", "Unauthorized")


def test_whoami_for_admin_and_certificate_users(cluster):
    out = cluster.kubectl("auth", "whoami", "-o", "json").stdout
    info = json.loads(out)["status"]["userInfo"]
    assert info["username"] == "system:admin"
    assert info["groups"] == ["system:masters", "system:authenticated"]
    alice = cert_kubeconfig(cluster, "alice", ["devs", "qa"])
    lines = kubectl_as(cluster, alice, "auth", "whoami").stdout
    assert "alice" in lines and "[devs qa system:authenticated]" in lines


def test_forbidden_until_bound_to_a_group(cluster, ns):
    user = cert_kubeconfig(cluster, "erin", ["team-" + ns])
    r = kubectl_as(cluster, user, "get", "configmaps", "-n", ns, check=False)
    assert (f'Error from server (Forbidden): configmaps is forbidden: User "erin" cannot '
            f'list resource "configmaps" in API group "" in the namespace "{ns}"') in r.stderr
    r = kubectl_as(cluster, user, "get", "nodes", check=False)
    assert ('nodes is forbidden: User "erin" cannot list resource "nodes" in API group "" at '
            'the cluster scope') in r.stderr
    cluster.kubectl("create", "rolebinding", "team-view", "--clusterrole=view",
                    f"--group=team-{ns}", "-n", ns)
    assert kubectl_as(cluster, user, "get", "configmaps", "-n", ns).returncode == 0
    r = kubectl_as(cluster, user, "create", "configmap", "x", "-n", ns, check=False)
    assert 'User "erin" cannot create resource "configmaps"' in r.stderr


def test_can_i_for_users_groups_and_service_accounts(cluster, ns):
    cluster.kubectl("create", "serviceaccount", "robot", "-n", ns)
    cluster.kubectl("create", "role", "pod-reader", "--verb=get,list", "--resource=pods",
                    "-n", ns)
    cluster.kubectl("create", "rolebinding", "robot-reads", "--role=pod-reader",
                    f"--serviceaccount={ns}:robot", "--user=frank", "-n", ns)
    sa = f"system:serviceaccount:{ns}:robot"

    def can(*args):
        r = cluster.kubectl("auth", "can-i", *args, check=False)
        return r.stdout.strip()
    assert can("list", "pods", "-n", ns, f"--as={sa}") == "yes"
    assert can("delete", "pods", "-n", ns, f"--as={sa}") == "no"
    assert can("list", "pods", "-n", "default", f"--as={sa}") == "no"
    assert can("get", "pods", "-n", ns, "--as=frank") == "yes"
    assert can("get", "pods", "-n", ns, "--as=grace") == "no"
    assert can("get", "pods", "-n", ns, "--as=grace", "--as-group=system:masters") == "yes"
    assert can("get", "/healthz", "--as=grace") == "yes"
    assert can("create", "selfsubjectaccessreviews.authorization.k8s.io",
               "--as=grace") == "yes"
    listing = cluster.kubectl("auth", "can-i", "--list", "-n", ns, f"--as={sa}").stdout
    row = next(line for line in listing.splitlines() if line.startswith("pods "))
    assert "[get list]" in row


def test_subject_access_review_through_the_python_client(client, cluster, ns):
    cluster.kubectl("create", "rolebinding", "hank-edit", "--clusterrole=edit", "--user=hank",
                    "-n", ns)
    api = kubernetes.client.AuthorizationV1Api(client)
    V1 = kubernetes.client

    def sar(verb, resource, namespace):
        body = V1.V1SubjectAccessReview(spec=V1.V1SubjectAccessReviewSpec(
            user="hank", resource_attributes=V1.V1ResourceAttributes(
                verb=verb, resource=resource, namespace=namespace)))
        return api.create_subject_access_review(body).status
    status = sar("create", "deployments", ns)
    assert status.allowed is False  # deployments are apps, not core
    status = sar("create", "configmaps", ns)
    assert status.allowed is True
    assert status.reason == (f'RBAC: allowed by RoleBinding "hank-edit/{ns}" of ClusterRole '
                             f'"edit" to User "hank"')
    assert sar("create", "configmaps", "default").allowed is False


def test_impersonation_needs_the_impersonate_verb(cluster, ns):
    ivan = cert_kubeconfig(cluster, "ivan")
    r = kubectl_as(cluster, ivan, "get", "pods", "-n", ns, "--as=judy", check=False)
    assert ('users "judy" is forbidden: User "ivan" cannot impersonate resource "users" in '
            'API group "" at the cluster scope') in r.stderr
    name = "impersonate-" + ns
    cluster.kubectl("create", "clusterrole", name, "--verb=impersonate", "--resource=users",
                    "--resource-name=judy")
    cluster.kubectl("create", "clusterrolebinding", name, f"--clusterrole={name}",
                    "--user=ivan")
    cluster.kubectl("create", "rolebinding", "judy-view", "--clusterrole=view", "--user=judy",
                    "-n", ns)
    assert kubectl_as(cluster, ivan, "get", "pods", "-n", ns, "--as=judy").returncode == 0
    who = kubectl_as(cluster, ivan, "auth", "whoami", "--as=judy", "-o", "json").stdout
    assert json.loads(who)["status"]["userInfo"]["username"] == "judy"


def test_default_roles_are_aggregated(cluster):
    view = json.loads(cluster.kubectl("get", "clusterrole", "view", "-o", "json").stdout)
    assert view["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"] == {
        "rbac.authorization.k8s.io/aggregate-to-view": "true"}
    assert any("pods" in r.get("resources", []) for r in view["rules"])
    plural = "widgets" + uuid.uuid4().hex[:6]
    name = "widget-viewer-" + plural
    cluster.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name,
                     "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"apiGroups": ["example.com"], "resources": [plural],
                   "verbs": ["get", "list"]}]}))

    def aggregated(role):
        rules = json.loads(cluster.kubectl("get", "clusterrole", role, "-o", "json").stdout)
        return any(plural in r.get("resources", []) for r in rules.get("rules") or [])
    assert wait_for(lambda: aggregated("view"))
    assert wait_for(lambda: aggregated("edit") and aggregated("admin"))
    cluster.kubectl("delete", "clusterrole", name)
    assert wait_for(lambda: not aggregated("admin"))


def test_escalation_is_refused_unless_the_author_holds_the_rights(cluster, ns):
    kate = cert_kubeconfig(cluster, "kate")
    cluster.kubectl("create", "rolebinding", "kate-admin", "--clusterrole=admin",
                    "--user=kate", "-n", ns)
    assert kubectl_as(cluster, kate, "create", "role", "secrets", "--verb=get",
                      "--resource=secrets", "-n", ns).returncode == 0
    r = kubectl_as(cluster, kate, "create", "role", "nodes", "--verb=get", "--resource=nodes",
                   "-n", ns, check=False)
    assert ('roles.rbac.authorization.k8s.io "nodes" is forbidden: user "kate" '
            '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not '
            'currently held:\n{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}') in r.stderr
    r = kubectl_as(cluster, kate, "create", "rolebinding", "x", "--clusterrole=cluster-admin",
                   "--user=kate", "-n", ns, check=False)
    assert "is attempting to grant RBAC permissions not currently held" in r.stderr
    # ``bind`` on a role lets its holder grant it without holding its rules.
    name = "bind-" + ns
    cluster.kubectl("create", "clusterrole", name, "--verb=bind", "--resource=clusterroles",
                    "--resource-name=system:node-proxier")
    cluster.kubectl("create", "rolebinding", name, f"--clusterrole={name}", "--user=kate",
                    "-n", ns)
    assert kubectl_as(cluster, kate, "create", "rolebinding", "proxier",
                      "--clusterrole=system:node-proxier", "--user=kate",
                      "-n", ns).returncode == 0


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/openid/v1/jwks"])
def test_service_account_issuer_discovery(cluster, path):
    doc = json.loads(cluster.kubectl("get", "--raw", path).stdout)
    if path.endswith("jwks"):
        assert doc["keys"][0]["alg"] == "RS256"
    else:
        assert doc["issuer"] == "https://kubernetes.default.svc.cluster.local"
