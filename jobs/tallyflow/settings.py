"""Typed settings: one object, read from environment variables (TALLYFLOW_*).

Every variable, its default and its meaning are listed in docs/operations.md's Settings table;
tests/unit/test_settings_doc.py holds that table to the variables and defaults this module reads,
so the two cannot drift apart.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from tallyflow import faults
from tallyflow.errors import UserError
from tallyflow.faults import Fault

REPO_ROOT = Path(__file__).resolve().parents[2]
_DURATION = re.compile(r"^([0-9]{1,12})\s*(ms|s|min|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "min": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, name: str) -> timedelta:
    m = _DURATION.match(text.strip())
    if not m:
        raise UserError(f"{name}: '{text}' is not a duration like 500ms, 30s, 5min, 1h, 2d")
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


def flink_interval(d: timedelta) -> str:
    """A Flink SQL INTERVAL literal for a duration, millisecond precision, up to 999 days."""
    ms = int(d / timedelta(milliseconds=1))
    days, rest = divmod(ms, 86_400_000)
    h, rest = divmod(rest, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"INTERVAL '{days} {h:02d}:{m:02d}:{s:02d}.{ms:03d}' DAY(3) TO SECOND(3)"


def default_jars_dir() -> Path:
    """Where `make setup` puts the Maven jars (and, beside them, the JVM's class archive)."""
    return Path(_env("TALLYFLOW_JARS_DIR", str(REPO_ROOT / "build" / "jars")))


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default).strip() or default


def _bool(name: str, default: bool) -> bool:
    v = os.environ.get(name)
    if v is None or not v.strip():
        return default
    if v.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if v.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise UserError(f"{name}: '{v}' is not a boolean (true/false)")


def _int(name: str, default: int) -> int:
    v = _env(name, str(default))
    if not re.fullmatch(r"-?[0-9]{1,18}", v.strip()):  # ASCII digits only, as every number a user writes
        raise UserError(f"{name}: '{v[:40]}' is not an integer")
    return int(v)


def _pairs(name: str) -> tuple[tuple[str, str], ...]:
    out = []
    for item in os.environ.get(name, "").split(";"):
        if item.strip():
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise UserError(f"{name}: '{item}' is not key=value")
            out.append((key.strip(), value.strip()))
    return tuple(out)


def _secret(name: str) -> str | None:
    """NAME, or the first line of the file NAME_FILE names (for secrets mounted as files)."""
    if os.environ.get(name):
        return os.environ[name].strip()
    path = os.environ.get(f"{name}_FILE")
    if not path:
        return None
    try:
        return Path(path).read_text().strip() or None
    except OSError as e:
        raise UserError(f"{name}_FILE: cannot read {path}: {e.strerror}") from None


def _existing_file(name: str) -> Path | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    path = Path(raw).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"{name}: {path} does not exist")
    return path


def _optional_duration(name: str) -> timedelta | None:
    raw = os.environ.get(name, "").strip()
    return parse_duration(raw, name) if raw else None


def _kafka_properties(home: Path) -> Path | None:
    """TALLYFLOW_KAFKA_PROPERTIES, else the file `stack up --security` wrote for the local broker."""
    named = os.environ.get("TALLYFLOW_KAFKA_PROPERTIES", "").strip()
    if named:
        return Path(named).expanduser().resolve()
    written = home / "kafka" / "client.properties"
    return written if not os.environ.get("TALLYFLOW_KAFKA_BOOTSTRAP") and written.is_file() else None


