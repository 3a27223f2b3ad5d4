"""The Flink environment the job runs in: the local MiniCluster's (or the one `flink run`
gives), the job-wide configuration (jars, checkpoints, restarts, state), and the RocksDB options
the state backend reads from the environment itself. The JVM that hosts it, its start, warm-up
and end, is stream/gateway.py's."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from urllib.parse import urlparse

from pyflink.table import StreamTableEnvironment, TableEnvironment

from tallyflow.errors import UserError
from tallyflow.settings import Settings
from tallyflow.stream import checkpoints, gateway


@dataclass(frozen=True)
class JobOptions:
    bounded: bool = False
    name: str = "tallyflow-metering"
    checkpoint_dir: str | None = None
    resume_from: str | None = None  # a checkpoint or savepoint to restore (checkpoints.latest)
    credit_seeds: dict | None = None  # drawdown states from the ledger (balance.seeds_for_start)
    # Submitted by `flink run` / the operator (jobs/metering_job.py): the cluster's config.yaml says
    # where checkpoints go, as with `run --cluster`.
    on_cluster: bool = False


def jar_urls(settings: Settings) -> list[str]:
    jars = sorted((settings.jars_dir / "flink").glob("*.jar"))
    return [j.resolve().as_uri() for j in jars]


def configure(t_env: TableEnvironment, settings: Settings, options: JobOptions) -> None:
    """Job-wide configuration: jars, parallelism, checkpoints, restarts, state TTL."""
    from pyflink.java_gateway import get_gateway

    conf = t_env.get_config()
    job_options = {
        "pipeline.name": options.name,
        "pipeline.jars": ";".join(jar_urls(settings)),
        "parallelism.default": str(settings.parallelism),
        "python.execution-mode": "thread",
        "execution.checkpointing.interval": f"{int(settings.checkpoint_interval.total_seconds() * 1000)} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        # Kept when the job is cancelled (or its process killed), so the next run can restore it.
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": str(settings.restart_attempts),
        "restart-strategy.fixed-delay.delay": "2 s",
        "state.backend.type": "rocksdb",
        "state.backend.incremental": "true",
        # Dedup state lives as long as the dedup horizon (processing time); windows clean themselves.
        "table.exec.state.ttl": f"{int(settings.dedup_horizon.total_seconds() * 1000)} ms",
        "table.exec.source.idle-timeout": f"{int(settings.idle_timeout.total_seconds() * 1000)} ms",
        "table.local-time-zone": "UTC",
        # Stable operator uids derived from the plan, so checkpoints restore onto the same job.
        "table.exec.uid.generation": "ALWAYS",
        # Mini-batch would turn the keep-first dedup into an updating stream (not insert-only),
        # which Kafka append sinks refuse; window aggregates buffer on their own anyway.
        "table.exec.mini-batch.enabled": "false",
        # Chained operators hand records on without a defensive copy: the planner's operators and
        # ours never keep an input object past the call (CreditBatcher copies what it buffers).
        "pipeline.object-reuse": "true",
        # A network buffer leaves at 10 ms, not 100: the credit path crosses three task boundaries
        # (p99 publish -> balance 492 -> 228 ms at 10,000 events/s together with the 50 ms credit
        # flush), and bulk runs were not slower (buffers fill before the timeout; docs/performance.md).
        "execution.buffer-timeout.interval": "10 ms",
    }
    # One py4j call for the lot: TableConfig.set costs ~20 round trips a key (it re-checks each key
    # for jar lists), and only pipeline.jars needs what it does (the gateway's class loader).
    jars = job_options.pop("pipeline.jars")
    conf._j_table_config.addConfiguration(
        get_gateway().jvm.org.apache.flink.configuration.Configuration.fromMap(job_options)
    )
    conf.set("pipeline.jars", jars)
    # On a cluster, its own config.yaml says where checkpoints go (a Kubernetes last-state upgrade
    # finds them there); the job names a directory only for the local MiniCluster, or when asked.
    if options.checkpoint_dir or not (settings.flink_cluster or options.on_cluster):
        conf.set("execution.checkpointing.dir", options.checkpoint_dir or checkpoints.root(settings).as_uri())
    if options.resume_from:
        conf.set("execution.state-recovery.path", options.resume_from)
    for key, value in settings.flink_conf:
        conf.set(key, value)


def restart_operator_numbering(t_env: TableEnvironment) -> None:
    """The planner numbers every SQL operator it plans, counting on across the JVM, and the uids
    that `table.exec.uid.generation: ALWAYS` gives carry that number. A JVM that planned another
    job first (a bench's baseline, a test, a warm gateway) gave the pipeline other uids than its
    savepoint holds, and the restore was refused. Numbering restarts as the pipeline is built, so
    its uids depend on the job alone (tests/integration/test_graph_builder.py)."""
    from pyflink.java_gateway import get_gateway

    gateway = get_gateway()
    # The planner lives behind its own class loader (flink-table-planner-loader): reach the class
    # through the planner object, not the gateway's class path.
    loader = t_env._j_tenv.getPlanner().getClass().getClassLoader()
    context = gateway.jvm.java.lang.Class.forName(
        "org.apache.flink.table.planner.plan.nodes.exec.ExecNodeContext", True, loader
    )
    reset = context.getMethod("resetIdCounter", gateway.new_array(gateway.jvm.java.lang.Class, 0))
    reset.invoke(None, gateway.new_array(gateway.jvm.java.lang.Object, 0))


# Read by the state backend and the local MiniCluster from the environment's configuration (set on
# a job's table config they are silently ignored); on a Flink cluster, put them in its config.yaml.
# Nearly every dedup lookup is a miss (a new event). Without these, once the dedup state outgrew
# the block cache (2.5M events), every lookup reloaded a whole SST index block: measured 2,177
# events/s instead of 27,000.
ENVIRONMENT_OPTIONS = {
    "state.backend.rocksdb.use-bloom-filter": "true",  # a miss is answered without a data block
    "state.backend.rocksdb.memory.partitioned-index-filters": "true",  # cache 4 KiB index pieces
    # Every checkpoint flushes a small file of new, random keys: leveled compaction rewrote all of
    # L1 (256 MB) for each few MB, and past 15M keys ingest fell from 25,000 to under 2,000
    # events/s. Universal merges runs of similar size (docs/performance.md).
    "state.backend.rocksdb.compaction.style": "UNIVERSAL",
    "taskmanager.memory.managed.size": "512m",  # RocksDB's block cache and write buffers (local)
}


def metrics_options(settings: Settings) -> dict[str, str]:
    """Flink's Prometheus reporter (PyFlink's plugins/metrics-prometheus): the job's counters
    (ClassifyEvents' accepted, duplicates, conflicts, rejects, late; every operator's records in
    and out; checkpoints) at http://127.0.0.1:PORT/metrics, on the MiniCluster as on a cluster."""
    return {
        "metrics.reporter.prom.factory.class": "org.apache.flink.metrics.prometheus.PrometheusReporterFactory",
        "metrics.reporter.prom.port": settings.flink_metrics_port,
    }


