"""Metadata helpers: timestamps, keys, owner references, finalizers."""

import datetime
import re

import pytest

from pyk8s.api import meta


def test_now_is_rfc3339_utc_seconds():
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta.now())
    later = meta.parse_time(meta.now(60)) - meta.parse_time(meta.now())
    assert 59 <= later.total_seconds() <= 61
    t = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    assert meta.format_time(t) == "2024-01-01T00:00:00Z"
    assert meta.micro_time(t) == "2024-01-01T00:00:00.000000Z"
    assert meta.parse_time("2024-01-01T00:00:00Z") == t
    assert meta.parse_time("2024-01-01T01:00:00.5+01:00") == t + datetime.timedelta(seconds=0.5)


def test_uids_are_unique_uuids():
    uids = {meta.new_uid() for _ in range(100)}
    assert len(uids) == 100
    assert all(re.fullmatch(r"[0-9a-f-]{36}", u) for u in uids)


def test_keys():
    pod = {"metadata": {"namespace": "default", "name": "web"}}
    node = {"metadata": {"name": "n1"}}
    assert meta.object_key(pod) == "default/web"
    assert meta.object_key(node) == "n1"
    assert meta.split_key("default/web") == ("default", "web")
    assert meta.split_key("n1") == ("", "n1")
    with pytest.raises(ValueError):
        meta.split_key("a/b/c")
    assert meta.api_version("apps", "v1") == "apps/v1"
    assert meta.api_version("", "v1") == "v1"
    assert meta.gvk({"apiVersion": "apps/v1", "kind": "Deployment"}) == ("apps", "v1", "Deployment")
    assert meta.gvk({"apiVersion": "v1", "kind": "Pod"}) == ("", "v1", "Pod")


def test_owner_references():
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": "web-1", "uid": "u1"}}
    pod = {"metadata": {"name": "web-1-x"}}
    ref = meta.owner_reference(rs)
    assert ref == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u1",
                   "controller": True, "blockOwnerDeletion": True}
    meta.add_owner_reference(pod, ref)
    meta.add_owner_reference(pod, dict(ref, name="renamed"))
    assert [r["name"] for r in meta.owner_references(pod)] == ["renamed"]
    assert meta.controller_of(pod)["uid"] == "u1"
    assert meta.is_controlled_by(pod, rs)
    assert meta.is_owned_by(pod, "u1") and not meta.is_owned_by(pod, "u2")
    meta.remove_owner_references(pod, ["u1"])
    assert "ownerReferences" not in pod["metadata"]
    assert meta.controller_of(pod) is None


def test_labels_annotations_finalizers():
    obj: dict = {}
    meta.set_label(obj, "app", "web")
    meta.set_annotation(obj, "note", "x")
    assert meta.labels(obj) == {"app": "web"}
    assert meta.annotations(obj) == {"note": "x"}
    meta.add_finalizer(obj, "f")
    meta.add_finalizer(obj, "f")
    assert obj["metadata"]["finalizers"] == ["f"]
    assert meta.has_finalizer(obj, "f")
    meta.remove_finalizer(obj, "f")
    assert "finalizers" not in obj["metadata"]
    assert meta.labels({}) == {} and meta.annotations({"metadata": {}}) == {}
