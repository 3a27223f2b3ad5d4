"""`tallyflow run`: validate and apply the catalog, run the job, land its output.

The job runs in PyFlink's local MiniCluster (a JVM child of this process) or, with `--cluster URL`
(TALLYFLOW_FLINK_CLUSTER), on that Flink session cluster, submitted through its REST API. Either
way this process runs the loader next to it, so in embedded mode the chdb store has exactly one
owner, and ends a bounded run, or a stopped one, with a savepoint the next run continues.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tallyflow.billing import balance, invoice
from tallyflow.core import catalog as catalog_mod
from tallyflow.errors import UserError
from tallyflow.land import catalog_store, clickhouse
from tallyflow.land.loader import Loader
from tallyflow.ops import cluster, jobs
from tallyflow.ops.holder import Holder
from tallyflow.settings import Settings
from tallyflow.stream import checkpoints, environment, gateway, graph, tables, warm_gateway
from tallyflow.wire import registry, topics


@dataclass
class RunResult:
    status: str
    seconds: float
    loaded: dict
    job_seconds: float = 0.0  # from submitting the job to the last result landed
    running_seconds: float = 0.0  # from the job reaching RUNNING (sources about to read) to the last result
    resumed_from: str | None = None  # the checkpoint or savepoint this run continued
    reading_seconds: float | None = None  # from the first event read (jobs/jvm FirstEvent) to the last result
    finalized: dict[str, int] = field(default_factory=dict)  # period -> invoices the settlement window finalized
    job_id: str | None = None  # `--detach`: the job submitted (or found running) on the cluster
    # Wall-clock moments (epoch seconds) of the run's phases: submitted, running, first_event_read,
    # inputs_committed (a bounded run's ends covered by a checkpoint: the end detected), savepoint,
    # job_ended, loader_drained.
    phases: dict[str, float] = field(default_factory=dict)
    jvm: str | None = None  # the local JVM: warm_gateway.how(); None: a cluster's

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "job_seconds": round(self.job_seconds, 3),
            "running_seconds": round(self.running_seconds, 3),
            "reading_seconds": None if self.reading_seconds is None else round(self.reading_seconds, 3),
            "resumed_from": self.resumed_from,
            "loaded": self.loaded,
            "finalized": self.finalized,
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
            "jvm": self.jvm,
            **({"job_id": self.job_id} if self.job_id else {}),
        }


def prepare(settings: Settings, catalog_path: str | Path):
    """Everything that can fail fast, before any JVM starts: catalog, ClickHouse, Kafka."""
    cat = catalog_mod.load(catalog_path)
    if settings.flink_cluster:
        jobs.check_cluster(settings)
    client = clickhouse.ready(settings)
    schemas = registry.of(settings)
    if schemas is not None:
        schemas.check()  # refused credentials: one line now, not a job that fails on its first event
    if not topics.broker_answers(settings, timeout=5.0):
        raise UserError(f"Kafka at {settings.bootstrap} does not answer; run `tallyflow stack up`")
    topics.ensure_topics(settings)
    catalog_store.apply(client, cat, str(catalog_path))
    return cat, client


def run(
    settings: Settings,
    catalog_path: str | Path,
    *,
    bounded: bool,
    on_progress=None,
    fresh: bool = False,
    serve: str | None = None,
    detach: bool = False,
) -> RunResult:
    if detach:
        return submit_detached(settings, catalog_path, fresh)
    gateway.start_gateway(settings, c1_only=gateway.short_run(settings, bounded))
    try:
        cat, client = prepare(settings, catalog_path)
        holder = Holder(settings, client, serve)
    except BaseException:
        gateway.abandon_gateway()
        raise
    try:
        return _run(settings, cat, client, bounded, on_progress, fresh)
    finally:
        holder.close()


def _run(settings: Settings, cat, client, bounded: bool, on_progress, fresh: bool) -> RunResult:
    # Every run continues the pipeline's newest checkpoint or savepoint (dedup state, windows,
    # rated positions, credit balances, offsets), whether the last run ended, crashed or was killed.
    restore = None if fresh else checkpoints.latest(settings)
    # A bounded run reads what the inputs hold as it starts. Its sources stay unbounded: the runner
    # ends it with a draining savepoint once the job has committed those ends, so the next run
    # restores its state (a job that finishes on its own leaves nothing to restore).
    bounds = topics.input_ends(settings) if bounded else None
    started = time.monotonic()
    loader = Loader(settings, client)
    try:
        statements = _job(settings, cat, client, loader, restore)
    except UserError:
        loader.close()
        raise
    stop = {"requested": False}

    def _stop(*_: object) -> None:
        stop["requested"] = True

    previous = signal.signal(signal.SIGTERM, _stop)
    previous_int = signal.signal(signal.SIGINT, _stop) if settings.flink_cluster else None
    phases: dict[str, float] = {}
    try:
        submitted = time.monotonic()
        phases["submitted"] = time.time()
        try:
            job_client = statements.execute().get_job_client()
        except Exception as e:  # planner and submission errors arrive as py4j/PyFlink exceptions
            raise UserError(f"the job could not start: {jobs.root_cause(e)}") from None
        if settings.flink_cluster:
            jobs.deployed(settings, str(job_client.get_job_id()))
        running = wait_running(job_client)
        phases["running"] = time.time() - (time.monotonic() - running)
        settler = _Settler(settings, loader)
        status, first_ms, savepoint = _supervise(job_client, loader, stop, on_progress, bounds, settler, phases)
        warm_gateway.release()  # the job has ended: a warm JVM may serve the next run
        if first_ms:
            phases["first_event_read"] = first_ms / 1000
        if savepoint is not None:
            checkpoints.prune(settings, savepoint)
        now = time.monotonic()
        reading = time.time() - first_ms / 1000 if first_ms else None
        return RunResult(
            status,
            now - started,
            loader.stats.as_dict(),
            now - submitted,
            now - running,
            str(restore) if restore else None,
            reading,
            settler.finalized,
            phases=dict(sorted(phases.items(), key=lambda kv: kv[1])),
            jvm=None if settings.flink_cluster else warm_gateway.how(),
        )
    except KeyboardInterrupt:
        stop["requested"] = True
        return RunResult("CANCELED", time.monotonic() - started, loader.stats.as_dict())
    finally:
        signal.signal(signal.SIGTERM, previous)
        if previous_int is not None:
            signal.signal(signal.SIGINT, previous_int)
        loader.close()


def _job(settings: Settings, cat, client, loader: Loader, restore: Path | None):
    """The job's statements, continuing `restore`. Lands what earlier runs committed first (a
    killed run's last checkpoint, say): customers the restored state does not know (every one, in
    a first or fresh run) continue their credit balances and entry numbers from the ledger, which
    must be complete for that."""
    loader.drain()
    seeds = balance.seeds_for_start(settings, client, cat) if graph.credit_meters(cat) else None
    options = environment.JobOptions(
        name=jobs.job_name(settings), credit_seeds=seeds, resume_from=restore.resolve().as_uri() if restore else None
    )
    try:
        return graph.kafka_job(environment.create_environment(settings), settings, cat, options)
    except Exception as e:  # planner errors arrive as py4j/PyFlink exceptions
        raise UserError(f"the job could not be built: {jobs.root_cause(e)}") from None


def submit_detached(settings: Settings, catalog_path: str | Path, fresh: bool = False) -> RunResult:
    """`run --cluster URL --detach`: submit the job (continuing the newest snapshot) and return once
    it runs; `tallyflow load` lands its output. Idempotent: when this pipeline's job already runs
    there, nothing is submitted (a second `docker compose up` starts no second copy)."""
    started = time.monotonic()
    if not settings.flink_cluster:
        raise UserError("--detach needs a Flink cluster: --cluster URL or TALLYFLOW_FLINK_CLUSTER")
    running = cluster.running_jobs(settings.flink_cluster, jobs.job_name(settings))
    if running:
        return RunResult("ALREADY_RUNNING", time.monotonic() - started, {"rows": {}}, job_id=running[0])
    cat, client = prepare(settings, catalog_path)
    restore = None if fresh else checkpoints.latest(settings)
    loader = Loader(settings, client)
    try:
        statements = _job(settings, cat, client, loader, restore)
    finally:
        loader.close()
    try:
        job_client = statements.execute().get_job_client()
    except Exception as e:  # planner and submission errors arrive as py4j/PyFlink exceptions
        raise UserError(f"the job could not start: {jobs.root_cause(e)}") from None
    job_id = str(job_client.get_job_id())
    jobs.deployed(settings, job_id)
    return RunResult(
        "SUBMITTED",
        time.monotonic() - started,
        {"rows": {}},
        resumed_from=str(restore) if restore else None,
        job_id=job_id,
    )


def load_forever(
    settings: Settings, catalog_path: str | Path | None, on_progress=None, serve: str | None = None
) -> dict:
    """`tallyflow load`: land a job's output that runs elsewhere (a Flink cluster) until stopped;
    with `serve`, also the API with /healthz and /readyz (the probes of a Kubernetes loader)."""
    client = clickhouse.ready(settings)
    if catalog_path is not None:
        catalog_store.apply(client, catalog_mod.load(catalog_path), str(catalog_path))
    loader = Loader(settings, client)
    holder = Holder(settings, client, serve)
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
        holder.close()
    return loader.stats.as_dict()


def wait_running(job_client, deadline_s: float = 120.0) -> float:
    """When the job reached RUNNING: planning and submission are over, tasks are deploying and
    the sources are about to read (the start of a throughput measurement; see bench.py). Raises
    UserError when it is still being created or initialized at the deadline."""
    started = time.monotonic()
    status = "unknown"
    while time.monotonic() - started < deadline_s:
        try:
            status = str(job_client.get_job_status().result())
        except Exception:  # a finished local job may no longer answer; it certainly ran
            return time.monotonic()
        if status != "JobStatus.CREATED" and status != "JobStatus.INITIALIZING":
            return time.monotonic()
        time.sleep(0.02)  # a status poll while the job deploys, bounded by the deadline
    raise UserError(
        f"the job did not reach RUNNING within {deadline_s:g} s (still {status.split('.')[-1]}): "
        "its tasks were not deployed; check the TaskManager's free slots and memory"
    )


class _EndWatch:
    """Whether a bounded run's job has read its inputs to the ends recorded at its start: its
    consumer group's offsets, committed by the checkpoints, reach them."""

    def __init__(self, settings: Settings, bounds: dict[str, int]):
        self.settings, self.bounds = settings, bounds
        self.moved: dict[str, tuple[int, float]] = {}  # partition -> (committed offset, since when)

    def reached(self) -> bool:
        done = topics.group_positions(self.settings, f"{self.settings.topic_prefix}{tables.JOB_GROUP}")
        now = time.monotonic()
        behind = {}
        for tp, end in self.bounds.items():
            at = done.get(tp, 0)
            if at < end:
                if self.moved.get(tp, (None,))[0] != at:
                    self.moved[tp] = (at, now)
                behind[tp] = (at, end)
        if not behind:
            return True
        # The source commits the offset after the last record it read: short of the end when the
        # end is a transaction marker (a transactional producer). Once the committed offsets stood
        # still for two checkpoints, ask whether a read_committed reader would find anything left.
        settle = 2 * self.settings.checkpoint_interval.total_seconds() + 1
        if any(now - self.moved[tp][1] < settle for tp in behind):
            return False
        if topics.visible_records_between(self.settings, behind):
            self.moved.update({tp: (at, now) for tp, (at, _) in behind.items()})  # ask again later
            return False
        return True


