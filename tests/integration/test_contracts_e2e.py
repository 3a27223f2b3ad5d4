"""Contracts through the real pipeline (produce -> run --bounded -> invoice): the customers of
tests/vectors/contracts.json (a monthly anchor on the 15th and on the 31st, a quarterly and a
weekly plan, an override, each coupon kind, two tax rates and a GB-hours meter) over a month and
a half of events, every invoice line against the amounts worked out by hand there; then a late
event for an anchored period after its settlement, billed as a correction on that customer's
next period."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "contracts.json").read_text())


def _invoices(tallyflow, case: dict) -> list[dict]:
    how = ("--period", case["period"]) if "period" in case else ("--at", case["at"])
    got = tallyflow.json("invoice", *how, "--customer", case["customer"])
    return [
        {
            "period": d["period"],
            "period_start": d["period_start"],
            "period_end": d["period_end"],
            "lines": [
                [x["type"], x["meter"] or "", x.get("coupon") or x.get("tax") or "", x["amount"], x["override"]]
                for x in d["lines"]
            ],
            **{k: d[k] for k in ("subtotal", "discount_total", "tax_total", "total")},
        }
        for d in got
    ]


def test_contract_terms_through_the_pipeline_and_a_late_event_after_settlement(tallyflow, tmp_path):
    catalog = tmp_path / "contracts.json"
    catalog.write_text(json.dumps(VECTORS["catalog"]))
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in VECTORS["events"]))
    tallyflow("stack", "up")
    tallyflow("produce", "--file", str(events))
    tallyflow("run", "--catalog", str(catalog), "--bounded")

    for case in VECTORS["cases"]:
        assert _invoices(tallyflow, case) == case["invoices"], case["why"]

    # Every period of those months is settled (48 h after it ended, long ago); then a15 reports
    # 100 more calls of Feb 20.
    tallyflow("invoice", "--finalize-due", env_extra={"TALLYFLOW_SETTLEMENT_WINDOW": "48h"})
    for period, customer in (("2026-02-15", "a15"), ("2026-Q1", "qtr"), ("2026-W07", "wk"), ("2026-02", "cal")):
        (settled,) = tallyflow.json("invoice", "--period", period, "--customer", customer)
        assert settled["status"] == "finalized", (period, customer)
    late = tmp_path / "late.jsonl"
    late.write_text(
        json.dumps(
            {
                "customer_id": "a15",
                "event_id": "a15-late",
                "event_type": "api_call",
                "event_time": "2026-02-20T12:00:00Z",
                "values": {"n": "100"},
                "dimensions": {},
            }
        )
        + "\n"
    )
    tallyflow("produce", "--file", str(late))
    tallyflow("run", "--catalog", str(catalog), "--bounded")

    # The finalized invoice is unchanged ...
    (feb,) = tallyflow.json("invoice", "--period", "2026-02-15", "--customer", "a15")
    assert (feb["status"], feb["total"]) == ("finalized", "29.04")
    # ... and a15's next open period, Apr 15 - May 15, corrects it: 100 more calls x 0.01 = 1.00;
    # launch20 then took 20% of 31.50 = 6.30, 0.20 more; VAT DE on 25.20 is 4.79, 0.15 more. Its
    # own lines: base 30.00, no usage, the coupon over (three periods), VAT 5.70.
    (apr,) = tallyflow.json("invoice", "--period", "2026-04-15", "--customer", "a15")
    corrections = [
        (x["corrects"]["period"], x["corrects"]["type"], x["meter"], x["amount"])
        for x in apr["lines"]
        if x["type"] == "correction"
    ]
    assert corrections == [
        ("2026-02-15", "discount", None, "-0.20"),
        ("2026-02-15", "tax", None, "0.15"),
        ("2026-02-15", "usage", "api", "1.00"),
    ]
    assert all(
        x["corrects"]["period_start"] == "2026-02-15T00:00:00.000Z" for x in apr["lines"] if x["type"] == "correction"
    )
    assert (apr["subtotal"], apr["discount_total"], apr["tax_total"], apr["total"]) == (
        "31.00",
        "0.20",
        "5.85",
        "36.65",
    )
