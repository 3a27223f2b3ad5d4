"""The Flink environment the job runs in: the local MiniCluster's (or the one `flink run`
gives), the job-wide configuration (jars, checkpoints, restarts, state), and the RocksDB options
the state backend reads from the environment itself."""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from pyflink.table import StreamTableEnvironment, TableEnvironment

from tallyflow.errors import UserError
from tallyflow.settings import REPO_ROOT, Settings, default_jars_dir
from tallyflow.stream import checkpoints, class_sharing, warm_gateway
from tallyflow.wire import topics


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


def gateway_archive(settings: Settings | None) -> Path:
    """The class archive (stream/class_sharing) that matches the gateway this process starts; it
    lives beside the jars `make setup` fetched."""
    _reporter_on_the_gateway_classpath()
    jars = settings.jars_dir if settings is not None else default_jars_dir()
    return class_sharing.archive_path(jars.parent / "cds")


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

    _prepare_gateway(settings)
    if _early_launch is not None:
        # Not a gateway of its own while start_gateway's thread connects to a warm one.
        _gateway_ready.wait(timeout=warm_gateway.START_TIMEOUT_S)
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


# A bounded run over at most this many input records runs its JVM with C1 only (TALLYFLOW_JIT=auto):
# the demo's 50,000 events took 74 s instead of 98 s, and at 200,000 events both took as long with
# C1 using less CPU (docs/performance.md); beyond that, C2's faster code is worth its compile time.
SHORT_RUN_RECORDS = 250_000


def short_run(settings: Settings, bounded: bool) -> bool:
    """Whether this run's local JVM compiles with C1 only (TALLYFLOW_JIT: auto, c1, tiered). Auto
    counts every record the inputs hold, an upper bound of what a continuing run reads; a broker
    that does not answer within 2 s leaves the default, and prepare() reports it."""
    if settings.jit != "auto":
        return settings.jit == "c1"
    if not bounded or settings.flink_cluster:
        return False  # a job that keeps running, or runs on a cluster's own JVMs
    held = topics.records_in(settings, topics.JOB_INPUTS)
    return held is not None and held <= SHORT_RUN_RECORDS


_early_launch: threading.Thread | None = None
_gateway_ready = threading.Event()


def start_gateway(settings: Settings | None = None, *, c1_only: bool = False) -> None:
    """Launch the gateway JVM in the background while the caller checks the catalog, the store and
    the broker (about 1.3 s of a run's start, overlapped), or take a warm one (warm_gateway).
    create_environment waits for it; a launch that fails here is tried again there, where its
    error is reported. A caller whose checks fail calls abandon_gateway."""
    global _early_launch
    from pyflink.java_gateway import get_gateway

    def launch() -> None:
        warm = None
        try:
            with contextlib.suppress(Exception):  # reported by create_environment's own attempt
                warm = warm_gateway.connect(settings) if settings is not None else None
                if warm is None:
                    get_gateway()
                if warm == "reused":
                    # Imported by an earlier run: instant, and done before the job is planned, so
                    # planning uses this thread's one gateway connection. py4j resolves classes
                    # with the serving JVM thread's context class loader, which holds the job's
                    # jars on the connection that set them only: a second connection, opened
                    # while this one was busy, failed to find io.tallyflow classes now and then.
                    _warm_embedded_python()
                    # The job's Python operators pickle through PyFlink's fn_execution, which
                    # imports Apache Beam (0.8 s, and it calls the JVM): here, it overlaps the
                    # checks' waits on the store and the broker.
                    importlib.import_module("pyflink.fn_execution")
        finally:
            _gateway_ready.set()
        with contextlib.suppress(Exception):
            if warm != "reused" and (settings is None or not settings.flink_cluster):
                _warm_embedded_python()

    _prepare_gateway(settings, c1_only)
    _early_launch = threading.Thread(target=launch, name="gateway-launch", daemon=True)
    _early_launch.start()


# What a Python operator's task imports as it opens (Flink's AbstractEmbeddedPythonFunctionOperator),
# and the modules of the functions it then unpickles.
EMBEDDED_IMPORTS = (
    "pyflink.fn_execution.embedded.operation_utils",
    "tallyflow.stream.rating",
    "tallyflow.stream.alerts",
    "tallyflow.stream.credits",
)


