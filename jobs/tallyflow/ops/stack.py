"""The local stack: a real single-node Apache Kafka broker in KRaft mode, from the Maven jars.

`up` is idempotent, `down` stops only the process recorded in the pid file (and only if it is
still our broker), `status` says what runs where. With TALLYFLOW_KAFKA_BOOTSTRAP set, the stack
uses that cluster and starts nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from tallyflow import private_files
from tallyflow.errors import UserError
from tallyflow.ops.broker_security import BrokerSecurity
from tallyflow.settings import REPO_ROOT, Settings
from tallyflow.stream import warm_gateway
from tallyflow.wire import topics

LOG4J = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
"""


@dataclass(frozen=True)
class BrokerPaths:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def config(self) -> Path:
        return self.root / "server.properties"

    @property
    def log4j(self) -> Path:
        return self.root / "log4j2.yaml"

    @property
    def pid(self) -> Path:
        return self.root / "broker.pid"

    @property
    def log(self) -> Path:
        return self.root / "broker.log"

    @property
    def security(self) -> Path:
        return self.root / "security"  # plaintext or sasl_ssl, as the storage was formatted


def _paths(settings: Settings) -> BrokerPaths:
    return BrokerPaths(settings.home / "kafka")


def _classpath(settings: Settings) -> str:
    jars = settings.jars_dir / "kafka"
    if not any(jars.glob("kafka_2.13-*.jar")):
        raise UserError(f"Kafka broker jars missing in {jars}: run `make setup` first")
    return str(jars / "*")


def _server_properties(settings: Settings, paths: BrokerPaths, security: BrokerSecurity | None) -> str:
    port = settings.kafka_port
    listeners = (
        security.server_properties(port)
        if security is not None
        else [
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
        ]
    )
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{port + 1}",
            *listeners,
            "controller.listener.names=CONTROLLER",
            f"log.dirs={paths.data}",
            f"num.partitions={settings.partitions}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=4",
            "group.initial.rebalance.delay.ms=0",
            # Flink's exactly-once sink keeps transactions open across a checkpoint interval.
            "transaction.max.timeout.ms=3600000",
            "log.retention.hours=-1",
            "auto.create.topics.enable=false",
            "",
        ]
    )


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    return str(Path(java_home) / "bin" / "java") if java_home else "java"


def broker_pid(settings: Settings) -> int | None:
    """The local broker's pid, when `stack up` started one that still runs."""
    return _recorded_pid(_paths(settings))


