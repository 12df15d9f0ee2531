"""Field ownership as the real API server keeps it: field sets, FieldsV1, Update
tracking, server-side apply merges, conflicts, force and pruning."""
import copy
import json

import pytest
from hypothesis import given, settings, strategies as st

from pyk8s.api import fieldpaths as fp
from pyk8s.api import managedfields as mf
from pyk8s.api import structuredmerge as sm

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
POD = "io.k8s.api.core.v1.Pod"
SERVICE = "io.k8s.api.core.v1.Service"
T1, T2, T3, T4 = ("2025-01-01T00:00:01Z", "2025-01-01T00:00:02Z", "2025-01-01T00:00:03Z",
                  "2025-01-01T00:00:04Z")


def deploy(replicas=2, image="nginx:1.25", labels=None, ports=({"containerPort": 80},),
           env=None):
    container = {"name": "web", "image": image}
    if ports:
        container["ports"] = [dict(p) for p in ports]
    if env is not None:
        container["env"] = env
    meta = {"name": "web", "namespace": "default"}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [container]}}}}


def stored(obj):
    """What the store keeps after a write: server-set metadata and a few defaults."""
    obj = copy.deepcopy(obj)
    obj["metadata"].setdefault("uid", "0b6c1a52-0000-0000-0000-000000000001")
    obj["metadata"].setdefault("creationTimestamp", T1)
    spec = obj.get("spec", {})
    spec.setdefault("revisionHistoryLimit", 10)
    for c in spec.get("template", {}).get("spec", {}).get("containers", []):
        c.setdefault("imagePullPolicy", "IfNotPresent")
        for p in c.get("ports", []):
            p.setdefault("protocol", "TCP")
    return obj


def apply(live, config, manager="kubectl", force=False, now=T2, schema=DEPLOYMENT, **kw):
    kw.setdefault("kind", config["kind"])
    return mf.apply(live, config, manager=manager, api_version=config["apiVersion"],
                    schema=schema, force=force, now=now, **kw)


def owners(obj):
    return {(e["manager"], e["operation"], e.get("subresource", "")): e
            for e in obj["metadata"].get("managedFields", [])}


def fields_of(obj, manager, operation="Apply", subresource=""):
    e = owners(obj)[(manager, operation, subresource)]
    return fp.from_fields_v1(e["fieldsV1"])


def path(*parts):
    out = []
    for p in parts:
        if isinstance(p, dict):
            out.append(fp.key(p))
        elif isinstance(p, int):
            out.append(fp.index(p))
        elif isinstance(p, str) and p.startswith("="):
            out.append(fp.value(p[1:]))
        else:
            out.append(fp.field(p))
    return tuple(out)


# --- FieldsV1 ---------------------------------------------------------------------

def test_fields_v1_round_trip_of_every_element_kind():
    doc = {
        "f:metadata": {"f:finalizers": {".": {}, 'v:"a"': {}, 'v:"b"': {}},
                       "f:labels": {".": {}, "f:app": {}}},
        "f:spec": {
            "f:args": {"i:0": {}, "i:1": {}},
            "f:containers": {'k:{"name":"web"}': {
                ".": {}, "f:image": {},
                "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {
                    ".": {}, "f:containerPort": {}}}}},
        },
    }
    s = fp.from_fields_v1(doc)
    assert s.has(path("metadata", "finalizers", "=a"))
    assert s.has(path("metadata", "labels"))  # the "." entry
    assert not s.has(path("metadata"))
    assert s.has(path("spec", "containers", {"name": "web"}, "ports",
                      {"containerPort": 80, "protocol": "TCP"}, "containerPort"))
    assert s.has(path("spec", "args", 1))
    assert fp.to_fields_v1(s) == doc
    assert json.dumps(fp.to_fields_v1(s)) == json.dumps(doc)  # same key order too


def test_fields_v1_orders_fields_keys_values_indexes_and_dot_first():
    s = fp.FieldSet.of(path(2), path("=x"), path({"name": "a"}), path("z"), path("a"),
                       path("a", "b"))
    assert list(fp.to_fields_v1(s)) == ["f:a", "f:z", 'k:{"name":"a"}', 'v:"x"', "i:2"]
    assert list(fp.to_fields_v1(s)["f:a"]) == [".", "f:b"]


