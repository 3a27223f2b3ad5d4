"""`tallyflow bench`: end-to-end throughput against a read-and-discard baseline, in one run.

Both are measured the same way, from the job's first event read (wall clock, noted by a
pass-through chained to the source: jobs/jvm FirstEvent) to its end: for the baseline, a job
that reads the events topic and discards every record; for the pipeline, the metering job until
ClickHouse holds every result (the loader drained). Next to it: the time from the job reaching
RUNNING (adds task deployment and code generation) and the time with planning and submission.
Fresh topics and a throwaway chdb store keep the bench away from real data, and both are removed
afterwards; the broker is the configured one.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from tallyflow.errors import UserError
from tallyflow.ingest import producer
from tallyflow.ops import runner, stack
from tallyflow.settings import Settings
from tallyflow.stream import checkpoints, environment, tables
from tallyflow.tools import bench_probes, generator
from tallyflow.wire import kafka_config, topics

PERIOD = "2026-10"  # the bench's events
PREFILL_PERIOD = "2026-09"  # --restored-keys: the month before, so the measured events are on time


def _baseline(settings: Settings, start: dict[str, int] | None = None) -> tuple[float, float, float | None]:
    """The read-and-discard job: (seconds from RUNNING, with startup, from its first event read).
    `start` ("topic:partition" -> offset): read from there (past a prefill), not from the earliest."""
    from pyflink.java_gateway import get_gateway
    from pyflink.table import Table

    t_env = environment.create_environment()
    environment.configure(t_env, settings, environment.JobOptions(bounded=True, name="tallyflow-bench-baseline"))
    t_env.execute_sql(f"""CREATE TEMPORARY TABLE bench_source (v BYTES) WITH (
        'connector' = 'kafka', 'topic' = '{settings.topic(topics.EVENTS)}',
        {kafka_config.flink_options(settings)},
        'properties.group.id' = '{settings.topic_prefix}baseline',
        {_startup(start)}, 'scan.bounded.mode' = 'latest-offset',
        'value.format' = 'raw')""")
    t_env.execute_sql("CREATE TEMPORARY TABLE bench_discard (v BYTES) WITH ('connector' = 'blackhole')")
    # The same first-event clock as the pipeline's (a pass-through chained to the source).
    marked = Table(
        get_gateway().jvm.io.tallyflow.metrics.FirstEvent.mark(t_env._j_tenv, t_env.from_path("bench_source")._j_table),
        t_env,
    )
    started = time.monotonic()
    job_client = marked.execute_insert("bench_discard").get_job_client()
    outcome = job_client.get_job_execution_result()
    running = runner.wait_running(job_client)
    first = runner.first_event_ms(outcome.result())
    now = time.monotonic()
    return now - running, now - started, (time.time() - first / 1000) if first else None


def _startup(start: dict[str, int] | None) -> str:
    if not start:
        return "'scan.startup.mode' = 'earliest-offset'"
    offsets = ";".join(f"partition:{tp.rsplit(':', 1)[1]},offset:{o}" for tp, o in sorted(start.items()))
    return f"'scan.startup.mode' = 'specific-offsets', 'scan.startup.specific-offsets' = '{offsets}'"


def _prefill(settings: Settings, keys: int, customers: int, span: timedelta, seed: int) -> dict:
    """`keys` events of the month before the bench's, through the pipeline: the dedup state (one
    entry per event) that the measured run restores, its events all earlier in event time. The
    run is `tallyflow run --bounded` in its own process, as a user's earlier run would be."""
    report = producer.produce_records(
        settings, generator.generate(keys, customers=customers, period=PREFILL_PERIOD, span=span, seed=seed)
    )
    if report.sent != keys:
        raise UserError(f"publishing the prefill failed: {report.sent} of {keys} events sent")
    env = settings.child_env(
        TALLYFLOW_SETTLEMENT_WINDOW=f"{int(settings.settlement_window.total_seconds())}s",
        TALLYFLOW_WARM_JVM="off",  # no JVM left behind in the throwaway home
    )
    command = [sys.executable, "-m", "tallyflow.cli", "run", "--catalog", str(generator.DEMO_CATALOG), "--bounded"]
    started = time.monotonic()
    done = subprocess.run([*command, "--format", "json"], env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise UserError(f"the prefill run failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    landed = json.loads(done.stdout)["loaded"]["rows"].get("events", 0)
    if landed != keys:
        raise UserError(f"the prefill landed {landed} of {keys} events")
    return {"events": keys, "period": PREFILL_PERIOD, "seconds": round(seconds, 2)}


def _java_version() -> str:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=10).stderr
        return out.splitlines()[0] if out else "unknown"
    except OSError:
        return "unknown"


def run(
    settings: Settings,
    events: int,
    customers: int,
    span: timedelta,
    on_phase=None,
    concurrent_reads: float = 0,
    restored_keys: int = 0,
) -> dict:
    """`on_phase(name)` as each phase starts (the CLI's progress line). With `concurrent_reads` R,
    another process reads the store R times a second while the pipeline runs (tools/reader_load.py),
    so the figure shows what reads from other processes cost the pipeline. With `restored_keys` K,
    a first run (not timed into the figure) takes K other events through the pipeline, and the
    measured run restores its savepoint: the throughput on top of K remembered dedup keys."""
    phase = on_phase or (lambda name: None)
    if events < 1000:
        raise UserError("--events must be at least 1000 for a meaningful figure")
    store = Path(tempfile.mkdtemp(prefix="tallyflow-bench-", dir=settings.home if settings.home.exists() else None))
    # The bench month (October 2026) is past its settlement window: keep it open, so the figure is
    # the pipeline's and not also an invoice run over every event.
    bench = replace(
        settings,
        topic_prefix=f"{settings.topic_prefix}bench{int(time.time())}.",
        clickhouse_url=f"chdb://{store}",
        settlement_window=timedelta(days=36500),
    )
    seed = int(time.time())
    try:
        topics.ensure_topics(bench)
        prefill, start = None, None
        if restored_keys:
            phase("prefill (the state to restore)")
            prefill = _prefill(bench, restored_keys, customers, span, seed + 1)
            start = topics.committed_ends(bench, (topics.EVENTS,))
        phase("publishing")
        publish_started = time.time()
        started = time.monotonic()
        report = producer.produce_records(
            bench, generator.generate(events, customers=customers, period=PERIOD, span=span, seed=seed)
        )
        publish_seconds = time.monotonic() - started
        if report.sent != events:
            raise UserError(f"publishing failed: {report.sent} of {events} events sent")
        phase("baseline (read and discard)")
        base_running, base_total, baseline = _baseline(bench, start)  # past the prefill, if any
        phase("pipeline")
        reader = _reader(bench, concurrent_reads) if concurrent_reads else None
        group = f"{bench.topic_prefix}{tables.JOB_GROUP}"
        events_topic = bench.topic(topics.EVENTS)

        before = sum((start or {}).values())  # the prefill's records, committed by its run

        def committed() -> int:
            positions = topics.group_positions(bench, group).items()
            return sum(o for tp, o in positions if tp.startswith(events_topic + ":")) - before

        timeline = bench_probes.Timeline(committed)

        def progress(_status: str, stats) -> None:
            timeline.landed = stats.rows.get("events", 0)

        try:
            with bench_probes.Sampler(stack.broker_pid(bench)) as cpu, timeline:
                result = runner.run(bench, generator.DEMO_CATALOG, bounded=True, on_progress=progress)
        finally:
            reads = _stop_reader(reader)
        phase("done")
        state_bytes = _snapshot_bytes(checkpoints.latest(bench))
        if result.loaded["rows"].get("events", 0) != events:
            raise UserError(f"the pipeline landed {result.loaded['rows'].get('events', 0)} of {events} events")
        pipeline = result.reading_seconds
        if baseline is None or pipeline is None:
            raise UserError("a job ended without reading an event: no figure")
        return {
            "events": events,
            "customers": customers,
            "event_time_span_hours": round(span.total_seconds() / 3600, 2),
            "parallelism": settings.parallelism,
            "partitions": settings.partitions,
            "publish": {"seconds": round(publish_seconds, 2), "events_per_second": round(events / publish_seconds)},
            "baseline": {
                "seconds": round(baseline, 2),
                "events_per_second": round(events / baseline),
                "from_running_seconds": round(base_running, 2),
                "with_startup_seconds": round(base_total, 2),
            },
            "pipeline": {
                "seconds": round(pipeline, 2),
                "events_per_second": round(events / pipeline),
                "from_running_seconds": round(result.running_seconds, 2),
                "with_startup_seconds": round(result.job_seconds, 2),
                "rows_landed": result.loaded["rows"],
                "resumed_from": result.resumed_from,  # --restored-keys: the prefill's savepoint
            },
            # The run's closing savepoint (native format: RocksDB's files as they are on disk). The
            # dedup state, one entry per event within the horizon, is nearly all of it.
            "state": {
                "savepoint_bytes": state_bytes,
                "bytes_per_event": round(state_bytes / (events + restored_keys), 1),
                "keys": events + restored_keys,
            },
            "restored_keys": restored_keys,
            "prefill": prefill,
            "ratio": round(baseline / pipeline, 3),
            "steady_events_per_second": timeline.steady_rate(events),
            "phases": _phases(result.phases, publish_started),
            "cpu_us_per_event": {k: round(v * 1e6 / events, 1) for k, v in cpu.components().items()},
            "cpu_seconds": cpu.components(),
            "timeline": timeline.rows,
            "concurrent_reads": reads,
            "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "java": _java_version()},
        }
    finally:
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(checkpoints.root(bench), ignore_errors=True)
        topics.delete_topics(bench)  # a bench writes gigabytes; repeated runs must not fill the broker


def _snapshot_bytes(snapshot: Path | None) -> int:
    if snapshot is None:
        raise UserError("the run left no savepoint: no state size")
    return sum(f.stat().st_size for f in snapshot.rglob("*") if f.is_file())


def _phases(phases: dict[str, float], origin: float) -> dict[str, float]:
    """Each phase's moment, in seconds since publishing began."""
    return {name: round(at - origin, 2) for name, at in phases.items()}


def _reader(settings: Settings, rate: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tallyflow.tools.reader_load", str(rate)],
        env=settings.child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _stop_reader(proc: subprocess.Popen | None) -> dict | None:
    if proc is None:
        return None
    proc.terminate()
    out, _ = proc.communicate(timeout=60)
    return json.loads(out) if out.strip() else None


def render(r: dict) -> str:
    return "\n".join(
        [
            f"{r['events']} events, {r['customers']} customers, {r['event_time_span_hours']} h of event time, "
            f"parallelism {r['parallelism']}, {r['partitions']} partitions, {r['machine']['cores']} cores",
            f"  publish   {r['publish']['seconds']:>8} s  {r['publish']['events_per_second']:>9} events/s",
            f"  baseline  {r['baseline']['seconds']:>8} s  {r['baseline']['events_per_second']:>9} events/s"
            "  (read and discard)",
            f"  pipeline  {r['pipeline']['seconds']:>8} s  {r['pipeline']['events_per_second']:>9} events/s"
            "  (read to last result in ClickHouse)",
            f"  ratio     {r['ratio']:>8}    of the baseline",
            *(
                [f"  reads from another process meanwhile: {r['concurrent_reads']}"]
                if r.get("concurrent_reads")
                else []
            ),
            *(
                [
                    f"  restored  {r['restored_keys']:>8} dedup keys first (a run of {r['prefill']['period']}'s "
                    f"events, {r['prefill']['seconds']} s, not in the figures)"
                ]
                if r.get("restored_keys")
                else []
            ),
            f"  state     {r['state']['savepoint_bytes']:>8} B  {r['state']['bytes_per_event']:>9} B/event"
            f"  (the closing savepoint, {r['state']['keys']} keys; dedup is one entry per event)",
            f"  steady    {r['steady_events_per_second'] or '-':>8}    events/s landed between 10% and 90% landed",
            "  phases (s since publishing began): "
            + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in r["phases"].items()),
            "  CPU us/event: " + ", ".join(f"{k} {v}" for k, v in r["cpu_us_per_event"].items() if v),
            "  (from the first event read to the end; from job RUNNING: baseline "
            f"{r['baseline']['from_running_seconds']} s, pipeline {r['pipeline']['from_running_seconds']} s; with "
            f"planning and submission: {r['baseline']['with_startup_seconds']} s, "
            f"{r['pipeline']['with_startup_seconds']} s)",
        ]
    )
