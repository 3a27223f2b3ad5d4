"""Prepaid credits through the real pipeline: grants from the catalog and the grants topic,
drawdown order, expiry, exhaustion and top-ups, overage and pause on the invoice, and the ledger,
`balance` and the metered usage agreeing to the credit."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Producer

pytestmark = pytest.mark.integration
PERIOD = "2026-10"
AT = "2026-10-31T12:00:00Z"
OCT = "2026-10-01T00:00:00Z"

CATALOG = {
    "meters": [
        {"id": "api_calls", "event_type": "api_call", "aggregation": "count"},
        {"id": "gb", "event_type": "transfer", "aggregation": "sum", "value": "gb"},
    ],
    "plans": [
        {
            "id": "prepaid",
            "version": 1,
            "effective_from": "2026-01-01T00:00:00Z",
            "currency": "USD",
            "credits": {
                "rates": {"api_calls": "1", "gb": "5"},
                "credit_price": "0.01",
                "on_exhausted": "overage",
                "overage_multiplier": "1.2",
                "alert_thresholds": ["0.5", "0.8", "1.0"],
            },
        },
        {
            "id": "paused",
            "version": 1,
            "effective_from": "2026-01-01T00:00:00Z",
            "currency": "USD",
            "credits": {"rates": {"api_calls": "1"}, "credit_price": "0.01", "on_exhausted": "pause"},
        },
    ],
    "subscriptions": [
        {"customer": "c_seed", "plan": "prepaid", "start": "2026-01-01T00:00:00Z"},
        {"customer": "c_order", "plan": "prepaid", "start": "2026-01-01T00:00:00Z"},
        {"customer": "c_over", "plan": "prepaid", "start": "2026-01-01T00:00:00Z"},
        {"customer": "c_pause", "plan": "paused", "start": "2026-01-01T00:00:00Z"},
    ],
    "grants": [
        {
            "customer": "c_seed",
            "grant_id": "g-seed",
            "credits": "10000",
            "priority": 1,
            "effective_at": "2026-01-01T00:00:00Z",
            "expires_at": "2026-12-31T23:59:59Z",
        },
        # c_order: priority first, then the earliest expiry, then no expiry; A (priority 2) last.
        {"customer": "c_order", "grant_id": "A", "credits": "1000", "priority": 2, "effective_at": OCT},
        {
            "customer": "c_order",
            "grant_id": "B",
            "credits": "500",
            "priority": 1,
            "effective_at": OCT,
            "expires_at": "2026-10-20T00:00:00Z",
        },
        {
            "customer": "c_order",
            "grant_id": "C",
            "credits": "800",
            "priority": 1,
            "effective_at": OCT,
            "expires_at": "2026-10-10T00:00:00Z",
        },
        {"customer": "c_order", "grant_id": "D", "credits": "100", "priority": 1, "effective_at": OCT},
        {"customer": "c_over", "grant_id": "g-over", "credits": "1000", "effective_at": "2026-10-01T00:00:00Z"},
        {"customer": "c_pause", "grant_id": "g-pause", "credits": "100", "effective_at": "2026-10-01T00:00:00Z"},
    ],
}


def calls(customer: str, n: int, day: str, prefix: str) -> list[dict]:
    return [
        {
            "event_id": f"{prefix}{i}",
            "customer_id": customer,
            "event_type": "api_call",
            "event_time": f"2026-10-{day}T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}.{i % 997:03d}Z",
        }
        for i in range(n)
    ]


def publish(tallyflow, tmp_path, name: str, events: list[dict]) -> None:
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    tallyflow("produce", "--file", str(path))


def balance(tallyflow, customer: str) -> dict:
    return tallyflow.json("balance", "--customer", customer, "--at", AT)  # type: ignore[return-value]


def by_grant(b: dict) -> dict:
    return {g["grant_id"]: (g["status"], g["consumed"], g["remaining"]) for g in b["grants"]}


def signals(tallyflow, customer: str) -> list[tuple]:
    rows = tallyflow.sql(
        f"SELECT kind, toString(balance) AS b, toString(threshold) AS t FROM credit_signals FINAL "
        f"WHERE customer_id = '{customer}' AND kind != 'balance' ORDER BY seq"
    )
    plain = lambda v: None if v is None else format(Decimal(v).normalize(), "f")  # noqa: E731
    return [(r["kind"], plain(r["b"]), plain(r["t"])) for r in rows]


def test_credits_end_to_end(tallyflow, tmp_path):
    cat = tmp_path / "catalog.yaml"
    cat.write_text(yaml.safe_dump(CATALOG))
    gb = [
        {
            "event_id": f"t{i}",
            "customer_id": "c_seed",
            "event_type": "transfer",
            "event_time": f"2026-10-04T10:{i // 60:02d}:{i % 60:02d}Z",
            "values": {"gb": "1"},
        }
        for i in range(200)
    ]
    publish(
        tallyflow,
        tmp_path,
        "first",
        [
            *calls("c_seed", 5000, "03", "s"),
            *gb,
            *calls("c_order", 600, "05", "o1-"),
            *calls("c_order", 400, "15", "o2-"),
            *calls("c_order", 150, "25", "o3-"),
            *calls("c_over", 1500, "06", "v"),
            *calls("c_pause", 300, "07", "p"),
        ],
    )
    tallyflow("run", "--catalog", str(cat), "--bounded")

    # The seed example of docs/catalog.md: 10000 - (5000 x 1 + 200 x 5) = 4000.
    seed = balance(tallyflow, "c_seed")
    assert by_grant(seed) == {"g-seed": ("active", "6000", "4000")}
    assert seed["total"]["remaining"] == "4000"

    # C (priority 1, expires first) covers 10-05 and expires with 200 left; B covers 10-15 and
    # expires with 100 left; on 10-25 D (priority 1, no expiry) then A (priority 2).
    order = balance(tallyflow, "c_order")
    assert by_grant(order) == {
        "C": ("expired", "600", "200"),
        "B": ("expired", "400", "100"),
        "D": ("active", "100", "0"),
        "A": ("active", "50", "950"),
    }
    assert order["total"] == {
        "granted": "2400",
        "consumed": "1150",
        "remaining": "950",
        "expired_unused": "300",
        "scheduled": "0",
        "uncovered_credits": "0",
    }

    # Exhaustion: 1000 covered, 500 uncovered; alerts at each threshold once, exhausted once.
    assert signals(tallyflow, "c_over") == [
        ("alert", "500", "0.5"),
        ("alert", "200", "0.8"),
        ("alert", "0", "1"),
        ("exhausted", "0", None),
    ]
    over = balance(tallyflow, "c_over")
    assert over["uncovered"] == [{"meter": "api_calls", "quantity": "500", "credits": "500"}]
    assert signals(tallyflow, "c_pause") == [("exhausted", "0", None)]

    # A top-up restores the exhausted customer; later usage draws it down.
    tallyflow(
        "grant",
        "--customer",
        "c_over",
        "--credits",
        "2000",
        "--grant-id",
        "top-1",
        "--effective-at",
        "2026-10-01T00:00:00Z",
    )
    tallyflow(
        "grant",
        "--customer",
        "c_over",
        "--credits",
        "2000",
        "--grant-id",
        "top-1",
        "--effective-at",
        "2026-10-01T00:00:00Z",
    )  # a resend: ignored
    producer = Producer({"bootstrap.servers": tallyflow.bootstrap})
    producer.produce(tallyflow.topic("grants"), key=b"c_over", value=b"\x00\x00\x00\x07\xd1garbage")
    producer.flush(30)
    tallyflow("run", "--catalog", str(cat), "--bounded")
    (reject,) = tallyflow.sql("SELECT reason, source_topic FROM rejects")
    assert reject["reason"].startswith("grant rejected: malformed Avro") and reject["source_topic"].endswith("grants")
    assert signals(tallyflow, "c_over")[4:] == [("restored", "2000", None), ("grant_ignored", None, None)]
    publish(tallyflow, tmp_path, "after-top-up", calls("c_over", 100, "20", "w"))
    tallyflow("run", "--catalog", str(cat), "--bounded")
    over = balance(tallyflow, "c_over")
    assert by_grant(over) == {"top-1": ("active", "100", "1900"), "g-over": ("active", "1000", "0")}
    assert over["total"]["remaining"] == "1900"

    # Invoices read the ledger: overage at 0.01 x 1.2 per uncovered credit; pause bills nothing.
    invoices = {i["customer"]: i for i in tallyflow.json("invoice", "--period", PERIOD)}
    (line,) = [x for x in invoices["c_over"]["lines"] if x["type"] == "credits"]
    assert (line["quantity"], line["billable"], line["amount"]) == ("1600", "500", "6.00")
    assert [(b["meter"], b["part"], b["units"], b["credits"]) for b in line["breakdown"]] == [
        ("api_calls", "covered", "1100", "1100"),
        ("api_calls", "uncovered", "500", "500"),
        ("gb", "covered", "0", "0"),
        ("gb", "uncovered", "0", "0"),
    ]
    (line,) = [x for x in invoices["c_pause"]["lines"] if x["type"] == "credits"]
    assert (line["quantity"], line["billable"], line["amount"]) == ("300", "200", "0.00")
    (line,) = [x for x in invoices["c_seed"]["lines"] if x["type"] == "credits"]
    assert (line["quantity"], line["billable"], line["amount"]) == ("6000", "0", "0.00")
    assert {(b["meter"], b["part"]): b["units"] for b in line["breakdown"]} == {
        ("api_calls", "covered"): "5000",
        ("api_calls", "uncovered"): "0",
        ("gb", "covered"): "200",
        ("gb", "uncovered"): "0",
    }

    # Every credit the metered usage implies is in the ledger exactly once (drawn or uncovered),
    # and `balance` agrees with the ledger.
    implied = {
        r["customer_id"]: Decimal(r["c"])
        for r in tallyflow.sql(
            "SELECT customer_id, "
            "toString(sum(if(event_type = 'api_call', toDecimal128(1, 12), `values`['gb'] * 5))) AS c "
            "FROM events FINAL GROUP BY customer_id"
        )
    }
    ledger = {
        r["customer_id"]: Decimal(r["c"])
        for r in tallyflow.sql(
            "SELECT customer_id, toString(sumIf(credits, kind IN ('draw', 'uncovered'))) AS c "
            "FROM credit_ledger FINAL GROUP BY customer_id"
        )
    }
    assert implied == ledger == {"c_seed": 6000, "c_order": 1150, "c_over": 1600, "c_pause": 300}
    for customer in ("c_seed", "c_order", "c_over", "c_pause"):
        b = balance(tallyflow, customer)
        assert Decimal(b["total"]["consumed"]) + Decimal(b["total"]["uncovered_credits"]) == ledger[customer]


def test_restart_from_checkpoint_draws_every_usage_once(tallyflow, tmp_path):
    """The drawdown fails once mid-run (TALLYFLOW_FAULT); Flink restores the last checkpoint and
    replays: every usage row is drawn exactly once, and entry numbers have no gap or repeat."""
    doc = {
        **CATALOG,
        "grants": [
            {"customer": "c_seed", "grant_id": "big", "credits": "100000", "effective_at": "2026-01-01T00:00:00Z"}
        ],
    }
    cat = tmp_path / "catalog.yaml"
    cat.write_text(yaml.safe_dump(doc))
    publish(tallyflow, tmp_path, "many", calls("c_seed", 8000, "03", "r"))
    tallyflow.env.update(TALLYFLOW_FAULT="drawdown-after:4000", TALLYFLOW_CHECKPOINT_INTERVAL="300ms")
    tallyflow("run", "--catalog", str(cat), "--bounded")
    markers = list((Path(tallyflow.env["TALLYFLOW_HOME"]) / "faults").glob(f"{tallyflow.topic('')}drawdown-after-*"))
    assert len(markers) == 1, "the fault did not fire"

    (row,) = tallyflow.sql(
        "SELECT count() AS n, toString(sum(credits)) AS c, uniqExact(seq) AS seqs "
        "FROM credit_ledger FINAL WHERE customer_id = 'c_seed'"
    )
    assert (row["n"], Decimal(row["c"]), row["seqs"]) == (8000, 8000, 8000)
    # Ledger entries and signals share the customer's entry numbers: 1..top with no gap.
    (seq,) = tallyflow.sql(
        "SELECT uniqExact(seq) AS n, max(seq) AS top FROM (SELECT seq FROM credit_ledger FINAL "
        "WHERE customer_id = 'c_seed' UNION ALL SELECT seq FROM credit_signals FINAL "
        "WHERE customer_id = 'c_seed')"
    )
    assert seq["n"] == seq["top"]
    assert balance(tallyflow, "c_seed")["total"]["remaining"] == "92000"


def test_latency_bench_covers_every_event(tallyflow):
    """A short `bench --latency`: every published event is covered by a balance update."""
    r = tallyflow.json("bench", "--latency", "--rate", "200", "--seconds", "4", "--warmup", "3")
    assert r["covered"] == r["events_measured"] >= 700 and r["missing"] == 0
    assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p99"] <= r["latency_ms"]["max"] < 10_000


def test_overage_does_not_depend_on_arrival_order(services, tallyflow, tmp_path):
    """The same month (jittered times, resent duplicates) published in two different orders to two
    pipelines: the same credits line and total, the overage rounded once over both meters."""
    import random

    from tests.integration.conftest import Tallyflow

    doc = {
        **CATALOG,
        "grants": [{"customer": "c_over", "grant_id": "g", "credits": "700", "effective_at": "2026-10-01T00:00:00Z"}],
    }
    cat = tmp_path / "catalog.yaml"
    cat.write_text(yaml.safe_dump(doc))
    rng = random.Random(3)
    month = [
        {
            "event_id": f"m{i}",
            "customer_id": "c_over",
            "event_type": "transfer" if i % 3 else "api_call",
            "event_time": f"2026-10-{1 + i % 28:02d}T{i % 24:02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}."
            f"{rng.randrange(1000):03d}Z",
            **({"values": {"gb": f"{rng.randrange(1, 999)}.{rng.randrange(1000):03d}"}} if i % 3 else {}),
        }
        for i in range(900)
    ]
    month += rng.sample(month, 40)  # resends
    results = []
    for n, t in enumerate((tallyflow, Tallyflow(services, "overage-order-b"))):
        t("stack", "up")
        events = list(month)
        random.Random(n).shuffle(events)
        publish(t, tmp_path, f"order{n}", events)
        t("run", "--catalog", str(cat), "--bounded")
        (inv,) = t.json("invoice", "--period", PERIOD, "--customer", "c_over")
        (line,) = [x for x in inv["lines"] if x["type"] == "credits"]
        results.append((inv["total"], line["quantity"], line["billable"], line["amount_exact"], line["amount"]))
    assert results[0] == results[1]
    total, consumed, uncovered, exact, amount = results[0]
    assert Decimal(consumed) - Decimal(uncovered) == 700
    assert Decimal(exact) == Decimal(uncovered) * Decimal("0.012")
    assert Decimal(amount) == Decimal(exact).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP") == Decimal(total)