def test_key_and_value_elements_serialize_as_go_json():
    assert fp.serialize(fp.key({"protocol": "TCP", "containerPort": 80})) == \
        'k:{"containerPort":80,"protocol":"TCP"}'
    assert fp.serialize(fp.value("<&>")) == r'v:"\u003c\u0026\u003e"'
    assert fp.serialize(fp.value(1.0)) == "v:1"
    assert fp.deserialize('k:{"b":true,"a":1}') == fp.key({"a": 1, "b": True})
    assert fp.key({"a": 1}) != fp.key({"a": True})  # booleans are not numbers


def test_unknown_element_types_are_skipped_and_bad_keys_rejected():
    assert fp.from_fields_v1({"f:a": {}, "x:zzz": {}}) == fp.FieldSet.of(path("a"))
    with pytest.raises(fp.FieldPathError):
        fp.from_fields_v1({"f": {}})
    with pytest.raises(fp.FieldPathError):
        fp.from_fields_v1({"k:{not json": {}})


def test_paths_print_as_upstream():
    p = path("spec", "template", "spec", "containers", {"name": "web"}, "image")
    assert fp.path_string(p) == '.spec.template.spec.containers[name="web"].image'
    assert fp.path_string(path("spec", "ports", {"port": 80, "protocol": "TCP"})) == \
        '.spec.ports[port=80,protocol="TCP"]'
    assert fp.path_string(path("metadata", "finalizers", "=x", )) == \
        '.metadata.finalizers[="x"]'
    assert fp.path_string(path("args", 3)) == ".args[3]"


paths_st = st.lists(st.lists(st.one_of(
    st.sampled_from(["a", "b", "c"]).map(fp.field),
    st.integers(0, 3).map(fp.index),
    st.sampled_from(["x", 1, True]).map(fp.value),
    st.sampled_from(["p", "q"]).map(lambda n: fp.key({"name": n}))),
    min_size=1, max_size=4).map(tuple), max_size=12)


@settings(max_examples=200, deadline=None)
@given(paths_st)
def test_fields_v1_round_trips_any_set(paths):
    s = fp.FieldSet.of(*paths)
    assert fp.from_fields_v1(json.loads(json.dumps(fp.to_fields_v1(s)))) == s
    assert set(s.paths()) == set(paths)


@settings(max_examples=200, deadline=None)
@given(paths_st, paths_st)
def test_set_operations_agree_with_python_sets(a, b):
    sa, sb = fp.FieldSet.of(*a), fp.FieldSet.of(*b)
    assert set(sa.union(sb).paths()) == set(a) | set(b)
    assert set(sa.intersection(sb).paths()) == set(a) & set(b)
    assert set(sa.difference(sb).paths()) == set(a) - set(b)
    rec = set(sa.recursive_difference(sb).paths())
    assert rec == {p for p in set(a) - set(b)
                   if not any(p[:i] in set(b) for i in range(1, len(p)))}


# --- field sets from objects ----------------------------------------------------------

def test_applied_configuration_field_set():
    t = sm.typer_for(DEPLOYMENT).root
    s = sm.to_field_set(deploy(labels={"app": "web"}), t)
    doc = fp.to_fields_v1(s)
    assert doc["f:metadata"] == {"f:labels": {"f:app": {}}, "f:name": {}, "f:namespace": {}}
    assert doc["f:spec"]["f:selector"] == {}  # LabelSelector is an atomic struct
    container = doc["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    # protocol is a key field with a default: the key has it even though unset
    assert container["f:ports"] == {
        'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}


def test_sets_of_scalars_and_custom_resources_without_schema():
    t = sm.typer_for(POD).root
    s = sm.to_field_set({"metadata": {"finalizers": ["a", "b"]}}, t)
    assert fp.to_fields_v1(s) == {"f:metadata": {"f:finalizers": {'v:"a"': {}, 'v:"b"': {}}}}
    cr = sm.typer_for(None).root
    s = sm.to_field_set({"metadata": {"finalizers": ["x"]},
                         "spec": {"size": 3, "ports": [1, 2], "nested": {"a": 1}}}, cr)
    assert fp.to_fields_v1(s) == {
        "f:metadata": {"f:finalizers": {'v:"x"': {}}},
        "f:spec": {".": {}, "f:nested": {".": {}, "f:a": {}}, "f:ports": {}, "f:size": {}}}


def test_custom_resource_structural_schema_list_map_keys():
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "items": {"type": "array", "x-kubernetes-list-type": "map",
                  "x-kubernetes-list-map-keys": ["id"],
                  "items": {"type": "object", "properties": {
                      "id": {"type": "string"}, "v": {"type": "integer"}}}}}}}}
    t = sm.typer_for(schema).root
    s = sm.to_field_set({"spec": {"items": [{"id": "a", "v": 1}]}}, t)
    assert fp.to_fields_v1(s) == {"f:spec": {"f:items": {'k:{"id":"a"}': {
        ".": {}, "f:id": {}, "f:v": {}}}}}


