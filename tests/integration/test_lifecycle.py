"""Billing lifecycle on the real stack: `catalog apply | show` without running the job, the
settlement window that finalizes a period from the running pipeline (and `invoice --finalize-due`
without one), and shadow pricing with a candidate catalog that stores nothing."""

from __future__ import annotations

import json

import pytest
import yaml

pytestmark = pytest.mark.integration


def catalog_doc(price: str = "1", tiers: list | None = None) -> dict:
    charge = (
        {"meter": "calls", "model": "graduated", "tiers": tiers}
        if tiers
        else {"meter": "calls", "model": "per_unit", "unit_price": price}
    )
    return {
        "meters": [{"id": "calls", "event_type": "call", "aggregation": "count"}],
        "plans": [
            {
                "id": "p",
                "version": 1,
                "effective_from": "2026-01-01T00:00:00Z",
                "currency": "USD",
                "base_fee": "10.00",
                "charges": [charge],
            },
            {
                "id": "yen",
                "version": 1,
                "effective_from": "2026-01-01T00:00:00Z",
                "currency": "JPY",
                "charges": [{"meter": "calls", "model": "per_unit", "unit_price": "3" if not tiers else "5"}],
            },
        ],
        "subscriptions": [
            {"customer": "c1", "plan": "p", "start": "2026-01-01T00:00:00Z"},
            {"customer": "c2", "plan": "yen", "start": "2026-01-01T00:00:00Z"},
        ],
    }


def write(tmp_path, name: str, doc: dict) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def publish(tallyflow, tmp_path, name: str, customer: str, n: int, day: str) -> None:
    path = tmp_path / f"{name}.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "event_id": f"{name}-{i}",
                    "customer_id": customer,
                    "event_type": "call",
                    "event_time": f"{day}T10:00:{i:02d}Z",
                }
            )
            + "\n"
            for i in range(n)
        )
    )
    tallyflow("produce", "--file", str(path))


def invoices(tallyflow, period: str) -> dict:
    return {i["customer"]: i for i in tallyflow.json("invoice", "--period", period)}  # type: ignore[union-attr]


def test_catalog_apply_and_show_without_the_job(tallyflow, tmp_path):
    cat = write(tmp_path, "catalog.yaml", catalog_doc())
    digest = tallyflow.json("catalog", "validate", cat)["digest"]
    applied = tallyflow.json("catalog", "apply", cat)
    assert applied == {"file": cat, "digest": digest, "new": True}
    shown = tallyflow.json("catalog", "show")
    assert (shown["digest"], shown["source"]) == (digest, cat)
    assert shown["catalog"]["plans"][0]["base_fee"] == "10.00" and shown["applied_at"].startswith("20")
    # Analysts price and invoice against it: no event yet, the base fee is owed.
    assert invoices(tallyflow, "2026-10")["c1"]["total"] == "10.00"
    assert tallyflow.json("catalog", "apply", cat)["new"] is False  # the same catalog again


def test_settlement_window_finalizes_the_period_from_the_running_pipeline(tallyflow, tmp_path):
    cat = write(tmp_path, "catalog.yaml", catalog_doc())
    publish(tallyflow, tmp_path, "oct", "c1", 9, "2026-10-05")
    first = tallyflow.json("run", "--catalog", cat, "--bounded")
    assert first["finalized"] == {}  # the suite's window keeps past months open
    assert invoices(tallyflow, "2026-10")["c1"]["status"] == "draft"

    tallyflow.env["TALLYFLOW_SETTLEMENT_WINDOW"] = "30s"  # October ended more than 30 s ago
    publish(tallyflow, tmp_path, "oct-more", "c1", 2, "2026-10-06")  # arrives before it is settled
    second = tallyflow.json("run", "--catalog", cat, "--bounded")
    assert second["finalized"] == {"2026-10": 2}  # c1 and c2, by the pipeline itself
    oct_ = invoices(tallyflow, "2026-10")
    assert oct_["c1"]["status"] == "finalized" and oct_["c1"]["total"] == "21.00"  # 10 + 11 calls
    assert oct_["c2"]["status"] == "finalized" and oct_["c2"]["total"] == "0"

    publish(tallyflow, tmp_path, "oct-late", "c1", 3, "2026-10-07")  # after October was finalized
    third = tallyflow.json("run", "--catalog", cat, "--bounded")
    assert third["finalized"] == {}
    assert invoices(tallyflow, "2026-10")["c1"]["total"] == "21.00"  # unchanged
    nov = invoices(tallyflow, "2026-11")["c1"]
    corrections = [
        (x["meter"], x["corrects"]["period"], x["quantity"], x["amount"])
        for x in nov["lines"]
        if x["type"] == "correction"
    ]
    assert corrections == [("calls", "2026-10", "3", "3.00")]
    assert nov["status"] == "draft"


