"""Name, label and annotation validation with upstream's exact error strings.

Role: the checks of apimachinery's ``pkg/util/validation`` (``IsQualifiedName``,
``IsDNS1123Subdomain`` ...) and the field error type of
``pkg/util/validation/field`` (``FieldError``), so that the API server can answer
``Invalid`` statuses whose causes read exactly as Kubernetes' do.

Invariants:
- ``is_*`` functions return a list of messages, empty when the value is valid;
  they never raise.
- ``FieldError.error_body()`` and ``str(FieldError)`` render as Go's
  ``field.Error.ErrorBody()`` / ``Error()``; ``reason`` is the Status cause type
  (``FieldValueInvalid`` ...).
- ``validate_*`` functions return a list of ``FieldError``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

# --- field errors -----------------------------------------------------------

NOT_FOUND = "FieldValueNotFound"
REQUIRED = "FieldValueRequired"
DUPLICATE = "FieldValueDuplicate"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
INTERNAL = "InternalError"
TYPE_INVALID = "FieldValueTypeInvalid"

_TYPE_TEXT = {
    NOT_FOUND: "Not found",
    REQUIRED: "Required value",
    DUPLICATE: "Duplicate value",
    INVALID: "Invalid value",
    NOT_SUPPORTED: "Unsupported value",
    FORBIDDEN: "Forbidden",
    TOO_LONG: "Too long",
    TOO_MANY: "Too many",
    INTERNAL: "Internal error",
    TYPE_INVALID: "Invalid value",
}
# Types whose body never shows the bad value (as upstream's ErrorBody).
_VALUELESS = {REQUIRED, FORBIDDEN, TOO_LONG, INTERNAL}
_OMIT = object()


def go_quote(s: str) -> str:
    """Quote ``s`` like Go's ``strconv.Quote`` / ``%q``."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append(
                {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n",
                 "\r": "\\r", "\t": "\\t", "\v": "\\v"}[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_value(value: Any) -> str:
    """Render a bad value as Go's ``%v`` / ``%q`` / ``%#v`` would in ErrorBody."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(go_quote(v) for v in value) + "}"
    return str(value)


@dataclass(frozen=True)
class FieldError:
    """One field error, as upstream's ``field.Error``."""

    reason: str
    field: str
    bad_value: Any = _OMIT
    detail: str = ""

    def error_body(self) -> str:
        text = _TYPE_TEXT[self.reason]
        if self.reason not in _VALUELESS and self.bad_value is not _OMIT:
            text = f"{text}: {go_value(self.bad_value)}"
        if self.detail:
            text = f"{text}: {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field or '[]'}: {self.error_body()}"

    def as_cause(self) -> dict:
        """The ``StatusCause`` dict upstream puts in an Invalid status."""
        # An empty path is Go's field.NewPath(""), which prints as "[]".
        return {"reason": self.reason, "message": self.error_body(), "field": self.field or "[]"}


def required(field: str, detail: str = "") -> FieldError:
    return FieldError(REQUIRED, field, _OMIT, detail)


def invalid(field: str, value: Any, detail: str) -> FieldError:
    return FieldError(INVALID, field, value, detail)


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError(FORBIDDEN, field, _OMIT, detail)


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError(DUPLICATE, field, value)


def not_found(field: str, value: Any) -> FieldError:
    return FieldError(NOT_FOUND, field, value)


def not_supported(field: str, value: Any, valid: Sequence[str]) -> FieldError:
    detail = ""
    if valid:
        detail = "supported values: " + ", ".join(go_quote(str(v)) for v in valid)
    return FieldError(NOT_SUPPORTED, field, value, detail)


def too_long(field: str, value: Any, max_length: int) -> FieldError:
    if max_length < 0:
        detail = "value is too long"
    else:
        # v1.32 (apimachinery v0.32): always "bytes"; the singular came later.
        detail = f"may not be more than {max_length} bytes"
    return FieldError(TOO_LONG, field, value, detail)


def aggregate_message(errors: Iterable[Any]) -> str:
    """Join errors as upstream's ``utilerrors.NewAggregate(...).Error()``."""
    msgs: list[str] = []
    for err in errors:
        msg = str(err)
        if msg not in msgs:
            msgs.append(msg)
    if len(msgs) == 1:
        return msgs[0]
    return "[" + ", ".join(msgs) + "]"


# --- string checks ------------------------------------------------------------

def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def empty_error() -> str:
    return "must be non-empty"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    # Built exactly as upstream, which yields "'a',  or 'b', " (two spaces).
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


_QNAME_CHAR = "[A-Za-z0-9]"
_QNAME_EXT_CHAR = "[-A-Za-z0-9_.]"
QUALIFIED_NAME_FMT = "(" + _QNAME_CHAR + _QNAME_EXT_CHAR + "*)?" + _QNAME_CHAR
_QUALIFIED_NAME_ERR = ("must consist of alphanumeric characters, '-', '_' or '.', "
                       "and must start and end with an alphanumeric character")
QUALIFIED_NAME_MAX_LENGTH = 63
_QUALIFIED_NAME_RE = re.compile("^" + QUALIFIED_NAME_FMT + r"\Z")

LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
_LABEL_VALUE_ERR = ("a valid label must be an empty string or consist of alphanumeric "
                    "characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character")
LABEL_VALUE_MAX_LENGTH = 63
_LABEL_VALUE_RE = re.compile("^" + LABEL_VALUE_FMT + r"\Z")

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_ERR = ("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                      "characters or '-', and must start and end with an alphanumeric "
                      "character")
DNS1123_LABEL_MAX_LENGTH = 63
_DNS1123_LABEL_RE = re.compile("^" + DNS1123_LABEL_FMT + r"\Z")

DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_ERR = ("a lowercase RFC 1123 subdomain must consist of lower case "
                          "alphanumeric characters, '-' or '.', and must start and end "
                          "with an alphanumeric character")
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
_DNS1123_SUBDOMAIN_RE = re.compile("^" + DNS1123_SUBDOMAIN_FMT + r"\Z")

DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_ERR = ("a DNS-1035 label must consist of lower case alphanumeric characters "
                      "or '-', start with an alphabetic character, and end with an "
                      "alphanumeric character")
DNS1035_LABEL_MAX_LENGTH = 63
_DNS1035_LABEL_RE = re.compile("^" + DNS1035_LABEL_FMT + r"\Z")

C_IDENTIFIER_FMT = "[A-Za-z_][A-Za-z0-9_]*"
_C_IDENTIFIER_ERR = ("a valid C identifier must start with alphabetic character or '_', "
                     "followed by a string of alphanumeric characters or '_'")
_C_IDENTIFIER_RE = re.compile("^" + C_IDENTIFIER_FMT + r"\Z")

CONFIG_MAP_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_MAP_KEY_ERR = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_CONFIG_MAP_KEY_RE = re.compile("^" + CONFIG_MAP_KEY_FMT + r"\Z")

_PORT_NAME_CHARS_RE = re.compile(r"^[-a-z0-9]+\Z")
_PORT_NAME_ONE_LETTER_RE = re.compile(".*[a-z]")


def is_qualified_name(value: str) -> list[str]:
    """Label keys and annotation keys: ``[prefix/]name``."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + empty_error())
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return [
            "a qualified name "
            + regex_error(_QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part " + empty_error())
    elif len(name) > QUALIFIED_NAME_MAX_LENGTH:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX_LENGTH))
    if not _QUALIFIED_NAME_RE.match(name):
        errs.append("name part " + regex_error(
            _QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def is_valid_label_value(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > LABEL_VALUE_MAX_LENGTH:
        errs.append(max_len_error(LABEL_VALUE_MAX_LENGTH))
    if not _LABEL_VALUE_RE.match(value):
        errs.append(regex_error(_LABEL_VALUE_ERR, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_dns1123_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_LABEL_MAX_LENGTH))
    if not _DNS1123_LABEL_RE.match(value):
        if _DNS1123_SUBDOMAIN_RE.match(value):
            # A valid subdomain but not a label: with the length checked, it is dots.
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_DNS1123_LABEL_ERR, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_ERR, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1035_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1035_LABEL_MAX_LENGTH))
    if not _DNS1035_LABEL_RE.match(value):
        errs.append(regex_error(_DNS1035_LABEL_ERR, DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_c_identifier(value: str) -> list[str]:
    if not _C_IDENTIFIER_RE.match(value):
        return [regex_error(_C_IDENTIFIER_ERR, C_IDENTIFIER_FMT, "my_name", "MY_NAME", "MyName")]
    return []


def is_config_map_key(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _CONFIG_MAP_KEY_RE.match(value):
        errs.append(regex_error(_CONFIG_MAP_KEY_ERR, CONFIG_MAP_KEY_FMT,
                                "key.name", "KEY_NAME", "key-name"))
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def is_valid_port_num(port: int) -> list[str]:
    if 1 <= port <= 65535:
        return []
    return ["must be between 1 and 65535, inclusive"]


def is_valid_port_name(port: str) -> list[str]:
    errs: list[str] = []
    if len(port) > 15:
        errs.append(max_len_error(15))
    if not _PORT_NAME_CHARS_RE.match(port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_NAME_ONE_LETTER_RE.match(port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_valid_ip(value: str) -> list[str]:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    return []


def is_valid_cidr(value: str) -> list[str]:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    if "/" not in value:
        return ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    return []


def is_valid_path_segment_name(name: str) -> list[str]:
    """Names used in URL paths (``metadata.name`` of every object)."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    errs = []
    for bad in ("/", "%"):
        if bad in name:
            errs.append(f"may not contain '{bad}'")
    return errs


# --- object-level validators -----------------------------------------------------

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * (1 << 10)


def validate_label_name(name: str, field: str) -> list[FieldError]:
    return [invalid(field, name, m) for m in is_qualified_name(name)]


def validate_labels(labels: Mapping[str, str] | None, field: str = "metadata.labels") -> list[FieldError]:
    errs: list[FieldError] = []
    for key, value in (labels or {}).items():
        errs.extend(validate_label_name(key, field))
        if not isinstance(value, str):
            errs.append(invalid(field, value, "must be a string"))
            continue
        errs.extend(invalid(field, value, m) for m in is_valid_label_value(value))
    return errs


def validate_annotations(annotations: Mapping[str, str] | None,
                         field: str = "metadata.annotations") -> list[FieldError]:
    errs: list[FieldError] = []
    total = 0
    for key, value in (annotations or {}).items():
        # Annotation keys are qualified names whose case does not matter.
        errs.extend(invalid(field, key, m) for m in is_qualified_name(key.lower()))
        total += len(key) + len(value if isinstance(value, str) else str(value))
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(too_long(field, "", TOTAL_ANNOTATION_SIZE_LIMIT))
    return errs


def name_is_dns_subdomain(name: str, prefix: bool = False) -> list[str]:
    """Upstream's ``NameIsDNSSubdomain``; ``prefix`` allows a trailing generateName part."""
    return is_dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool = False) -> list[str]:
    return is_dns1123_label(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool = False) -> list[str]:
    return is_dns1035_label(_mask_trailing_dash(name) if prefix else name)


def _mask_trailing_dash(name: str) -> str:
    # A generateName prefix may end with '-'; the random suffix makes it valid.
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


def validate_object_name(name: str | None, generate_name: str | None = None, *,
                         check=name_is_dns_subdomain,
                         field: str = "metadata") -> list[FieldError]:
    """The name/generateName checks of upstream's ``ValidateObjectMeta``."""
    errs: list[FieldError] = []
    if generate_name:
        for msg in check(generate_name, True):
            errs.append(invalid(f"{field}.generateName", generate_name, msg))
    if not name:
        # The store fills name from generateName before validating, so an empty
        # name here is an error even when generateName is set (as upstream).
        errs.append(required(f"{field}.name", "name or generateName is required"))
        return errs
    for msg in check(name, False):
        errs.append(invalid(f"{field}.name", name, msg))
    return errs
