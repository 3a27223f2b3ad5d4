"""`tallyflow reconcile` on a real run (duplicates, late events, credits): clean, then each kind of
double count or loss planted in ClickHouse is caught and named."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tallyflow.settings import REPO_ROOT
from tallyflow.tools import generator

pytestmark = pytest.mark.integration
PERIOD = "2026-10"
DEMO = str(REPO_ROOT / "deploy" / "demo" / "catalog.yaml")


def reconcile(tallyflow) -> tuple[int, dict]:
    proc = tallyflow("reconcile", "--period", PERIOD, "--format", "json", check=False)
    return proc.returncode, json.loads(proc.stdout)


def test_reconcile_clean_run_then_planted_faults(tallyflow, tmp_path):
    sent = list(generator.generate(5000, customers=10, period=PERIOD, duplicate_rate=0.03, late_rate=0.02, seed=3))
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in sent))
    tallyflow("produce", "--file", str(path))
    tallyflow("run", "--catalog", DEMO, "--bounded")

    code, r = reconcile(tallyflow)
    assert (code, r["discrepancies"], r["failed"]) == (0, 0, [])
    checks = {c["check"] for c in r["passed"]}
    assert checks == {
        "events_vs_outputs",
        "metered_vs_rated",
        "rated_vs_invoice",
        "credits_implied_vs_ledger",
        "balance_vs_ledger",
        "ledger_entry_numbers",
    }
    unique = {(e["customer_id"], e["event_id"]) for e in sent}
    accepted = sum(n for k, n in r["counts"].items() if k.startswith("accepted_"))
    assert accepted == len(unique) and r["counts"]["duplicates"] == len(sent) - len(unique)

    # A window loaded twice under other Kafka coordinates (what a loader without idempotence does).
    (w,) = tallyflow.sql(
        "SELECT customer_id, meter_id FROM usage_windows FINAL WHERE customer_id = 'cust_001' "
        "AND meter_id = 'api_calls' ORDER BY window_start LIMIT 1"
    )
    _plant(
        tallyflow,
        "INSERT INTO usage_windows SELECT * REPLACE (kafka_offset + 1000000 AS kafka_offset) "
        "FROM usage_windows FINAL WHERE customer_id = 'cust_001' AND meter_id = 'api_calls' "
        "ORDER BY window_start LIMIT 1",
    )
    # A credit draw recorded twice.
    _plant(
        tallyflow,
        "INSERT INTO credit_ledger SELECT * REPLACE (seq + 1000000 AS seq) FROM credit_ledger FINAL "
        "WHERE customer_id = 'cust_009' AND kind = 'draw' ORDER BY seq LIMIT 1",
    )
    # An entry number used twice (a job that started without continuing the ledger).
    _plant(
        tallyflow,
        "INSERT INTO credit_ledger SELECT * REPLACE (kafka_offset + 1000000 AS kafka_offset) "
        "FROM credit_ledger FINAL WHERE customer_id = 'cust_010' ORDER BY seq LIMIT 1",
    )
    code, r = reconcile(tallyflow)
    failed = {(c["check"], c["customer"], c["meter"]) for c in r["failed"]}
    assert code == 3  # a discrepancy (1 is "a service did not answer")
    assert ("events_vs_outputs", w["customer_id"], w["meter_id"]) in failed
    assert ("metered_vs_rated", "cust_001", "api_calls") in failed
    assert any(c == "credits_implied_vs_ledger" and cust == "cust_009" for c, cust, _ in failed)
    assert ("ledger_entry_numbers", "cust_010", "") in failed
    row = next(c for c in r["failed"] if c["check"] == "events_vs_outputs")
    assert row["period"] == PERIOD and row["left"]["value"] != row["right"]["value"]


def _plant(tallyflow, statement: str) -> None:
    """Writes into the test's store the way a faulty loader would (the CLI's sql is read-only). In a
    child process: one process holds one embedded chdb store."""
    code = (
        "import sys; from tallyflow.land import clickhouse; from tallyflow.settings import Settings; "
        "clickhouse.connect(Settings.from_env()).command(sys.argv[1])"
    )
    subprocess.run(
        [sys.executable, "-c", code, statement],
        env=tallyflow.env,
        check=True,
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=120,
    )
