"""`tallyflow run`: validate and apply the catalog, run the job on a MiniCluster, land its output.

The job runs in PyFlink's local MiniCluster (a JVM child of this process); this process runs the
loader next to it, so in embedded mode the chdb store has exactly one owner.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path

from tallyflow import balance, catalog_store, checkpoints, clickhouse, job, topics
from tallyflow import catalog as catalog_mod
from tallyflow.errors import UserError
from tallyflow.loader import Loader
from tallyflow.settings import Settings


@dataclass
class RunResult:
    status: str
    seconds: float
    loaded: dict
    job_seconds: float = 0.0  # from submitting the job to the last result landed
    running_seconds: float = 0.0  # from the job reaching RUNNING (sources about to read) to the last result
    resumed_from: str | None = None  # the checkpoint restored (`run --resume`)
    reading_seconds: float | None = None  # from the first event read (jobs/jvm FirstEvent) to the last result
    offsets_committed: int = 0  # input partitions whose end offset the runner committed (_commit_bounds)

    def as_dict(self) -> dict:
        return {"status": self.status, "seconds": round(self.seconds, 3), "job_seconds": round(self.job_seconds, 3),
                "running_seconds": round(self.running_seconds, 3),
                "reading_seconds": None if self.reading_seconds is None else round(self.reading_seconds, 3),
                "resumed_from": self.resumed_from, "offsets_committed": self.offsets_committed,
                "loaded": self.loaded}


def _root_cause(exc: BaseException) -> str:
    text = str(exc)
    causes = [line.strip() for line in text.splitlines() if "Caused by:" in line]
    return (causes[-1] if causes else text.strip().splitlines()[0] if text.strip() else type(exc).__name__)[:500]


def prepare(settings: Settings, catalog_path: str | Path):
    """Everything that can fail fast, before any JVM starts: catalog, ClickHouse, Kafka."""
    cat = catalog_mod.load(catalog_path)
    client = clickhouse.ready(settings)
    if not topics.broker_answers(settings, timeout=5.0):
        raise UserError(f"Kafka at {settings.bootstrap} does not answer; run `tallyflow stack up`")
    topics.ensure_topics(settings)
    catalog_store.apply(client, cat, str(catalog_path))
    return cat, client


def run(settings: Settings, catalog_path: str | Path, *, bounded: bool, on_progress=None,
        resume: bool = False) -> RunResult:
    cat, client = prepare(settings, catalog_path)
    restore = checkpoints.latest(settings) if resume else None
    # A bounded run stops at the input's ends as of its start; a resumed one at the ends its first
    # run recorded.
    bounds = None
    if bounded:
        bounds = (checkpoints.read_bounds(restore) if restore else None) or topics.input_ends(settings)
    started = time.monotonic()
    t_env = job.create_environment()
    try:
        # The job starts without Flink state: credit balances continue from the ledger.
        seeds = balance.drawdown_seeds(client, cat) if job.credit_meters(cat) else None
        statements = job.build(t_env, settings, cat, job.JobOptions(
            bounded=bounded, credit_seeds=seeds, resume_from=restore.resolve().as_uri() if restore else None,
            bounds=bounds))
    except Exception as e:  # planner errors arrive as py4j/PyFlink exceptions
        raise UserError(f"the job could not be built: {_root_cause(e)}") from None
    loader = Loader(settings, client)
    stop = {"requested": False}

    def _stop(*_: object) -> None:
        stop["requested"] = True

    previous = signal.signal(signal.SIGTERM, _stop)
    # The Kafka source does not finish after a restore (FLINK-31006), so for a resumed bounded run
    # the runner watches the job's committed offsets and ends it itself (stop-with-savepoint, draining).
    try:
        submitted = time.monotonic()
        try:
            job_client = statements.execute().get_job_client()
        except Exception as e:  # planner and submission errors arrive as py4j/PyFlink exceptions
            raise UserError(f"the job could not start: {_root_cause(e)}") from None
        running = wait_running(job_client)
        if bounds is not None:
            checkpoints.write_bounds(settings, str(job_client.get_job_id()), bounds)
        watch = (settings, bounds) if restore and bounds is not None else None
        status, first_ms = _supervise(job_client, loader, stop, on_progress, watch)
        advanced = 0
        if status == "FINISHED":  # its last checkpoint holds finished operators: nothing to resume
            checkpoints.mark_finished(settings, str(job_client.get_job_id()))
            if bounds is not None:
                advanced = _commit_bounds(settings, bounds)
        now = time.monotonic()
        reading = time.time() - first_ms / 1000 if first_ms else None
        return RunResult(status, now - started, loader.stats.as_dict(), now - submitted, now - running,
                         str(restore) if restore else None, reading, advanced)
    except KeyboardInterrupt:
        stop["requested"] = True
        return RunResult("CANCELED", time.monotonic() - started, loader.stats.as_dict())
    finally:
        signal.signal(signal.SIGTERM, previous)
        loader.close()


def load_forever(settings: Settings, catalog_path: str | Path | None, on_progress=None) -> dict:
    """`tallyflow load`: land a job's output that runs elsewhere (a Flink cluster) until stopped."""
    client = clickhouse.ready(settings)
    if catalog_path is not None:
        catalog_store.apply(client, catalog_mod.load(catalog_path), str(catalog_path))
    loader = Loader(settings, client)
    stop = {"requested": False}
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.update(requested=True))
    last_report = 0.0
    try:
        while not stop["requested"]:
            loader.poll(timeout=0.5)
            if on_progress and time.monotonic() - last_report >= 5.0:
                last_report = time.monotonic()
                on_progress("LOADING", loader.stats)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        loader.close()
    return loader.stats.as_dict()