class _Settler:
    """Finalizes the periods whose settlement window has passed, from the running pipeline
    (TALLYFLOW_SETTLEMENT_WINDOW): once a period is due, the input as of that moment is read to
    its ends by the job (its group committed them: a checkpoint covers them), and everything the
    job committed up to then has landed, so the invoices hold every event that arrived in time.
    Events that arrive later are corrections on the next invoice."""

    INTERVAL_S = 5.0

    def __init__(self, settings: Settings, loader: Loader):
        self.settings, self.loader = settings, loader
        self.finalized: dict[str, int] = {}
        self._next = 0.0
        self._due_at: datetime | None = None  # when the periods being settled fell due
        self._inputs: dict[str, int] | None = None  # the input ends as of then
        self._outputs: dict[tuple[str, int], int] | None = None  # the output ends once those were read

    def tick(self, now: float) -> None:
        if now < self._next:
            return
        self._next = now + self.INTERVAL_S
        group = f"{self.settings.topic_prefix}{tables.JOB_GROUP}"
        if self._inputs is None:
            wall = datetime.now(UTC)
            if invoice.due_periods(self.loader.client, self.settings.settlement_window, wall):
                self._due_at, self._inputs = wall, topics.input_ends(self.settings)
        elif self._outputs is None:
            if not topics.behind(self.settings, self._inputs, group):
                self._outputs = self.loader.end_offsets()
        elif self.loader.drained(self._outputs):
            self.settle(self._due_at)
            self._inputs = self._outputs = None

    def settle(self, due_as_of: datetime | None = None) -> None:
        """Finalizes the periods due as of `due_as_of` (default now): everything read has landed."""
        done = invoice.finalize_due(self.loader.client, self.settings.settlement_window, due_as_of=due_as_of)
        for period, n in done.items():
            self.finalized[period] = self.finalized.get(period, 0) + n


