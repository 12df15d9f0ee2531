"""Name, label and annotation checks answer with upstream's exact messages."""

import pytest

from pyk8s.api import validation as v

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
NAME_PART_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
    "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def test_subdomain_message_is_upstreams():
    assert v.is_dns1123_subdomain("Foo") == [SUBDOMAIN_MSG]
    assert v.is_dns1123_subdomain("a.b-c.d") == []
    assert v.is_dns1123_subdomain("a" * 254) == ["must be no more than 253 characters"]
    assert v.is_dns1123_subdomain("A" * 254) == ["must be no more than 253 characters", SUBDOMAIN_MSG]


def test_dns_label_distinguishes_dots():
    assert v.is_dns1123_label("my-name") == []
    assert v.is_dns1123_label("a.b") == ["must not contain dots"]
    assert v.is_dns1123_label("-a")[0].startswith(
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'")
    assert v.is_dns1123_label("a" * 64)[0] == "must be no more than 63 characters"


def test_dns1035_label_must_start_with_letter():
    assert v.is_dns1035_label("abc-123") == []
    assert v.is_dns1035_label("1abc")[0].startswith("a DNS-1035 label must consist of")


@pytest.mark.parametrize("key", ["app", "app.kubernetes.io/name", "a_b.c-d", "A"])
def test_qualified_names_accepted(key):
    assert v.is_qualified_name(key) == []


def test_qualified_name_messages():
    assert v.is_qualified_name("-bad") == [NAME_PART_MSG]
    assert v.is_qualified_name("/x") == ["prefix part must be non-empty"]
    assert v.is_qualified_name("Example.com/x") == ["prefix part " + SUBDOMAIN_MSG]
    assert v.is_qualified_name("a/") == ["name part must be non-empty", NAME_PART_MSG]
    assert v.is_qualified_name("a" * 64) == ["name part must be no more than 63 characters"]
    too_many = v.is_qualified_name("a/b/c")
    assert len(too_many) == 1
    assert too_many[0].startswith("a qualified name must consist of")
    assert too_many[0].endswith("with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')")


def test_label_values():
    assert v.is_valid_label_value("") == []
    assert v.is_valid_label_value("my_value.1") == []
    assert v.is_valid_label_value("bad value") == [
        "a valid label must be an empty string or consist of alphanumeric characters, '-', "
        "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  "
        "or 'my_value',  or '12345', regex used for validation is "
        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]


def test_field_error_rendering_matches_go():
    err = v.invalid("metadata.name", "Foo", SUBDOMAIN_MSG)
    assert str(err) == f'metadata.name: Invalid value: "Foo": {SUBDOMAIN_MSG}'
    assert err.as_cause() == {"reason": "FieldValueInvalid",
                              "message": f'Invalid value: "Foo": {SUBDOMAIN_MSG}',
                              "field": "metadata.name"}
    assert str(v.required("spec.selector")) == "spec.selector: Required value"
    assert str(v.invalid("spec.replicas", -1, "must be greater than or equal to 0")) == (
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0")
    assert str(v.not_supported("spec.restartPolicy", "Foo", ["Always", "Never"])) == (
        'spec.restartPolicy: Unsupported value: "Foo": supported values: "Always", "Never"')
    assert str(v.forbidden("spec.x", "may not be set")) == "spec.x: Forbidden: may not be set"
    assert str(v.too_long("metadata.annotations", "", 262144)) == (
        "metadata.annotations: Too long: may not be more than 262144 bytes")
    assert str(v.duplicate("spec.ports[1].name", "http")) == (
        'spec.ports[1].name: Duplicate value: "http"')
    assert str(v.invalid("x", ["a", "b"], "d")) == 'x: Invalid value: []string{"a", "b"}: d'
    assert str(v.invalid("x", None, "d")) == "x: Invalid value: null: d"


def test_go_quote_escapes_like_go():
    assert v.go_quote('a"b\\c\n') == '"a\\"b\\\\c\\n"'
    assert v.go_quote("\x01") == '"\\x01"'
    assert v.go_quote("héllo") == '"héllo"'


def test_aggregate_dedups_and_brackets():
    assert v.aggregate_message(["a"]) == "a"
    assert v.aggregate_message(["a", "b", "a"]) == "[a, b]"


def test_validate_labels_and_annotations():
    errs = v.validate_labels({"ok": "yes", "bad key!": "v", "k": "bad value"})
    assert [str(e) for e in errs] == [
        f'metadata.labels: Invalid value: "bad key!": {NAME_PART_MSG}',
        'metadata.labels: Invalid value: "bad value": ' + v.is_valid_label_value("bad value")[0],
    ]
    # Annotation keys are checked case-insensitively, values are free text.
    assert v.validate_annotations({"Example.COM/Key": "any value at all"}) == []
    big = v.validate_annotations({"k": "x" * (256 * 1024)})
    assert [str(e) for e in big] == [
        "metadata.annotations: Too long: may not be more than 262144 bytes"]


def test_object_name_validation():
    assert v.validate_object_name("web-1") == []
    errs = v.validate_object_name("Web")
    assert [str(e) for e in errs] == [f'metadata.name: Invalid value: "Web": {SUBDOMAIN_MSG}']
    assert [str(e) for e in v.validate_object_name("")] == [
        "metadata.name: Required value: name or generateName is required"]
    # A generateName prefix may end in '-'.
    assert v.validate_object_name("web-abcde", "web-") == []
    assert v.validate_object_name("x", "Web-")[0].field == "metadata.generateName"
    assert v.name_is_dns_label("a.b") == ["must not contain dots"]


def test_misc_checks():
    assert v.is_valid_port_num(80) == []
    assert v.is_valid_port_num(0) == ["must be between 1 and 65535, inclusive"]
    assert v.is_valid_port_name("http") == []
    assert "must contain at least one letter (a-z)" in v.is_valid_port_name("123")
    assert "must not contain consecutive hyphens" in v.is_valid_port_name("a--b")
    assert v.is_c_identifier("MY_VAR") == []
    assert v.is_c_identifier("1x") != []
    assert v.is_config_map_key("key.name") == []
    assert v.is_config_map_key("..x") == ["must not start with '..'"]
    assert v.is_valid_ip("10.0.0.1") == [] and v.is_valid_ip("::1") == []
    assert v.is_valid_ip("10.0.0.300") != []
    assert v.is_valid_cidr("10.42.0.0/16") == [] and v.is_valid_cidr("10.42.0.0") != []
    assert v.is_valid_path_segment_name("..") == ["may not be '..'"]
    assert v.is_valid_path_segment_name("a/b%") == ["may not contain '/'", "may not contain '%'"]
