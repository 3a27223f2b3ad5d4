"""A month of synthetic events across customers on every pricing model, through the real
pipeline (produce -> run --bounded -> invoice), against the Python rater over the same events."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from tallyflow.core import catalog, periods, plans, pricing, totals
from tallyflow.core.events import parse_time
from tallyflow.core.periods import Period
from tallyflow.settings import REPO_ROOT
from tallyflow.tools import generator

pytestmark = pytest.mark.integration
PERIOD = "2026-10"


def catalog_doc() -> dict:
    doc = yaml.safe_load((REPO_ROOT / "deploy" / "demo" / "catalog.yaml").read_text())
    growth = next(p for p in doc["plans"] if p["id"] == "growth")
    # A second version that takes effect mid-month: the period splits, tiers restart, fees prorate.
    doc["plans"].append(
        {
            **growth,
            "version": 2,
            "effective_from": "2026-10-16T12:00:00Z",
            "apply": "immediately",
            "base_fee": "620.00",
            "charges": [
                {
                    **growth["charges"][0],
                    "tiers": [{"up_to": "100", "unit_price": "0.05"}, {"up_to": None, "unit_price": "0.004"}],
                },
                *growth["charges"][1:],
            ],
        }
    )
    return doc


def month(tmp_path, n: int = 6000, seed: int = 11) -> tuple[Path, Path, list[dict]]:
    """The catalog (a mid-month version) and a month of events with duplicates and late ones."""
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog_doc()))
    sent = list(generator.generate(n, customers=8, period=PERIOD, duplicate_rate=0.03, late_rate=0.02, seed=seed))
    events_file = tmp_path / f"events-{seed}.jsonl"
    events_file.write_text("".join(json.dumps(e) + "\n" for e in sent))
    return path, events_file, sent


def assert_invoices_exact(tallyflow, sent: list[dict]) -> set[str]:
    """Every invoice of the month equals the Python rater over the unique events sent; returns the
    pricing models seen."""
    cat = catalog.parse(catalog_doc())
    got = {i["customer"]: i for i in tallyflow.json("invoice", "--period", PERIOD)}
    unique = {(e["customer_id"], e["event_id"]): {**e, "event_time": parse_time(e["event_time"])} for e in sent}
    events = list(unique.values())
    chosen = periods.parse_period(PERIOD)  # every customer's period that starts in the month
    models = set()
    for sub in cat.subscriptions:
        if cat.plan_versions(sub.plan)[0].credits:
            continue  # credit lines come from the job's ledger (tests/integration/test_credits.py)
        (period,) = chosen.periods(cat.billing_period(sub.plan), sub.billing_anchor)
        lines = plans.invoice_lines(cat, sub, period, events)
        minor = cat.plan_versions(sub.plan)[0].minor_units
        terms = totals.adjustments(cat, sub, period, ((x.meter, x.amount) for x in lines), minor)
        expected_total = sum((x.amount for x in lines), Decimal(0)) + sum((a.amount for a in terms), Decimal(0))
        inv = got[sub.customer]
        assert (inv["period"], inv["total"]) == (period.name, str(pricing.round_money(expected_total, minor))), sub
        assert [x["amount"] for x in inv["lines"]] == [
            str(pricing.round_money(x.amount, minor)) for x in [*lines, *terms]
        ]
        models |= {x["model"] for x in inv["lines"] if x["model"]}
    growth = got["cust_002"]
    assert {x["version"] for x in growth["lines"]} == {1, 2}  # split at the mid-month version
    return models


def test_every_model_matches_independent_computation(tallyflow, tmp_path):
    path, events_file, sent = month(tmp_path)
    tallyflow("produce", "--file", str(events_file))
    tallyflow("run", "--catalog", str(path), "--bounded")
    assert assert_invoices_exact(tallyflow, sent) == {"per_unit", "graduated", "volume", "package", "staircase"}


def test_rated_records_add_up_to_the_windowed_and_adjusted_usage(tallyflow, tmp_path):
    # One partition: the watermark then follows send order exactly, so events held back for hours
    # are surely late (with several partitions read in bulk, the combined watermark may trail).
    tallyflow.env["TALLYFLOW_TOPIC_PREFIX"] += "p1."
    tallyflow.env["TALLYFLOW_PARTITIONS"] = "1"
    tallyflow("stack", "up")
    doc = catalog_doc()
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(doc))
    cat = catalog.parse(doc)
    sent = list(generator.generate(4000, customers=8, period=PERIOD, late_rate=0.02, seed=5))
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(json.dumps(e) + "\n" for e in sent))
    tallyflow("produce", "--file", str(events_file))
    tallyflow("run", "--catalog", str(path), "--bounded")

    rated_ids = {
        (r["customer_id"], r["event_id"])
        for r in tallyflow.sql("SELECT customer_id, event_id FROM events FINAL WHERE lateness IN ('on_time', 'adjust')")
    }
    rated_events = [
        {**e, "event_time": parse_time(e["event_time"])} for e in sent if (e["customer_id"], e["event_id"]) in rated_ids
    ]
    assert 0 < len(rated_events) < len(sent)  # some arrived too late: priced at invoice time only
    rated = {
        (r["customer_id"], r["meter_id"], r["filter_text"], r["version"]): (Decimal(r["amount"]), r["prov"])
        for r in tallyflow.sql("""SELECT customer_id, meter_id, filter_text, version,
                                              toString(sum(amount)) AS amount, max(provisional) AS prov
                                       FROM rated_records FINAL GROUP BY 1, 2, 3, 4""")
    }
    start, end = periods.month_bounds(PERIOD)
    expected = {}
    for sub in cat.subscriptions:
        for line in plans.invoice_lines(cat, sub, Period(start, end, PERIOD), rated_events):
            meter = cat.meters_by_id.get(line.meter)
            if line.type == "usage" and meter.aggregation in ("count", "sum", "max") and line.quantity > 0:
                version = plans.version_in_force(cat.plan_versions(sub.plan), start, line.segment_start).version
                expected[(sub.customer, line.meter, line.filter, version)] = line.amount_exact
    assert {k: v[0] for k, v in rated.items()} == expected
    assert {k[1] for k, v in rated.items() if v[1]} == {"images"}  # the volume charge is provisional


def test_a_source_idle_before_the_end_still_closes_the_last_windows(tallyflow, tmp_path):
    # A source with no new record for the idle timeout announces itself idle, and Flink then drops
    # every watermark it emits, the end-of-input one of a draining stop too: the last hour's
    # windows never fired. A 1 s timeout makes the source idle long before `run` ends the job.
    tallyflow.env["TALLYFLOW_IDLE_TIMEOUT"] = "1s"
    path, events_file, sent = month(tmp_path, n=2000, seed=7)
    tallyflow("produce", "--file", str(events_file))
    tallyflow("run", "--catalog", str(path), "--bounded")
    last = max(e["event_time"] for e in sent)
    rows = tallyflow.sql("SELECT toString(max(window_start)) AS w FROM usage_windows FINAL")
    assert rows[0]["w"][:13] == last[:10] + " " + last[11:13], (rows, last)
    rec = tallyflow("reconcile", "--period", PERIOD, "--format", "json", check=False)
    assert rec.returncode == 0, json.loads(rec.stdout)["failed"]