def first_event_ms(execution_result) -> int | None:
    """When the job read its first event (epoch ms), from the accumulator jobs/jvm FirstEvent keeps."""
    value = execution_result.get_accumulator_result("tallyflow.first-event-ms")
    # LongMinimum starts at Long.MAX_VALUE: a job that read nothing has no first event.
    return int(value) if value is not None and int(value) < 2**62 else None


def _supervise(
    job_client,
    loader: Loader,
    stop: dict,
    on_progress,
    bounds: dict[str, int] | None = None,
    settler: _Settler | None = None,
    phases: dict[str, float] | None = None,
) -> tuple[str, int | None, Path | None]:
    """Lands the job's output while it runs; with `bounds`, ends it with a draining savepoint once
    its group has committed every input end (a checkpoint covers them). Returns the job's end
    status, when it read its first event, and the savepoint it ended with."""
    # The local MiniCluster shuts down with the job, so the job's end is read from its
    # execution-result future, never by asking for a status afterwards.
    result = job_client.get_job_execution_result()
    marks = phases if phases is not None else {}
    watch = _EndWatch(loader.settings, bounds) if bounds is not None else None
    status = "RUNNING"
    first = savepoint = None
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
            savepoint = jobs.stop(job_client, loader.settings)
        # Each check is a py4j round trip; asked on every busy poll it cost seconds of CPU per run.
        if now - last_check < 0.5:
            continue
        last_check = now
        if settler is not None and not canceled:
            settler.tick(now)
        if watch is not None and not canceled and watch.reached():
            watch = None
            marks["inputs_committed"] = time.time()
            savepoint = jobs.drain(job_client, loader.settings)
            marks["savepoint"] = time.time()
        if result.done():
            marks["job_ended"] = time.time()
            try:
                first = first_event_ms(result.result())
                status = "STOPPED" if canceled else "FINISHED"  # stopped with a savepoint
            except Exception as e:  # py4j wraps the Java failure
                # Cancelled from elsewhere (the Flink UI, `flink cancel`): its retained checkpoint
                # is where the next run continues, as after our own cancel.
                if not canceled and "JobCancellationException" not in str(e):
                    raise UserError(f"the job failed: {jobs.root_cause(e)}") from None
                status = "CANCELED"
    # The final checkpoint committed the sinks' transactions: land everything up to the end.
    loader.drain()
    marks["loader_drained"] = time.time()
    if settler is not None and status == "FINISHED":
        settler.settle()  # the job read its inputs to their ends and all of it landed
    return status, first, savepoint
