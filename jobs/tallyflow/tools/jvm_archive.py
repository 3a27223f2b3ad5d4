"""`python -m tallyflow.tools.jvm_archive` (part of `make setup`): build the gateway JVM's
class-data-sharing archive (stream/class_sharing) from one real run of the job.

On a throwaway broker and store: 2,000 demo events published, one bounded run whose JVM dumps
every class it loaded when it exits (`-XX:ArchiveClassesAtExit`), then the broker stops. The dump
happens after the run's process returns, so this waits for that JVM, then moves the archive into
place: a run never maps a half-written one. Nothing is built when a matching archive exists."""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tallyflow.errors import UserError
from tallyflow.settings import REPO_ROOT, Settings
from tallyflow.stream import gateway

CLI = [sys.executable, "-m", "tallyflow.cli"]


def _free_port_pair() -> int:
    """A port whose next one is free too (the broker's controller listens there)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise UserError("no two adjacent free ports for the archive's throwaway broker")


def _jvms_writing(path: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(path).encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue  # a process that ended meanwhile
    return pids


def _wait_for_exit(pid: int, timeout: float) -> None:
    """Block until process `pid` (not our child: the run's process has returned) has exited: its
    pidfd becomes readable then (Linux 5.3+)."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return  # already gone
    try:
        select.select([fd], [], [], max(timeout, 0.0))
    finally:
        os.close(fd)


def build(settings: Settings, wait_s: float = 300.0) -> dict:
    archive = gateway.gateway_archive(settings)
    if archive.is_file():
        return {"archive": str(archive), "built": False}
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(f".{os.getpid()}.partial")
    home = Path(tempfile.mkdtemp(prefix="tallyflow-cds-"))
    env = {
        **os.environ,
        "TALLYFLOW_HOME": str(home),
        "TALLYFLOW_KAFKA_PORT": str(_free_port_pair()),
        "TALLYFLOW_TOPIC_PREFIX": "cds.",
    }
    env.pop("TALLYFLOW_KAFKA_BOOTSTRAP", None)
    env.pop("TALLYFLOW_CLICKHOUSE_URL", None)
    env.pop("TALLYFLOW_FLINK_CLUSTER", None)
    # A JVM of its own (no warm one): it writes the archive as it exits.
    run_env = {
        **env,
        "JVM_ARGS": f"{env.get('JVM_ARGS', '')} -XX:ArchiveClassesAtExit={partial}".strip(),
        "TALLYFLOW_WARM_JVM": "off",
    }
    started = time.monotonic()

    def step(*args: str, step_env: dict = env) -> None:
        proc = subprocess.run([*CLI, *args], env=step_env, cwd=REPO_ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise UserError(f"the archive's run failed at `tallyflow {' '.join(args)}`: {last[0]}")

    try:
        step("stack", "up")
        try:
            step("produce", "--generate", "2000", "--customers", "5", "--period", "2026-10")
            step("run", "--catalog", str(REPO_ROOT / "deploy" / "demo" / "catalog.yaml"), "--bounded", step_env=run_env)
        finally:
            step("stack", "down")
        deadline = time.monotonic() + wait_s
        for pid in _jvms_writing(partial):  # it writes the archive as it exits, after the run returned
            _wait_for_exit(pid, deadline - time.monotonic())
        if _jvms_writing(partial) or not partial.is_file():
            raise UserError(f"the JVM did not write its class archive {partial.name} within {wait_s:g} s")
        partial.replace(archive)
        for stale in archive.parent.glob("gateway-*.jsa"):  # 150 MB each, for jars no longer there
            if stale != archive:
                stale.unlink(missing_ok=True)
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(home, ignore_errors=True)
    return {"archive": str(archive), "built": True, "seconds": round(time.monotonic() - started, 1)}


def main() -> int:
    try:
        result = build(Settings.from_env())
    except UserError as e:
        print(f"tallyflow: no JVM class archive ({e}); runs work without one, 2-3 s slower", file=sys.stderr)
        return 1
    verb = f"built in {result['seconds']} s" if result["built"] else "up to date"
    print(f"JVM class archive {verb}: {result['archive']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