# --- update tracking --------------------------------------------------------------------

def created(manager="kubectl-create", now=T1):
    obj = stored(deploy(labels={"app": "web"}))
    mf.track_update(None, obj, manager=manager, api_version="apps/v1", schema=DEPLOYMENT,
                    now=now)
    return obj


def test_create_records_an_update_entry_as_upstream():
    obj = created()
    (entry,) = obj["metadata"]["managedFields"]
    assert list(entry) == ["manager", "operation", "apiVersion", "time", "fieldsType",
                           "fieldsV1"]
    assert (entry["manager"], entry["operation"], entry["time"]) == \
        ("kubectl-create", "Update", T1)
    doc = entry["fieldsV1"]
    assert doc["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}
    assert doc["f:spec"]["f:revisionHistoryLimit"] == {}
    tmpl = doc["f:spec"]["f:template"]
    assert "." not in tmpl and "." not in doc["f:spec"]  # Go always has these structs
    c = tmpl["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert "." not in tmpl["f:spec"]["f:containers"]  # required: never "added"
    assert c["."] == {} and c["f:resources"] == {}  # non-pointer struct, set by Go
    assert c["f:ports"]["."] == {}


def test_update_moves_changed_fields_to_the_writer():
    old = created()
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    new["spec"]["replicas"] = 5
    mf.track_update(old, new, manager="kubectl-edit", api_version="apps/v1",
                    schema=DEPLOYMENT, now=T2)
    mine = fields_of(new, "kubectl-edit", "Update")
    assert set(mine.paths()) == {
        path("spec", "replicas"),
        path("spec", "template", "spec", "containers", {"name": "web"}, "image")}
    theirs = fields_of(new, "kubectl-create", "Update")
    assert not theirs.has(path("spec", "replicas"))
    assert [e["manager"] for e in new["metadata"]["managedFields"]] == \
        ["kubectl-create", "kubectl-edit"]  # by time


def test_update_that_changes_nothing_leaves_managed_fields_alone():
    old = created()
    new = copy.deepcopy(old)
    new["metadata"]["resourceVersion"] = "99"  # never tracked
    mf.track_update(old, new, manager="kubectl-edit", api_version="apps/v1",
                    schema=DEPLOYMENT, now=T2)
    assert new["metadata"]["managedFields"] == old["metadata"]["managedFields"]


def test_removed_fields_leave_every_owner():
    old = created()
    new = copy.deepcopy(old)
    del new["metadata"]["labels"]
    mf.track_update(old, new, manager="kubectl-edit", api_version="apps/v1",
                    schema=DEPLOYMENT, now=T2)
    assert "f:metadata" not in owners(new)[("kubectl-create", "Update", "")]["fieldsV1"]
    assert ("kubectl-edit", "Update", "") not in owners(new)


def test_status_writes_are_their_own_entry_and_main_writes_skip_status():
    old = created()
    new = copy.deepcopy(old)
    new["status"] = {"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]}
    mf.track_update(old, new, manager="kube-controller-manager", api_version="apps/v1",
                    subresource="status", schema=DEPLOYMENT, has_status=True, now=T2)
    e = owners(new)[("kube-controller-manager", "Update", "status")]
    assert list(e)[-1] == "subresource"
    assert e["fieldsV1"] == {"f:status": {
        "f:conditions": {".": {}, 'k:{"type":"Available"}': {
            ".": {}, "f:status": {}, "f:type": {}}},
        "f:replicas": {}}}
    newer = copy.deepcopy(new)
    newer["status"]["replicas"] = 3
    mf.track_update(new, newer, manager="sneaky", api_version="apps/v1", schema=DEPLOYMENT,
                    has_status=True, now=T3)
    assert ("sneaky", "Update", "") not in owners(newer)


def test_untracked_objects_stay_untracked_and_reset_clears():
    old = stored(deploy())
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 4
    mf.track_update(old, new, manager="x", api_version="apps/v1", schema=DEPLOYMENT)
    assert "managedFields" not in new["metadata"]
    tracked = created()
    reset = copy.deepcopy(tracked)
    reset["metadata"]["managedFields"] = []
    mf.track_update(tracked, reset, manager="x", api_version="apps/v1", schema=DEPLOYMENT)
    assert "managedFields" not in reset["metadata"]


def test_clients_may_rewrite_managed_fields_but_not_break_them():
    old = created()
    new = copy.deepcopy(old)
    new["metadata"]["managedFields"][0]["manager"] = "renamed"
    mf.track_update(old, new, manager="x", api_version="apps/v1", schema=DEPLOYMENT, now=T2)
    assert [e["manager"] for e in new["metadata"]["managedFields"]] == ["renamed"]
    broken = copy.deepcopy(old)
    broken["metadata"]["managedFields"] = [{"manager": "m", "operation": "Bogus"}]
    mf.track_update(old, broken, manager="x", api_version="apps/v1", schema=DEPLOYMENT,
                    now=T2)
    assert broken["metadata"]["managedFields"] == old["metadata"]["managedFields"]


def test_more_than_ten_updaters_merge_into_ancient_changes():
    obj = created(now="2025-01-01T00:00:00Z")
    for i in range(11):
        new = copy.deepcopy(obj)
        new["metadata"].setdefault("annotations", {})[f"a{i}"] = "x"
        mf.track_update(obj, new, manager=f"m{i:02}", api_version="apps/v1",
                        schema=DEPLOYMENT, now=f"2025-01-01T00:00:{i + 1:02}Z")
        obj = new
    names = [e["manager"] for e in obj["metadata"]["managedFields"]]
    assert len(names) == 10 and "ancient-changes" in names
    assert "kubectl-create" not in names and "m00" not in names
    ancient = fields_of(obj, "ancient-changes", "Update")
    assert ancient.has(path("spec", "replicas"))
    assert ancient.has(path("metadata", "annotations", "a0"))


def test_manager_names_from_user_agents():
    assert mf.manager_from_user_agent("kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07") \
        == "kubectl"
    assert mf.manager_from_user_agent("Go-http-client/1.1") == "Go-http-client"
    assert mf.manager_from_user_agent("OpenAPI-Generator/31.0.0/python") == \
        "OpenAPI-Generator"
    assert mf.manager_from_user_agent("a\tb\x00c") == "abc"
    assert mf.manager_from_user_agent("x" * 300) == "x" * 128
    assert mf.manager_or_user_agent("kubectl-edit", "kubectl/v1.32") == "kubectl-edit"
    assert mf.validate_field_manager("ok") == []
    assert mf.validate_field_manager("a\nb") == [
        'Invalid value: "a\nb": invalid character U+000A (at position 1)']


# --- apply --------------------------------------------------------------------------------

def test_apply_creates_with_only_the_appliers_entry():
    out = apply(None, deploy())
    (entry,) = out["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["time"]) == ("kubectl", "Apply", T2)
    assert "f:name" not in entry["fieldsV1"].get("f:metadata", {})  # never tracked
    assert out["spec"]["replicas"] == 2


def test_reapplying_the_same_configuration_is_a_no_op():
    live = stored(apply(None, deploy(), now=T1))
    assert apply(live, deploy(), now=T3) is None


def test_apply_merges_lists_by_key_and_keeps_other_items():
    live = stored(apply(None, deploy(), now=T1))
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "s"})
    cfg = deploy(image="nginx:2", ports=({"containerPort": 80}, {"containerPort": 443}))
    out = apply(live, cfg)
    containers = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web", "sidecar"]
    assert containers[0]["image"] == "nginx:2"
    assert containers[0]["imagePullPolicy"] == "IfNotPresent"  # not applied: kept
    assert containers[0]["ports"] == [{"containerPort": 80, "protocol": "TCP"},
                                      {"containerPort": 443}]


def test_atomic_fields_are_replaced_whole():
    live = stored(apply(None, deploy(), now=T1))
    cfg = deploy()
    cfg["spec"]["selector"] = {"matchExpressions": [
        {"key": "app", "operator": "In", "values": ["web"]}]}
    out = apply(live, cfg)
    assert out["spec"]["selector"] == cfg["spec"]["selector"]


def test_conflict_with_another_applier():
    live = stored(apply(None, deploy(), now=T1))
    with pytest.raises(mf.Conflict) as info:
        apply(live, deploy(replicas=3), manager="other")
    assert info.value.message == \
        'Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas'
    assert info.value.causes() == [{"reason": "FieldManagerConflict",
                                    "message": 'conflict with "kubectl"',
                                    "field": ".spec.replicas"}]


def test_conflict_with_an_updater_names_its_api_version_and_subresource():
    live = created(manager="kubectl-client-side-apply")
    with pytest.raises(mf.Conflict) as info:
        apply(live, deploy(replicas=3), manager="ci")
    assert info.value.message == ('Apply failed with 1 conflict: conflict with '
                                  '"kubectl-client-side-apply" using apps/v1: .spec.replicas')
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 7
    mf.track_update(live, scaled, manager="kubectl", api_version="apps/v1",
                    subresource="scale", schema=DEPLOYMENT, now=T2)
    with pytest.raises(mf.Conflict) as info:
        apply(scaled, deploy(replicas=3), manager="ci")
    assert info.value.causes()[0]["message"] == \
        'conflict with "kubectl" with subresource "scale" using apps/v1'


def test_multiple_conflicts_grouped_by_manager():
    live = created(manager="kubectl-create")
    edited = copy.deepcopy(live)
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:9"
    mf.track_update(live, edited, manager="kubectl-edit", api_version="apps/v1",
                    schema=DEPLOYMENT, now=T2)
    with pytest.raises(mf.Conflict) as info:
        apply(edited, deploy(replicas=3, image="nginx:3"), manager="ci")
    assert info.value.message == (
        'Apply failed with 2 conflicts: conflicts with "kubectl-create" using apps/v1:\n'
        '- .spec.replicas\n'
        'conflicts with "kubectl-edit" using apps/v1:\n'
        '- .spec.template.spec.containers[name="web"].image')


def test_force_takes_over_conflicting_fields():
    live = stored(apply(None, deploy(), now=T1))
    out = apply(live, deploy(replicas=3), manager="other", force=True, now=T3)
    assert out["spec"]["replicas"] == 3
    assert not fields_of(out, "kubectl").has(path("spec", "replicas"))
    assert fields_of(out, "other").has(path("spec", "replicas"))
    assert owners(out)[("other", "Apply", "")]["time"] == T3


def test_dropped_fields_are_removed_unless_someone_else_owns_them():
    live = stored(apply(None, deploy(labels={"app": "web", "tier": "fe"},
                                     env=[{"name": "A", "value": "1"},
                                          {"name": "B", "value": "2"}]), now=T1))
    out = apply(live, deploy(labels={"app": "web"}, env=[{"name": "A", "value": "1"}]))
    assert out["metadata"]["labels"] == {"app": "web"}
    assert out["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "A", "value": "1"}]
    assert out["spec"]["revisionHistoryLimit"] == 10  # never applied: untouched

    shared = stored(apply(live, deploy(labels={"app": "web", "tier": "fe"}), manager="two"))
    out = apply(shared, deploy(labels={"app": "web"}))
    assert out["metadata"]["labels"] == {"app": "web", "tier": "fe"}


def test_dropped_container_is_removed():
    two = deploy()
    two["spec"]["template"]["spec"]["containers"].append({"name": "log", "image": "busybox"})
    live = stored(apply(None, two, now=T1))
    out = apply(live, deploy())
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["web"]


def test_first_apply_to_an_untracked_object_credits_before_first_apply():
    live = stored(deploy(replicas=5))
    out = apply(live, deploy(replicas=5), manager="ci")
    assert set(owners(out)) == {("ci", "Apply", ""), ("before-first-apply", "Update", "")}
    assert fields_of(out, "before-first-apply", "Update").has(path("spec", "replicas"))


def test_kubectl_upgrades_from_client_side_apply_without_conflicts():
    cfg = deploy()
    obj = stored(copy.deepcopy(cfg))
    obj["metadata"]["annotations"] = {mf.LAST_APPLIED: json.dumps(cfg)}
    mf.track_update(None, obj, manager="kubectl-client-side-apply", api_version="apps/v1",
                    schema=DEPLOYMENT, now=T1)
    out = apply(obj, deploy(replicas=3))  # manager "kubectl": allowed
    assert out["spec"]["replicas"] == 3
    assert json.loads(out["metadata"]["annotations"][mf.LAST_APPLIED])["spec"]["replicas"] \
        == 3
    with pytest.raises(mf.Conflict):
        apply(obj, deploy(replicas=3), manager="someone-else")


def test_status_apply_owns_only_status():
    live = stored(apply(None, deploy(), now=T1))
    cfg = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "default"},
           "spec": {"replicas": 9}, "status": {"replicas": 2}}
    out = apply(live, cfg, manager="ctrl", subresource="status", has_status=True)
    assert owners(out)[("ctrl", "Apply", "status")]["fieldsV1"] == {
        "f:status": {"f:replicas": {}}}
    main = dict(deploy(), status={"replicas": 1})
    out = apply(live, main, has_status=True)
    assert "f:status" not in owners(out)[("kubectl", "Apply", "")]["fieldsV1"]


def test_refused_configurations():
    with pytest.raises(mf.ApplyError) as info:
        apply(None, dict(deploy(), kind="StatefulSet"), schema=DEPLOYMENT,
              kind="Deployment")
    assert (info.value.code, info.value.message) == (
        400, "invalid object type: apps/v1, Kind=StatefulSet")
    bad = deploy()
    bad["metadata"]["managedFields"] = []
    with pytest.raises(mf.ApplyError) as info:
        apply(None, bad)
    assert info.value.message == "metadata.managedFields must be nil"
    bad = deploy()
    bad["spec"]["replicaz"] = 1
    with pytest.raises(mf.ApplyError) as info:
        apply(None, bad)
    assert (info.value.code, info.value.message) == (500, (
        "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): "
        ".spec.replicaz: field not declared in schema"))
    bad = deploy()
    bad["spec"]["replicas"] = "two"
    bad["spec"]["template"]["spec"]["containers"].append({"name": "web", "image": "x"})
    with pytest.raises(mf.ApplyError) as info:
        apply(None, bad)
    assert info.value.message.endswith(
        "errors:\n  .spec.replicas: expected numeric (int or float), got string\n"
        '  .spec.template.spec.containers: duplicate entries for key [name="web"]')


def test_service_ports_keyed_by_port_and_defaulted_protocol():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 80, "targetPort": 8080}]}}
    out = apply(None, svc, schema=SERVICE)
    assert 'k:{"port":80,"protocol":"TCP"}' in \
        owners(out)[("kubectl", "Apply", "")]["fieldsV1"]["f:spec"]["f:ports"]


