"""Strategic merge patch applies and diffs as apimachinery's strategicpatch does."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from pyk8s.api import patches
from pyk8s.api.patches import PatchError
from pyk8s.api.strategicpatch import (create_three_way_merge_patch, create_two_way_merge_patch,
                                      strategic_merge_patch)

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
POD = "io.k8s.api.core.v1.Pod"


def pod(*containers, **spec):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"app": "web"}, "finalizers": ["a", "b"]},
            "spec": {"containers": list(containers), **spec}}


def c(name, image="img", **extra):
    return {"name": name, "image": image, **extra}


def smp(original, patch, schema=POD):
    return strategic_merge_patch(original, patch, schema)


# --- applying ---------------------------------------------------------------------

def test_lists_with_merge_key_are_merged():
    out = smp(pod(c("a"), c("b")), {"spec": {"containers": [
        {"name": "b", "image": "new"}, {"name": "z", "image": "z"}]}})
    assert out["spec"]["containers"] == [c("a"), c("b", "new"), c("z", "z")]


def test_nested_merge_lists_and_ports_keyed_by_container_port():
    orig = pod(c("a", ports=[{"containerPort": 80, "name": "http"}],
                 env=[{"name": "X", "value": "1"}]))
    out = smp(orig, {"spec": {"containers": [{"name": "a",
                                              "ports": [{"containerPort": 443}],
                                              "env": [{"name": "X", "value": "2"}]}]}})
    (container,) = out["spec"]["containers"]
    # As upstream, items only in the patch come before items only on the server.
    assert container["ports"] == [{"containerPort": 443}, {"containerPort": 80, "name": "http"}]
    assert container["env"] == [{"name": "X", "value": "2"}]


def test_lists_without_strategy_are_replaced():
    orig = pod(c("a", args=["1", "2"]), tolerations=[{"key": "k", "operator": "Exists"}])
    out = smp(orig, {"spec": {"containers": [{"name": "a", "args": ["3"]}], "tolerations": []}})
    assert out["spec"]["containers"][0]["args"] == ["3"]
    assert out["spec"]["tolerations"] == []


def test_primitive_merge_list_is_a_set_union():
    out = smp(pod(c("a")), {"metadata": {"finalizers": ["b", "c"]}})
    assert out["metadata"]["finalizers"] == ["a", "b", "c"]


def test_delete_from_primitive_list():
    out = smp(pod(c("a")), {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "zz"]}})
    assert out["metadata"]["finalizers"] == ["b"]
    # A deletion list for a field the object lacks is ignored.
    out = smp(pod(c("a")), {"spec": {"$deleteFromPrimitiveList/nope": ["x"]}})
    assert "nope" not in out["spec"]


def test_null_deletes_and_unmatched_nulls_vanish():
    out = smp(pod(c("a")), {"metadata": {"labels": {"app": None, "nope": None}},
                            "spec": {"nodeName": None,
                                     "securityContext": {"runAsUser": None, "fsGroup": 1}}})
    assert out["metadata"]["labels"] == {}
    assert out["spec"]["securityContext"] == {"fsGroup": 1}


def test_patch_delete_directive_in_list():
    out = smp(pod(c("a"), c("b"), c("c")), {"spec": {"containers": [
        {"name": "b", "$patch": "delete"}]}})
    assert [x["name"] for x in out["spec"]["containers"]] == ["a", "c"]


def test_patch_replace_directive_in_list():
    out = smp(pod(c("a"), c("b")), {"spec": {"containers": [
        {"$patch": "replace"}, {"name": "x", "image": "y"}]}})
    assert out["spec"]["containers"] == [c("x", "y")]


def test_patch_replace_and_delete_directives_in_maps():
    out = smp(pod(c("a")), {"metadata": {"labels": {"$patch": "replace", "new": "1"}}})
    assert out["metadata"]["labels"] == {"new": "1"}
    out = smp(pod(c("a")), {"metadata": {"labels": {"$patch": "delete"}}})
    assert out["metadata"]["labels"] == {}
    out = smp(pod(c("a")), {"$patch": "replace", "kind": "Pod"})
    assert out == {"kind": "Pod"}


def test_directive_errors():
    with pytest.raises(PatchError) as err:
        smp(pod(c("a")), {"spec": {"containers": [{"$patch": "merge"}]}})
    assert str(err.value) == "merging lists cannot yet be specified in the patch"
    with pytest.raises(PatchError) as err:
        smp(pod(c("a")), {"spec": {"containers": [{"name": "a", "$patch": "frob"}]}})
    assert str(err.value) == "unknown patch type: frob in map: map[$patch:frob name:a]"
    with pytest.raises(PatchError) as err:
        smp(pod(c("a")), {"metadata": {"labels": {"$patch": "merge"}}})
    assert str(err.value) == "unknown patch type: merge in map: map[$patch:merge]"


def test_missing_merge_key_is_an_error():
    with pytest.raises(PatchError) as err:
        smp(pod(c("a")), {"spec": {"containers": [{"image": "x"}]}})
    assert str(err.value) == "map: map[image:x] does not contain declared merge key: name"
    assert err.value.code == 500


def test_set_element_order_orders_result():
    orig = pod(c("a"), c("b"), c("c"))
    out = smp(orig, {"spec": {"$setElementOrder/containers": [
        {"name": "c"}, {"name": "a"}, {"name": "b"}]}})
    assert [x["name"] for x in out["spec"]["containers"]] == ["c", "a", "b"]
    # A server-only item is placed by its position on the server relative to the
    # ordered ones (upstream's mergeSortedSlice): "b" was before "c", so it stays so.
    out = smp(orig, {"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
                              "containers": [{"name": "c", "image": "new"}]}})
    assert [x["name"] for x in out["spec"]["containers"]] == ["b", "c", "a"]
    assert out["spec"]["containers"][1]["image"] == "new"
    out = smp(orig, {"metadata": {"$setElementOrder/finalizers": ["b", "a"]}})
    assert out["metadata"]["finalizers"] == ["b", "a"]


def test_set_element_order_must_agree_with_patch_list():
    with pytest.raises(PatchError) as err:
        smp(pod(c("a"), c("b")), {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b", "image": "1"}, {"name": "a", "image": "2"}]}})
    assert str(err.value).startswith("The order in patch list:")


def test_retain_keys_clears_other_fields():
    dep = {"spec": {"strategy": {"type": "RollingUpdate",
                                 "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}}
    out = smp(dep, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
              DEPLOYMENT)
    assert out == {"spec": {"strategy": {"type": "Recreate"}}}
    with pytest.raises(PatchError) as err:
        smp(dep, {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}},
            DEPLOYMENT)
    assert str(err.value) == "invalid patch format of retainKeys"
    assert err.value.code == 400


def test_retain_keys_inside_list_elements():
    orig = pod(c("a"), volumes=[{"name": "v", "emptyDir": {}}])
    out = smp(orig, {"spec": {"volumes": [
        {"name": "v", "configMap": {"name": "cm"}, "$retainKeys": ["configMap", "name"]}]}})
    assert out["spec"]["volumes"] == [{"name": "v", "configMap": {"name": "cm"}}]


def test_type_change_replaces_value():
    out = smp(pod(c("a")), {"metadata": {"labels": "oops"}})
    assert out["metadata"]["labels"] == "oops"


def test_without_schema_lists_are_replaced():
    out = strategic_merge_patch({"items": [{"name": "a"}], "m": {"x": 1}},
                                {"items": [{"name": "b"}], "m": {"y": 2}}, None)
    assert out == {"items": [{"name": "b"}], "m": {"x": 1, "y": 2}}


def test_inputs_are_not_mutated():
    orig, patch = pod(c("a")), {"spec": {"containers": [{"name": "a", "image": "x"}]},
                                "metadata": {"labels": {"$patch": "replace"}}}
    before = json.dumps([orig, patch], sort_keys=True)
    smp(orig, patch)
    assert json.dumps([orig, patch], sort_keys=True) == before


def test_bad_bodies():
    with pytest.raises(PatchError) as err:
        smp(pod(c("a")), ["not", "a", "map"])
    assert (str(err.value), err.value.code) == ("invalid JSON document", 400)
    assert smp(pod(c("a")), None) == pod(c("a"))


def test_recorded_kubectl_apply_patch():
    # The body kubectl 1.32 sent for `kubectl apply` of a changed image
    # (shared/reference/kubectl-1.32-wire/create-apply.log).
    last = ('{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{},'
            '"name":"web","namespace":"default"},"spec":{"replicas":2}}\n')
    body = {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": last}},
            "spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "web"}],
                                           "containers": [{"image": "nginx:1.26", "name": "web"}]}}}}
    live = {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "annotations": {
                "deployment.kubernetes.io/revision": "1"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}],
                 "imagePullPolicy": "IfNotPresent"}]}}}}
    out = patches.apply_patch(live, body, patches.STRATEGIC_MERGE_PATCH, schema=DEPLOYMENT)
    assert out["spec"]["template"]["spec"]["containers"] == [
        {"name": "web", "image": "nginx:1.26", "ports": [{"containerPort": 80}],
         "imagePullPolicy": "IfNotPresent"}]
    assert out["metadata"]["annotations"] == {
        "deployment.kubernetes.io/revision": "1",
        "kubectl.kubernetes.io/last-applied-configuration": last}


def test_recorded_rollout_resume_patch():
    out = smp({"spec": {"paused": True, "replicas": 1}}, {"spec": {"paused": None}}, DEPLOYMENT)
    assert out == {"spec": {"replicas": 1}}


# --- creating patches ----------------------------------------------------------------

def test_two_way_patch_looks_like_kubectls():
    orig = pod(c("a", env=[{"name": "X", "value": "1"}]), c("b"))
    mod = pod(c("a", "new", env=[{"name": "X", "value": "1"}]))
    mod["metadata"]["finalizers"] = ["b", "c"]
    patch = create_two_way_merge_patch(orig, mod, POD)
    assert patch == {
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"],
                     "$setElementOrder/finalizers": ["b", "c"], "finalizers": ["c"]},
        "spec": {"$setElementOrder/containers": [{"name": "a"}],
                 "containers": [{"name": "a", "image": "new"},
                                {"name": "b", "$patch": "delete"}]},
    }
    assert smp(orig, patch) == mod


def test_two_way_patch_builds_retain_keys():
    orig = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    mod = {"spec": {"strategy": {"type": "Recreate"}}}
    patch = create_two_way_merge_patch(orig, mod, DEPLOYMENT)
    assert patch == {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate",
                                           "rollingUpdate": None}}}
    assert smp(orig, patch, DEPLOYMENT) == mod


def test_no_change_gives_empty_patch():
    orig = pod(c("a"), c("b"))
    assert create_two_way_merge_patch(orig, orig, POD) == {}


def test_three_way_apply_keeps_changes_made_by_others():
    last_applied = pod(c("a", "v1"))
    last_applied["metadata"]["labels"] = {"app": "web", "old": "x"}
    live = pod(c("a", "v1", imagePullPolicy="Always"), c("sidecar"), nodeName="n1")
    live["metadata"]["labels"] = {"app": "web", "old": "x", "added-by-someone": "y"}
    new = pod(c("a", "v2"))
    new["metadata"]["labels"] = {"app": "web"}
    patch = create_three_way_merge_patch(last_applied, new, live, POD)
    out = smp(live, patch)
    assert out["metadata"]["labels"] == {"app": "web", "added-by-someone": "y"}
    assert out["spec"]["nodeName"] == "n1"
    assert out["spec"]["containers"] == [c("a", "v2", imagePullPolicy="Always"), c("sidecar")]


def test_three_way_apply_deletes_what_was_removed_from_config():
    last_applied = pod(c("a"), c("b"))
    live = pod(c("a"), c("b"))
    new = pod(c("a"))
    patch = create_three_way_merge_patch(last_applied, new, live, POD)
    assert patch["spec"]["containers"] == [{"name": "b", "$patch": "delete"}]
    assert smp(live, patch)["spec"]["containers"] == [c("a")]


def test_three_way_without_last_applied_only_adds():
    live = pod(c("a"), nodeName="n1")
    new = pod(c("a"), restartPolicy="Never")
    patch = create_three_way_merge_patch(None, new, live, POD)
    assert patch == {"spec": {"restartPolicy": "Never"}}


# --- properties -------------------------------------------------------------------------

NAMES = ["a", "b", "c", "d"]


@st.composite
def containers(draw):
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=4))
    out = []
    for name in names:
        item = {"name": name, "image": draw(st.sampled_from(["x", "y"]))}
        env = draw(st.lists(st.sampled_from(["E1", "E2", "E3"]), unique=True, max_size=3))
        if env:
            item["env"] = [{"name": e, "value": draw(st.sampled_from(["1", "2"]))} for e in env]
        if draw(st.booleans()):
            item["args"] = draw(st.lists(st.sampled_from(["-v", "-q"]), max_size=2))
        out.append(item)
    return out


@st.composite
def pods(draw):
    obj = {"metadata": {"name": "p"}, "spec": {"containers": draw(containers())}}
    labels = draw(st.dictionaries(st.sampled_from(["app", "tier", "env"]),
                                  st.sampled_from(["1", "2"]), max_size=3))
    if labels:
        obj["metadata"]["labels"] = labels
    finalizers = draw(st.lists(st.sampled_from(["f1", "f2", "f3"]), unique=True, max_size=3))
    if finalizers:
        obj["metadata"]["finalizers"] = finalizers
    if draw(st.booleans()):
        obj["spec"]["strategy_like"] = draw(st.sampled_from([{"x": 1}, {"y": 2}]))
    return obj


@settings(max_examples=60, deadline=None)
@given(pods(), pods())
def test_two_way_patch_turns_original_into_modified(original, modified):
    patch = create_two_way_merge_patch(original, modified, POD)
    assert smp(original, json.loads(json.dumps(patch))) == modified


@settings(max_examples=60, deadline=None)
@given(pods(), pods())
def test_three_way_patch_reaches_config_when_live_is_last_applied(last, new):
    patch = create_three_way_merge_patch(last, new, last, POD)
    assert smp(last, patch) == new


@settings(max_examples=40, deadline=None)
@given(pods())
def test_self_patch_is_empty(obj):
    assert create_two_way_merge_patch(obj, obj, POD) == {}
    assert smp(obj, {}) == obj
