"""CLI mistakes and unreachable services: one clear line on stderr and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tallyflow.settings import REPO_ROOT
from tests.integration.conftest import TALLYFLOW

pytestmark = pytest.mark.integration


def one_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_malformed_catalog(tallyflow, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("meters: [\n")
    proc = tallyflow("run", "--catalog", str(bad), "--bounded", check=False)
    assert proc.returncode == 1
    assert "not valid YAML" in one_line(proc)


def test_invalid_catalog_names_plan_charge_and_rule(tallyflow, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("""
meters: [{id: calls, event_type: api_call, aggregation: count}]
plans:
  - id: growth
    version: 2
    effective_from: "2026-01-01T00:00:00Z"
    currency: USD
    charges:
      - meter: calls
        model: graduated
        tiers:
          - {up_to: "20000", unit_price: "0.02"}
          - {up_to: "5000", unit_price: "0.01"}
          - {up_to: null, unit_price: "0"}
""")
    proc = tallyflow("run", "--catalog", str(bad), "--bounded", check=False)
    assert proc.returncode == 1
    first = proc.stderr.strip().splitlines()[0]
    assert "plan growth v2, charge calls: tier bounds must strictly increase (5000 after 20000)" in first


def test_missing_broker(tallyflow, tmp_path):
    events = tmp_path / "e.jsonl"
    events.write_text("")
    tallyflow.env["TALLYFLOW_KAFKA_BOOTSTRAP"] = "127.0.0.1:1"
    proc = tallyflow("produce", "--file", str(events), check=False)
    assert proc.returncode == 1
    assert "does not answer" in one_line(proc)


def test_clickhouse_that_does_not_answer(tallyflow):
    tallyflow.env["TALLYFLOW_CLICKHOUSE_URL"] = "http://127.0.0.1:1"
    proc = tallyflow("invoice", "--period", "2026-10", check=False)
    assert proc.returncode == 1
    assert "ClickHouse at http://127.0.0.1:1 does not answer" in one_line(proc)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["invoice"], "--period"),
        (["invoice", "--period", "2026-13"], "is not a period name"),
        (["produce", "--generate", "10", "--duplicate-rate", "2"], "between 0 and 1"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_usage_mistakes(tallyflow, args, message):
    proc = tallyflow(*args, check=False)
    assert proc.returncode in (1, 2)
    assert message in one_line(proc)


def test_produce_reports_invalid_lines_and_sends_the_rest(tallyflow, tmp_path):
    events = tmp_path / "e.jsonl"
    events.write_text(
        '{"event_id": "a", "customer_id": "c", "event_type": "t", "event_time": "2026-10-01T00:00:00Z"}\n'
        '{"event_id": "b", "customer_id": "c", "event_type": "t", "event_time": "2026-10-01T00:00:00Z",'
        ' "values": {"q": "-3"}}\n'
        "not json\n"
    )
    proc = tallyflow("produce", "--file", str(events), "--format", "json", check=False)
    assert proc.returncode == 1
    assert json.loads(proc.stdout) == {"sent": 1, "rejected": 2, "failed": 0}
    assert proc.stderr.splitlines() == [
        "line 2: value q is negative (-3)",
        "line 3: not JSON: Expecting value at column 1",
    ]


HOLD_THE_STORE = """
import sys
import clickhouse_connect
client = clickhouse_connect.get_client(dsn=sys.argv[1])
client.query("SELECT 1")
print("open", flush=True)
sys.stdin.read()  # holds the store until the test closes our stdin
"""


def test_a_writer_waits_for_a_read_that_has_the_store_open(tallyflow):
    # A read command opens the embedded store for a moment when no process holds it; `run` or
    # `load` starting just then waited for nothing and failed ("Unable to open the chdb engine").
    url = tallyflow.env["TALLYFLOW_CLICKHOUSE_URL"]
    if not url.startswith("chdb://"):
        pytest.skip("only an embedded store is opened by one process at a time")
    reader = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_STORE, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    apply = None
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "open"
        apply = subprocess.Popen(
            [*TALLYFLOW, "catalog", "apply", str(REPO_ROOT / "deploy" / "demo" / "catalog.yaml")],
            env=tallyflow.env,
            cwd=REPO_ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        # While the other process has the store, `catalog apply` waits instead of failing.
        with pytest.raises(subprocess.TimeoutExpired):
            apply.wait(timeout=3)
        assert reader.stdin is not None
        reader.stdin.close()  # the read is over
        reader.wait(timeout=30)
        _, err = apply.communicate(timeout=60)
        assert apply.returncode == 0, err
    finally:
        for proc in (reader, apply):
            if proc is not None and proc.poll() is None:
                proc.kill()
