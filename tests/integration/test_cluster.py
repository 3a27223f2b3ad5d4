"""The job on a real standalone Flink cluster (`tallyflow cluster up`: a JobManager and two
TaskManagers as their own processes, from PyFlink's distribution), submitted by `run --cluster`:
exact invoices, a TaskManager killed mid-run, a job cancelled and resubmitted."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tallyflow.settings import REPO_ROOT
from tests.integration.conftest import TALLYFLOW, _free_port_pair
from tests.integration.test_invoice_e2e import PERIOD, assert_invoices_exact, month

pytestmark = pytest.mark.integration


def rest(url: str, path: str) -> dict:
    with urllib.request.urlopen(url + path, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def flink(services) -> dict:
    env = {**services.env, "TALLYFLOW_FLINK_PORT": str(_free_port_pair()), "TALLYFLOW_FLINK_TASKMANAGERS": "2"}

    def cli(*args: str) -> dict:
        proc = subprocess.run(
            [*TALLYFLOW, "cluster", *args, "--format", "json"], env=env, capture_output=True, text=True, cwd=REPO_ROOT
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    try:
        up = cli("up")
        assert up["taskmanagers"] == 2 and up["slots_total"] == 2
        again = cli("up")  # twice is fine: nothing new starts
        assert again["started"] == [] and again["processes"] == up["processes"]
        yield {"env": env, "url": up["url"], "cli": cli, "home": Path(up["home"])}
    finally:
        down = cli("down")
        assert "jobmanager" in down["stopped"] and cli("status")["answers"] is False


def on_cluster(tallyflow, flink) -> None:
    """Every run of this test goes to the cluster (TALLYFLOW_FLINK_CLUSTER, as a deployment sets it)."""
    tallyflow.env.update({k: v for k, v in flink["env"].items() if k.startswith("TALLYFLOW_FLINK")})
    tallyflow.env["TALLYFLOW_FLINK_CLUSTER"] = flink["url"]


def jobs(url: str, name_prefix: str = "tallyflow-metering") -> list[dict]:
    return [j for j in rest(url, "/jobs/overview")["jobs"] if j["name"].startswith(name_prefix)]


def running_job(url: str, tallyflow, timeout: float = 120) -> str:
    name = f"tallyflow-metering {tallyflow.env['TALLYFLOW_TOPIC_PREFIX'].rstrip('.')}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for j in jobs(url, name):
            if j["state"] == "RUNNING" and j["name"] == name:
                return j["jid"]
        time.sleep(0.5)
    raise AssertionError("the job never ran on the cluster")


def wait_landed(tallyflow, at_least: int, timeout: float = 180) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = tallyflow.sql("SELECT count() AS n FROM events")
        if int(rows[0]["n"]) >= at_least:
            return int(rows[0]["n"])
        time.sleep(1)
    raise AssertionError(f"fewer than {at_least} events landed in {timeout} s")


def start_run(tallyflow, *args: str, command: str = "run") -> subprocess.Popen:
    """`tallyflow run ...` (or another command) in the background, as a deployment runs it."""
    return subprocess.Popen(
        [*TALLYFLOW, command, *args],
        env=tallyflow.env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_month_on_the_cluster_is_exact(tallyflow, flink, tmp_path):
    path, events, sent = month(tmp_path)
    tallyflow("produce", "--file", str(events))
    out = tallyflow.json("run", "--catalog", str(path), "--bounded", "--cluster", flink["url"])
    assert out["status"] == "FINISHED"
    assert_invoices_exact(tallyflow, sent)
    # The cluster's own config.yaml placed the job's snapshots (the job names no directory): the
    # run ended with a savepoint in the cluster's savepoint directory, remembered for the next run.
    name = f"tallyflow-metering {tallyflow.env['TALLYFLOW_TOPIC_PREFIX'].rstrip('.')}"
    (job,) = [j for j in jobs(flink["url"], name) if j["name"] == name]
    savepoint = rest(flink["url"], f"/jobs/{job['jid']}/checkpoints")["latest"]["savepoint"]["external_path"]
    assert savepoint.startswith((flink["home"] / "savepoints").as_uri().replace("file:///", "file:/"))
    remembered = tallyflow.env["TALLYFLOW_HOME"] + "/checkpoints/" + tallyflow.env["TALLYFLOW_TOPIC_PREFIX"][:-1]
    assert Path(savepoint.split(":", 1)[1]).name in (Path(remembered) / "cluster-snapshots").read_text()
    assert json.loads(tallyflow("reconcile", "--period", PERIOD, "--format", "json").stdout)["discrepancies"] == 0


def test_a_killed_taskmanager_loses_nothing_and_counts_nothing_twice(tallyflow, flink, tmp_path):
    on_cluster(tallyflow, flink)
    path, events, sent = month(tmp_path, n=30_000, seed=3)
    tallyflow("produce", "--file", str(events))
    run = start_run(tallyflow, "--catalog", str(path), "--bounded", "--format", "json")
    job = running_job(flink["url"], tallyflow)
    wait_landed(tallyflow, 1)  # output is landing: a checkpoint has committed some of it
    # The RocksDB options reach the cluster's state backend: its LOG (relocated to the log folder
    # while the job runs) shows the bloom filter, partitioned index/filters and universal
    # compaction in force (the style as its enum's name or number, 1).
    logs = [p.read_text(errors="replace") for p in (flink["home"] / "log").glob("*_LOG")]
    assert logs and all("filter_policy: bloomfilter" in t and "partition_filters: 1" in t for t in logs)
    assert all(re.search(r"Options\.compaction_style: (1|kCompactionStyleUniversal)\b", t) for t in logs)

    hosts = _taskmanagers(flink["url"], job)
    assert len(hosts) == 1, hosts  # parallelism 1: one slot on one of the two TaskManagers
    (victim,) = hosts
    pid = int((flink["home"] / "pids" / f"{victim}.pid").read_text())
    subprocess.run(["kill", "-9", str(pid)], check=True)
    stdout, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr[-3000:]
    assert json.loads(stdout)["status"] == "FINISHED"
    # Flink restarted the job from its last checkpoint on the TaskManager still there.
    assert rest(flink["url"], f"/jobs/{job}/exceptions").get("exceptionHistory", {}).get("entries")
    assert _taskmanagers(flink["url"], job, ended=True) - {victim}

    unique = {(e["customer_id"], e["event_id"]) for e in sent}
    assert int(tallyflow.sql("SELECT count() AS n FROM events FINAL")[0]["n"]) == len(unique)  # 0 lost
    assert int(tallyflow.sql("SELECT count() AS n FROM (SELECT DISTINCT * FROM events)")[0]["n"]) >= len(unique)
    assert_invoices_exact(tallyflow, sent)  # 0 counted twice in any window, rated record or line
    # Every window, adjustment, rated record and credit-ledger entry agrees with `events`. A
    # failover once lost on-time events replayed behind the windows' restored watermark: the
    # dedup step's floor lagged the barrier's watermark (ClassifyEventsTest covers the cause).
    rec = tallyflow("reconcile", "--period", PERIOD, "--format", "json", check=False)
    report = json.loads(rec.stdout)
    failed = [(c["check"], c.get("customer"), c.get("meter"), c.get("left"), c.get("right")) for c in report["failed"]]
    assert rec.returncode == 0 and failed == [], failed
    # `cluster up` brings the killed TaskManager back; the other is left alone.
    back = flink["cli"]("up")
    assert back["started"] == [victim] and back["taskmanagers"] == 2


def _taskmanagers(url: str, job: str, ended: bool = False) -> set[str]:
    found = set()
    for vertex in rest(url, f"/jobs/{job}")["vertices"]:
        for tm in rest(url, f"/jobs/{job}/vertices/{vertex['id']}/taskmanagers")["taskmanagers"]:
            if ended or tm["status"] in ("RUNNING", "DEPLOYING", "INITIALIZING"):
                found.add(tm["taskmanager-id"])
    return found


def test_a_cancelled_job_resubmitted_continues_its_state(tallyflow, flink, tmp_path):
    on_cluster(tallyflow, flink)
    path, events, sent = month(tmp_path, n=8000, seed=21)
    half = len(sent) // 2
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    lines = events.read_text().splitlines(keepends=True)
    first.write_text("".join(lines[:half]))
    # The second half resends some of the first: only the restored dedup state knows them.
    second.write_text("".join(lines[half:] + lines[: half // 10]))
    tallyflow("produce", "--file", str(first))
    run = start_run(tallyflow, "--catalog", str(path))  # unbounded
    job = running_job(flink["url"], tallyflow)
    wait_landed(tallyflow, 1)
    completed = rest(flink["url"], f"/jobs/{job}/checkpoints")["counts"]["completed"]
    deadline = time.monotonic() + 60
    while rest(flink["url"], f"/jobs/{job}/checkpoints")["counts"]["completed"] < completed + 2:
        assert time.monotonic() < deadline, "no checkpoint completed past the first output"
        time.sleep(0.5)  # two more checkpoints retained: the resubmission has one to continue
    req = urllib.request.Request(f"{flink['url']}/jobs/{job}?mode=cancel", method="PATCH")
    urllib.request.urlopen(req, timeout=10).close()  # cancelled from outside, as from the Flink UI
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stderr[-2000:]

    tallyflow("produce", "--file", str(second))
    out = tallyflow.json("run", "--catalog", str(path), "--bounded")
    assert out["resumed_from"] and "/flink/checkpoints/" in out["resumed_from"]  # the cluster's own
    assert_invoices_exact(tallyflow, sent)
    resent = int(tallyflow.sql("SELECT count() AS n FROM duplicates FINAL")[0]["n"])
    assert resent >= half // 10  # the resends of the first half were recognised after the restart


def test_sigterm_stops_the_job_with_a_savepoint_the_next_run_continues(tallyflow, flink, tmp_path):
    on_cluster(tallyflow, flink)
    path, events, sent = month(tmp_path, n=3000, seed=31)
    tallyflow("produce", "--file", str(events))
    run = start_run(tallyflow, "--catalog", str(path), "--format", "json")
    running_job(flink["url"], tallyflow)
    wait_landed(tallyflow, 1)
    run.send_signal(signal.SIGTERM)
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stderr[-2000:]
    assert json.loads(stdout)["status"] == "STOPPED"
    out = tallyflow.json("run", "--catalog", str(path), "--bounded")
    assert "savepoint-" in out["resumed_from"]
    assert_invoices_exact(tallyflow, sent)


def test_cluster_mistakes_get_one_line(tallyflow, flink, tmp_path):
    path, _, _ = month(tmp_path, n=10)
    started = time.monotonic()
    gone = tallyflow("run", "--catalog", str(path), "--bounded", "--cluster", "http://127.0.0.1:9", check=False)
    assert gone.returncode == 1 and len(gone.stderr.strip().splitlines()) == 1, gone.stderr
    assert "does not answer" in gone.stderr and time.monotonic() - started < 30
    started = time.monotonic()
    tallyflow.env["TALLYFLOW_PARALLELISM"] = "3"  # two TaskManagers of one slot each
    full = tallyflow("run", "--catalog", str(path), "--bounded", "--cluster", flink["url"], check=False)
    assert full.returncode == 1 and len(full.stderr.strip().splitlines()) == 1, full.stderr
    assert "free task slots" in full.stderr and "needs 3" in full.stderr and time.monotonic() - started < 30


def landed(tallyflow) -> tuple[int, str]:
    """Events in the store, read through `load`, and the read's error if it had one (0 while `load`
    is still opening the store: between opening it and offering reads, another process finds it
    neither free nor held)."""
    proc = tallyflow("sql", "SELECT count() AS n FROM events FINAL", "--format", "json", check=False)
    return (int(json.loads(proc.stdout)[0]["n"]), "") if proc.returncode == 0 else (0, proc.stderr.strip())


def test_a_detached_submit_is_idempotent_and_load_lands_its_output(tallyflow, flink, tmp_path):
    """What the compose file's `submit` and `loader` services run (tests/unit/test_deploy.py)."""
    on_cluster(tallyflow, flink)
    path, events, sent = month(tmp_path, n=2000, seed=51)
    tallyflow("produce", "--file", str(events))
    first = tallyflow.json("run", "--catalog", str(path), "--detach")
    assert first["status"] == "SUBMITTED" and first["job_id"]
    again = tallyflow.json("run", "--catalog", str(path), "--detach")  # a second `docker compose up`
    assert again == {**again, "status": "ALREADY_RUNNING", "job_id": first["job_id"]}
    assert [j["jid"] for j in jobs(flink["url"]) if j["state"] == "RUNNING"] == [first["job_id"]]
    load = start_run(tallyflow, "--catalog", str(path), command="load")
    try:
        unique = len({(e["customer_id"], e["event_id"]) for e in sent})
        deadline = time.monotonic() + 180
        while (got := landed(tallyflow))[0] < unique:
            if time.monotonic() > deadline or load.poll() is not None:
                load.send_signal(signal.SIGTERM)
                out, err = load.communicate(timeout=60)
                raise AssertionError(
                    f"the loader landed {got[0]} of {unique} events of the detached job (last read error: "
                    f"{got[1][-500:]!r}; load exited {load.returncode}: {err[-1500:]!r})"
                )
            time.sleep(1)
    finally:
        if load.poll() is None:
            load.send_signal(signal.SIGTERM)
            load.communicate(timeout=60)
        req = urllib.request.Request(f"{flink['url']}/jobs/{first['job_id']}?mode=cancel", method="PATCH")
        urllib.request.urlopen(req, timeout=10).close()
