"""Label and field selectors parse, match and print as apimachinery's do."""

import pytest
from hypothesis import given, settings, strategies as st

from pyk8s.api import selectors as s
from pyk8s.api.selectors import SelectorError

LABELS = {"app": "web", "tier": "frontend", "version": "3"}


@pytest.mark.parametrize("text,expected", [
    ("", True),
    ("app=web", True),
    ("app==web", True),
    ("app!=web", False),
    ("app!=db", True),
    ("missing!=x", True),
    ("app in (web,db)", True),
    ("app notin (web,db)", False),
    ("missing notin (a)", True),
    ("app", True),
    ("!app", False),
    ("!missing", True),
    ("app=web,tier=frontend", True),
    ("app=web,tier=backend", False),
    ("version>2", True),
    ("version<3", False),
    ("app>2", False),
    ("app=", False),
    ("missing=", False),
    ("tier in (frontend),app", True),
])
def test_parse_and_match(text, expected):
    assert s.parse_label_selector(text).matches(LABELS) is expected


@pytest.mark.parametrize("text,canonical", [
    ("tier=x, app in (b, a)", "app in (a,b),tier=x"),
    ("!b,a", "a,!b"),
    ("a==1", "a==1"),
    ("a notin (x)", "a notin (x)"),
    ("a in (,)", "a in ()"),
    ("a>5", "a>5"),
])
def test_string_form_is_canonical(text, canonical):
    sel = s.parse_label_selector(text)
    assert str(sel) == canonical
    assert s.parse_label_selector(str(sel)) == sel


@pytest.mark.parametrize("text,message", [
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("app=web,", "found '', expected: identifier after ','"),
    (",app", "found ',', expected: !, identifier, or 'end of string'"),
    ("app in web", "unable to parse requirement: found 'web' expected: '('"),
    ("app in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'"),
    ("app=(", "unable to parse requirement: found '(', expected: identifier"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("!=x", "found '!=', expected: !, identifier, or 'end of string'"),
    ("!(x", "unable to parse requirement: found '(', expected: identifier"),
    ("a>x", "unable to parse requirement: values[0]: Invalid value: \"x\": "
            "for 'Gt', 'Lt' operators, the value must be an integer"),
])
def test_parse_errors(text, message):
    with pytest.raises(SelectorError) as err:
        s.parse_label_selector(text)
    assert str(err.value) == message


def test_bad_key_reports_nil_path_like_upstream():
    with pytest.raises(SelectorError) as err:
        s.parse_label_selector("bad_=x")
    assert str(err.value).startswith('unable to parse requirement: <nil>: Invalid value: "bad_": '
                                     "name part must consist of alphanumeric characters")


def test_bad_value_names_key_in_path():
    with pytest.raises(SelectorError) as err:
        s.parse_label_selector("app=-x")
    assert str(err.value).startswith(
        'unable to parse requirement: values[0][app]: Invalid value: "-x": a valid label must')


def test_from_label_selector_dict():
    sel = s.label_selector_from_dict({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["frontend", "edge"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "version", "operator": "Exists"},
            {"key": "env", "operator": "NotIn", "values": ["prod"]},
        ]})
    assert str(sel) == "app=web,!canary,env notin (prod),tier in (edge,frontend),version"
    assert sel.matches(LABELS)
    assert not sel.matches({**LABELS, "canary": "1"})
    assert not sel.matches({"app": "web", "tier": "frontend"})


def test_nil_and_empty_selectors():
    assert s.label_selector_from_dict(None).matches({}) is False
    assert s.label_selector_from_dict({}).matches({"any": "thing"}) is True
    assert s.label_selector_from_dict({"matchLabels": {}}).empty()
    assert s.format_label_selector(None) == "<none>"
    assert s.format_label_selector({"matchLabels": {"a": "b"}}) == "a=b"
    assert s.format_label_selector({"matchExpressions": [{"key": "a", "operator": "Bad"}]}) == "<error>"


