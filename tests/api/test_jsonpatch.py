"""RFC 6902 JSON patch behaves as the evanphx/json-patch v4 upstream uses."""

import pytest

from pyk8s.api.jsonpatch import apply_json_patch, json_equal
from pyk8s.api.patches import PatchError

DOC = {"metadata": {"name": "web", "labels": {"app": "web"}},
       "spec": {"replicas": 1, "ports": [{"port": 80}, {"port": 443}]}}


def apply(*ops):
    return apply_json_patch(DOC, list(ops))


def test_add_replace_remove():
    out = apply({"op": "add", "path": "/metadata/labels/tier", "value": "fe"},
                {"op": "replace", "path": "/spec/replicas", "value": 3},
                {"op": "remove", "path": "/metadata/labels/app"})
    assert out["metadata"]["labels"] == {"tier": "fe"}
    assert out["spec"]["replicas"] == 3
    assert DOC["metadata"]["labels"] == {"app": "web"}  # input untouched


def test_array_operations():
    out = apply({"op": "add", "path": "/spec/ports/-", "value": {"port": 8080}},
                {"op": "add", "path": "/spec/ports/0", "value": {"port": 1}},
                {"op": "remove", "path": "/spec/ports/-1"})
    assert out["spec"]["ports"] == [{"port": 1}, {"port": 80}, {"port": 443}]
    out = apply({"op": "replace", "path": "/spec/ports/1/port", "value": 8443})
    assert out["spec"]["ports"][1] == {"port": 8443}


def test_pointer_escapes():
    doc = {"metadata": {"annotations": {"a/b": "1", "c~d": "2"}}}
    out = apply_json_patch(doc, [
        {"op": "replace", "path": "/metadata/annotations/a~1b", "value": "x"},
        {"op": "remove", "path": "/metadata/annotations/c~0d"}])
    assert out == {"metadata": {"annotations": {"a/b": "x"}}}


def test_move_copy_test():
    out = apply({"op": "copy", "from": "/metadata/name", "path": "/metadata/generateName"},
                {"op": "move", "from": "/spec/replicas", "path": "/spec/count"},
                {"op": "test", "path": "/spec/count", "value": 1})
    assert out["metadata"]["generateName"] == "web"
    assert out["spec"]["count"] == 1 and "replicas" not in out["spec"]


def test_replace_of_missing_key_adds_it_like_upstream():
    out = apply({"op": "replace", "path": "/metadata/labels/new", "value": "v"})
    assert out["metadata"]["labels"]["new"] == "v"


@pytest.mark.parametrize("op,message", [
    ({"op": "test", "path": "/spec/replicas", "value": 2},
     "testing value /spec/replicas failed: test failed"),
    ({"op": "remove", "path": "/metadata/labels/nope"},
     "error in remove for path: '/metadata/labels/nope': "
     "Unable to remove nonexistent key: nope: missing value"),
    ({"op": "add", "path": "/spec/missing/x", "value": 1},
     'add operation does not apply: doc is missing path: "/spec/missing/x": missing value'),
    ({"op": "remove", "path": "/spec/ports/5"},
     "error in remove for path: '/spec/ports/5': "
     "Unable to access invalid index: 5: invalid index referenced"),
    ({"op": "add", "path": "/spec/ports/9", "value": 1},
     "error in add for path: '/spec/ports/9': "
     "Unable to access invalid index: 9: invalid index referenced"),
    ({"op": "replace", "path": "/spec/ports/7", "value": 1},
     "replace operation does not apply: doc is missing key: /spec/ports/7: missing value"),
    ({"op": "replace", "path": "/nope/x", "value": 1},
     "replace operation does not apply: doc is missing path: /nope/x: missing value"),
    ({"op": "move", "from": "/nope/x", "path": "/a"},
     "move operation does not apply: doc is missing from path: /nope/x: missing value"),
    ({"op": "copy", "from": "/metadata/name", "path": "/x/y"},
     "copy operation does not apply: doc is missing destination path: /x/y: missing value"),
    ({"op": "test", "path": "/x/y", "value": 1},
     "test operation does not apply: is missing path: /x/y: missing value"),
    ({"op": "frobnicate", "path": "/a"}, "Unexpected kind: frobnicate"),
    ({"path": "/a"}, "Unexpected kind: unknown"),
    ({"op": "add", "value": 1}, "add operation failed to decode path: missing value"),
    ({"op": "remove", "path": "/spec/ports/x"},
     "error in remove for path: '/spec/ports/x': strconv.Atoi: parsing \"x\": invalid syntax"),
    ({"op": "add", "path": "/spec/ports/x", "value": 1},
     "error in add for path: '/spec/ports/x': value was not a proper array index: 'x': "
     "strconv.Atoi: parsing \"x\": invalid syntax"),
])
def test_errors_have_upstream_text(op, message):
    with pytest.raises(PatchError) as err:
        apply(op)
    assert str(err.value) == message
    assert err.value.code == 422


def test_test_op_on_missing_key_passes_only_for_null():
    assert apply({"op": "test", "path": "/metadata/nope", "value": None}) == DOC
    with pytest.raises(PatchError):
        apply({"op": "test", "path": "/metadata/nope", "value": "x"})
    assert apply({"op": "test", "path": "", "value": DOC}) == DOC


def test_failed_operation_leaves_no_partial_result():
    with pytest.raises(PatchError):
        apply({"op": "replace", "path": "/spec/replicas", "value": 5},
              {"op": "test", "path": "/spec/replicas", "value": 1})
    assert DOC["spec"]["replicas"] == 1


def test_body_must_be_a_list_of_objects():
    with pytest.raises(PatchError) as err:
        apply_json_patch(DOC, {"op": "add"})
    assert str(err.value) == "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
    assert err.value.code == 400
    with pytest.raises(PatchError) as err:
        apply_json_patch(DOC, [{"op": "add", "path": "/a", "value": 1}] * 10001)
    assert str(err.value) == (
        "The allowed maximum operations in a JSON patch is 10000, got: 10001")


def test_json_equality():
    assert json_equal({"a": [1, 2.0]}, {"a": [1.0, 2]})
    assert not json_equal(True, 1)
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})
    assert not json_equal("1", 1)
