"""ValidatingAdmissionPolicy enforcement (CEL validations bound by
ValidatingAdmissionPolicyBindings), through kubectl and the official client.

Every policy here is scoped to the test's namespace (or labelled objects), so the
shared test server is not affected beyond the test."""
import json
import os
import uuid

import pytest
import yaml

from security_helpers import wait_for

GROUP_V1 = "admissionregistration.k8s.io/v1"
DEPLOYMENTS = [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}]
CONFIGMAPS = [{"apiGroups": [""], "apiVersions": ["v1"],
               "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"]}]


@pytest.fixture
def policies(cluster, ns):
    """apply(name, policy_spec, binding_spec=None): a policy and its binding named
    ``<name>-<ns>`` and ``<name>-<ns>-binding``; the binding defaults to Deny in the
    test namespace. Returns (policy name, binding name)."""
    created = []

    def apply(name: str, spec: dict, binding: dict | None = None, *, target=None):
        target = target or cluster
        policy_name = f"{name}-{ns}"
        binding_name = f"{policy_name}-binding"
        bspec = {"policyName": policy_name, "validationActions": ["Deny"],
                 "matchResources": {"namespaceSelector": {
                     "matchLabels": {"kubernetes.io/metadata.name": ns}}}}
        bspec.update(binding or {})
        created.append((target, policy_name, binding_name))
        target.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([
            {"apiVersion": GROUP_V1, "kind": "ValidatingAdmissionPolicy",
             "metadata": {"name": policy_name}, "spec": spec},
            {"apiVersion": GROUP_V1, "kind": "ValidatingAdmissionPolicyBinding",
             "metadata": {"name": binding_name}, "spec": bspec}]))
        return policy_name, binding_name
    yield apply
    for target, policy_name, binding_name in created:
        target.kubectl("delete", "validatingadmissionpolicybinding", binding_name,
                       "--ignore-not-found", check=False)
        target.kubectl("delete", "validatingadmissionpolicy", policy_name,
                       "--ignore-not-found", check=False)


def _replicas_policy(**extra) -> dict:
    validation = {"expression": "object.spec.replicas <= 5", **extra}
    return {"failurePolicy": "Fail", "matchConstraints": {"resourceRules": DEPLOYMENTS},
            "validations": [validation]}


def test_deny_binding_refuses_with_upstreams_message(cluster, ns, policies, client):
    policy, binding = policies("replicas", _replicas_policy())
    r = cluster.kubectl("create", "deployment", "big", "--image=nginx", "--replicas=6",
                        "-n", ns, check=False)
    assert r.returncode == 1
    assert r.stderr == (
        f'error: failed to create deployment: deployments.apps "big" is forbidden: '
        f"ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: "
        f"failed expression: object.spec.replicas <= 5\n")
    r = cluster.kubectl("create", "deployment", "small", "--image=nginx", "--replicas=3",
                        "-n", ns)
    assert r.stdout == "deployment.apps/small created\n"
    # An update is checked too (the rule names UPDATE) ...
    r = cluster.kubectl("patch", "deployment", "small", "-n", ns, "-p",
                        '{"spec": {"replicas": 7}}', check=False)
    assert r.returncode == 1
    assert f"ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request" \
        in r.stderr
    # ... but not the scale subresource, which the rule does not name (as upstream).
    r = cluster.kubectl("scale", "deployment", "small", "--replicas=7", "-n", ns)
    assert r.stdout == "deployment.apps/small scaled\n"
    # The Status: reason Invalid, 422, the message as a cause (kubectl's apply shows it).
    import kubernetes
    apps = kubernetes.client.AppsV1Api(client)
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "viaclient"},
            "spec": {"replicas": 9, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
                         "containers": [{"name": "c", "image": "nginx"}]}}}}
    with pytest.raises(kubernetes.client.ApiException) as exc:
        apps.create_namespaced_deployment(ns, body)
    status = json.loads(exc.value.body)
    message = (f"ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied "
               f"request: failed expression: object.spec.replicas <= 5")
    assert (exc.value.status, status["reason"]) == (422, "Invalid")
    assert status["message"] == f'deployments.apps "viaclient" is forbidden: {message}'
    assert status["details"] == {"name": "viaclient", "group": "apps", "kind": "deployments",
                                 "causes": [{"message": message}]}
    r = cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(body), check=False)
    assert r.stderr == f'The deployments "viaclient" is invalid: : {message}\n'