def remote_options(url: str) -> dict[str, str]:
    """Submit to the session cluster whose REST API is at `url` (Flink's remote executor: the job
    graph and its jars go up through that API) instead of starting a MiniCluster."""
    parsed = urlparse(url if "://" in url else f"http://{url}")
    if not parsed.hostname:
        raise UserError(f"TALLYFLOW_FLINK_CLUSTER / --cluster: '{url}' is not a URL like http://HOST:8081")
    return {
        "execution.target": "remote",
        "rest.address": parsed.hostname,
        "rest.port": str(parsed.port or (443 if parsed.scheme == "https" else 8081)),
        "rest.ssl.enabled": str(parsed.scheme == "https").lower(),
        # A cluster that does not answer fails the submission in seconds, not after minutes.
        "rest.retry.max-attempts": "2",
        "rest.retry.delay": "500 ms",
        "rest.connection-timeout": "5 s",
        "client.timeout": "30 s",
    }


def create_environment(settings: Settings | None = None) -> StreamTableEnvironment:
    """A streaming table environment on the local MiniCluster (or the cluster `flink run` gives);
    with settings, the MiniCluster also reports its metrics to Prometheus."""
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import EnvironmentSettings

    gateway.ready(settings)
    env = StreamExecutionEnvironment.get_execution_environment()
    # Into the environment's own configuration: an environment created from a Configuration
    # instead lost the job's checkpoint restore (the chaos test saw windows counted twice).
    j_conf = env._j_stream_execution_environment.getConfiguration()
    options = {**ENVIRONMENT_OPTIONS, **(metrics_options(settings) if settings is not None else {})}
    if settings is not None:
        # TALLYFLOW_FLINK_CONF reaches the local MiniCluster and state backend too (RocksDB's
        # options are read only here); configure() sets the same pairs on the job.
        options.update(settings.flink_conf)
    if settings is not None and settings.flink_cluster:
        options = remote_options(settings.flink_cluster)
    for key, value in options.items():
        j_conf.setString(key, value)
    t_env = StreamTableEnvironment.create(env, EnvironmentSettings.in_streaming_mode())
    t_env.get_config().set("python.executable", sys.executable)
    return t_env
