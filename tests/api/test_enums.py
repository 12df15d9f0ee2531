"""The enum table (api/enums.py) as served: attached to the right schemas of the
OpenAPI v3 documents kubectl explain reads, with upstream's "Possible enum values"
text, and never referring to a property the v1.32 schemas do not have."""
import orjson
import pytest

from pyk8s.api import enums, schemas
from pyk8s.apiserver.openapi import OpenAPI
from pyk8s.apiserver.openapiv2 import build_document
from pyk8s.registry import catalogue

CORE = "io.k8s.api.core.v1."


@pytest.fixture(scope="module")
def served() -> OpenAPI:
    api = OpenAPI()
    api.update(catalogue.RESOURCES)
    return api


@pytest.fixture(scope="module")
def components(served) -> dict:
    """Every component schema of every served v3 document, by name."""
    out: dict = {}
    for path in orjson.loads(served.index())["paths"]:
        doc = orjson.loads(served.document(path))
        out.update(doc["components"]["schemas"])
    return out


def _node(components: dict, name: str, prop: str) -> dict:
    props = components[name]["properties"]
    if prop.endswith("[]"):
        return props[prop[:-2]]["items"]
    if prop.endswith("{}"):
        return props[prop[:-2]]["additionalProperties"]
    return props[prop]


def test_pod_restart_policy_as_upstream(served):
    doc = orjson.loads(served.document("api/v1"))
    node = doc["components"]["schemas"][CORE + "PodSpec"]["properties"]["restartPolicy"]
    assert node["enum"] == ["Always", "Never", "OnFailure"]
    assert node["description"].endswith(
        "Default to Always. More info: "
        "https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#restart-policy"
        "\n\nPossible enum values:\n - `\"Always\"`\n - `\"Never\"`\n - `\"OnFailure\"`")


@pytest.mark.parametrize("name,prop,expected", [
    (CORE + "Container", "imagePullPolicy", ["Always", "IfNotPresent", "Never"]),
    (CORE + "ServicePort", "protocol", ["SCTP", "TCP", "UDP"]),
    (CORE + "ServiceSpec", "type", ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]),
    (CORE + "ServiceSpec", "ipFamilies[]", ["", "IPv4", "IPv6"]),
    (CORE + "HostPathVolumeSource", "type",
     ["", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File",
      "FileOrCreate", "Socket"]),
    (CORE + "PersistentVolumeClaimSpec", "accessModes[]",
     ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]),
    (CORE + "PersistentVolumeClaimStatus", "allocatedResourceStatuses{}",
     ["ControllerResizeInProgress", "ControllerResizeInfeasible", "NodeResizeInProgress",
      "NodeResizeInfeasible", "NodeResizePending"]),
    (CORE + "ScopedResourceSelectorRequirement", "scopeName",
     ["BestEffort", "CrossNamespacePodAffinity", "NotBestEffort", "NotTerminating",
      "PriorityClass", "Terminating"]),
    ("io.k8s.api.apps.v1.DeploymentStrategy", "type", ["Recreate", "RollingUpdate"]),
    ("io.k8s.api.batch.v1.PodFailurePolicyRule", "action",
     ["Count", "FailIndex", "FailJob", "Ignore"]),
    ("io.k8s.api.networking.v1.NetworkPolicySpec", "policyTypes[]", ["Egress", "Ingress"]),
    ("io.k8s.api.admissionregistration.v1.RuleWithOperations", "operations[]",
     ["*", "CONNECT", "CREATE", "DELETE", "UPDATE"]),
    ("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.ValidationRule", "reason",
     ["FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid",
      "FieldValueRequired"]),
])
def test_served_enum(components, name, prop, expected):
    assert _node(components, name, prop)["enum"] == expected


@pytest.mark.parametrize("name,prop", [
    # Fields upstream v1.32 serves without an enum (their Go types are not +enum).
    ("io.k8s.api.storage.v1.StorageClass", "reclaimPolicy"),
    ("io.k8s.api.storage.v1.StorageClass", "volumeBindingMode"),
    ("io.k8s.api.discovery.v1.EndpointSlice", "addressType"),
    ("io.k8s.api.scheduling.v1.PriorityClass", "preemptionPolicy"),
    (CORE + "ContainerResizePolicy", "restartPolicy"),
    (CORE + "Container", "restartPolicy"),
    (CORE + "PodStatus", "resize"),
    ("io.k8s.api.apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicy", "whenDeleted"),
])
def test_no_enum_where_upstream_has_none(components, name, prop):
    node = _node(components, name, prop)
    assert "enum" not in node
    assert "Possible enum values" not in node.get("description", "")


def test_every_entry_is_served(components):
    missing = []
    for name, props in enums.ENUMS.items():
        for prop, entry in props.items():
            node = _node(components, name, prop)
            if node.get("enum") != list(entry):
                missing.append((name, prop))
    assert missing == []


def test_no_dangling_entries():
    definitions = schemas.definitions()
    dangling = []
    for name, props in enums.ENUMS.items():
        schema = definitions.get(name)
        for prop, entry in props.items():
            base = prop.rstrip("[]{}")
            node = (schema or {}).get("properties", {}).get(base)
            if node is None:
                dangling.append((name, prop))
                continue
            assert node.get("type") in (["string", "null"], "string",
                                        ["array", "null"], "array",
                                        ["object", "null"], "object"), (name, prop)
            if prop.endswith("[]"):
                assert isinstance(node.get("items"), dict), (name, prop)
            if prop.endswith("{}"):
                assert isinstance(node.get("additionalProperties"), dict), (name, prop)
            assert list(entry) == sorted(entry), (name, prop)  # upstream sorts values
    assert dangling == []


def test_list_and_map_enums_have_no_description_text(components):
    """Upstream writes "Possible enum values" only for plain fields."""
    spec = components[CORE + "ServiceSpec"]["properties"]["ipFamilies"]
    assert "Possible enum values" not in spec.get("description", "")
    assert "description" not in spec["items"]


def test_value_sentences(components):
    desc = _node(components, CORE + "ServiceSpec", "sessionAffinity")["description"]
    assert desc.endswith(
        "Possible enum values:\n"
        " - `\"ClientIP\"` is the Client IP based.\n"
        " - `\"None\"` - no session affinity.")


def test_annotate_is_idempotent():
    schema = {"properties": {"restartPolicy": {"type": "string", "description": "d"}}}
    once = enums.annotate(CORE + "PodSpec", schema)
    twice = enums.annotate(CORE + "PodSpec", once)
    assert twice["properties"]["restartPolicy"]["description"].count("Possible enum") == 1


def test_v2_carries_no_enums():
    """The served v2 (kubectl's client-side validation of a List) keeps no enum lists,
    so no value, however new, can be rejected before the server sees it."""
    api = OpenAPI()
    api.update(catalogue.RESOURCES)
    found: list[str] = []

    def walk(node, where: str) -> None:
        if isinstance(node, dict):
            if "enum" in node:
                found.append(where)
            for key, sub in node.items():
                if key == "properties":  # a mapping of names: JSONSchemaProps has "enum"
                    for name, prop in sub.items():
                        walk(prop, f"{where}.{name}")
                elif isinstance(sub, (dict, list)):
                    walk(sub, f"{where}/{key}")
        elif isinstance(node, list):
            for sub in node:
                walk(sub, where)
    for name, schema in build_document(api)["definitions"].items():
        walk(schema, name)
    assert found == []