def test_binding_namespace_selector_limits_it(cluster, ns, policies):
    other = f"{ns}-free"
    cluster.kubectl("create", "namespace", other)
    cluster.kubectl("label", "namespace", ns, "vap-test=enforced")
    try:
        policies("labelled", _replicas_policy(), {"matchResources": {
            "namespaceSelector": {"matchLabels": {"vap-test": "enforced"}}}})
        r = cluster.kubectl("create", "deployment", "big", "--image=nginx", "--replicas=6",
                            "-n", ns, check=False)
        assert r.returncode == 1 and "denied request" in r.stderr
        r = cluster.kubectl("create", "deployment", "big", "--image=nginx", "--replicas=6",
                            "-n", other)
        assert r.stdout == "deployment.apps/big created\n"
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_warn_prints_the_warning_and_allows(cluster, ns, policies):
    policy, binding = policies("warned", _replicas_policy(message="at most 5 replicas"),
                               {"validationActions": ["Warn"]})
    r = cluster.kubectl("create", "deployment", "big", "--image=nginx", "--replicas=6",
                        "-n", ns)
    assert r.stdout == "deployment.apps/big created\n"
    assert r.stderr == (f"Warning: Validation failed for ValidatingAdmissionPolicy "
                        f"'{policy}' with binding '{binding}': at most 5 replicas\n")
    r = cluster.kubectl("create", "deployment", "small", "--image=nginx", "--replicas=1",
                        "-n", ns)
    assert r.stderr == ""


def test_message_message_expression_and_reason(cluster, ns, policies, client):
    policy, binding = policies("messages", {
        "matchConstraints": {"resourceRules": DEPLOYMENTS},
        "validations": [
            {"expression": "object.spec.replicas <= 5", "message": "too many replicas",
             "messageExpression": "'replicas ' + string(object.spec.replicas) + ' > 5'",
             "reason": "Forbidden"},
            {"expression": "object.metadata.name != 'banned'", "message": "  banned name  ",
             "messageExpression": "'multi\\nline'"}]})
    r = cluster.kubectl("create", "deployment", "big", "--image=nginx", "--replicas=6",
                        "-n", ns, check=False)
    assert r.stderr.endswith(f"ValidatingAdmissionPolicy '{policy}' with binding "
                             f"'{binding}' denied request: replicas 6 > 5\n")
    # A multi-line messageExpression result falls back to the (trimmed) message.
    r = cluster.kubectl("create", "deployment", "banned", "--image=nginx", "-n", ns,
                        check=False)
    assert r.stderr.endswith("denied request: banned name\n")
    import kubernetes
    with pytest.raises(kubernetes.client.ApiException) as exc:
        kubernetes.client.AppsV1Api(client).create_namespaced_deployment(ns, {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "forbidden"},
            "spec": {"replicas": 8, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
                         "containers": [{"name": "c", "image": "nginx"}]}}}})
    status = json.loads(exc.value.body)
    assert (exc.value.status, status["reason"], status["code"]) == (403, "Forbidden", 403)


@pytest.mark.parametrize("failure", ["Fail", "Ignore"])
def test_failure_policy_on_an_evaluation_error(cluster, ns, policies, failure):
    policy, binding = policies(f"err-{failure.lower()}", {
        "failurePolicy": failure, "matchConstraints": {"resourceRules": CONFIGMAPS},
        "validations": [{"expression": "object.data.mode == 'safe'"}]})
    r = cluster.kubectl("create", "configmap", "empty", "-n", ns, check=False)
    if failure == "Ignore":
        assert r.returncode == 0 and r.stdout == "configmap/empty created\n"
    else:
        assert r.returncode == 1
        assert r.stderr == (
            f'error: failed to create configmap: configmaps "empty" is forbidden: '
            f"ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: "
            f"expression 'object.data.mode == 'safe'' resulted in error: no such key: "
            f"data\n")
    # A false result is a failure whatever the failurePolicy.
    r = cluster.kubectl("create", "configmap", "unsafe", "--from-literal=mode=risky", "-n",
                        ns, check=False)
    assert r.returncode == 1 and "failed expression: object.data.mode == 'safe'" in r.stderr
    r = cluster.kubectl("create", "configmap", "safe", "--from-literal=mode=safe", "-n", ns)
    assert r.stdout == "configmap/safe created\n"


def test_a_policy_that_does_not_compile_is_refused_at_creation(cluster, ns):
    name = f"broken-{ns}"
    policy = {"apiVersion": GROUP_V1, "kind": "ValidatingAdmissionPolicy",
              "metadata": {"name": name},
              "spec": {"matchConstraints": {"resourceRules": CONFIGMAPS},
                       "variables": [{"name": "count", "expression": "object.data.size( +"}],
                       "validations": [{"expression": "object.data.size() <",
                                        "messageExpression": "'too ' +"}]}}
    r = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(policy), check=False)
    assert r.returncode == 1
    assert r.stderr.startswith(
        f'The ValidatingAdmissionPolicy "{name}" is invalid: \n'), r.stderr
    for field, expression in (("spec.validations[0].expression", "object.data.size() <"),
                              ("spec.validations[0].messageExpression", "'too ' +"),
                              ("spec.variables[0].expression", "object.data.size( +")):
        assert (f'* {field}: Invalid value: "{expression}": compilation failed: '
                f"ERROR: <input>:1:") in r.stderr, (field, r.stderr)
    assert cluster.kubectl("get", "validatingadmissionpolicy", name,
                           check=False).returncode == 1
    # params and variables are declared for a policy's expressions
    policy["spec"]["variables"] = [{"name": "count", "expression": "object.data.size()"}]
    policy["spec"]["validations"] = [{"expression": "variables.count < 3 || params == null",
                                      "messageExpression": "'too many: ' + string(variables.count)"}]
    r = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(policy))
    assert r.stdout == f"validatingadmissionpolicy.admissionregistration.k8s.io/{name} created\n"
    cluster.kubectl("delete", "validatingadmissionpolicy", name)