def wait_running(job_client, deadline_s: float = 120.0) -> float:
    """When the job reached RUNNING: planning and submission are over, tasks are deploying and
    the sources are about to read (the start of a throughput measurement; see bench.py)."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        try:
            status = str(job_client.get_job_status().result())
        except Exception:  # a finished local job may no longer answer; it certainly ran
            return time.monotonic()
        if status != "JobStatus.CREATED" and status != "JobStatus.INITIALIZING":
            return time.monotonic()
        time.sleep(0.02)  # a status poll while the job deploys, bounded by the deadline
    return time.monotonic()


def _commit_bounds(settings: Settings, bounds: dict[str, int]) -> int:
    """After a bounded job finished, its consumer group's offsets are the bounds it stopped at.
    The Kafka source commits them asynchronously when the final checkpoint completes and may close
    before the commit lands (seen in CI: a later run without Flink state read a partition again and
    counted its windows and credits twice), so the runner commits them itself, forward only."""
    return topics.advance_group(settings, f"{settings.topic_prefix}{job.JOB_GROUP}", bounds)


def _reached(settings: Settings, bounds: dict[str, int]) -> bool:
    done = topics.group_positions(settings, f"{settings.topic_prefix}{job.JOB_GROUP}")
    return all(done.get(tp, 0) >= end for tp, end in bounds.items() if end > 0)


def _drain(job_client, directory: str) -> None:
    """Stop with a savepoint, advancing to the end of event time (what a bounded input's end does).
    Through the Java client: PyFlink's wrapper lacks Flink 2's savepoint-format argument."""
    from pyflink.java_gateway import get_gateway

    gateway = get_gateway()
    fmt = gateway.jvm.org.apache.flink.core.execution.SavepointFormatType.CANONICAL
    for attempt in range(60):
        future = job_client._j_job_client.stopWithSavepoint(True, directory, fmt)
        try:
            future.get(300, gateway.jvm.java.util.concurrent.TimeUnit.SECONDS)
            return
        except Exception as e:  # py4j wraps the Java failure
            cause, text = _root_cause(e), str(e)
            # Right after a restore the tasks may still be deploying: the savepoint is refused.
            if "Not all required tasks are currently running" not in text or attempt == 59:
                raise UserError(f"the resumed job could not be stopped at its bounds: {cause}") from None
        time.sleep(1.0)  # backoff between attempts, bounded by the attempt count


def first_event_ms(execution_result) -> int | None:
    """When the job read its first event (epoch ms), from the accumulator jobs/jvm FirstEvent keeps."""
    value = execution_result.get_accumulator_result("tallyflow.first-event-ms")
    # LongMinimum starts at Long.MAX_VALUE: a job that read nothing has no first event.
    return int(value) if value is not None and int(value) < 2**62 else None


def _supervise(job_client, loader: Loader, stop: dict, on_progress, watch=None) -> tuple[str, int | None]:
    # The local MiniCluster shuts down with the job, so the job's end is read from its
    # execution-result future, never by asking for a status afterwards.
    result = job_client.get_job_execution_result()
    status = "RUNNING"
    first = None
    canceled = False
    last_report = last_check = 0.0
    while status == "RUNNING":
        loader.poll(timeout=0.2)
        now = time.monotonic()
        if on_progress and now - last_report >= 1.0:
            last_report = now
            on_progress(status, loader.stats)
        if stop["requested"] and not canceled:
            canceled = True
            job_client.cancel()
        # Each check is a py4j round trip; asked on every busy poll it cost seconds of CPU per run.
        if now - last_check < 0.5:
            continue
        last_check = now
        if watch is not None and _reached(*watch):
            watch = None  # every input offset is committed by a checkpoint: end like a bounded job
            _drain(job_client, (checkpoints.root(loader.settings) / "savepoints").resolve().as_uri())
        if result.done():
            try:
                first = first_event_ms(result.result())
                status = "FINISHED"
            except Exception as e:  # py4j wraps the Java failure
                if not canceled:
                    raise UserError(f"the job failed: {_root_cause(e)}") from None
                status = "CANCELED"
    # The final checkpoint committed the sinks' transactions: land everything up to the end.
    ends = loader.end_offsets()
    while not loader.drained(ends):
        loader.poll(timeout=0.2)
    return status, first
