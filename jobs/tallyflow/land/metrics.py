"""The loader's Prometheus metrics (prometheus-client, the process's default registry): what
`/metrics` of `run --serve` and `load --serve` shows about landing."""

from __future__ import annotations

import json
import time
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

ROWS = Counter("tallyflow_loader_rows", "Rows landed in ClickHouse", ["table"])
BATCHES = Counter("tallyflow_loader_batches", "Insert batches (one topic partition's offset range each)", ["table"])
BATCH_ROWS = Histogram(
    "tallyflow_loader_batch_rows", "Rows per insert batch", buckets=(1, 10, 100, 1_000, 10_000, 50_000, 100_000)
)
INSERT_SECONDS = Histogram(
    "tallyflow_loader_insert_seconds",
    "Time of one insert into ClickHouse",
    ["table"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
RETRIES = Counter("tallyflow_loader_retries", "Polls whose inserts failed and were read again")
OUTAGE_SECONDS = Counter("tallyflow_loader_outage_seconds", "Seconds ClickHouse refused inserts")
LAST_COMMIT = Gauge("tallyflow_loader_last_commit_timestamp_seconds", "When the loader last committed offsets")
LEDGER_LAG = Histogram(
    "tallyflow_credit_ledger_write_seconds",
    "From a credit ledger entry's emission by the job to its landing in ClickHouse (newest entry of each batch)",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)


# When this process's loader last inserted (monotonic clock): reads from other processes give way
# to a loader at work (land/shared_store.py).
last_insert = 0.0


def landed(table: str, rows: int, seconds: float, last_value: bytes | None) -> None:
    global last_insert
    last_insert = time.monotonic()
    ROWS.labels(table).inc(rows)
    BATCHES.labels(table).inc()
    BATCH_ROWS.observe(rows)
    INSERT_SECONDS.labels(table).observe(seconds)
    if table == "credit_ledger" and last_value:
        # One entry a batch is parsed (not every row): the newest one, the batch's worst case is older.
        try:
            emitted = json.loads(last_value).get("emitted_at")
            if emitted:
                t = datetime.fromisoformat(emitted.replace("Z", "+00:00")).timestamp()
                LEDGER_LAG.observe(max(0.0, time.time() - t))
        except (ValueError, AttributeError):
            pass


def text() -> str:
    """This process's loader metrics in the Prometheus text format (what a holder hands to the
    serve process that reads through it)."""
    from prometheus_client import REGISTRY, generate_latest

    body = generate_latest(REGISTRY).decode()
    keep = ("tallyflow_loader_", "tallyflow_credit_ledger_")
    return "".join(
        line + "\n"
        for line in body.splitlines()
        if line.startswith(keep) or line.startswith(tuple(f"# {w} {k}" for w in ("HELP", "TYPE") for k in keep))
    )


def committed() -> None:
    LAST_COMMIT.set(time.time())


def retried(outage_seconds: float) -> None:
    RETRIES.inc()
    OUTAGE_SECONDS.inc(outage_seconds)