def _recorded_pid(paths: BrokerPaths) -> int | None:
    try:
        pid = int(paths.pid.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except FileNotFoundError:
        return None
    # A recycled pid belongs to someone else: only a java process running our config is ours.
    return pid if "kafka.Kafka" in cmdline and str(paths.config) in cmdline else None


def _store(settings: Settings) -> str:
    """Creates or upgrades the ClickHouse tables (unless a running process holds the embedded store:
    it did that itself), so read commands find them from the start."""
    from tallyflow.land import clickhouse, shared_store

    if shared_store.connect(settings) is None:
        clickhouse.ready(settings)
    return clickhouse.redacted(settings.clickhouse_url)


def _security_mode(paths: BrokerPaths, requested: str | None, running: bool) -> str:
    """The listener the broker has (plaintext or sasl_ssl): a formatted store keeps its own."""
    recorded = paths.security.read_text().strip() if paths.security.exists() else None
    formatted = (paths.data / "meta.properties").exists()
    if requested and recorded and requested != recorded and (running or formatted):
        raise UserError(
            f"the local broker in {paths.root} was set up with --security {recorded}; "
            f"`tallyflow stack down` and remove {paths.root} to change it, or use another TALLYFLOW_HOME"
        )
    return requested or recorded or "plaintext"


def up(settings: Settings, wait_seconds: float = 60.0, security: str | None = None) -> dict:
    if security and not settings.uses_local_stack:
        raise UserError(
            "--security sets up the local broker; with TALLYFLOW_KAFKA_BOOTSTRAP use TALLYFLOW_KAFKA_PROPERTIES"
        )
    if not settings.uses_local_stack:
        created = topics.ensure_topics(settings)
        return {
            "kafka": settings.bootstrap,
            "started": False,
            "external": True,
            "topics_created": created,
            "clickhouse": _store(settings),
        }
    paths = _paths(settings)
    pid = _recorded_pid(paths)
    mode = _security_mode(paths, security, pid is not None)
    secured = BrokerSecurity(paths.root) if mode == "sasl_ssl" else None
    if secured is not None:
        secured.ensure()
        if os.environ.get("TALLYFLOW_KAFKA_PROPERTIES") is None:
            settings = replace(settings, kafka_properties=secured.client_properties)
    started = False
    if pid is None:
        if topics.broker_answers(settings, timeout=1.0):
            raise UserError(
                f"port {settings.kafka_port} already has a Kafka broker this stack did not start; "
                "set TALLYFLOW_KAFKA_BOOTSTRAP to use it or TALLYFLOW_KAFKA_PORT to pick another port"
            )
        pid = _start(settings, paths, secured)
        paths.root.mkdir(parents=True, exist_ok=True)
        paths.security.write_text(mode)
        started = True
    deadline = time.monotonic() + wait_seconds
    while not topics.broker_answers(settings, timeout=2.0):
        if _recorded_pid(paths) is None:
            raise UserError(f"the Kafka broker exited during start-up; see {paths.log}")
        if time.monotonic() > deadline:
            raise UserError(f"the Kafka broker did not answer within {wait_seconds:.0f} s; see {paths.log}")
        time.sleep(0.5)
    created = topics.ensure_topics(settings)
    return {
        "kafka": settings.bootstrap,
        "pid": pid,
        "started": started,
        "external": False,
        "security": mode,
        **({"client_properties": str(secured.client_properties)} if secured is not None else {}),
        "topics_created": created,
        "clickhouse": _store(settings),
    }


def _start(settings: Settings, paths: BrokerPaths, security: BrokerSecurity | None) -> int:
    cp = _classpath(settings)
    paths.root.mkdir(parents=True, exist_ok=True)
    private_files.write(paths.config, _server_properties(settings, paths, security))  # it may hold passwords
    paths.log4j.write_text(LOG4J)
    java = [_java(), f"-Dlog4j2.configurationFile={paths.log4j}", "-cp", cp]
    if not (paths.data / "meta.properties").exists():
        args = ["kafka.tools.StorageTool", "format", "-t", uuid.uuid4().hex[:22], "-c", str(paths.config)]
        # The SCRAM users' passwords go through a java @argfile (0600), never the command line.
        argfile = paths.root / "format.args"
        private_files.write(
            argfile, "\n".join(f'"{a}"' for a in [*args, *(security.format_arguments() if security else [])])
        )
        try:
            fmt = subprocess.run([*java, f"@{argfile}"], capture_output=True, text=True)
        finally:
            argfile.unlink(missing_ok=True)
        if fmt.returncode != 0:
            raise UserError(f"formatting Kafka storage failed: {fmt.stderr.strip().splitlines()[-1:]}")
    with open(paths.log, "ab") as log:
        proc = subprocess.Popen(
            [*java, "-Xms256m", "-Xmx1g", "kafka.Kafka", str(paths.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives the CLI; `stack down` stops it
            cwd=REPO_ROOT,
        )
    paths.pid.write_text(str(proc.pid))
    return proc.pid


def down(settings: Settings, wait_seconds: float = 30.0) -> dict:
    """Stop the local broker, and the warm JVMs of this home that no run holds."""
    jvms = {"warm_jvms_stopped": warm_gateway.stop_idle(settings)}
    return {**_broker_down(settings, wait_seconds), **jvms}


def _broker_down(settings: Settings, wait_seconds: float) -> dict:
    if not settings.uses_local_stack:
        return {"kafka": settings.bootstrap, "stopped": False, "external": True}
    paths = _paths(settings)
    pid = _recorded_pid(paths)
    if pid is None:
        paths.pid.unlink(missing_ok=True)
        return {"kafka": settings.bootstrap, "stopped": False, "external": False}
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_seconds
    while _recorded_pid(paths) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    if _recorded_pid(paths) is not None:
        os.kill(pid, signal.SIGKILL)
    paths.pid.unlink(missing_ok=True)
    return {"kafka": settings.bootstrap, "stopped": True, "pid": pid, "external": False}


def status(settings: Settings) -> dict:
    from tallyflow.land import clickhouse

    pid = None if not settings.uses_local_stack else _recorded_pid(_paths(settings))
    return {
        "kafka": {
            "bootstrap": settings.bootstrap,
            "external": not settings.uses_local_stack,
            "pid": pid,
            "answers": topics.broker_answers(settings, timeout=2.0),
        },
        "clickhouse": {"url": clickhouse.redacted(settings.clickhouse_url), **clickhouse.probe(settings)},
        "home": str(settings.home),
    }
