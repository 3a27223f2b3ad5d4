"""The short version of `make chaos`: a job kill, a loader crash between insert and commit and 15 s
of refused ClickHouse inserts; then every event is counted exactly once against the generator's
manifest, and reconcile passes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tallyflow.settings import REPO_ROOT

pytestmark = pytest.mark.integration


def test_kill_and_loader_crash_lose_nothing_and_count_nothing_twice(tallyflow):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tallyflow.tools.chaos",
            "--events",
            "40000",
            "--kills",
            "1",
            "--seed",
            "7",
            "--no-broker-restart",
            "--kill-window",
            "1,3",
        ],
        env=tallyflow.env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    r = json.loads(proc.stdout)
    assert r["unique"] == 40000 and r["sent"] > r["unique"]  # resends in the input
    assert (r["events_stored"], r["events_lost"]) == (40000, 0)
    assert (r["metered_events_lost"], r["metered_events_duplicated"]) == (0, 0)
    assert (r["reconcile_exit"], r["reconcile_discrepancies"]) == (0, 0)
    # Each injected fault really fired (each run gets a chunk of the input to read and land): the
    # kill landed on a running job, the loader died between an insert and its commit, the inserts
    # were refused for 15 s.
    assert r["faults_fired"] == r["faults_planned"] == 3, r["faults"]
    fired = {f["fault"]: f["exit"] for f in r["faults"] if f["fired"]}
    assert fired == {"kill": -9, "loader": 137, "clickhouse": 0}, r["faults"]
