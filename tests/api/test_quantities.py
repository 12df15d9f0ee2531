"""Quantities parse, print and compute as resource.Quantity does upstream."""

import pytest
from hypothesis import given, settings, strategies as st

from pyk8s.api.quantities import (BINARY_SI, DECIMAL_EXPONENT, DECIMAL_SI, Quantity,
                                  QuantityError, canonical, parse_quantity, total)


@pytest.mark.parametrize("text,shown", [
    ("0", "0"),
    ("-0", "0"),
    ("1", "1"),
    ("1Gi", "1Gi"),
    ("500m", "500m"),
    ("0.5", "500m"),
    ("1.5", "1500m"),
    ("1k", "1k"),
    ("1000", "1k"),
    ("1000m", "1"),
    ("2e3", "2e3"),
    ("12e2", "1200"),
    ("1.5Gi", "1536Mi"),
    ("1024Ki", "1Mi"),
    ("1025Ki", "1025Ki"),
    ("0.5Ki", "512"),
    ("0.1m", "100u"),
    ("1e-20", "1e-9"),
    ("1n", "1n"),
    ("100Mi", "100Mi"),
    ("128974848", "128974848"),
    ("129e6", "129e6"),
    ("129M", "129M"),
    ("123Mi", "123Mi"),
    ("-1.5", "-1500m"),
    ("1000E", "1e21"),
    ("8Ei", "9223372036854775807"),
    (".5", "500m"),
    ("1.", "1."),  # kept verbatim by upstream's fast path; canonical is "1"
])
def test_canonical_string(text, shown):
    assert str(parse_quantity(text)) == shown


def test_kept_strings_follow_upstream_fast_path():
    # Upstream keeps an already-canonical parsed string verbatim, including oddities.
    assert str(parse_quantity("+1")) == "+1"
    assert str(parse_quantity("1E3")) == "1E3"
    assert parse_quantity("1E3").canonical() == "1e3"
    assert str(parse_quantity("01")) == "01"


def test_formats_are_remembered():
    assert parse_quantity("1Gi").format == BINARY_SI
    assert parse_quantity("1G").format == DECIMAL_SI
    assert parse_quantity("1e9").format == DECIMAL_EXPONENT
    assert parse_quantity("0.5Ki").format == BINARY_SI
    assert parse_quantity("0.0001Ki").format == DECIMAL_SI  # below one: decimal


@pytest.mark.parametrize("text,message", [
    ("", "quantities must match the regular expression "
         "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
    ("abc", "quantities must match the regular expression "
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
    ("1.5.5", "quantities must match the regular expression "
              "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
    ("1e", "unable to parse quantity's suffix"),
    ("1mk", "unable to parse quantity's suffix"),
    ("1KI", "quantities must match the regular expression "
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
    ("1 Gi", "quantities must match the regular expression "
             "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
])
def test_errors(text, message):
    with pytest.raises(QuantityError) as err:
        parse_quantity(text)
    assert str(err.value) == message


def test_values_round_up_away_from_zero():
    assert parse_quantity("500m").value() == 1
    assert parse_quantity("-500m").value() == -1
    assert parse_quantity("1500m").milli_value() == 1500
    assert parse_quantity("1.0001m").milli_value() == 2
    assert parse_quantity("1Ki").value() == 1024
    assert parse_quantity("100u").scaled_value(-6) == 100
    assert parse_quantity("1").scaled_value(3) == 1
    assert parse_quantity("250m").as_float() == 0.25


def test_numbers_from_json_parse():
    assert str(parse_quantity(2)) == "2"
    assert str(parse_quantity(0.5)) == "500m"
    assert canonical(1.5) == "1500m"
    with pytest.raises(QuantityError):
        parse_quantity(True)


def test_arithmetic_and_comparison():
    a, b = parse_quantity("1"), parse_quantity("500m")
    assert str(a + b) == "1500m"
    assert str(a - b) == "500m"
    assert str(b - a) == "-500m"
    assert str(-a) == "-1"
    assert str(b * 3) == "1500m"
    assert a > b and b < a and a >= a and b <= b
    assert a.cmp(b) == 1 and b.cmp(a) == -1 and a.cmp("1000m") == 0
    assert parse_quantity("1Gi") == parse_quantity("1073741824")
    assert parse_quantity("1Gi") == "1024Mi"
    assert parse_quantity("1Gi") != "not a quantity"
    assert hash(parse_quantity("1k")) == hash(parse_quantity("1000"))
    # A zero left side takes the format of the right side, as upstream's Add.
    assert (Quantity() + parse_quantity("1Gi")).format == BINARY_SI
    assert str(total(["100Mi", "100Mi", parse_quantity("824Mi")])) == "1Gi"
    assert str(total([])) == "0"


def test_constructors():
    assert str(Quantity.from_value(5 * 1024 ** 3, BINARY_SI)) == "5Gi"
    assert str(Quantity.from_value(5 * 1000 ** 3)) == "5G"
    assert str(Quantity.from_milli(5300)) == "5300m"
    assert str(Quantity.from_scaled(15, -1)) == "1500m"
    assert str(Quantity.from_scaled(1, -12)) == "1n"


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=-(10 ** 15), max_value=10 ** 15),
       st.sampled_from(["n", "u", "m", "", "k", "M", "G", "Ki", "Mi", "Gi", "e3", "e-2"]))
def test_round_trip_preserves_value(number, suffix):
    text = f"{number}{suffix}"
    q = parse_quantity(text)
    again = parse_quantity(str(q))
    assert again == q
    assert parse_quantity(q.canonical()) == q
    # Canonical output is a fixed point.
    assert parse_quantity(q.canonical()).canonical() == q.canonical()


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=10 ** 9), st.integers(min_value=0, max_value=9))
def test_decimal_fraction_round_trip(whole, digits):
    text = f"{whole}.{'7' * digits}" if digits else str(whole)
    q = parse_quantity(text)
    assert q.canonical() == q.canonical().strip()
    assert parse_quantity(q.canonical()) == q
    assert q.milli_value() >= whole * 1000


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=-10 ** 6, max_value=10 ** 6), max_size=6))
def test_sum_is_order_independent(millis):
    qs = [Quantity.from_milli(m) for m in millis]
    assert total(qs) == total(reversed(qs))
    assert total(qs).milli_value() == sum(millis)
