"""The PATCH entry point dispatches by content type and reports upstream status codes."""

import pytest

from pyk8s.api import patches
from pyk8s.api.patches import PatchError

DEP = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
       "spec": {"replicas": 1, "template": {"spec": {"containers": [
           {"name": "a", "image": "x"}]}}}}
SCHEMA = "io.k8s.api.apps.v1.Deployment"


def test_each_content_type():
    json_patch = [{"op": "replace", "path": "/spec/replicas", "value": 3}]
    assert patches.apply_patch(DEP, json_patch, patches.JSON_PATCH)["spec"]["replicas"] == 3
    merged = patches.apply_patch(
        DEP, {"spec": {"template": {"spec": {"containers": [{"name": "b"}]}}}}, patches.MERGE_PATCH)
    assert merged["spec"]["template"]["spec"]["containers"] == [{"name": "b"}]
    strategic = patches.apply_patch(
        DEP, {"spec": {"template": {"spec": {"containers": [{"name": "b"}]}}}},
        patches.STRATEGIC_MERGE_PATCH, schema=SCHEMA)
    assert [c["name"] for c in strategic["spec"]["template"]["spec"]["containers"]] == ["b", "a"]
    assert DEP["spec"]["replicas"] == 1


def test_merge_patch_must_leave_an_object():
    with pytest.raises(PatchError) as err:
        patches.apply_patch(DEP, [1, 2], patches.MERGE_PATCH)
    assert err.value.code == 400


def test_unknown_content_type():
    with pytest.raises(PatchError) as err:
        patches.apply_patch(DEP, {}, "text/plain")
    assert err.value.code == 415


def test_clone_is_deep():
    value = {"a": [{"b": 1}]}
    copy = patches.clone(value)
    copy["a"][0]["b"] = 2
    assert value == {"a": [{"b": 1}]}