@dataclass(frozen=True)
class Settings:
    home: Path
    kafka_bootstrap: str | None
    kafka_port: int
    clickhouse_url: str
    schema_registry_url: str | None
    topic_prefix: str
    partitions: int
    parallelism: int
    window: timedelta
    out_of_orderness: timedelta
    idle_timeout: timedelta
    allowed_lateness: timedelta
    watermark_emit: str
    dedup_horizon: timedelta
    checkpoint_interval: timedelta
    max_future: timedelta
    max_quantity: Decimal
    max_record_bytes: int
    require_known_customer: bool
    restart_attempts: int
    settlement_window: timedelta = timedelta(hours=48)
    credit_flush: timedelta = timedelta(milliseconds=50)
    fault: Fault | None = None
    loader_outage: timedelta = timedelta(minutes=10)
    unsafe_at_least_once: bool = False
    flink_conf: tuple[tuple[str, str], ...] = ()
    # The API's operator token: never printed (repr=False keeps it out of reprs and tracebacks).
    admin_token: str | None = field(default=None, repr=False)
    serve_cache: timedelta = timedelta(seconds=5)
    serve_rate: int = 20  # requests per second per customer token (bursts of twice that)
    serve_queries: int = 2  # store queries one customer token may have in flight
    read_max_memory: int = 4 << 30  # bytes one read query may use
    read_timeout: timedelta = timedelta(seconds=60)  # how long one read query may run
    read_max_rows: int = 10_000_000  # rows one read query may return
    flink_metrics_port: str = "9249-9259"
    # A Flink cluster's REST URL: the job is submitted there instead of the local MiniCluster.
    flink_cluster: str | None = None
    flink_port: int = 8081  # `tallyflow cluster up`: the local cluster's REST port
    flink_taskmanagers: int = 2  # `tallyflow cluster up`: TaskManager processes (one survives a kill)
    # A ClickHouse cluster's name: the DDL runs ON CLUSTER with Replicated engines (land/replicated.py).
    clickhouse_cluster: str | None = None
    # The secret key of privacy.pseudonymize (a file: it must never be in an environment dump or the plan).
    pseudonym_key_file: Path | None = None
    # How long rejects and duplicates are kept in ClickHouse (None: forever).
    rejects_ttl: timedelta | None = None
    duplicates_ttl: timedelta | None = None
    # A Kafka client properties file (Java or librdkafka keys): security, SASL, TLS for every client.
    kafka_properties: Path | None = None
    jars_dir: Path = field(default_factory=lambda: default_jars_dir())
    # The local JVM's JIT: auto (C1 only for a short bounded run, ops/runner.py), c1 or tiered.
    jit: str = "auto"
    # A local run's JVM kept for the next run (stream/warm_gateway.py), and how long it waits unused.
    warm_jvm: bool = True
    warm_jvm_idle: timedelta = timedelta(minutes=10)

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(_env("TALLYFLOW_HOME", str(Path.cwd() / ".tallyflow"))).resolve()
        try:
            max_quantity = Decimal(_env("TALLYFLOW_MAX_QUANTITY", "1000000000000"))
        except InvalidOperation:
            raise UserError("TALLYFLOW_MAX_QUANTITY is not a decimal") from None
        s = cls(
            home=home,
            kafka_bootstrap=os.environ.get("TALLYFLOW_KAFKA_BOOTSTRAP") or None,
            kafka_port=_int("TALLYFLOW_KAFKA_PORT", 19092),
            clickhouse_url=_env("TALLYFLOW_CLICKHOUSE_URL", f"chdb://{home / 'clickhouse'}"),
            schema_registry_url=os.environ.get("TALLYFLOW_SCHEMA_REGISTRY_URL") or None,
            topic_prefix=_env("TALLYFLOW_TOPIC_PREFIX", "tallyflow."),
            partitions=_int("TALLYFLOW_PARTITIONS", 4),
            parallelism=_int("TALLYFLOW_PARALLELISM", 1),
            window=parse_duration(_env("TALLYFLOW_WINDOW", "1h"), "TALLYFLOW_WINDOW"),
            out_of_orderness=parse_duration(_env("TALLYFLOW_OUT_OF_ORDERNESS", "5min"), "TALLYFLOW_OUT_OF_ORDERNESS"),
            idle_timeout=parse_duration(_env("TALLYFLOW_IDLE_TIMEOUT", "30s"), "TALLYFLOW_IDLE_TIMEOUT"),
            watermark_emit=_env("TALLYFLOW_WATERMARK_EMIT", "on-periodic"),
            allowed_lateness=parse_duration(_env("TALLYFLOW_ALLOWED_LATENESS", "1h"), "TALLYFLOW_ALLOWED_LATENESS"),
            dedup_horizon=parse_duration(_env("TALLYFLOW_DEDUP_HORIZON", "40d"), "TALLYFLOW_DEDUP_HORIZON"),
            checkpoint_interval=parse_duration(
                _env("TALLYFLOW_CHECKPOINT_INTERVAL", "2s"), "TALLYFLOW_CHECKPOINT_INTERVAL"
            ),
            max_future=parse_duration(_env("TALLYFLOW_MAX_FUTURE", "1d"), "TALLYFLOW_MAX_FUTURE"),
            max_quantity=max_quantity,
            max_record_bytes=_int("TALLYFLOW_MAX_RECORD_BYTES", 65536),
            require_known_customer=_bool("TALLYFLOW_REQUIRE_KNOWN_CUSTOMER", False),
            restart_attempts=_int("TALLYFLOW_RESTART_ATTEMPTS", 3),
            settlement_window=parse_duration(_env("TALLYFLOW_SETTLEMENT_WINDOW", "48h"), "TALLYFLOW_SETTLEMENT_WINDOW"),
            fault=faults.parse(os.environ.get("TALLYFLOW_FAULT", "")),
            loader_outage=parse_duration(_env("TALLYFLOW_LOADER_OUTAGE", "10min"), "TALLYFLOW_LOADER_OUTAGE"),
            unsafe_at_least_once=_bool("TALLYFLOW_UNSAFE_AT_LEAST_ONCE", False),
            credit_flush=parse_duration(_env("TALLYFLOW_CREDIT_FLUSH", "50ms"), "TALLYFLOW_CREDIT_FLUSH"),
            flink_conf=_pairs("TALLYFLOW_FLINK_CONF"),
            admin_token=_secret("TALLYFLOW_ADMIN_TOKEN"),
            serve_cache=parse_duration(_env("TALLYFLOW_SERVE_CACHE", "5s"), "TALLYFLOW_SERVE_CACHE"),
            serve_rate=_int("TALLYFLOW_SERVE_RATE", 20),
            serve_queries=_int("TALLYFLOW_SERVE_QUERIES", 2),
            read_max_memory=_int("TALLYFLOW_READ_MAX_MEMORY", 4 << 30),
            read_timeout=parse_duration(_env("TALLYFLOW_READ_TIMEOUT", "60s"), "TALLYFLOW_READ_TIMEOUT"),
            read_max_rows=_int("TALLYFLOW_READ_MAX_ROWS", 10_000_000),
            flink_metrics_port=_env("TALLYFLOW_FLINK_METRICS_PORT", "9249-9259"),
            flink_cluster=os.environ.get("TALLYFLOW_FLINK_CLUSTER", "").strip().rstrip("/") or None,
            flink_port=_int("TALLYFLOW_FLINK_PORT", 8081),
            flink_taskmanagers=_int("TALLYFLOW_FLINK_TASKMANAGERS", 2),
            kafka_properties=_kafka_properties(home),
            clickhouse_cluster=os.environ.get("TALLYFLOW_CLICKHOUSE_CLUSTER", "").strip() or None,
            pseudonym_key_file=_existing_file("TALLYFLOW_PSEUDONYM_KEY_FILE"),
            rejects_ttl=_optional_duration("TALLYFLOW_REJECTS_TTL"),
            duplicates_ttl=_optional_duration("TALLYFLOW_DUPLICATES_TTL"),
            jit=_env("TALLYFLOW_JIT", "auto").lower(),
            warm_jvm=_bool("TALLYFLOW_WARM_JVM", True),
            warm_jvm_idle=parse_duration(_env("TALLYFLOW_WARM_JVM_IDLE", "10min"), "TALLYFLOW_WARM_JVM_IDLE"),
        )
        if not re.fullmatch(r"[A-Za-z0-9._-]*", s.topic_prefix):
            raise UserError(
                f"TALLYFLOW_TOPIC_PREFIX '{s.topic_prefix}' may only hold letters, digits, '.', '_' and '-'"
            )
        if s.watermark_emit not in ("on-periodic", "on-event"):
            raise UserError(f"TALLYFLOW_WATERMARK_EMIT '{s.watermark_emit}' must be on-periodic or on-event")
        if s.dedup_horizon <= s.allowed_lateness + s.window:
            raise UserError("TALLYFLOW_DEDUP_HORIZON must be longer than TALLYFLOW_ALLOWED_LATENESS plus the window")
        if s.clickhouse_cluster and not re.fullmatch(r"[A-Za-z0-9_.-]+", s.clickhouse_cluster):
            raise UserError("TALLYFLOW_CLICKHOUSE_CLUSTER may only hold letters, digits, '.', '_' and '-'")
        if s.clickhouse_cluster and s.clickhouse_url.startswith("chdb://"):
            raise UserError("TALLYFLOW_CLICKHOUSE_CLUSTER needs a ClickHouse server (TALLYFLOW_CLICKHOUSE_URL=http...)")
        if s.jit not in ("auto", "c1", "tiered"):
            raise UserError(f"TALLYFLOW_JIT '{s.jit}' must be auto, c1 or tiered")
        if s.partitions < 1 or s.parallelism < 1:
            raise UserError("TALLYFLOW_PARTITIONS and TALLYFLOW_PARALLELISM must be at least 1")
        return s

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def uses_local_stack(self) -> bool:
        return self.kafka_bootstrap is None

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def child_env(self, **extra: str) -> dict[str, str]:
        """The environment of a tallyflow child process that works on this home, store and topics
        (settings made in code, such as a bench's throwaway ones, are not in os.environ)."""
        return {
            **os.environ,
            "TALLYFLOW_HOME": str(self.home),
            "TALLYFLOW_CLICKHOUSE_URL": self.clickhouse_url,
            "TALLYFLOW_TOPIC_PREFIX": self.topic_prefix,
            **extra,
        }