def _warm_embedded_python() -> None:
    """Import what the Python operators need into the gateway JVM's embedded interpreter now,
    while the job is planned on the other core. Thread mode runs every Python operator in one
    interpreter (pemja's, one per JVM, modules shared), so the tasks find them imported; otherwise
    their first import (PyFlink's fn_execution pulls in Apache Beam and pandas: about a second of
    CPU) runs as they deploy, and a bounded run's savepoint waits for it (an empty bounded run
    11.8 -> 11.3 s, docs/performance.md). The interpreter is
    made as Flink's EmbeddedPythonEnvironmentManager makes it: this Python, PYTHONPATH from the
    environment (_python_path_for_embedded_workers). A failure here changes nothing: the tasks
    import on their own and report what fails."""
    interpreter = embedded_interpreter()
    try:
        interpreter.exec("; ".join(f"import {module}" for module in EMBEDDED_IMPORTS))
    finally:
        interpreter.close()


def embedded_interpreter():
    """A new thread state in the gateway JVM's embedded interpreter (pemja's PythonInterpreter,
    which the caller closes)."""
    from pyflink.java_gateway import get_gateway

    pemja = get_gateway().jvm.pemja.core
    return pemja.PythonInterpreter(pemja.PythonInterpreterConfig.newBuilder().setPythonExec(sys.executable).build())


def abandon_gateway() -> None:
    """End the JVM start_gateway launched, for a run that fails before it needs it. Left alone, a
    gateway whose Python side is gone outlives this process by seconds and prints "Unable to get
    the Python watchdog object" after the run's one-line error. It has no job yet: killing it
    loses nothing."""
    if _early_launch is None:
        return
    _early_launch.join(timeout=30.0)  # until the JVM exists (about a second), so none starts after
    if warm_gateway.connected():
        warm_gateway.release()  # it runs no job yet: the next run takes it
        return
    # The warm-up's proxies of Java objects tell the JVM they are released when Python collects
    # them; collected after the kill (at exit), each would print a py4j connection error.
    gc.collect()
    for pid in _child_processes("java"):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _child_processes(command: str) -> list[int]:
    """This process's children running `command` (Linux /proc; elsewhere none are found)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, rest = stat.read_text().rpartition(")")
        except OSError:
            continue  # ended meanwhile
        if head.partition("(")[2] == command and int(rest.split()[1]) == os.getpid():
            found.append(int(stat.parent.name))
    return found


def _prepare_gateway(settings: Settings | None, c1_only: bool = False) -> None:
    """What the gateway JVM must find in the environment when it starts."""
    _python_path_for_embedded_workers()
    # PyFlink's environments start a loopback server for Python workers in this process when this
    # is unset (importing Apache Beam here: 0.7 s of every run's start). Every Python operator
    # runs in the JVM (thread mode, configure()), so none would use it; "process" is what
    # PyFlink's own test cases set.
    os.environ.setdefault("_python_worker_execution_mode", "process")
    if c1_only:
        _c1_only()
    class_sharing.use(gateway_archive(settings))


def _c1_only() -> None:
    """The gateway JVM compiles with C1 only, unless JVM_ARGS already says how to compile. C2's
    optimizing compiler takes most of a short run's CPU (43 of 130 CPU seconds of the demo's 50,000
    events) and pays back only over a longer one (docs/performance.md)."""
    current = os.environ.get("JVM_ARGS", "")
    if "TieredStopAtLevel" not in current and "TieredCompilation" not in current:
        os.environ["JVM_ARGS"] = f"{current} -XX:TieredStopAtLevel=1".strip()


def _reporter_on_the_gateway_classpath() -> None:
    """The local MiniCluster finds reporter factories on its classpath only (its plugin manager
    is empty: "Available factories: []"). PyFlink's gateway appends HADOOP_CLASSPATH to its
    classpath, so the wheel's Prometheus reporter jar goes there before the gateway starts. A Flink
    cluster loads the same jar from its plugins/ folder instead."""
    import pyflink

    jars = sorted((Path(pyflink.__file__).parent / "plugins" / "metrics-prometheus").glob("*.jar"))
    current = os.environ.get("HADOOP_CLASSPATH", "")
    missing = [str(j) for j in jars if str(j) not in current]
    if missing:
        os.environ["HADOOP_CLASSPATH"] = os.pathsep.join([*([current] if current else []), *missing])


def _python_path_for_embedded_workers() -> None:
    """Thread mode runs Python inside the JVM (pemja), which does not see a virtualenv's
    site-packages; the local JVM inherits this process's PYTHONPATH, so name them there."""
    import site

    current = os.environ.get("PYTHONPATH", "")
    paths = [p for p in [*site.getsitepackages(), str(REPO_ROOT / "jobs")] if p not in current.split(os.pathsep)]
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *([current] if current else [])])
