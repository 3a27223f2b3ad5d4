"""Bad contract terms are refused at load, each problem one line naming the plan, subscription,
coupon, tax or meter and the rule broken (docs/catalog.md); `catalog validate` prints them and
exits 1, without a traceback."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tallyflow.cli import main
from tallyflow.core import catalog
from tallyflow.core.model import CatalogError

GOOD = json.loads((Path(__file__).parents[1] / "vectors" / "contracts.json").read_text())["catalog"]


def _sub(doc: dict, customer: str) -> dict:
    return next(s for s in doc["subscriptions"] if s["customer"] == customer)


def _broken(change) -> dict:
    doc = copy.deepcopy(GOOD)
    change(doc)
    return doc


CASES = [
    (
        "anchor not in whole seconds",
        lambda d: _sub(d, "a15").update(billing_anchor="2026-01-15T00:00:00.5Z"),
        "subscription of a15: billing_anchor 2026-01-15T00:00:00.500000+00:00 must be whole seconds",
    ),
    (
        "percent_off above 100",
        lambda d: d["coupons"][0].update(percent_off="120"),
        "coupon launch20: percent_off must be in (0, 100] (got 120)",
    ),
    (
        "percent_off of 0",
        lambda d: d["coupons"][0].update(percent_off="0"),
        "coupon launch20: percent_off must be greater than 0 (got 0)",
    ),
    (
        "repeating without periods",
        lambda d: d["coupons"][0].pop("periods"),
        "coupon launch20: duration repeating needs periods, a whole number from 1 to 9999",
    ),
    (
        "an unknown coupon",
        lambda d: _sub(d, "qtr").update(coupons=[{"coupon": "nope"}]),
        "subscription of qtr: coupon 'nope' is not defined in coupons",
    ),
    (
        "an unknown tax",
        lambda d: d["customers"][0].update(taxes=["vat_xx"]),
        "customer a15: tax 'vat_xx' is not defined in taxes",
    ),
    (
        "one coupon twice over the same periods",
        lambda d: _sub(d, "a15")["coupons"].append({"coupon": "launch20", "start": "2026-02-15T00:00:00Z"}),
        "subscription of a15: coupon launch20 is used twice over the same periods",
    ),
    (
        "a tax rate of 1",
        lambda d: d["taxes"][0].update(rate="1"),
        "tax vat_de: rate must be at least 0 and below 1 (a fraction: 0.19 for 19%; got 1)",
    ),
    (
        "a negative tax rate",
        lambda d: d["taxes"][0].update(rate="-0.1"),
        "tax vat_de: rate must be at least 0 (got -0.1)",
    ),
    (
        "time_weighted without value",
        lambda d: d["meters"][2].pop("value"),
        "meter gbh: aggregation time_weighted needs 'value' (a key of values, or of dimensions for unique_count)",
    ),
    (
        "time_weighted with an unknown unit",
        lambda d: d["meters"][2].update(unit="fortnight"),
        "meter gbh: unit 'fortnight' is not one of second, minute, hour, day (time_weighted needs one)",
    ),
    (
        "money as a YAML number",
        lambda d: d["coupons"][1].update(amount_off=100.5),
        'coupon welcome100: amount_off must be a decimal string (write "100.5")',
    ),
    (
        "an override's money as a YAML number",
        lambda d: _sub(d, "cal")["overrides"].update(base_fee=20),
        'subscription of cal, overrides: base_fee must be a decimal string (write "20")',
    ),
    (
        "an override charge that matches no charge of the plan",
        lambda d: _sub(d, "cal")["overrides"]["charges"].append(
            {"meter": "tokens", "filter": {"model": "huge"}, "unit_price": "1"}
        ),
        "subscription of cal, overrides: charge on meter tokens with filter {'model': 'huge'} matches no charge "
        "of the plan (an override charge names a plan charge by meter and filter)",
    ),
    (
        "a changed model without the fields it needs",
        lambda d: _sub(d, "cal")["overrides"]["charges"].append({"meter": "gbh", "model": "package"}),
        "subscription of cal, overrides, charge gbh: missing required field 'package_price'",
    ),
    (
        "an amount coupon in another currency",
        lambda d: d["coupons"][1].update(currency="EUR"),
        "subscription of qtr: coupon welcome100 is EUR and plan q bills in USD",
    ),
    (
        "an unknown billing period",
        lambda d: d["plans"][0].update(billing_period="fortnight"),
        "plan m v1: billing_period 'fortnight' is not one of week, month, quarter, year",
    ),
]


@pytest.mark.parametrize(("name", "change", "problem"), CASES, ids=[c[0] for c in CASES])
def test_each_bad_term_is_named(name, change, problem):
    with pytest.raises(CatalogError) as e:
        catalog.parse(_broken(change), "c.yaml")
    assert problem in e.value.problems, e.value.problems


def test_catalog_validate_prints_them_one_a_line_and_exits_1(tmp_path, capsys):
    doc = _broken(lambda d: (d["coupons"][0].update(percent_off="120"), d["taxes"][0].update(rate="1")))
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    assert main(["catalog", "validate", str(path)]) == 1
    out = capsys.readouterr()
    assert "percent_off must be in (0, 100]" in out.out and "rate must be at least 0 and below 1" in out.out
    assert "Traceback" not in out.err + out.out


def test_the_good_catalog_loads_and_keeps_list_prices_apart_from_overrides():
    cat = catalog.parse(GOOD, "c.yaml")
    (cal,) = [s for s in cat.subscriptions if s.customer == "cal"]
    (own,) = cat.versions_for(cal)
    (listed,) = cat.plan_versions("m")
    assert (own.base_fee, listed.base_fee) == (own.base_fee.__class__("20.00"), listed.base_fee.__class__("30.00"))
    assert [c.override for c in own.charges] == [True, False, False]
    assert own.charges[0].included_units == listed.charges[0].included_units  # fields not named stay


def test_quote_for_a_customer_prices_with_its_overrides(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(GOOD))
    common = ["--meter", "api", "--quantity", "1100", "--at", "2026-02-10T00:00:00Z", "--format", "json"]
    assert main(["quote", "--catalog", str(path), "--customer", "cal", *common]) == 0
    own = json.loads(capsys.readouterr().out)
    assert main(["quote", "--catalog", str(path), "--plan", "m", *common]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert (own["customer"], own["amount"], own["override"]) == ("cal", "5.00", True)  # 1000 x 0.005
    assert (listed["amount"], listed["override"]) == ("10.00", False)  # 1000 x 0.01
    assert main(["quote", "--catalog", str(path), "--customer", "nobody", *common]) == 1
    assert "no subscription of customer 'nobody'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["invoice", "--period", "2026-Q5"], "is not a period name"),
        (["invoice", "--period", "2027-W53"], "has no ISO week 53"),
        (["invoice", "--at", "yesterday"], "is not an ISO 8601 time"),
    ],
)
def test_invoice_period_mistakes_are_one_line_and_exit_2(args, says, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
