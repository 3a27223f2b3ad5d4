"""The gateway JVM a local run's job lives in (PyFlink's py4j gateway): launched early and in the
background, or taken warm from an earlier run (stream/warm_gateway.py), with the environment it
must find (the class archive, the embedded Python's path, C1 for short runs), its embedded
interpreter warmed up, and ended when a run fails before it needs it."""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import signal
import sys
import threading
from pathlib import Path

from tallyflow.settings import REPO_ROOT, Settings, default_jars_dir
from tallyflow.stream import class_sharing, warm_gateway
from tallyflow.wire import topics


def gateway_archive(settings: Settings | None) -> Path:
    """The class archive (stream/class_sharing) that matches the gateway this process starts; it
    lives beside the jars `make setup` fetched."""
    _reporter_on_the_gateway_classpath()
    jars = settings.jars_dir if settings is not None else default_jars_dir()
    return class_sharing.archive_path(jars.parent / "cds")


def ready(settings: Settings | None) -> None:
    """Before an environment is made: the gateway's environment prepared, and the one
    start_gateway launched (or connected to, when warm) there to use."""
    _prepare_gateway(settings)
    if _early_launch is not None:
        # Not a gateway of its own while start_gateway's thread connects to a warm one.
        _gateway_ready.wait(timeout=warm_gateway.START_TIMEOUT_S)


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
                    _warm_embedded_python()  # imported by an earlier run: instant
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
    from py4j.java_gateway import GatewayParameters, JavaGateway
    from pyflink.java_gateway import get_gateway

    # A client of its own, so the job is planned through connections this warm-up never touches.
    # py4j pools connections (each served by its own JVM thread) and resolves classes with that
    # thread's context class loader, which holds the job's jars (pipeline.jars) only on the thread
    # that set them: a pooled connection opened while the warm-up was busy, taken by the planner
    # next, failed to find io.tallyflow.decode.DecodeUsageEvent now and then.
    shared = get_gateway().gateway_parameters
    own = JavaGateway(
        gateway_parameters=GatewayParameters(
            address=shared.address, port=shared.port, auth_token=shared.auth_token, auto_convert=True
        )
    )
    try:
        interpreter = embedded_interpreter(own)
        try:
            interpreter.exec("; ".join(f"import {module}" for module in EMBEDDED_IMPORTS))
        finally:
            interpreter.close()
    finally:
        own.close()  # its objects' finalizers then send nothing


def embedded_interpreter(client=None):
    """A new thread state in the gateway JVM's embedded interpreter (pemja's PythonInterpreter,
    which the caller closes), through `client` (PyFlink's own gateway client by default)."""
    from pyflink.java_gateway import get_gateway

    pemja = (client or get_gateway()).jvm.pemja.core
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
