"""Real services for integration tests, started once per session.

Kafka and ClickHouse come from, in order:
1. an external cluster named by TALLYFLOW_KAFKA_BOOTSTRAP (and TALLYFLOW_CLICKHOUSE_URL);
2. testcontainers (Kafka and ClickHouse server images) where a Docker engine answers;
3. the project's local stack: the Kafka broker from Maven jars (KRaft) and embedded chdb.
Each test gets its own topic prefix and (with chdb) its own ClickHouse store, so tests never
see each other's data. The CLI runs as a subprocess, exactly as a user runs it.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tallyflow.settings import REPO_ROOT

TALLYFLOW = [sys.executable, "-m", "tallyflow.cli"]
_counter = itertools.count(1)


def docker_answers() -> tuple[bool, str]:
    try:
        import docker  # comes with testcontainers (the [test] extra)
    except ImportError:
        return False, "testcontainers is not installed (pip install -e '.[test]')"
    try:
        docker.from_env(timeout=3).ping()
        return True, ""
    except Exception as e:  # no socket, permission, daemon down
        return False, f"no Docker engine answers ({type(e).__name__})"


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
        if port < 65000:
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                    return port
                except OSError:
                    continue
    raise RuntimeError("no free port pair")


@dataclass
class Services:
    """Environment for the CLI: where Kafka and ClickHouse are."""

    kind: str
    env: dict[str, str]
    chdb_root: Path | None = None
    cleanup: list = field(default_factory=list)


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    home = tmp_path_factory.mktemp("tallyflow-home")
    base = {k: v for k, v in os.environ.items() if not k.startswith("TALLYFLOW_")}
    base["TALLYFLOW_HOME"] = str(home)
    base["TALLYFLOW_CHECKPOINT_INTERVAL"] = "1s"
    # Test jobs are short: C2's compilations of the planner and of cold code cost them ~30 CPU
    # seconds a run and pay back only in long runs. C1 alone (PyFlink's and Flink's scripts read
    # JVM_ARGS) cut the suite's CPU by a third. Benchmarks and production keep both compilers.
    base.setdefault("JVM_ARGS", "-XX:TieredStopAtLevel=1")
    # Each test its own JVM, ended with its run (test_warm_gateway.py turns warm JVMs on).
    base["TALLYFLOW_WARM_JVM"] = "off"
    # Past months stay open (drafts) unless a test sets a settlement window itself.
    base["TALLYFLOW_SETTLEMENT_WINDOW"] = "36500d"
    if os.environ.get("TALLYFLOW_KAFKA_BOOTSTRAP"):
        env = {**base, "TALLYFLOW_KAFKA_BOOTSTRAP": os.environ["TALLYFLOW_KAFKA_BOOTSTRAP"]}
        if os.environ.get("TALLYFLOW_CLICKHOUSE_URL"):
            env["TALLYFLOW_CLICKHOUSE_URL"] = os.environ["TALLYFLOW_CLICKHOUSE_URL"]
        yield Services("external", env, None if "TALLYFLOW_CLICKHOUSE_URL" in env else home)
        return
    ok, _ = docker_answers()
    if ok:
        try:
            from testcontainers.community.clickhouse import ClickHouseContainer
            from testcontainers.community.kafka import KafkaContainer
        except ImportError:  # testcontainers before the community split
            from testcontainers.clickhouse import ClickHouseContainer
            from testcontainers.kafka import KafkaContainer

        kafka = KafkaContainer().with_kraft().start()
        ch = ClickHouseContainer().start()
        url = f"http://{ch.username}:{ch.password}@{ch.get_container_host_ip()}:{ch.get_exposed_port(8123)}"
        try:
            yield Services(
                "testcontainers",
                {**base, "TALLYFLOW_KAFKA_BOOTSTRAP": kafka.get_bootstrap_server(), "TALLYFLOW_CLICKHOUSE_URL": url},
            )
        finally:
            kafka.stop()
            ch.stop()
        return
    env = {**base, "TALLYFLOW_KAFKA_PORT": str(_free_port_pair())}
    up = subprocess.run([*TALLYFLOW, "stack", "up"], env=env, capture_output=True, text=True, cwd=REPO_ROOT)
    assert up.returncode == 0, up.stderr
    try:
        yield Services("local", env, home)
    finally:
        subprocess.run([*TALLYFLOW, "stack", "down"], env=env, capture_output=True, text=True, cwd=REPO_ROOT)


class Tallyflow:
    """Runs the real CLI against the session's services with this test's topics and store."""

    def __init__(self, services: Services, name: str):
        n = next(_counter)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # parallel workers may share a broker
        self.env = {**services.env, "TALLYFLOW_TOPIC_PREFIX": f"it{worker}{n}-{name}."}
        if services.chdb_root is not None:
            self.env["TALLYFLOW_CLICKHOUSE_URL"] = f"chdb://{services.chdb_root / f'ch-{n}'}"
        self.kind = services.kind

    def __call__(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 600,
        env_extra: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [*TALLYFLOW, *args],
            env={**self.env, **(env_extra or {})},
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            cwd=REPO_ROOT,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"tallyflow {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        return proc

    @property
    def bootstrap(self) -> str:
        return self.env.get("TALLYFLOW_KAFKA_BOOTSTRAP") or f"127.0.0.1:{self.env['TALLYFLOW_KAFKA_PORT']}"

    def topic(self, name: str) -> str:
        return self.env["TALLYFLOW_TOPIC_PREFIX"] + name

    def json(self, *args: str) -> object:
        return json.loads(self(*args, "--format", "json").stdout)

    def sql(self, query: str) -> list[dict]:
        return self.json("sql", query)  # type: ignore[return-value]


@pytest.fixture
def tallyflow(services: Services, request: pytest.FixtureRequest) -> Tallyflow:
    t = Tallyflow(services, re.sub(r"[^A-Za-z0-9-]+", "-", request.node.name)[:40])
    t("stack", "up")  # idempotent; creates this test's topics
    return t
