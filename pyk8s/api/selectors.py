"""Label and field selectors, as apimachinery's ``labels`` and ``fields`` packages.

Role: parse the ``labelSelector``/``fieldSelector`` query strings and the
``LabelSelector`` objects found in specs, and match them against label maps and
field-value maps.

Invariants:
- Parsing raises ``SelectorError`` whose message is upstream's text
  (``unable to parse requirement: ...``, ``invalid selector: ...``).
- Selectors are immutable; ``str(selector)`` is upstream's canonical ``String()``
  (requirements sorted by key, ``in``/``notin`` values sorted), so it parses back
  to an equal selector.
- ``LabelSelector.nothing`` is the selector of a nil ``LabelSelector``: it matches
  no object; the empty selector matches every object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from pyk8s.api import validation as v


class SelectorError(ValueError):
    """A selector could not be parsed or built; ``str()`` is upstream's message."""


# --- label requirements ---------------------------------------------------------

IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "in", "notin", "=", "==", "!="
EXISTS, DOES_NOT_EXIST, GREATER_THAN, LESS_THAN = "exists", "!", "gt", "lt"
VALID_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, EXISTS,
                   DOES_NOT_EXIST, GREATER_THAN, LESS_THAN)
_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_OP_TEXT = {EQUALS: "=", DOUBLE_EQUALS: "==", NOT_EQUALS: "!=", IN: " in ",
            NOT_IN: " notin ", GREATER_THAN: ">", LESS_THAN: "<"}


def _parse_int64(s: str) -> int | None:
    body = s[1:] if s[:1] in "+-" else s
    if not body or not body.isascii() or not body.isdigit():
        return None
    n = int(s)
    return n if -(1 << 63) <= n < (1 << 63) else None


