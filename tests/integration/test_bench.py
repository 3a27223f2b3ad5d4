"""A short `tallyflow bench` throughput run, so the benchmark cannot rot (the figures come from
`make bench`): every event published lands, and both jobs report a rate."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_throughput_bench_smoke(tallyflow):
    r = tallyflow.json("bench", "--events", "2000", "--customers", "5")
    assert r["events"] == 2000
    assert r["pipeline"]["rows_landed"]["events"] == 2000
    assert r["publish"]["events_per_second"] > 0 and r["baseline"]["events_per_second"] > 0
    assert r["pipeline"]["events_per_second"] > 0 and r["ratio"] > 0
    # The bench explains itself: its phases in order, CPU per component, a timeline to the end.
    order = ["submitted", "running", "first_event_read", "inputs_committed", "savepoint", "job_ended", "loader_drained"]
    assert [p for p in r["phases"] if p in order] == order, r["phases"]
    assert r["cpu_seconds"]["source and decode"] > 0 and r["cpu_seconds"]["broker"] > 0
    assert r["cpu_seconds"]["loader"] > 0 and sum(r["cpu_us_per_event"].values()) > 0
    assert r["timeline"] and max(row["landed"] for row in r["timeline"]) <= 2000
    # The closing savepoint's size on disk, and per event (the dedup state's cost).
    assert r["state"]["savepoint_bytes"] > 0 and r["state"]["bytes_per_event"] == round(
        r["state"]["savepoint_bytes"] / 2000, 1
    )


def test_publish_bench_smoke(tallyflow):
    r = tallyflow.json("bench", "--publish", "--events", "3000", "--customers", "5")
    assert r["events"] == 3000 and r["bytes"] > 3000 * 40
    assert r["produce_file"]["events_per_second"] > 0 and r["raw_librdkafka"]["records_per_second"] > 0
    assert r["send_batch"]["events_per_second"] > 0
    assert r["ratio"] > 0 and r["send_batch_ratio"] > 0
    for name, rate in (
        ("produce_file", "events_per_second"),
        ("send_batch", "events_per_second"),
        ("raw_librdkafka", "records_per_second"),
    ):
        runs = r[name]["runs"]
        assert len(runs) == r["rounds"] == 3 and r[name][rate] == sorted(runs)[1]  # the median


def test_invoice_bench_smoke(tallyflow):
    r = tallyflow.json("bench", "--invoices", "--events", "20000", "--customers", "40")
    assert r["events"] == 20000 and r["invoices"] == 40
    assert r["lines"] > r["invoices"]  # a base fee and usage lines per customer
    assert r["baseline_seconds"] > 0 and r["invoice_seconds"] > 0 and r["ratio_to_baseline"] > 0
    assert r["peak_rss_bytes"] > 0
    assert len(r["invoice_runs"]) == len(r["baseline_runs"]) == r["rounds"] == 2
    assert r["invoice_seconds"] == min(r["invoice_runs"]) and r["merges_settled_seconds"] >= 0


def test_throughput_bench_on_a_restored_state(tallyflow):
    """--restored-keys: a first run leaves K dedup keys, and the measured run continues from them:
    its figures count only its own events (the baseline reads past the prefill), and the closing
    state holds both runs' keys."""
    r = tallyflow.json("bench", "--events", "2000", "--customers", "5", "--restored-keys", "3000")
    assert r["restored_keys"] == 3000 and r["prefill"]["events"] == 3000 and r["prefill"]["seconds"] > 0
    assert r["pipeline"]["rows_landed"]["events"] == 2000
    assert r["pipeline"]["resumed_from"] and "savepoint" in r["pipeline"]["resumed_from"]
    assert r["state"]["keys"] == 5000
    assert r["state"]["bytes_per_event"] == round(r["state"]["savepoint_bytes"] / 5000, 1)
    assert max(row["committed"] or 0 for row in r["timeline"]) <= 2000


def test_invoice_bench_with_mixed_contracts_smoke(tallyflow):
    r = tallyflow.json("bench", "--invoices", "--contracts", "mixed", "--events", "20000", "--customers", "40")
    assert (r["contracts"], r["invoices"]) == ("mixed", 40)  # an anchored customer's period starts in the month too
    # Every fifth customer has a coupon, every third a tax (those on the JPY plan keep theirs too).
    assert r["discount_lines"] == 8 and r["tax_lines"] == 14
    assert r["json_bytes"] > 0 and r["invoices_per_second"] > 0
    # The same invoices as the commands a user runs, each timed whole.
    command = r["command"]
    assert command["invoice_seconds"] > 0 and command["baseline_seconds"] > 0 and command["json_bytes"] > 0
    assert len(command["invoice_runs"]) == len(command["baseline_runs"]) == r["rounds"]
