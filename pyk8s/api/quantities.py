"""Resource quantities, as apimachinery's ``resource.Quantity``.

Role: parse ``"500m"``, ``"1Gi"``, ``"2e3"``..., compare and add them, and write
them back in upstream's canonical form (``CanonicalizeBytes``).

Invariants:
- A ``Quantity`` holds an exact integer number of nano-units (``nanos``): parsing
  rounds any finer value up, away from zero, to 1n, as upstream does.
- ``format`` is one of ``DECIMAL_SI``, ``BINARY_SI``, ``DECIMAL_EXPONENT``,
  remembered from the suffix the value was written with.
- ``str(q)`` is upstream's ``String()``: the canonical form, except that a parsed
  string upstream already keeps verbatim (its fast path) is returned unchanged.
- Quantities are immutable; arithmetic returns new ones. Equality and ordering
  compare values only, never format.
"""

from __future__ import annotations

import functools
from typing import Any

DECIMAL_EXPONENT = "DecimalExponent"
BINARY_SI = "BinarySI"
DECIMAL_SI = "DecimalSI"

_SPLIT_RE = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
ERR_FORMAT_WRONG = f"quantities must match the regular expression '{_SPLIT_RE}'"
ERR_NUMERIC = "unable to parse numeric part of quantity"
ERR_SUFFIX = "unable to parse quantity's suffix"

_NANO = 10 ** 9
_MAX_INT64 = (1 << 63) - 1
_DEC_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9,
                 "T": 12, "P": 15, "E": 18}
_DEC_BY_EXP = {e: s for s, e in _DEC_SUFFIXES.items()}
_BIN_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_BIN_BY_EXP = {e: s for s, e in _BIN_SUFFIXES.items()}
_MAX_EXPONENT = 1000
_SUFFIX_CHARS = set("eEinumkKMGTP")
_DIGITS = set("0123456789")


class QuantityError(ValueError):
    """A string is not a quantity; ``str()`` is upstream's message."""


