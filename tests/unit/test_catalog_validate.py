"""`tallyflow catalog validate`: every problem printed, one line each, exit 1, no traceback."""

from __future__ import annotations

import json

import pytest

from tallyflow.cli import main

TWO_CURRENCIES = """
meters:
  - {id: api, event_type: api, aggregation: count}
plans:
  - {id: usd, version: 1, effective_from: "2026-01-01T00:00:00Z", currency: USD, base_fee: "5.00",
     charges: [{meter: api, model: per_unit, unit_price: "1"}]}
  - {id: jpy, version: 1, effective_from: "2026-01-01T00:00:00Z", currency: JPY, base_fee: "500",
     charges: [{meter: api, model: per_unit, unit_price: "100"}]}
subscriptions:
  - {customer: c1, plan: usd, start: "2026-01-01T00:00:00Z", end: "2026-09-16T00:00:00Z"}
  - {customer: c1, plan: jpy, start: "2026-09-16T00:00:00Z"}
"""


def test_multi_currency_customer_is_one_line_and_exit_1(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(TWO_CURRENCIES)
    assert main(["catalog", "validate", str(path)]) == 1
    out = capsys.readouterr()
    assert out.out.strip().splitlines() == [
        f"{path}: customer c1: subscriptions bill in USD (plan usd) and JPY (plan jpy); "
        "a customer is billed in one currency"
    ]
    assert "Traceback" not in out.err


def test_every_problem_is_printed(tmp_path, capsys):
    broken = TWO_CURRENCIES.replace('unit_price: "1"', "unit_price: 1.5").replace(
        'model: per_unit, unit_price: "100"', "model: volume, tiers: []"
    )
    path = tmp_path / "c.yaml"
    path.write_text(broken)
    assert main(["catalog", "validate", str(path), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert len(report["problems"]) == 3, report["problems"]
    assert any("plan usd v1, charge api: unit_price must be a decimal string" in p for p in report["problems"])
    assert any("plan jpy v1, charge api: tiers must not be empty" in p for p in report["problems"])


def test_valid_catalog(capsys):
    assert main(["catalog", "validate", "deploy/demo/catalog.yaml", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] and len(report["digest"]) == 16


def test_missing_file_is_one_line(tmp_path, capsys):
    assert main(["catalog", "validate", str(tmp_path / "nope.yaml")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read catalog" in err[0]


def test_privacy_lists_the_dimensions_to_pseudonymize():
    from tallyflow.core import catalog

    base = {
        "meters": [{"id": "users", "event_type": "login", "aggregation": "unique_count", "value": "user_id"}],
        "plans": [],
    }
    assert catalog.parse({**base, "privacy": {"pseudonymize": ["user_id", "ip"]}}).pseudonymize == ("user_id", "ip")
    assert catalog.parse(base).pseudonymize == ()
    with pytest.raises(catalog.CatalogError, match=r"privacy.pseudonymize\[1\]: 'ip' is listed twice"):
        catalog.parse({**base, "privacy": {"pseudonymize": ["ip", "ip"]}})
    with pytest.raises(catalog.CatalogError, match="privacy: unknown field 'hash'"):
        catalog.parse({**base, "privacy": {"pseudonymize": ["ip"], "hash": "md5"}})
