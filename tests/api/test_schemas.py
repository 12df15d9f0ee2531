"""The v1.32 schemas load, index, walk and validate objects with upstream's messages."""

import time

from pyk8s.api import schemas


def deployment(**spec_extra):
    spec = {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx",
                                     "resources": {"limits": {"cpu": "500m", "memory": None}},
                                     "ports": [{"containerPort": 80}]}]},
        },
    }
    spec.update(spec_extra)
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}}, "spec": spec}


def test_schema_files_are_v1_32():
    assert schemas.schema_dir().endswith("v1.32.0-local")
    assert len(schemas.definitions()) > 600


def test_gvk_index():
    assert schemas.definition_for("apps", "v1", "Deployment") == "io.k8s.api.apps.v1.Deployment"
    assert schemas.definition_for("", "v1", "Pod") == "io.k8s.api.core.v1.Pod"
    assert schemas.definition_for("", "v1", "ConfigMapList") == "io.k8s.api.core.v1.ConfigMapList"
    assert schemas.definition_for("batch", "v1", "CronJob") == "io.k8s.api.batch.v1.CronJob"
    assert schemas.definition_for("example.com", "v1", "Widget") is None
    assert schemas.definition_for_object({"apiVersion": "v1", "kind": "Service"}) == (
        "io.k8s.api.core.v1.Service")
    assert schemas.split_api_version("rbac.authorization.k8s.io/v1") == (
        "rbac.authorization.k8s.io", "v1")
    assert schemas.split_api_version("v1") == ("", "v1")


def test_resolve_and_field_schema():
    ref = schemas.schema("io.k8s.api.apps.v1.DeploymentSpec")["properties"]["template"]
    assert schemas.resolve(ref) is schemas.schema("io.k8s.api.core.v1.PodTemplateSpec")
    image = schemas.field_schema("io.k8s.api.apps.v1.Deployment",
                                 "spec.template.spec.containers[0].image")
    assert image["type"] == ["string", "null"]
    labels = schemas.field_schema("io.k8s.api.core.v1.Pod", ["metadata", "labels", "app"])
    assert labels["type"] == ["string", "null"]
    assert schemas.field_schema("io.k8s.api.core.v1.Pod", "spec.nope") is None
    assert schemas.parse_field_path("a.b[3].c[]") == ["a", "b", 3, "c", -1]