def test_variables_and_match_conditions(cluster, ns, policies):
    policy, binding = policies("vars", {
        "matchConstraints": {"resourceRules": CONFIGMAPS},
        "matchConditions": [{"name": "not-exempt",
                             "expression": "!has(object.metadata.labels) || "
                                           "!('exempt' in object.metadata.labels)"}],
        "variables": [{"name": "keys", "expression": "has(object.data) ? "
                                                     "object.data.size() : 0"},
                      {"name": "limit", "expression": "2"},
                      {"name": "broken", "expression": "object.missing.field"}],
        "validations": [{"expression": "variables.keys <= variables.limit",
                         "messageExpression": "'at most ' + string(variables.limit) + "
                                              "' keys, got ' + string(variables.keys)"}]})
    r = cluster.kubectl("create", "configmap", "three", "--from-literal=a=1",
                        "--from-literal=b=2", "--from-literal=c=3", "-n", ns, check=False)
    assert r.stderr.endswith(f"with binding '{binding}' denied request: at most 2 keys, "
                             f"got 3\n")
    # The unused failing variable is never evaluated.
    r = cluster.kubectl("create", "configmap", "two", "--from-literal=a=1",
                        "--from-literal=b=2", "-n", ns)
    assert r.stdout == "configmap/two created\n"
    # A false match condition skips the policy.
    cluster.kubectl("create", "-n", ns, "-f", "-", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "exempted", "labels": {"exempt": "yes"}},
        "data": {"a": "1", "b": "2", "c": "3"}}))


def test_params_from_a_configmap(cluster, ns, policies):
    policy, binding = policies("params", {
        "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
        "matchConstraints": {"resourceRules": DEPLOYMENTS},
        "validations": [{"expression": "object.spec.replicas <= int(params.data.max)",
                         "messageExpression": "'replicas must be at most ' + "
                                              "params.data.max"}]},
        {"paramRef": {"name": "limits", "namespace": ns,
                      "parameterNotFoundAction": "Deny"}})
    r = cluster.kubectl("create", "deployment", "d", "--image=nginx", "--replicas=1",
                        "-n", ns, check=False)
    assert r.stderr.endswith(
        f"ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: "
        f"failed to configure binding: no params found for policy binding with `Deny` "
        f"parameterNotFoundAction\n")
    cluster.kubectl("create", "configmap", "limits", "--from-literal=max=2", "-n", ns)
    r = cluster.kubectl("create", "deployment", "d", "--image=nginx", "--replicas=3",
                        "-n", ns, check=False)
    assert r.stderr.endswith("denied request: replicas must be at most 2\n")
    r = cluster.kubectl("create", "deployment", "d", "--image=nginx", "--replicas=2",
                        "-n", ns)
    assert r.stdout == "deployment.apps/d created\n"


def test_selector_params_evaluate_once_per_param_and_allow_when_none(cluster, ns, policies):
    policy, binding = policies("selected", {
        "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
        "matchConstraints": {"resourceRules": DEPLOYMENTS},
        "validations": [{"expression": "!(object.metadata.name in params.data)",
                         "messageExpression": "'name reserved by ' + "
                                              "params.metadata.name"}]},
        {"paramRef": {"selector": {"matchLabels": {"reserved": "names"}},
                      "parameterNotFoundAction": "Allow"}})
    # No params and Allow: nothing to evaluate.
    r = cluster.kubectl("create", "deployment", "web", "--image=nginx", "-n", ns)
    assert r.stdout == "deployment.apps/web created\n"
    for cm, key in (("first", "api"), ("second", "db")):
        cluster.kubectl("create", "configmap", cm, f"--from-literal={key}=x", "-n", ns)
        cluster.kubectl("label", "configmap", cm, "reserved=names", "-n", ns)
    r = cluster.kubectl("create", "deployment", "db", "--image=nginx", "-n", ns, check=False)
    assert r.stderr.endswith("denied request: name reserved by second\n")
    r = cluster.kubectl("create", "deployment", "api", "--image=nginx", "-n", ns, check=False)
    assert r.stderr.endswith("denied request: name reserved by first\n")


