"""The worked examples of docs/catalog.md, priced by jobs/tallyflow/core/pricing.py."""

from decimal import Decimal as D

import pytest

from tallyflow.core.catalog import Charge, Step, Tier
from tallyflow.core.pricing import price, round_money

CARD = (Tier(D("5000"), D("0.02")), Tier(D("20000"), D("0.015")), Tier(None, D("0.01")))


def test_graduated_example():
    assert price(Charge("m", "graduated", tiers=CARD), D("15000")).amount_exact == D("250.00")


def test_volume_example():
    assert price(Charge("m", "volume", tiers=CARD), D("15000")).amount_exact == D("225.00")


def test_graduated_first_tier_flat_fee_charged_at_zero_usage():
    tiers = (Tier(D("10"), D("1"), D("7")), Tier(None, D("0.5"), D("3")))
    p = price(Charge("m", "graduated", tiers=tiers), D("0"))
    assert p.amount_exact == D("7")
    assert [r.index for r in p.breakdown] == [0]


def test_graduated_fractional_quantity_lies_in_next_tier():
    tiers = (Tier(D("100"), D("1")), Tier(None, D("2"), D("5")))
    assert price(Charge("m", "graduated", tiers=tiers), D("100.5")).amount_exact == D("100") + D("1.0") + D("5")


def test_transcoding_seed_example():
    tiers = (Tier(D("1000"), D("0.10")), Tier(None, D("0.07")))
    assert price(Charge("m", "graduated", tiers=tiers), D("3400")).amount_exact == D("268.00")


def test_package_example_with_included_units():
    c = Charge("m", "package", included_units=D("10"), package_size=D("10"), package_price=D("100"))
    assert price(c, D("121")).amount_exact == D("1200")
    assert price(c, D("10")).amount_exact == D("0")


def test_staircase_example():
    steps = (Step(D("1000"), D("100")), Step(D("5000"), D("200")), Step(None, D("400")))
    c = Charge("m", "staircase", steps=steps)
    assert price(c, D("7500")).amount_exact == D("400")
    assert price(c, D("0")).amount_exact == D("100")
    assert price(c, D("1000")).amount_exact == D("100")


def test_per_unit_with_included_units_above_usage():
    c = Charge("m", "per_unit", included_units=D("500"), unit_price=D("0.1"))
    assert price(c, D("300")).amount_exact == D("0")
    assert price(c, D("501")).amount_exact == D("0.1")


@pytest.mark.parametrize(
    ("amount", "minor", "expected"),
    [
        ("2.345", 2, "2.35"),
        ("2.344999", 2, "2.34"),
        ("0.005", 2, "0.01"),
        ("1234.5", 0, "1235"),
        ("1234.49", 0, "1234"),
    ],
)
def test_round_half_up(amount, minor, expected):
    assert str(round_money(D(amount), minor)) == expected