def test_patch_meta():
    pod_spec = schemas.schema("io.k8s.api.core.v1.PodSpec")
    sub, meta = schemas.lookup_patch_meta(pod_spec, "containers")
    assert meta.strategies == ("merge",) and meta.merge_key == "name"
    assert meta.list_type == "map" and meta.list_map_keys == ("name",)
    assert schemas.items_schema(sub) is schemas.schema("io.k8s.api.core.v1.Container")
    _, volumes = schemas.lookup_patch_meta(pod_spec, "volumes")
    assert set(volumes.strategies) == {"merge", "retainKeys"}
    _, tolerations = schemas.lookup_patch_meta(pod_spec, "tolerations")
    assert tolerations.strategies == () and tolerations.list_type == "atomic"
    spec = schemas.schema("io.k8s.api.apps.v1.DeploymentSpec")
    _, strategy = schemas.lookup_patch_meta(spec, "strategy")
    assert strategy.strategies == ("retainKeys",)
    meta_schema = schemas.schema("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
    _, finalizers = schemas.lookup_patch_meta(meta_schema, "finalizers")
    assert finalizers.strategies == ("merge",) and finalizers.merge_key == ""
    value, none = schemas.lookup_patch_meta(meta_schema["properties"]["labels"], "anything")
    assert value["type"] == ["string", "null"] and none.strategies == ()
    assert schemas.lookup_patch_meta(None, "x") == (None, schemas.PatchMeta())


def test_valid_object_has_no_violations():
    assert schemas.validate(deployment()) == []
    assert schemas.validate(deployment(), strict=True) == []
    # Kinds without a schema (custom resources) are not checked here.
    assert schemas.validate({"apiVersion": "example.com/v1", "kind": "Widget", "x": 1}) == []


def test_strict_reports_unknown_fields_like_upstream():
    obj = deployment(foo=1)
    obj["spec"]["template"]["spec"]["containers"][0]["imagePolicy"] = "x"
    obj["metadata"]["bogus"] = True
    msgs = sorted(v.message for v in schemas.validate(obj, strict=True))
    assert msgs == ['unknown field "metadata.bogus"', 'unknown field "spec.foo"',
                    'unknown field "spec.template.spec.containers[0].imagePolicy"']
    assert schemas.validate(obj) == []
    assert sorted(schemas.unknown_fields(obj)) == msgs
    fields = sorted(v.field for v in schemas.validate(obj, strict=True))
    assert fields == ["metadata.bogus", "spec.foo", "spec.template.spec.containers[0].imagePolicy"]


def test_type_errors_read_as_go_decode_errors():
    obj = deployment(replicas="two")
    obj["metadata"]["labels"]["n"] = 5
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = 3
    obj["spec"]["template"]["spec"]["containers"].append("oops")
    obj["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = True
    found = {v.message for v in schemas.validate(obj)}
    assert found == {
        "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas "
        "of type int32",
        "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels "
        "of type string",
        "json: cannot unmarshal number into Go struct field "
        "Container.spec.template.spec.containers.image of type string",
        "json: cannot unmarshal string into Go struct field "
        "PodSpec.spec.template.spec.containers of type v1.Container",
        "json: cannot unmarshal bool into Go struct field "
        "ResourceRequirements.spec.template.spec.containers.resources.limits "
        "of type resource.Quantity",
    }
    assert all(v.reason == schemas.TYPE for v in schemas.validate(obj))


def test_required_and_enum():
    obj = deployment()
    del obj["spec"]["selector"]
    (violation,) = schemas.validate(obj)
    assert (violation.field, violation.reason, violation.message) == (
        "spec.selector", schemas.REQUIRED, "spec.selector: Required value")
    bad_kind = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    assert schemas.validate(bad_kind) == []


def test_null_quantity_and_int_or_string_are_accepted():
    obj = deployment(strategy={"type": "RollingUpdate",
                               "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": None}})
    assert schemas.validate(obj) == []
    obj["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = 1
    assert schemas.validate(obj) == []


def test_validators_are_cached_and_fast():
    schemas.validate(deployment(), strict=True)
    first = schemas.validator("apps", "v1", "Deployment", strict=True)
    assert schemas.validator("apps", "v1", "Deployment", strict=True) is first
    assert schemas.validator("example.com", "v1", "Widget") is None
    obj = deployment()
    start = time.perf_counter()
    for _ in range(200):
        first.validate(obj)
    assert time.perf_counter() - start < 1.0


def test_go_type_names():
    assert schemas.go_type({"type": "integer", "format": "int64"}) == "int64"
    assert schemas.go_type({"type": ["array"], "items": {"type": "string"}}) == "[]string"
    assert schemas.go_type({"type": "object", "additionalProperties": {"type": "string"}}) == (
        "map[string]string")
    assert schemas.go_type({"$ref": "#/$defs/io.k8s.api.core.v1.Container"}) == "v1.Container"
    assert schemas.format_path(["spec", "containers", 0, "image"]) == "spec.containers[0].image"


def test_strict_leaves_free_form_schemas_open():
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                        "openAPIV3Schema": {"type": "object", "properties": {"spec": {
                            "type": "object", "x-kubernetes-preserve-unknown-fields": True,
                            "properties": {"size": {"type": "integer", "default": 3}}}}}}}]}}
    assert schemas.validate(crd, strict=True) == []
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "x", "annotations": {"any/key": "v"},
        "managedFields": [{"manager": "m", "fieldsV1": {"f:data": {"f:a": {}}}}]},
        "data": {"anything": "goes"}}
    assert schemas.validate(cm, strict=True) == []
