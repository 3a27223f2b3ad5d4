"""Every way the job starts continues each customer's credit balance and ledger entry numbers
from the ledger: `run --fresh`, and the cluster entry point (jobs/metering_job.py) started
without a restore. An entry once written is never replaced, and new usage draws on what was left."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from decimal import Decimal

import pytest
import yaml

from tallyflow.settings import REPO_ROOT, Settings
from tallyflow.wire import topics

pytestmark = pytest.mark.integration

CATALOG = {
    "meters": [{"id": "api_calls", "event_type": "api_call", "aggregation": "count"}],
    "plans": [
        {
            "id": "prepaid",
            "version": 1,
            "effective_from": "2026-01-01T00:00:00Z",
            "currency": "USD",
            "credits": {"rates": {"api_calls": "1"}, "credit_price": "0.01", "on_exhausted": "overage"},
        }
    ],
    "subscriptions": [{"customer": "c1", "plan": "prepaid", "start": "2026-01-01T00:00:00Z"}],
    "grants": [{"customer": "c1", "grant_id": "g1", "credits": "1000", "effective_at": "2026-10-01T00:00:00Z"}],
}
ENTRIES = (
    "SELECT seq, kind, grant_id, toString(quantity) AS q, toString(credits) AS c, kafka_partition AS p, "
    "kafka_offset AS o FROM credit_ledger FINAL WHERE customer_id = 'c1' ORDER BY seq, p, o"
)


def calls(tallyflow, tmp_path, name: str, first: int, n: int) -> None:
    path = tmp_path / f"{name}.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "event_id": f"e{i}",
                    "customer_id": "c1",
                    "event_type": "api_call",
                    "event_time": f"2026-10-03T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
                }
            )
            + "\n"
            for i in range(first, first + n)
        )
    )
    tallyflow("produce", "--file", str(path))


def assert_continued(first_run: list[dict], after: list[dict]) -> None:
    # Every entry of the first run is still there, unchanged (same seq, content and Kafka record).
    assert [e for e in after if e["seq"] <= first_run[-1]["seq"]] == first_run
    # New entries are numbered after them, each number once.
    seqs = [e["seq"] for e in after]
    assert len(seqs) == len(set(seqs))
    # The new usage was drawn on what the first run left (400 credits), not on the full grant.
    drawn = sum(Decimal(e["c"]) for e in after if e["kind"] == "draw")
    uncovered = sum(Decimal(e["c"]) for e in after if e["kind"] == "uncovered")
    assert (drawn, uncovered) == (1000, 200)


@pytest.fixture
def first_run(tallyflow, tmp_path):
    cat = tmp_path / "catalog.yaml"
    cat.write_text(yaml.safe_dump(CATALOG))
    calls(tallyflow, tmp_path, "first", 0, 600)
    tallyflow("run", "--catalog", str(cat), "--bounded")
    entries = tallyflow.sql(ENTRIES)
    assert sum(Decimal(e["c"]) for e in entries if e["kind"] == "draw") == 600
    calls(tallyflow, tmp_path, "second", 600, 600)
    return cat, entries


def test_fresh_run_continues_the_ledger(tallyflow, first_run):
    cat, entries = first_run
    tallyflow("run", "--catalog", str(cat), "--bounded", "--fresh")
    assert_continued(entries, tallyflow.sql(ENTRIES))


def test_cluster_entry_point_without_restore_continues_the_ledger(tallyflow, first_run):
    cat, entries = first_run
    # The entry point `flink run -py jobs/metering_job.py` runs, here executed locally, without a restore.
    job = subprocess.run(
        [sys.executable, str(REPO_ROOT / "jobs" / "metering_job.py"), "--catalog", str(cat), "--bounded"],
        env=tallyflow.env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert job.returncode == 0, job.stderr[-3000:]
    # On a cluster the loader runs on its own (`tallyflow load`) until stopped.
    loader = subprocess.Popen(
        [sys.executable, "-m", "tallyflow.cli", "load"],
        env=tallyflow.env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    settings = replace(
        Settings.from_env(), topic_prefix=tallyflow.env["TALLYFLOW_TOPIC_PREFIX"], kafka_bootstrap=tallyflow.bootstrap
    )
    deadline = time.monotonic() + 120
    while topics.unlanded(settings, (topics.LEDGER,), f"{settings.topic_prefix}{topics.LOADER_GROUP}"):
        assert time.monotonic() < deadline, "the loader did not land the ledger"
        time.sleep(0.5)  # waiting on the loader's committed offsets (no future to wait on)
    loader.send_signal(signal.SIGTERM)
    assert loader.wait(60) == 0, loader.stderr.read()[-3000:] if loader.stderr else ""
    assert_continued(entries, tallyflow.sql(ENTRIES))
