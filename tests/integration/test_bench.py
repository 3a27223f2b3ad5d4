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