def test_finalize_due_without_a_running_job(tallyflow, tmp_path):
    cat = write(tmp_path, "catalog.yaml", catalog_doc())
    publish(tallyflow, tmp_path, "sep", "c1", 4, "2026-09-10")
    tallyflow("run", "--catalog", cat, "--bounded")
    assert tallyflow.json("invoice", "--finalize-due")["finalized"] == {}  # the suite's long window
    tallyflow.env["TALLYFLOW_SETTLEMENT_WINDOW"] = "30s"
    assert tallyflow.json("invoice", "--finalize-due")["finalized"] == {"2026-09": 2}
    assert tallyflow.json("invoice", "--finalize-due")["finalized"] == {}  # done once
    assert invoices(tallyflow, "2026-09")["c1"]["status"] == "finalized"
    bad = tallyflow("invoice", "--finalize-due", "--period", "2026-09", check=False)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1


def test_shadow_pricing_with_a_candidate_catalog_stores_nothing(tallyflow, tmp_path):
    cat = write(tmp_path, "catalog.yaml", catalog_doc())
    publish(tallyflow, tmp_path, "c1", "c1", 9, "2026-10-05")
    publish(tallyflow, tmp_path, "c2", "c2", 7, "2026-10-05")
    tallyflow("run", "--catalog", cat, "--bounded")
    stored = (
        "SELECT (SELECT count() FROM catalog_applied) AS applied, (SELECT count() FROM catalog_plans) AS plans, "
        "(SELECT count() FROM catalog_charges) AS charges, (SELECT count() FROM invoices_finalized) AS issued, "
        "(SELECT count() FROM events) AS events"
    )
    before, shown = tallyflow.sql(stored), tallyflow.json("catalog", "show")

    candidate = write(
        tmp_path,
        "candidate.yaml",
        catalog_doc(tiers=[{"up_to": "5", "unit_price": "2"}, {"up_to": None, "unit_price": "0.5"}]),
    )
    r = tallyflow.json("invoice", "--period", "2026-10", "--catalog", candidate)
    by = {c["customer"]: c for c in r["customers"]}
    # c1: 10 + 9 x 1 = 19.00 now; 10 + 5 x 2 + 4 x 0.5 = 22.00 under the candidate.
    assert (by["c1"]["current"]["total"], by["c1"]["candidate"]["total"], by["c1"]["difference"]) == (
        "19.00",
        "22.00",
        "3.00",
    )
    # c2 (JPY, no minor units): 7 x 3 = 21 now; 7 x 5 = 35.
    assert (by["c2"]["current"]["total"], by["c2"]["candidate"]["total"], by["c2"]["difference"]) == ("21", "35", "14")
    (line,) = [x for x in by["c1"]["candidate"]["lines"] if x["type"] == "usage"]
    assert [(b["tier"], b["units"]) for b in line["breakdown"]] == [(1, "5"), (2, "4")]

    table = tallyflow("invoice", "--period", "2026-10", "--catalog", candidate).stdout
    assert "nothing stored" in table and "22.00" in table
    assert tallyflow.sql(stored) == before and tallyflow.json("catalog", "show") == shown
    assert invoices(tallyflow, "2026-10")["c1"]["total"] == "19.00"
