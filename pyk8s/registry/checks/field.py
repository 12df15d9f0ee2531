"""Field errors and Go value rendering for the semantic checks.

Role: upstream's ``k8s.io/apimachinery/pkg/util/validation/field`` as the checks
need it: ``FieldError`` (type, field path, bad value, detail), the constructors
(``required``, ``invalid``, ``not_supported`` ...) and the rendering of a bad value
the way ``field.Error.ErrorBody()`` prints it with Go's ``%v``/``%q``/``%#v``.
Also ``semantic_equal``, upstream's ``apiequality.Semantic.DeepEqual`` over JSON
dicts, used by every "field is immutable" check.

Invariants:
- ``FieldError.message()`` is exactly ``field.Error.Error()``: ``<field>: <body>``;
  ``body()`` is ``ErrorBody()``. Required, Forbidden, TooLong and Internal never
  show the value; ``omit`` hides it for the others (``field.OmitValueType``).
- A value whose Go form cannot be derived from JSON (structs) is passed with an
  explicit ``shown`` string; everything else renders from the Python value.
- The object is duck-compatible with ``pyk8s.api.validation.FieldError``
  (``reason``, ``bad_value``, ``error_body()``, ``str()``, ``as_cause()``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field as dc_field
from decimal import Decimal
from typing import Any, Iterable, Mapping, Sequence

from ...api.quantities import QuantityError, parse_quantity
from ...api.validation import go_quote

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
    NOT_FOUND: "Not found", REQUIRED: "Required value", DUPLICATE: "Duplicate value",
    INVALID: "Invalid value", NOT_SUPPORTED: "Unsupported value", FORBIDDEN: "Forbidden",
    TOO_LONG: "Too long", TOO_MANY: "Too many", INTERNAL: "Internal error",
    TYPE_INVALID: "Invalid value",
}
_VALUELESS = {REQUIRED, FORBIDDEN, TOO_LONG, INTERNAL}

FIELD_IMMUTABLE = "field is immutable"
IS_NEGATIVE = "must be greater than or equal to 0"


class Omit:
    """Marker for ``field.OmitValueType{}``: the body shows no value."""

    def __repr__(self) -> str:
        return "OMIT"


OMIT = Omit()


@dataclass(frozen=True)
class FieldError:
    """One field error, as upstream's ``field.Error``."""

    type: str
    field: str
    value: Any = ""
    detail: str = ""
    shown: str | None = dc_field(default=None, compare=False, repr=False)

    def body(self) -> str:
        text = _TYPE_TEXT[self.type]
        if self.type not in _VALUELESS and not isinstance(self.value, Omit):
            text += ": " + (self.shown if self.shown is not None else go_value(self.value))
        if self.detail:
            text += ": " + self.detail
        return text

    @property
    def path(self) -> str:
        """The field path as Go's ``field.Path.String()``: ``NewPath("")`` is ``[]``."""
        return self.field or "[]"

    def message(self) -> str:
        return f"{self.path}: {self.body()}"

    def cause(self) -> dict[str, str]:
        """The ``StatusCause`` upstream's ``errors.NewInvalid`` builds from this error."""
        return {"reason": self.type, "message": self.body(), "field": self.path}

    # Duck compatibility with pyk8s.api.validation.FieldError.
    reason = property(lambda self: self.type)
    bad_value = property(lambda self: self.value)
    error_body = body
    as_cause = cause

    def __str__(self) -> str:
        return self.message()


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(REQUIRED, path, "", detail)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(FORBIDDEN, path, "", detail)


def invalid(path: str, value: Any, detail: str, *, shown: str | None = None) -> FieldError:
    return FieldError(INVALID, path, value, detail, shown)


def duplicate(path: str, value: Any, *, shown: str | None = None) -> FieldError:
    return FieldError(DUPLICATE, path, value, "", shown)


def not_found(path: str, value: Any) -> FieldError:
    return FieldError(NOT_FOUND, path, value, "")


def not_supported(path: str, value: Any, valid: Sequence[str], *,
                  shown: str | None = None) -> FieldError:
    detail = ""
    if valid:
        detail = "supported values: " + ", ".join(go_quote(str(v)) for v in valid)
    return FieldError(NOT_SUPPORTED, path, value, detail, shown)


def too_long(path: str, max_length: int) -> FieldError:
    """v1.32's ``field.TooLong``: the value is never shown for this type."""
    detail = f"may not be more than {max_length} bytes" if max_length >= 0 \
        else "value is too long"
    return FieldError(TOO_LONG, path, "", detail)


def too_long_max_length(path: str, value: Any, max_length: int) -> FieldError:
    """v1.32's deprecated ``field.TooLongMaxLength``: exactly ``TooLong``."""
    return too_long(path, max_length)


def too_many(path: str, actual: int, maximum: int) -> FieldError:
    return FieldError(TOO_MANY, path, actual, f"must have at most {maximum} items")


def nonnegative(value: Any, path: str) -> list[FieldError]:
    """Upstream's ``ValidateNonnegativeField``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        return [invalid(path, value, IS_NEGATIVE)]
    return []


def immutable(new: Any, old: Any, path: str, *, shown: str | None = None) -> list[FieldError]:
    """Upstream's ``ValidateImmutableField``: the new value, "field is immutable"."""
    if semantic_equal(new, old):
        return []
    return [invalid(path, new, FIELD_IMMUTABLE, shown=shown)]


