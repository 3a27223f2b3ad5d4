"""The job on its Flink: where a run submits it (the local MiniCluster or a session cluster),
the checks before a cluster submission, and the savepoints a run ends or stops it with."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlparse

from tallyflow.errors import UserError
from tallyflow.ops import cluster
from tallyflow.settings import Settings
from tallyflow.stream import checkpoints


def root_cause(exc: BaseException) -> str:
    text = str(exc)
    causes = [line.strip() for line in text.splitlines() if "Caused by:" in line]
    cause = (causes[-1] if causes else text.strip().splitlines()[0] if text.strip() else type(exc).__name__)[:500]
    if "Cannot map checkpoint/savepoint state" in text:  # the job's operators changed since the snapshot
        cause += " (the job's plan changed since its state was saved; `tallyflow run --fresh` starts without it)"
    return cause


def job_name(settings: Settings) -> str:
    """The job's name names its pipeline (topic prefix): one cluster runs several pipelines."""
    return f"tallyflow-metering {settings.topic_prefix.rstrip('.')}"


def check_cluster(settings: Settings) -> dict:
    """The cluster answers, runs no job of this pipeline already, and has a free slot for every
    parallel instance, or a one-line error (a job submitted without slots would wait minutes for
    the slot request to time out)."""
    url = settings.flink_cluster or ""
    info = cluster.overview(url, timeout=5.0)
    if info is None:
        raise UserError(f"the Flink cluster at {url} does not answer; start one with `tallyflow cluster up`")
    running = cluster.running_jobs(url, job_name(settings))
    if running:
        raise UserError(
            f"the Flink cluster at {url} already runs this pipeline's job ({running[0]}); "
            "a second copy would count every event twice: stop it first"
        )
    if info.get("slots-available", 0) < settings.parallelism:
        raise UserError(
            f"the Flink cluster at {url} has {info.get('slots-available', 0)} free task slots of "
            f"{info.get('slots-total', 0)}; the job needs {settings.parallelism} (is another job running?)"
        )
    return info


def deployed(settings: Settings, job_id: str, deadline_s: float = 30.0) -> None:
    """Remembers where the cluster checkpoints this job (the next run restores from there), and
    waits until its tasks are deployed: a cluster whose slots went to another job since the check
    would leave them waiting minutes for a slot."""
    url = settings.flink_cluster or ""
    conf = {e["key"]: e["value"] for e in cluster.rest(url, "/jobmanager/config")}
    if conf.get("execution.checkpointing.dir"):
        checkpoints.remember(settings, f"{conf['execution.checkpointing.dir'].rstrip('/')}/{job_id}")
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        job = cluster.rest(url, f"/jobs/{job_id}")
        states = {v["status"] for v in job.get("vertices", [])}
        if job.get("state") not in ("CREATED", "INITIALIZING", "RUNNING") or states <= {"RUNNING", "FINISHED"}:
            return
        time.sleep(0.25)  # a status poll while the tasks deploy, bounded by the deadline
    cluster.rest(url, f"/jobs/{job_id}?mode=cancel", method="PATCH")
    raise UserError(
        f"the job's tasks were not deployed on {url} within {deadline_s:g} s (no free task slot?); "
        "the job was cancelled"
    )


def drain(job_client, settings: Settings) -> Path:
    """Stop with a savepoint, advancing to the end of event time (what a bounded input's end does:
    every window fires); the savepoint is where the next run continues. Through the Java client:
    PyFlink's wrapper lacks Flink 2's savepoint-format argument."""
    from pyflink.java_gateway import get_gateway

    gateway = get_gateway()
    # Native: RocksDB's own files, copied; a canonical savepoint rewrites every state entry (the dedup
    # state holds one per event within the horizon), which costs seconds per million entries.
    fmt = gateway.jvm.org.apache.flink.core.execution.SavepointFormatType.NATIVE
    attempts = 1200
    for attempt in range(attempts):
        future = job_client._j_job_client.stopWithSavepoint(True, savepoint_dir(settings), fmt)
        try:
            location = str(future.get(300, gateway.jvm.java.util.concurrent.TimeUnit.SECONDS))
            return _snapshot(location, settings)
        except Exception as e:  # py4j wraps the Java failure
            cause, text = root_cause(e), str(e)
            # Right after a restore the tasks may still be deploying: the savepoint is refused.
            if "Not all required tasks are currently running" not in text or attempt == attempts - 1:
                raise UserError(f"the bounded job could not be stopped at the input's ends: {cause}") from None
        time.sleep(0.05)  # backoff between attempts (a minute in all), bounded by the attempt count
    raise AssertionError("unreachable: the last attempt returns or raises")


def savepoint_dir(settings: Settings) -> str | None:
    """Locally the pipeline's savepoints/; on a cluster, the savepoint directory of its config."""
    return None if settings.flink_cluster else checkpoints.savepoints(settings).resolve().as_uri()


def stop(job_client, settings: Settings) -> Path | None:
    """Ctrl-C or SIGTERM: stop with a savepoint (no drain: windows stay open and continue in the
    next run); if that fails, cancel, and the next run restores the last retained checkpoint."""
    from pyflink.java_gateway import get_gateway

    gateway = get_gateway()
    fmt = gateway.jvm.org.apache.flink.core.execution.SavepointFormatType.NATIVE
    try:
        future = job_client._j_job_client.stopWithSavepoint(False, savepoint_dir(settings), fmt)
        return _snapshot(str(future.get(120, gateway.jvm.java.util.concurrent.TimeUnit.SECONDS)), settings)
    except Exception:  # py4j wraps the Java failure; the retained checkpoint is the fallback
        job_client.cancel()
        return None


def _snapshot(location: str, settings: Settings) -> Path:
    """A savepoint's path; on a cluster it is also remembered for the next run's restore."""
    parsed = urlparse(location)  # Flink answers file:/path, or a bare path
    if settings.flink_cluster:
        checkpoints.remember(settings, location if parsed.scheme else Path(location).resolve().as_uri())
    return Path(parsed.path)