def test_dict_errors_are_upstreams():
    with pytest.raises(SelectorError) as err:
        s.label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "Foo"}]})
    assert str(err.value) == '"Foo" is not a valid label selector operator'
    with pytest.raises(SelectorError) as err:
        s.label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "In"}]})
    assert str(err.value) == (
        "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty")
    with pytest.raises(SelectorError) as err:
        s.label_selector_from_dict({"matchExpressions": [
            {"key": "a", "operator": "Exists", "values": ["x"]}]})
    assert str(err.value) == ('values: Invalid value: []string{"x"}: '
                              "values set must be empty for exists and does not exist")


def test_validate_label_selector_field_errors():
    errs = s.validate_label_selector({
        "matchLabels": {"ok": "-bad"},
        "matchExpressions": [
            {"key": "a", "operator": "In"},
            {"key": "b", "operator": "Exists", "values": ["x"]},
            {"key": "c", "operator": "Sometimes"},
        ]}, "spec.selector")
    rendered = [str(e) for e in errs]
    assert rendered[0].startswith('spec.selector.matchLabels: Invalid value: "-bad": a valid label')
    assert rendered[1:] == [
        "spec.selector.matchExpressions[0].values: Required value: "
        "must be specified when `operator` is 'In' or 'NotIn'",
        "spec.selector.matchExpressions[1].values: Forbidden: "
        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        'spec.selector.matchExpressions[2].operator: Invalid value: "Sometimes": '
        "not a valid selector operator",
    ]


def test_selector_from_set_and_exact_match():
    sel = s.selector_from_set({"b": "2", "a": "1"})
    assert str(sel) == "a=1,b=2"
    assert sel.requires_exact_match("b") == "2"
    assert sel.requires_exact_match("c") is None
    assert s.selector_from_set({}).empty()


label_key = st.text(alphabet="abcd", min_size=1, max_size=3)
label_value = st.text(alphabet="xy12", min_size=1, max_size=3)


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(label_key, label_value, max_size=5),
       st.dictionaries(label_key, label_value, max_size=5))
def test_set_selector_matches_exactly_supersets(wanted, labels):
    sel = s.selector_from_set(wanted)
    assert sel.matches(labels) == all(labels.get(k) == val for k, val in wanted.items())
    assert s.parse_label_selector(str(sel)) == sel


# --- field selectors --------------------------------------------------------------

def test_field_selector_parse_and_match():
    sel = s.parse_field_selector("status.phase!=Running,metadata.name=web")
    assert str(sel) == "metadata.name=web,status.phase!=Running"
    assert sel.matches({"metadata.name": "web", "status.phase": "Pending"})
    assert not sel.matches({"metadata.name": "web", "status.phase": "Running"})
    assert not sel.matches({"metadata.name": "db"})
    assert sel.requires_exact_match("metadata.name") == "web"
    assert sel.requires_exact_match("status.phase") is None
    assert sel.fields() == {"metadata.name", "status.phase"}
    assert s.parse_field_selector("a==b").matches({"a": "b"})
    assert s.parse_field_selector("").empty()
    assert s.parse_field_selector("spec.nodeName=").matches({"spec.nodeName": ""})
    assert s.parse_field_selector("spec.nodeName=").matches({})


def test_field_selector_escaping():
    sel = s.parse_field_selector(r"metadata.name=a\,b\=c\\d")
    assert sel.requires_exact_match("metadata.name") == "a,b=c\\d"
    assert str(sel) == r"metadata.name=a\,b\=c\\d"
    assert s.escape_field_value("x=y,z") == r"x\=y\,z"


@pytest.mark.parametrize("text,message", [
    ("name", "invalid selector: 'name'; can't understand 'name'"),
    (r"a=b\x", r"invalid field selector: invalid escape sequence: \x"),
    ("a=b=c", "invalid field selector: unescaped character in value: ="),
    ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
])
def test_field_selector_errors(text, message):
    with pytest.raises(SelectorError) as err:
        s.parse_field_selector(text)
    assert str(err.value) == message


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=20))
def test_field_value_escape_round_trip(value):
    assert s.unescape_field_value(s.escape_field_value(value)) == value
    sel = s.field_selector_from_set({"metadata.name": value})
    assert s.parse_field_selector(str(sel)).requires_exact_match("metadata.name") == value
