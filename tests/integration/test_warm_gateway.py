"""The warm JVM (jobs/tallyflow/stream/warm_gateway.py): a run leaves its JVM to the next one,
which counts exactly as a cold one does; a run that is killed takes the JVM, and its job, along."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tallyflow.settings import Settings
from tallyflow.stream import warm_gateway
from tests.integration.conftest import REPO_ROOT, TALLYFLOW
from tests.integration.test_pipeline import catalog_file, october_events, write_jsonl  # noqa: F401

pytestmark = pytest.mark.integration
WARM = {"TALLYFLOW_WARM_JVM": "on", "TALLYFLOW_WARM_JVM_IDLE": "3min"}


def _folders(t) -> list[Path]:
    """This test's warm JVM folders: their keys hold the digest of the test's topic prefix."""
    from tallyflow.stream.warm_gateway import key_line

    line = key_line("TALLYFLOW_TOPIC_PREFIX", t.env["TALLYFLOW_TOPIC_PREFIX"])
    root = Path(t.env["TALLYFLOW_HOME"]) / "warm-gateway"
    return [k.parent for k in root.glob("*/key.txt") if line in k.read_text().splitlines()]


def _folder(t) -> Path:
    (folder,) = _folders(t)
    return folder


def _pid(t) -> int:
    return json.loads((_folder(t) / "gateway.json").read_text())["pid"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0] != "Z"  # a zombie has ended


def _within(seconds: float, done) -> bool:
    """Whether done() holds within the time: the JVM notices a client's end on its next ping."""
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        time.sleep(0.1)
    return bool(done())


def _answers(port: int, token: str | None) -> bool:
    """Whether a py4j client with this auth token (or none) can call into the JVM on `port`."""
    from py4j.java_gateway import GatewayParameters, JavaGateway

    gateway = JavaGateway(gateway_parameters=GatewayParameters(port=port, auth_token=token, read_timeout=10))
    try:
        return gateway.jvm.java.lang.System.getProperty("java.version") is not None
    except Exception:  # py4j refuses an unauthenticated command: Py4JError / Py4JNetworkError
        return False
    finally:
        gateway.close(keep_callback_server=False)


def _run(t, catalog) -> dict:
    out = t("run", "--catalog", str(catalog), "--bounded", "--format", "json", env_extra=WARM)
    return json.loads(out.stdout)


@pytest.fixture
def warm(tallyflow):
    yield tallyflow
    for folder in _folders(tallyflow):
        if (folder / "gateway.json").is_file():
            pid = json.loads((folder / "gateway.json").read_text())["pid"]
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_the_next_run_continues_on_the_jvm_the_last_one_left_and_counts_exactly(warm, tmp_path, catalog_file):  # noqa: F811
    events = october_events()
    first, rest = tmp_path / "first.jsonl", tmp_path / "rest.jsonl"
    write_jsonl(first, events[:12])
    write_jsonl(rest, events[12:])
    warm("produce", "--file", str(first))
    one = _run(warm, catalog_file)
    pid = _pid(warm)
    assert (one["status"], one["jvm"]) == ("FINISHED", "started")
    assert _alive(pid)  # outlived its client

    warm("produce", "--file", str(rest))  # the rest, and duplicates of the first part
    two = _run(warm, catalog_file)
    assert (two["status"], two["jvm"]) == ("FINISHED", "reused")
    assert _pid(warm) == pid and _alive(pid)
    log = _folder(warm) / "gateway.log"
    assert "client 1 released the JVM" in log.read_text()
    assert _within(10, lambda: "client 2 released the JVM" in log.read_text())

    # Only this user may find and call the JVM: its files are 0600, and py4j wants the token.
    for name in ("gateway.json", warm_gateway.TOKEN_FILE):
        assert stat.S_IMODE((_folder(warm) / name).stat().st_mode) == 0o600
    port = json.loads((_folder(warm) / "gateway.json").read_text())["port"]
    token = (_folder(warm) / warm_gateway.TOKEN_FILE).read_text().strip()
    assert _answers(port, token) and not _answers(port, None)

    # What the cold pipeline test gets from the same events in one run.
    counts = warm.sql("SELECT count() AS n, uniqExact(customer_id, event_id) AS u FROM events FINAL")[0]
    assert counts == {"n": 19, "u": 19}
    invoices = {i["customer"]: i for i in warm.json("invoice", "--period", "2026-10")}
    assert (invoices["c1"]["total"], invoices["c2"]["total"]) == ("13.45", "105")


def test_a_killed_run_ends_its_warm_jvm_and_the_next_run_starts_another(warm, tmp_path, catalog_file):  # noqa: F811
    events = tmp_path / "events.jsonl"
    write_jsonl(events, october_events())
    assert _run(warm, catalog_file)["jvm"] == "started"  # empty topics: leaves a warm JVM
    pid = _pid(warm)
    warm("produce", "--file", str(events))
    log = _folder(warm) / "gateway.log"
    run = subprocess.Popen(
        [*TALLYFLOW, "run", "--catalog", str(catalog_file), "--bounded"],
        env={**warm.env, **WARM},
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert _within(60, lambda: "client 2 connected" in log.read_text())
    time.sleep(2.0)  # planning or running its job
    run.kill()
    run.wait()
    assert _within(30, lambda: not _alive(pid)), "the warm JVM outlived a client that was killed"
    assert "client 2 left without releasing the JVM" in log.read_text()

    again = _run(warm, catalog_file)
    assert (again["status"], again["jvm"]) == ("FINISHED", "started")
    assert _pid(warm) != pid
    counts = warm.sql("SELECT count() AS n, uniqExact(customer_id, event_id) AS u FROM events FINAL")[0]
    assert counts == {"n": 19, "u": 19}


def test_a_warm_jvm_in_use_leaves_the_next_run_a_cold_one(warm, catalog_file):  # noqa: F811
    """One client at a time: while the lock is held (a run on it), another run gets its own JVM."""
    assert _run(warm, catalog_file)["jvm"] == "started"
    with (_folder(warm) / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert _run(warm, catalog_file)["jvm"] == "cold"
    assert _run(warm, catalog_file)["jvm"] == "reused"


def test_stack_down_ends_the_warm_jvms_no_run_holds(warm, catalog_file, monkeypatch):  # noqa: F811
    from tallyflow.settings import Settings
    from tallyflow.stream import warm_gateway

    assert _run(warm, catalog_file)["jvm"] == "started"
    pid = _pid(warm)
    for key, value in warm.env.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env()
    with (_folder(warm) / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a run holds it
        warm_gateway.stop_idle(settings)
        assert _alive(pid)
    assert warm_gateway.stop_idle(settings) >= 1  # what `tallyflow stack down` calls
    assert _within(30, lambda: not _alive(pid))


def test_a_process_that_already_has_a_jvm_starts_no_warm_one(monkeypatch, tmp_path):
    """PyFlink keeps the first gateway a process opens (the bench's baseline runs on one), so a
    warm JVM started after it would never get a client: none is started."""
    from pyflink import java_gateway

    monkeypatch.setenv("TALLYFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("TALLYFLOW_WARM_JVM", "on")
    settings = Settings.from_env()
    assert warm_gateway.jar(settings).is_file(), "make setup builds the warm gateway's jar"
    monkeypatch.setattr(java_gateway, "_gateway", object())
    assert warm_gateway.connect(settings) is None
    assert not (tmp_path / "warm-gateway").exists()