def test_policies_never_apply_to_their_own_objects(cluster, ns, policies):
    everything = [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"],
                   "resources": ["*"]}]
    policy, binding = policies("everything", {
        "matchConstraints": {"resourceRules": everything,
                             "objectSelector": {"matchLabels": {"blocked": ns}}},
        "validations": [{"expression": "false"}]}, {"matchResources": {}})
    r = cluster.kubectl("create", "-n", ns, "-f", "-", check=False, input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "blocked", "labels": {"blocked": ns}}}))
    assert "denied request: failed expression: false" in r.stderr
    # Labelling the policy and binding themselves does not lock them.
    for kind, name in (("validatingadmissionpolicy", policy),
                       ("validatingadmissionpolicybinding", binding)):
        r = cluster.kubectl("label", kind, name, f"blocked={ns}")
        assert "labeled" in r.stdout
        r = cluster.kubectl("delete", kind, name)
        assert "deleted" in r.stdout


@pytest.fixture(scope="module")
def audited(cluster, tmp_path_factory):
    Cluster = type(cluster)
    d = str(tmp_path_factory.mktemp("vap-audit"))
    policy = os.path.join(d, "audit-policy.yaml")
    with open(policy, "w") as f:
        yaml.safe_dump({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [
            {"level": "Metadata", "resources": [{"group": "", "resources": ["configmaps"]}]},
            {"level": "None"}]}, f)
    from support.cluster import free_port
    c = Cluster(d, free_port())
    c.start(extra=["--audit-policy-file", policy, "--audit-log-path",
                   os.path.join(d, "audit.log")])
    yield c
    c.stop()


def test_audit_action_annotates_the_audit_event(audited, policies):
    ns = "default"
    name = "audited-" + uuid.uuid4().hex[:6]
    policy, binding = policies("audit", {
        "matchConstraints": {"resourceRules": CONFIGMAPS},
        "validations": [{"expression": "true"},
                        {"expression": "has(object.data)", "message": "no data"}]},
        {"validationActions": ["Audit", "Warn"], "matchResources": {}}, target=audited)
    r = audited.kubectl("create", "configmap", name, "-n", ns)
    assert r.stdout == f"configmap/{name} created\n"
    assert "Validation failed" in r.stderr
    log = os.path.join(audited.data_dir, "audit.log")

    def event():
        if not os.path.exists(log):
            return None
        with open(log) as f:
            events = [json.loads(line) for line in f if line.strip()]
        return next((e for e in events if e["verb"] == "create" and
                     e.get("objectRef", {}).get("name") == name), None)
    annotations = wait_for(event)["annotations"]
    assert json.loads(annotations["validation.policy.admission.k8s.io/validation_failure"]) \
        == [{"message": "no data", "policy": policy, "binding": binding,
             "expressionIndex": 1, "validationActions": ["Audit", "Warn"]}]
    assert annotations["authorization.k8s.io/decision"] == "allow"


def test_audit_annotations_are_published_on_the_audit_event(audited, policies):
    ns = "default"
    name = "annotated-" + uuid.uuid4().hex[:6]
    policy, _ = policies("annotate", {
        "matchConstraints": {"resourceRules": CONFIGMAPS},
        "auditAnnotations": [
            {"key": "keys", "valueExpression": "'data keys: ' + string(object.data.size())"},
            {"key": "skipped", "valueExpression": "null"}]},
        {"validationActions": ["Audit"], "matchResources": {}}, target=audited)
    r = audited.kubectl("create", "configmap", name, "-n", ns, "--from-literal=a=1",
                        "--from-literal=b=2")
    assert r.stdout == f"configmap/{name} created\n"
    log = os.path.join(audited.data_dir, "audit.log")

    def event():
        with open(log) as f:
            events = [json.loads(line) for line in f if line.strip()]
        return next((e for e in events if e["verb"] == "create" and
                     e.get("objectRef", {}).get("name") == name), None)
    annotations = wait_for(event)["annotations"]
    assert annotations[f"{policy}/keys"] == "data keys: 2"
    assert f"{policy}/skipped" not in annotations
    # a value expression that does not compile is refused with the policy
    bad = {"apiVersion": GROUP_V1, "kind": "ValidatingAdmissionPolicy",
           "metadata": {"name": f"{policy}-bad"},
           "spec": {"matchConstraints": {"resourceRules": CONFIGMAPS},
                    "auditAnnotations": [{"key": "k", "valueExpression": "'a' +"}]}}
    r = audited.kubectl("apply", "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert r.returncode == 1
    assert ("spec.auditAnnotations[0].valueExpression: Invalid value: \"'a' +\": "
            "compilation failed:") in r.stderr, r.stderr
