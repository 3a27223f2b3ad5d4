"""`/metrics`: the API's own request metrics, the loader's (land/metrics.py, when the loader runs in
this process), and, read on each scrape (cached like the API), what any serve process can see:
the loader's lag per topic and partition (from Kafka), rows in the store per kind, and invoice
readiness per period. deploy/prometheus/rules.yml turns them into the pipeline's SLIs and alerts."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tallyflow.settings import Settings
from tallyflow.stream import checkpoints
from tallyflow.wire import topics

REQUESTS = Counter("tallyflow_api_requests", "API requests", ["route", "status"])
LATENCY = Histogram(
    "tallyflow_api_request_seconds",
    "API request latency",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
OUTPUTS = tuple(t for t in topics.ALL if t not in topics.JOB_INPUTS)


class HttpMetrics:
    def observe(self, route: str, status: int, seconds: float) -> None:
        REQUESTS.labels(route, str(status)).inc()
        LATENCY.labels(route).observe(seconds)


def exposition() -> tuple[bytes, str]:
    """This process's metrics, and the loader's from the process that holds the embedded store when
    this server reads through it (`run --serve`, or `serve` beside a running `run`)."""
    body = generate_latest(REGISTRY)
    inner: Any = getattr(getattr(_collector.store, "_client", None), "inner", None)
    if hasattr(inner, "metrics"):
        with contextlib.suppress(Exception):  # the holder is away: its metrics are missing this scrape
            body += inner.metrics().encode()
    return body, CONTENT_TYPE_LATEST


def lag(settings: Settings) -> dict[str, int]:
    """Records the loader has not landed yet, per "topic:partition" (0 where it is caught up)."""
    ends = topics.committed_ends(settings, OUTPUTS)
    done = topics.group_positions(settings, f"{settings.topic_prefix}{topics.LOADER_GROUP}")
    return {tp: max(0, end - done.get(tp, 0)) for tp, end in ends.items()}


def pipeline_extras(settings: Settings) -> dict:
    """The admin view's parts that come from Kafka and the checkpoint directory."""
    out: dict[str, Any] = {"loader_lag": [], "last_checkpoint": None}
    try:
        out["loader_lag"] = [
            {"topic": tp.rsplit(":", 1)[0], "partition": int(tp.rsplit(":", 1)[1]), "records": n}
            for tp, n in sorted(lag(settings).items())
        ]
    except Exception as e:  # the broker is away: say so, keep the rest of the view
        out["loader_lag_error"] = str(e).splitlines()[0] if str(e) else type(e).__name__
    latest = checkpoints.latest(settings)
    if latest is not None:
        when = datetime.fromtimestamp(latest.stat().st_mtime, UTC)
        out["last_checkpoint"] = {"path": str(latest), "at": when.isoformat(timespec="seconds")}
    return out


class _StoreCollector(Collector):
    """Gauges read at scrape time: lag (Kafka), landed rows and invoice readiness (ClickHouse)."""

    def __init__(self) -> None:
        self.settings: Settings | None = None
        self.store: Any = None
        self._lag: tuple[float, dict[str, int]] = (0.0, {})

    def collect(self):
        if self.settings is None:
            return
        lag_g = GaugeMetricFamily(
            "tallyflow_loader_lag_records", "Committed output records not landed yet", labels=["topic", "partition"]
        )
        now = time.monotonic()
        if now - self._lag[0] > self.settings.serve_cache.total_seconds():
            try:
                self._lag = (now, lag(self.settings))
            except Exception:  # the broker is away: no lag sample this scrape
                self._lag = (now, {})
        for tp, n in sorted(self._lag[1].items()):
            topic, partition = tp.rsplit(":", 1)
            lag_g.add_metric([topic.removeprefix(self.settings.topic_prefix), partition], n)
        yield lag_g
        up = GaugeMetricFamily("tallyflow_store_up", "1 when ClickHouse answers the API")
        try:
            view = self.store.pipeline()
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        rows = GaugeMetricFamily("tallyflow_store_rows", "Rows in the store", labels=["kind", "detail"])
        for c in view["counts"]:
            rows.add_metric([c["what"], c["detail"]], c["n"])
        yield rows
        open_g = GaugeMetricFamily(
            "tallyflow_invoice_open_customers", "Customers whose invoice of a period is not final", labels=["period"]
        )
        overdue = GaugeMetricFamily(
            "tallyflow_invoice_overdue_seconds",
            "How long past its settlement window a period still has open invoices (0: not due yet)",
            labels=["period"],
        )
        wall = datetime.now(UTC)
        for p in view["unsettled_periods"]:
            open_g.add_metric([p["period"]], p["open_customers"])
            due = datetime.fromisoformat(p["due_at"].replace("Z", "+00:00"))
            overdue.add_metric([p["period"]], max(0.0, (wall - due).total_seconds()))
        yield open_g
        yield overdue


_collector = _StoreCollector()
REGISTRY.register(_collector)


def register_store(settings: Settings, store: Any) -> None:
    _collector.settings, _collector.store = settings, store
