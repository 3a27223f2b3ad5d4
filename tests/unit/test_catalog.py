"""Catalog loading: the demo catalog loads; every broken rule is named with plan and charge."""

import copy
import json
from decimal import Decimal as D

import pytest
import yaml

from tallyflow.core import catalog
from tallyflow.errors import UserError
from tallyflow.settings import REPO_ROOT

DEMO = REPO_ROOT / "deploy" / "demo" / "catalog.yaml"


@pytest.fixture
def doc() -> dict:
    return yaml.safe_load(DEMO.read_text())


def problems(doc: dict) -> list[str]:
    with pytest.raises(catalog.CatalogError) as e:
        catalog.parse(doc, "test")
    return e.value.problems


def test_demo_catalog_loads():
    cat = catalog.load(DEMO)
    assert {m.id for m in cat.meters} >= {"api_calls", "llm_tokens_input", "seats"}
    growth = cat.plan_versions("growth")[0]
    assert growth.minimum_commitment == D("1000.00")
    assert growth.charges[0].tiers[1].up_to == D("2000")
    assert cat.plan_versions("tokyo")[0].minor_units == 0
    assert len(cat.digest) == 16


def test_json_catalog_accepted(tmp_path, doc):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(doc))
    assert catalog.load(path).digest == catalog.load(DEMO).digest


def test_tier_bounds_must_increase(doc):
    doc["plans"][1]["charges"][0]["tiers"][1]["up_to"] = "400"
    assert "plan growth v1, charge api_calls: tier bounds must strictly increase (400 after 500)" in problems(doc)


def test_null_bound_only_last(doc):
    doc["plans"][1]["charges"][0]["tiers"][0]["up_to"] = None
    assert any("up_to null is only allowed on the last tier" in p for p in problems(doc))


def test_float_money_rejected(doc):
    doc["plans"][0]["charges"][0]["unit_price"] = 0.002
    assert 'plan starter v1, charge api_calls: unit_price must be a decimal string (write "0.002")' in problems(doc)


def test_unknown_meter_and_model(doc):
    doc["plans"][0]["charges"][0]["meter"] = "nope"
    doc["plans"][0]["charges"][1]["model"] = "tiered"
    found = problems(doc)
    assert "plan starter v1, charge nope: meter 'nope' is not defined in meters" in found
    assert any("model 'tiered' is not one of" in p for p in found)


def test_overlapping_filters_rejected(doc):
    doc["plans"][1]["charges"][2]["filter"] = {"model": "m-large"}
    assert any("several charges on meter llm_tokens_input need disjoint filters" in p for p in problems(doc))


def test_filter_key_must_be_grouped(doc):
    doc["plans"][1]["charges"][1]["filter"] = {"region": "eu"}
    assert any("filter key 'region' is not in meter llm_tokens_input's group_by" in p for p in problems(doc))


def test_credits_rules(doc):
    bad = copy.deepcopy(doc)
    bad["plans"][0]["credits"] = {
        "rates": {"api_calls": "1", "seats": "2"},
        "credit_price": "1.00",
        "on_exhausted": "stop",
    }
    found = problems(bad)
    assert "plan starter v1, charge api_calls: a credit-priced meter must have no charges" in found
    assert any("meter 'seats' is unique_count; credits need count or sum meters" in p for p in found)
    assert any("on_exhausted 'stop'" in p for p in found)


def test_subscription_to_unknown_plan_and_overlap(doc):
    doc["subscriptions"].append({"customer": "cust_001", "plan": "enterprise", "start": "2026-03-01T00:00:00Z"})
    found = problems(doc)
    assert "subscription of cust_001: plan 'enterprise' is not defined in plans" in found
    assert "subscription of cust_001: subscriptions of one customer must not overlap" in found


def test_time_needs_offset(doc):
    doc["plans"][0]["effective_from"] = "2026-01-01T00:00:00"
    assert any("has no UTC offset" in p for p in problems(doc))


def test_unknown_field_is_named(doc):
    doc["plans"][0]["charges"][0]["unit_prize"] = "1"
    assert any("plan starter v1, charge api_calls: unknown field 'unit_prize'" in p for p in problems(doc))


def test_all_problems_reported_at_once(doc):
    doc["plans"][0]["currency"] = "usd"
    doc["meters"][0]["aggregation"] = "avg"
    assert len(problems(doc)) >= 2


def test_unreadable_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="cannot read catalog"):
        catalog.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("meters: [\n")
    with pytest.raises(UserError, match="not valid YAML"):
        catalog.load(bad)


def test_customer_in_two_currencies_rejected(doc):
    """Stripe and Lago bill a customer in one currency: a move from a USD plan to a JPY plan is
    rejected at load, naming the customer and both currencies."""
    doc = copy.deepcopy(doc)
    usd = next(p for p in doc["plans"] if p["currency"] == "USD")["id"]
    jpy = next(p for p in doc["plans"] if p["currency"] == "JPY")["id"]
    doc["subscriptions"] = [
        {"customer": "mover", "plan": usd, "start": "2026-01-01T00:00:00Z", "end": "2026-09-16T00:00:00Z"},
        {"customer": "mover", "plan": jpy, "start": "2026-09-16T00:00:00Z"},
    ]
    (problem,) = problems(doc)
    assert problem == (
        f"customer mover: subscriptions bill in USD (plan {usd}) and JPY (plan {jpy}); "
        "a customer is billed in one currency"
    )