def test_apply_to_custom_resources_without_schema_merges_maps():
    cr = {"apiVersion": "ex.com/v1", "kind": "Widget", "metadata": {"name": "w"},
          "spec": {"size": 1, "tags": ["a"], "opts": {"x": 1}}}
    live = apply(None, cr, schema=None, now=T1)
    live["metadata"]["uid"] = "u"
    other = {"apiVersion": "ex.com/v1", "kind": "Widget", "metadata": {"name": "w"},
             "spec": {"opts": {"y": 2}}}
    out = apply(live, other, manager="two", schema=None)
    assert out["spec"] == {"size": 1, "tags": ["a"], "opts": {"x": 1, "y": 2}}
    with pytest.raises(mf.Conflict):
        apply(out, dict(other, spec={"tags": ["b"]}), manager="two", schema=None)


def test_merged_list_order_follows_the_applied_order_for_shared_items():
    t = sm.typer_for(POD).root
    live = {"spec": {"containers": [{"name": n, "image": "x"} for n in "abc"]}}
    cfg = {"spec": {"containers": [{"name": "c", "image": "y"}, {"name": "a", "image": "y"},
                                   {"name": "d", "image": "y"}]}}
    out = sm.merge(live, cfg, t)
    assert [c["name"] for c in out["spec"]["containers"]] == ["b", "c", "a", "d"]
    assert {c["name"]: c["image"] for c in out["spec"]["containers"]} == \
        {"a": "y", "b": "x", "c": "y", "d": "y"}


def test_public_field_set_and_field_types():
    types = mf.field_types("apps", "v1", "Deployment")
    assert mf.field_types("apps", "v1", "Deployment") is types
    s = mf.field_set(deploy(), types)
    assert s.has(path("spec", "replicas"))
    assert not s.has(path("spec"))  # struct fields are not members by themselves
    cr_schema = {"type": "object", "properties": {"spec": {"type": "object"}}}
    assert mf.field_types("x.io", "v1", "Thing", cr_schema) is \
        mf.field_types("x.io", "v1", "Thing", cr_schema)
    assert fp.to_fields_v1(mf.field_set({"spec": {"a": 1}}, None)) == \
        {"f:spec": {".": {}, "f:a": {}}}