@dataclass(frozen=True)
class Requirement:
    """One ``key op values`` term; build with ``new_requirement`` to validate."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        if op in (GREATER_THAN, LESS_THAN):
            if self.key not in labels or len(self.values) != 1:
                return False
            have, want = _parse_int64(labels[self.key]), _parse_int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if op == GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        text = ("!" if self.operator == DOES_NOT_EXIST else "") + self.key
        if self.operator in (EXISTS, DOES_NOT_EXIST):
            return text
        text += _OP_TEXT[self.operator]
        values = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        if self.operator in (IN, NOT_IN):
            return f"{text}({values})"
        return text + values


def _requirement_errors(key: str, op: str, values: Sequence[str],
                        path: str | None) -> list[v.FieldError]:
    def child(name: str) -> str:
        return f"{path}.{name}" if path else name

    errs: list[v.FieldError] = []
    key_msgs = v.is_qualified_name(key)
    if key_msgs:
        errs.append(v.invalid(child("key"), key, "; ".join(key_msgs)))
    values_path = child("values")
    if op in (IN, NOT_IN):
        if not values:
            errs.append(v.invalid(values_path, list(values),
                                  "for 'in', 'notin' operators, values set can't be empty"))
    elif op in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(values) != 1:
            errs.append(v.invalid(values_path, list(values),
                                  "exact-match compatibility requires one single value"))
    elif op in (EXISTS, DOES_NOT_EXIST):
        if values:
            errs.append(v.invalid(values_path, list(values),
                                  "values set must be empty for exists and does not exist"))
    elif op in (GREATER_THAN, LESS_THAN):
        if len(values) != 1:
            errs.append(v.invalid(values_path, list(values),
                                  "for 'Gt', 'Lt' operators, exactly one value is required"))
        for i, value in enumerate(values):
            if _parse_int64(value) is None:
                errs.append(v.invalid(f"{values_path}[{i}]", value,
                                      "for 'Gt', 'Lt' operators, the value must be an integer"))
    else:
        errs.append(v.not_supported(child("operator"), op, VALID_OPERATORS))
    for i, value in enumerate(values):
        msgs = v.is_valid_label_value(value)
        if msgs:
            errs.append(v.invalid(f"{values_path}[{i}][{key}]", value, "; ".join(msgs)))
    return errs


def new_requirement(key: str, operator: str, values: Iterable[str] = (), *,
                    path: str | None = None) -> Requirement:
    """Validate and build a requirement (upstream ``labels.NewRequirement``)."""
    values = tuple(values)
    errs = _requirement_errors(key, operator, values, path)
    if errs:
        raise SelectorError(v.aggregate_message(errs))
    return Requirement(key, operator, values)


# --- label selectors ------------------------------------------------------------

@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements; ``nothing`` selects no object at all."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def empty(self) -> bool:
        """True when the selector matches everything."""
        return not self.nothing and not self.requirements

    def requires_exact_match(self, key: str) -> str | None:
        """The single value ``key`` must have, if the selector pins it."""
        for r in self.requirements:
            if r.key == key and r.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(r.values) == 1:
                return r.values[0]
        return None

    def add(self, *requirements: Requirement) -> "LabelSelector":
        merged = sorted(self.requirements + requirements, key=lambda r: r.key)
        return LabelSelector(tuple(merged), self.nothing)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = LabelSelector()
NOTHING = LabelSelector(nothing=True)

# Lexer tokens.
_ERROR, _EOS, _CLOSE, _COMMA, _NOT, _DEQ, _EQ, _GT, _ID, _IN, _LT, _NEQ, _NOTIN, _OPEN = range(14)
_STRING_TO_TOKEN = {")": _CLOSE, ",": _COMMA, "!": _NOT, "==": _DEQ, "=": _EQ, ">": _GT,
                    "in": _IN, "<": _LT, "!=": _NEQ, "notin": _NOTIN, "(": _OPEN}
_SPECIAL = set("=!(),><")
_WHITESPACE = set(" \t\r\n")


def _lex(s: str) -> list[tuple[int, str]]:
    items: list[tuple[int, str]] = []
    pos, n = 0, len(s)
    while True:
        while pos < n and s[pos] in _WHITESPACE:
            pos += 1
        if pos >= n:
            items.append((_EOS, ""))
            return items
        if s[pos] in _SPECIAL:
            # Longest operator match, as upstream's scanSpecialSymbol.
            buf, last = "", None
            while pos < n and s[pos] in _SPECIAL:
                candidate = buf + s[pos]
                if candidate in _STRING_TO_TOKEN:
                    buf, last = candidate, (_STRING_TO_TOKEN[candidate], candidate)
                    pos += 1
                elif last is not None:
                    break
                else:
                    buf = candidate
                    pos += 1
            items.append(last or (_ERROR, f"error expected: keyword found '{buf}'"))
            if last is None:
                items.append((_EOS, ""))
                return items
            continue
        start = pos
        while pos < n and s[pos] not in _WHITESPACE and s[pos] not in _SPECIAL:
            pos += 1
        word = s[start:pos]
        items.append((_STRING_TO_TOKEN.get(word, _ID), word))


class _Parser:
    def __init__(self, selector: str):
        self.items = _lex(selector)
        self.pos = 0

    def lookahead(self, values: bool = True) -> tuple[int, str]:
        tok, lit = self.items[self.pos]
        if values and tok in (_IN, _NOTIN):
            tok = _ID
        return tok, lit

    def consume(self, values: bool = True) -> tuple[int, str]:
        item = self.lookahead(values)
        if self.pos < len(self.items) - 1:
            self.pos += 1
        return item

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self.lookahead()
            if tok in (_ID, _NOT):
                try:
                    reqs.append(self.requirement())
                except SelectorError as e:
                    raise SelectorError(f"unable to parse requirement: {e}") from None
                tok, lit = self.consume()
                if tok == _EOS:
                    return reqs
                if tok != _COMMA:
                    raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
                tok2, lit2 = self.lookahead()
                if tok2 not in (_ID, _NOT):
                    raise SelectorError(f"found '{lit2}', expected: identifier after ','")
            elif tok == _EOS:
                return reqs
            else:
                raise SelectorError(
                    f"found '{lit}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        key, op = self.key_and_operator()
        if op in (EXISTS, DOES_NOT_EXIST):
            return new_requirement(key, op, ())
        op = self.operator()
        values = self.values() if op in (IN, NOT_IN) else self.exact_value()
        return new_requirement(key, op, sorted(values))

    def key_and_operator(self) -> tuple[str, str | None]:
        op = None
        tok, lit = self.consume()
        if tok == _NOT:
            op = DOES_NOT_EXIST
            tok, lit = self.consume()
        if tok != _ID:
            raise SelectorError(f"found '{lit}', expected: identifier")
        msgs = v.is_qualified_name(lit)
        if msgs:
            # Upstream validates with a nil field path, which prints as "<nil>".
            raise SelectorError(str(v.invalid("<nil>", lit, "; ".join(msgs))))
        if self.lookahead()[0] in (_EOS, _COMMA) and op != DOES_NOT_EXIST:
            op = EXISTS
        return lit, op

    def operator(self) -> str:
        tok, lit = self.consume(values=False)
        ops = {_IN: IN, _EQ: EQUALS, _DEQ: DOUBLE_EQUALS, _GT: GREATER_THAN,
               _LT: LESS_THAN, _NOTIN: NOT_IN, _NEQ: NOT_EQUALS}
        if tok not in ops:
            raise SelectorError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        return ops[tok]

    def values(self) -> set[str]:
        tok, lit = self.consume()
        if tok != _OPEN:
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead()
        if tok in (_ID, _COMMA):
            found = self.identifiers()
            if self.consume()[0] != _CLOSE:
                raise SelectorError(f"found '{lit}', expected: ')'")
            return found
        if tok == _CLOSE:
            self.consume()
            return {""}
        raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")

    def identifiers(self) -> set[str]:
        found: set[str] = set()
        while True:
            tok, lit = self.consume()
            if tok == _ID:
                found.add(lit)
                tok2, lit2 = self.lookahead()
                if tok2 == _COMMA:
                    continue
                if tok2 == _CLOSE:
                    return found
                raise SelectorError(f"found '{lit2}', expected: ',' or ')'")
            if tok == _COMMA:
                if not found:
                    found.add("")  # "(,"
                tok2, _ = self.lookahead()
                if tok2 == _CLOSE:
                    found.add("")  # ",)"
                    return found
                if tok2 == _COMMA:
                    self.consume()
                    found.add("")  # ",,"
                continue
            raise SelectorError(f"found '{lit}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        tok, _ = self.lookahead()
        if tok in (_EOS, _COMMA):
            return {""}
        tok, lit = self.consume()
        if tok == _ID:
            return {lit}
        raise SelectorError(f"found '{lit}', expected: identifier")


def parse_label_selector(selector: str) -> LabelSelector:
    """Parse a ``labelSelector`` string (upstream ``labels.Parse``)."""
    reqs = _Parser(selector).parse()
    return LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))


def selector_from_set(labels: Mapping[str, str] | None) -> LabelSelector:
    """``key=value`` for each pair (upstream ``labels.SelectorFromSet``)."""
    if not labels:
        return EVERYTHING
    reqs = [new_requirement(k, EQUALS, (val,)) for k, val in labels.items()]
    return LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))


_EXPRESSION_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS,
                         "DoesNotExist": DOES_NOT_EXIST}


def label_selector_from_dict(selector: Mapping | None) -> LabelSelector:
    """Convert a ``LabelSelector`` object (upstream ``LabelSelectorAsSelector``)."""
    if selector is None:
        return NOTHING
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return EVERYTHING
    reqs = [new_requirement(k, EQUALS, (val,)) for k, val in match_labels.items()]
    for expr in expressions:
        op = _EXPRESSION_OPERATORS.get(expr.get("operator"))
        if op is None:
            raise SelectorError(
                f"{v.go_quote(str(expr.get('operator') or ''))} is not a valid label selector operator")
        reqs.append(new_requirement(expr.get("key") or "", op, list(expr.get("values") or [])))
    return LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))


def format_label_selector(selector: Mapping | None) -> str:
    """Display form used in tables (upstream ``metav1.FormatLabelSelector``)."""
    try:
        text = str(label_selector_from_dict(selector))
    except SelectorError:
        return "<error>"
    return text or "<none>"


def validate_label_selector(selector: Mapping | None, field_path: str) -> list[v.FieldError]:
    """Field errors for a ``LabelSelector`` in a spec (upstream ``ValidateLabelSelector``)."""
    if selector is None:
        return []
    errs = v.validate_labels(selector.get("matchLabels"), f"{field_path}.matchLabels")
    for i, expr in enumerate(selector.get("matchExpressions") or []):
        path = f"{field_path}.matchExpressions[{i}]"
        op, values = expr.get("operator"), expr.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                errs.append(v.required(f"{path}.values",
                                       "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.append(v.forbidden(
                    f"{path}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errs.append(v.invalid(f"{path}.operator", op or "", "not a valid selector operator"))
        errs.extend(v.validate_label_name(expr.get("key") or "", f"{path}.key"))
        for j, value in enumerate(values):
            errs.extend(v.invalid(f"{path}.values[{j}]", value, m)
                        for m in v.is_valid_label_value(value))
    return errs


# --- field selectors ------------------------------------------------------------

def escape_field_value(value: str) -> str:
    """Escape ``\\``, ``,`` and ``=`` for a field selector value."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_field_value(value: str) -> str:
    if not any(c in value for c in "\\,="):
        return value
    out: list[str] = []
    in_slash = False
    for c in value:
        if in_slash:
            if c not in "\\,=":
                raise SelectorError(
                    f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c in ",=":
            raise SelectorError(f"invalid field selector: unescaped character in value: {c}")
        else:
            out.append(c)
    if in_slash:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


@dataclass(frozen=True)
class FieldTerm:
    field: str
    operator: str  # "=" (also for "==") or "!="
    value: str

    def matches(self, fields: Mapping[str, str]) -> bool:
        equal = fields.get(self.field, "") == self.value
        return equal if self.operator == "=" else not equal

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{escape_field_value(self.value)}"


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[FieldTerm, ...] = field(default_factory=tuple)

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all(t.matches(fields) for t in self.terms)

    def empty(self) -> bool:
        return not self.terms

    def requires_exact_match(self, name: str) -> str | None:
        for t in self.terms:
            if t.field == name and t.operator == "=":
                return t.value
        return None

    def fields(self) -> set[str]:
        return {t.field for t in self.terms}

    def __str__(self) -> str:
        return ",".join(str(t) for t in self.terms)


def _split_terms(selector: str) -> list[str]:
    if not selector:
        return []
    terms, start, in_slash = [], 0, False
    for i, c in enumerate(selector):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


def parse_field_selector(selector: str) -> FieldSelector:
    """Parse a ``fieldSelector`` string (upstream ``fields.ParseSelector``)."""
    terms: list[FieldTerm] = []
    for part in sorted(_split_terms(selector)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{selector}'; can't understand '{part}'")
        lhs, op, rhs = split
        terms.append(FieldTerm(lhs, "!=" if op == "!=" else "=", unescape_field_value(rhs)))
    return FieldSelector(tuple(terms))


def field_selector_from_set(fields: Mapping[str, str]) -> FieldSelector:
    return FieldSelector(tuple(FieldTerm(k, "=", val) for k, val in sorted(fields.items())))