# --- Go rendering ------------------------------------------------------------------

def go_float(value: float) -> str:
    """Go's ``%v`` of a float64: shortest digits, ``e`` form when exp < -4 or >= 6."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digits, exp = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    x = len(text) + exp - 1
    prefix = "-" if sign else ""
    if x < -4 or x >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if x < 0 else '+'}{abs(x):02d}"
    return prefix + format(Decimal(repr(abs(value))).normalize(), "f")


def go_string_map(value: Mapping[str, Any] | None) -> str:
    """``%#v`` of a ``map[string]string`` (keys sorted, as fmt prints maps)."""
    if value is None:
        return "map[string]string(nil)"
    inner = ", ".join(f"{go_quote(str(k))}:{go_quote(str(value[k]))}" for k in sorted(value))
    return "map[string]string{" + inner + "}"


def go_string_slice(value: Sequence[Any] | None) -> str:
    if value is None:
        return "[]string(nil)"
    return "[]string{" + ", ".join(go_quote(str(v)) for v in value) + "}"


def go_int_slice(value: Sequence[int] | None, type_name: str = "int32") -> str:
    if value is None:
        return f"[]{type_name}(nil)"
    return f"[]{type_name}{{" + ", ".join(str(v) for v in value) + "}"


def go_value(value: Any) -> str:
    """The body text for a bad value decoded from JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, Mapping):
        return go_string_map(value)
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value) and value:
            return go_int_slice(value)
        return go_string_slice(value)
    return str(value)


def int_or_string(value: Any) -> str:
    """``intstr.IntOrString`` shown through its ``String()`` method."""
    return "0" if value is None else str(value)


def go_label_selector(sel: Mapping[str, Any] | None) -> str:
    """``%#v`` of a ``metav1.LabelSelector`` (the form of "field is immutable" errors)."""
    if sel is None:
        return "null"
    labels = sel.get("matchLabels")
    exprs = sel.get("matchExpressions")
    if exprs is None:
        shown_exprs = "[]v1.LabelSelectorRequirement(nil)"
    else:
        items = []
        for e in exprs:
            values = e.get("values")
            items.append(
                f"v1.LabelSelectorRequirement{{Key:{go_quote(e.get('key') or '')}, "
                f"Operator:{go_quote(e.get('operator') or '')}, "
                f"Values:{go_string_slice(values)}}}")
        shown_exprs = "[]v1.LabelSelectorRequirement{" + ", ".join(items) + "}"
    return (f"v1.LabelSelector{{MatchLabels:{go_string_map(labels)}, "
            f"MatchExpressions:{shown_exprs}}}")


def go_struct(type_name: str, value: Any) -> str:
    """An approximate ``%#v`` of a struct decoded from JSON.

    Upstream prints the internal Go struct with every field; JSON carries only the
    set ones, so this shows those, capitalized, in their JSON order.
    """
    if value is None:
        return "null"
    if not isinstance(value, Mapping):
        return go_value(value)
    parts = []
    for key, item in value.items():
        name = key[:1].upper() + key[1:]
        if isinstance(item, Mapping):
            parts.append(f"{name}:{go_struct(name, item)}")
        else:
            parts.append(f"{name}:{go_value(item)}")
    return f"{type_name}{{" + ", ".join(parts) + "}"


# --- semantic equality --------------------------------------------------------------

_QUANTITY_PARENTS = {"limits", "requests", "capacity", "allocatable", "overhead", "hard",
                     "used", "default", "defaultRequest", "max", "min",
                     "maxLimitRequestRatio"}


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def semantic_equal(a: Any, b: Any, parent: str = "") -> bool:
    """Upstream's ``apiequality.Semantic.DeepEqual`` on objects decoded from JSON.

    Go decodes an absent field to its zero value and treats nil and empty slices
    and maps alike, so absent, null, "", [] and {} compare equal; quantities in a
    resource list compare by value ("0.5" equals "500m").
    """
    if _is_empty(a) and _is_empty(b):
        return True
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in set(a) | set(b):
            if not semantic_equal(a.get(key), b.get(key), key):
                return False
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(semantic_equal(x, y, parent) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if a == b:
        return True
    if isinstance(a, str) and isinstance(b, str) and parent in _QUANTITY_PARENTS:
        try:
            return parse_quantity(a) == parse_quantity(b)
        except QuantityError:
            return False
    return False


def first_differences(a: Any, b: Any, path: str = "", limit: int = 20) -> list[str]:
    """Paths where two JSON values differ semantically, for readable diff details."""
    out: list[str] = []

    def walk(x: Any, y: Any, p: str, parent: str) -> None:
        if len(out) >= limit or semantic_equal(x, y, parent):
            return
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            for key in sorted(set(x) | set(y)):
                walk(x.get(key), y.get(key), f"{p}.{key}" if p else key, key)
            return
        if isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (u, v) in enumerate(zip(x, y)):
                walk(u, v, f"{p}[{i}]", parent)
            return
        out.append(p)

    walk(a, b, path, "")
    return out


def diff_detail(old: Any, new: Any) -> str:
    """Changed paths, one per line: a readable stand-in for Go's ``cmp.Diff`` text."""
    return "".join(f"  {p}: changed\n" for p in first_differences(old, new))


def dedupe_messages(errors: Iterable[FieldError]) -> list[str]:
    seen: list[str] = []
    for err in errors:
        msg = err.message()
        if msg not in seen:
            seen.append(msg)
    return seen
