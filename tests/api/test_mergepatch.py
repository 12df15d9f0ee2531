"""RFC 7386 JSON merge patch, including the laws the RFC promises."""

import pytest
from hypothesis import given, settings, strategies as st

from pyk8s.api.mergepatch import apply_merge_patch, create_merge_patch
from pyk8s.api.patches import PatchError


@pytest.mark.parametrize("original,patch,result", [
    # The examples of RFC 7386, appendix A.
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
])
def test_rfc_examples(original, patch, result):
    assert apply_merge_patch(original, patch) == result


def test_kubectl_style_patches():
    dep = {"spec": {"replicas": 1, "paused": True,
                    "template": {"metadata": {"labels": {"app": "web"}}}}}
    out = apply_merge_patch(dep, {"spec": {"paused": None, "template": {"metadata": {
        "annotations": {"kubectl.kubernetes.io/restartedAt": "2024-01-01T00:00:00Z"}}}}})
    assert out == {"spec": {"replicas": 1, "template": {"metadata": {
        "labels": {"app": "web"},
        "annotations": {"kubectl.kubernetes.io/restartedAt": "2024-01-01T00:00:00Z"}}}}}
    assert dep["spec"]["paused"] is True


def test_lists_keep_null_items_but_prune_inside():
    assert apply_merge_patch({}, {"a": [None, {"x": None, "y": 1}]}) == {"a": [None, {"y": 1}]}


def test_non_object_patches_are_rejected():
    for bad in (None, "x", 3):
        with pytest.raises(PatchError) as err:
            apply_merge_patch({"a": 1}, bad)
        assert str(err.value) == "Invalid JSON Patch"
        assert err.value.code == 400


json_scalar = st.one_of(st.booleans(), st.integers(-5, 5), st.text("ab", max_size=2))
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text("abc", max_size=2), inner, max_size=3)),
    max_leaves=8)
json_object = st.dictionaries(st.text("abc", max_size=2), json_value, max_size=4)


@settings(max_examples=50, deadline=None)
@given(json_object, json_object)
def test_created_patch_turns_original_into_modified(original, modified):
    patch = create_merge_patch(original, modified)
    assert apply_merge_patch(original, patch) == modified


@settings(max_examples=50, deadline=None)
@given(json_object, json_object)
def test_applying_a_patch_twice_changes_nothing_more(original, patch):
    once = apply_merge_patch(original, patch)
    assert apply_merge_patch(once, patch) == once


@settings(max_examples=50, deadline=None)
@given(json_object)
def test_empty_patch_is_identity(original):
    assert apply_merge_patch(original, {}) == original
    assert create_merge_patch(original, original) == {}