def _scan(s: str) -> tuple[bool, str, str, str]:
    """Split into (positive, numerator, denominator, suffix) like parseQuantityString."""
    positive, pos, end = True, 0, len(s)
    if s[:1] in ("-", "+"):
        positive = s[0] == "+"
        pos = 1
    while pos < end and s[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "", ""
    start = pos
    while pos < end and s[pos] in _DIGITS:
        pos += 1
    num = s[start:pos] or "0"
    denom = ""
    if pos < end and s[pos] == ".":
        pos += 1
        start = pos
        while pos < end and s[pos] in _DIGITS:
            pos += 1
        denom = s[start:pos]
    suffix_start = pos
    while pos < end and s[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and s[pos] in "+-":
        pos += 1
    while pos < end and s[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise QuantityError(ERR_FORMAT_WRONG)
    return positive, num, denom, s[suffix_start:]


def _interpret(suffix: str) -> tuple[int, int, str]:
    """(base, exponent, format) for a suffix, as upstream's suffixHandler."""
    if suffix in _DEC_SUFFIXES:
        return 10, _DEC_SUFFIXES[suffix], DECIMAL_SI
    if suffix in _BIN_SUFFIXES:
        return 2, _BIN_SUFFIXES[suffix], BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        rest = suffix[1:]
        body = rest[1:] if rest[:1] in "+-" else rest
        if body.isdigit() and -(1 << 63) <= int(rest) <= _MAX_INT64:
            return 10, int(rest), DECIMAL_EXPONENT
    raise QuantityError(ERR_SUFFIX)


def _ceil_div(a: int, b: int) -> int:
    """a / b rounded away from zero (b > 0)."""
    q, r = divmod(abs(a), b)
    q += 1 if r else 0
    return q if a >= 0 else -q


def _keeps_string(num: str, denom: str, base: int, exponent: int, fmt: str) -> bool:
    """Whether upstream's fast path keeps the parsed string as the serialization."""
    shifted = num + denom
    if fmt == BINARY_SI:
        if exponent < 0 or denom:
            return False
        precision = 15 - len(num) - int(exponent * 3 / 10) - 1
        value = int(shifted)
        return (precision >= 0 and (value << exponent) <= _MAX_INT64
                and exponent % 10 == 0 and value & 0x07 != 0)
    precision = 18 - len(num) - len(denom)
    scale = exponent - len(denom)
    return (precision >= 0 and scale >= -9 and scale % 3 == 0
            and not shifted.endswith("000") and shifted[0] != "0")


class Quantity:
    """An exact, immutable resource quantity."""

    __slots__ = ("nanos", "format", "_s")

    def __init__(self, nanos: int = 0, fmt: str = DECIMAL_SI, *, _s: str | None = None):
        self.nanos = nanos
        self.format = fmt
        self._s = _s

    # -- construction --------------------------------------------------------
    @classmethod
    def parse(cls, value: Any) -> "Quantity":
        return parse_quantity(value)

    @classmethod
    def from_value(cls, value: int, fmt: str = DECIMAL_SI) -> "Quantity":
        return cls(value * _NANO, fmt)

    @classmethod
    def from_milli(cls, milli: int, fmt: str = DECIMAL_SI) -> "Quantity":
        return cls(milli * 10 ** 6, fmt)

    @classmethod
    def from_scaled(cls, value: int, scale: int, fmt: str = DECIMAL_SI) -> "Quantity":
        """``value * 10**scale``, rounded up to nano like upstream."""
        if scale >= -9:
            return cls(value * 10 ** (scale + 9), fmt)
        return cls(_ceil_div(value, 10 ** (-9 - scale)), fmt)

    # -- reading -------------------------------------------------------------
    def value(self) -> int:
        """The value rounded up (away from zero) to an integer."""
        return _ceil_div(self.nanos, _NANO)

    def milli_value(self) -> int:
        return _ceil_div(self.nanos, 10 ** 6)

    def scaled_value(self, scale: int) -> int:
        """``ceil(q / 10**scale)``, away from zero."""
        if scale >= -9:
            return _ceil_div(self.nanos, 10 ** (scale + 9))
        return self.nanos * 10 ** (-9 - scale)

    def as_float(self) -> float:
        return self.nanos / _NANO

    def is_zero(self) -> bool:
        return self.nanos == 0

    def sign(self) -> int:
        return (self.nanos > 0) - (self.nanos < 0)

    # -- arithmetic (a zero left side takes the right side's format) ----------
    def _fmt_with(self, other: "Quantity") -> str:
        return other.format if self.nanos == 0 else self.format

    def __add__(self, other: "Quantity") -> "Quantity":
        other = _coerce(other)
        return Quantity(self.nanos + other.nanos, self._fmt_with(other))

    def __sub__(self, other: "Quantity") -> "Quantity":
        other = _coerce(other)
        return Quantity(self.nanos - other.nanos, self._fmt_with(other))

    def __neg__(self) -> "Quantity":
        return Quantity(-self.nanos, self.format)

    def __mul__(self, factor: int) -> "Quantity":
        if not isinstance(factor, int):
            return NotImplemented
        return Quantity(self.nanos * factor, self.format)

    __rmul__ = __mul__

    # -- comparison ------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if isinstance(other, (str, int, float)) and not isinstance(other, bool):
            try:
                other = parse_quantity(other)
            except QuantityError:
                return False
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.nanos == other.nanos

    def __hash__(self) -> int:
        return hash(self.nanos)

    def __lt__(self, other: "Quantity") -> bool:
        return self.nanos < _coerce(other).nanos

    def __le__(self, other: "Quantity") -> bool:
        return self.nanos <= _coerce(other).nanos

    def __gt__(self, other: "Quantity") -> bool:
        return self.nanos > _coerce(other).nanos

    def __ge__(self, other: "Quantity") -> bool:
        return self.nanos >= _coerce(other).nanos

    def cmp(self, other: "Quantity") -> int:
        o = _coerce(other).nanos
        return (self.nanos > o) - (self.nanos < o)

    # -- output ------------------------------------------------------------------
    def canonical(self) -> str:
        """Upstream's CanonicalizeBytes, ignoring any kept parsed string."""
        if self.nanos == 0:
            return "0"
        fmt = self.format
        if fmt == BINARY_SI:
            if -1024 * _NANO < self.nanos < 1024 * _NANO or self.nanos % _NANO:
                fmt = DECIMAL_SI
        elif fmt not in (DECIMAL_SI, DECIMAL_EXPONENT):
            fmt = DECIMAL_EXPONENT
        if fmt == BINARY_SI:
            amount, exp = self.nanos // _NANO, 0
            while amount % 1024 == 0:
                amount //= 1024
                exp += 10
            return f"{amount}{_BIN_BY_EXP.get(exp, '')}"
        amount, exp = self.nanos, -9
        while amount % 10 == 0:
            amount //= 10
            exp += 1
        # Lower the exponent to a multiple of 3 (Python's % floors, like upstream's cases).
        shift = exp % 3
        amount *= 10 ** shift
        exp -= shift
        if fmt == DECIMAL_SI and exp in _DEC_BY_EXP:
            return f"{amount}{_DEC_BY_EXP[exp]}"
        # DecimalSI has no suffix past 10^18: upstream falls back to "e" notation.
        return f"{amount}" if exp == 0 else f"{amount}e{exp}"

    def __str__(self) -> str:
        return self._s if self._s is not None else self.canonical()

    def __repr__(self) -> str:
        return f"Quantity({str(self)!r})"

    def to_json(self) -> str:
        return str(self)


def _coerce(other: Any) -> Quantity:
    if isinstance(other, Quantity):
        return other
    return parse_quantity(other)


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Quantity:
    if not text:
        raise QuantityError(ERR_FORMAT_WRONG)
    if text == "0":
        return Quantity(0, DECIMAL_SI, _s="0")
    positive, num, denom, suffix = _scan(text)
    base, exponent, fmt = _interpret(suffix)
    if exponent > _MAX_EXPONENT:
        # Upstream keeps such values symbolically; an exact integer of that many
        # digits would exhaust memory, and no resource is that large.
        raise QuantityError(ERR_NUMERIC)
    digits = int(num + denom)
    if base == 10 and exponent < -_MAX_EXPONENT:
        exponent = -_MAX_EXPONENT  # any non-zero value this small rounds up to 1n
    if base == 10:
        scale = exponent - len(denom)
        nanos = digits * 10 ** (scale + 9) if scale >= -9 else _ceil_div(digits, 10 ** (-9 - scale))
    else:
        raw = (digits << exponent) * _NANO
        nanos = raw // 10 ** len(denom)
        if raw % 10 ** len(denom):
            nanos += 1  # round up to the next nano, as upstream
        if nanos > _MAX_INT64 * _NANO:
            nanos = _MAX_INT64 * _NANO  # upstream caps binary quantities at 2^63-1
        if 0 < nanos < _NANO:
            fmt = DECIMAL_SI
    if not positive:
        nanos = -nanos
    kept = text if _keeps_string(num, denom, base, exponent, fmt) else None
    return Quantity(nanos, fmt, _s=kept)


def parse_quantity(value: Any) -> Quantity:
    """Parse a quantity string (or a JSON number); raise ``QuantityError``."""
    if isinstance(value, Quantity):
        return value
    if isinstance(value, bool):
        raise QuantityError(ERR_FORMAT_WRONG)
    if isinstance(value, (int, float)):
        value = repr(value) if isinstance(value, float) else str(value)
    if not isinstance(value, str):
        raise QuantityError(ERR_FORMAT_WRONG)
    return _parse_cached(value)


def is_quantity(value: Any) -> bool:
    try:
        parse_quantity(value)
    except QuantityError:
        return False
    return True


def canonical(value: Any) -> str:
    """Parse and re-serialize a quantity as the API server stores it."""
    return str(parse_quantity(value))


def total(values: Any) -> Quantity:
    """Sum an iterable of quantities (strings or ``Quantity``)."""
    result = Quantity()
    for item in values:
        result = result + _coerce(item)
    return result
