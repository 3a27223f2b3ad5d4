"""`tallyflow bench --latency`: how long a credit-priced event takes to reach its customer's
balance, at a steady publish rate.

Publishes `rate` events per second for `seconds` (after a warm-up that is not counted) to fresh
topics, each stamped with its publish time as event time, for customers on a credit plan; the
metering job runs unbounded next to it; a consumer reads the credit-signals topic. An event's
latency is the time from its publish to the arrival of the first balance update of its customer
that covers it (its `last_event_time` is at or after the event's). Reported: p50, p99 and max,
and how many events no balance update covered.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from bisect import bisect_left
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime

from confluent_kafka import Consumer

from tallyflow.core import catalog
from tallyflow.errors import UserError
from tallyflow.ingest import grants
from tallyflow.ingest.producer import EventProducer
from tallyflow.ops import runner
from tallyflow.settings import Settings
from tallyflow.stream import checkpoints, environment, graph
from tallyflow.wire import avro, kafka_config, topics

CUSTOMERS = 20


def bench_catalog(customers: int) -> catalog.Catalog:
    ids = [f"lat_{i:03d}" for i in range(customers)]
    return catalog.parse(
        {
            "meters": [{"id": "images", "event_type": "image_generated", "aggregation": "count"}],
            "plans": [
                {
                    "id": "prepaid",
                    "version": 1,
                    "effective_from": "2020-01-01T00:00:00Z",
                    "currency": "USD",
                    "credits": {"rates": {"images": "1"}, "credit_price": "0.01", "alert_thresholds": ["0.5", "0.9"]},
                }
            ],
            "subscriptions": [{"customer": c, "plan": "prepaid", "start": "2020-01-01T00:00:00Z"} for c in ids],
            "grants": [
                {"customer": c, "grant_id": "g", "credits": "1000000000", "effective_at": "2020-01-01T00:00:00Z"}
                for c in ids
            ],
        },
        "latency bench",
    )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _publish(
    settings: Settings, rate: int, seconds: int, warmup: int, sent: dict[str, list[int]], errors: list[str]
) -> None:
    """A steady rate: by each instant, rate x elapsed events are out. Events of the measured
    part (after the warm-up) are recorded per customer with their publish time."""
    version = avro.latest()
    start = time.monotonic_ns()
    end_ns = (warmup + seconds) * 1_000_000_000
    n = 0
    try:
        with EventProducer(settings) as producer:
            while (elapsed := time.monotonic_ns() - start) < end_ns:
                due = elapsed * rate // 1_000_000_000
                while n < due:
                    customer = f"lat_{n % CUSTOMERS:03d}"
                    t = _now_ms()
                    producer.send_raw(
                        customer.encode(),
                        avro.encode_event(
                            {
                                "event_id": f"e{n}",
                                "customer_id": customer,
                                "event_type": "image_generated",
                                "event_time": datetime.fromtimestamp(t // 1000, UTC).replace(
                                    microsecond=t % 1000 * 1000
                                ),
                                "values": {},
                                "dimensions": {},
                                "source": "latency-bench",
                            },
                            version,
                        ),
                    )
                    if elapsed >= warmup * 1_000_000_000:
                        sent[customer].append(t)
                    n += 1
                time.sleep(0.005)  # pacing between 5 ms slices of the steady rate
    except Exception as e:  # reported by the caller; the thread must not die silently
        errors.append(str(e))


def run(settings: Settings, rate: int, seconds: int, warmup: int = 15) -> dict:
    if rate < 1 or seconds < 1:
        raise UserError("--rate and --seconds must be positive")
    # Only Kafka is involved: balance updates are read from the signals topic, not from ClickHouse.
    bench = replace(settings, topic_prefix=f"{settings.topic_prefix}lat{int(time.time())}.")
    topics.ensure_topics(bench)
    cat = bench_catalog(CUSTOMERS)
    t_env = environment.create_environment()
    statements = graph.kafka_job(
        t_env, bench, cat, environment.JobOptions(bounded=False, name="tallyflow-latency-bench")
    )
    job_client = statements.execute().get_job_client()
    runner.wait_running(job_client)
    consumer = Consumer(
        {
            **kafka_config.librdkafka(bench),
            "group.id": f"{bench.topic_prefix}latency",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "logger": topics.quiet_logger(),
        }
    )
    consumer.subscribe([bench.topic(topics.SIGNALS)])
    sent: dict[str, list[int]] = defaultdict(list)
    errors: list[str] = []
    publisher = threading.Thread(target=_publish, args=(bench, rate, seconds, warmup, sent, errors), daemon=True)
    updates: dict[str, list[tuple[int, int]]] = defaultdict(list)  # customer -> (last_event_time, received)
    try:
        publisher.start()
        deadline = None
        while True:
            msg = consumer.poll(0.1)
            received = _now_ms()
            if msg is not None and not msg.error() and msg.value():
                s = json.loads(msg.value() or b"{}")
                if s.get("kind") == "balance" and s.get("last_event_time"):
                    updates[s["customer_id"]].append((_iso_ms(s["last_event_time"]), received))
            if not publisher.is_alive():
                deadline = deadline or time.monotonic() + 10.0
                if time.monotonic() > deadline or _covered_all(sent, updates):
                    break
    finally:
        consumer.close()
        job_client.cancel().result()  # before its snapshots go: a late checkpoint would write again
        shutil.rmtree(checkpoints.root(bench), ignore_errors=True)
        topics.delete_topics(bench)
    if errors:
        raise UserError(f"publishing failed: {errors[0]}")
    return _report(rate, seconds, warmup, sent, updates)


def _iso_ms(text: str) -> int:
    return grants.parse_time(text, "last_event_time")


def _covered_all(sent: dict[str, list[int]], updates: dict[str, list[tuple[int, int]]]) -> bool:
    return all(updates.get(c) and max(u[0] for u in updates[c]) >= ts[-1] for c, ts in sent.items() if ts)


def _report(
    rate: int, seconds: int, warmup: int, sent: dict[str, list[int]], updates: dict[str, list[tuple[int, int]]]
) -> dict:
    latencies: list[int] = []
    missing = 0
    for customer, times in sent.items():
        # The first update covering an event: the earliest arrival among updates whose
        # last_event_time is at or after the event's (arrival order is per customer).
        ups = sorted(updates.get(customer, []), key=lambda u: u[1])
        covered_until: list[int] = []
        arrivals: list[int] = []
        for last, received in ups:
            if not covered_until or last > covered_until[-1]:
                covered_until.append(last)
                arrivals.append(received)
        for t in times:
            i = bisect_left(covered_until, t)
            if i == len(covered_until):
                missing += 1
            else:
                latencies.append(arrivals[i] - t)
    latencies.sort()
    if not latencies:
        raise UserError("no balance update arrived; is the job running?")

    def pct(p: int) -> int:
        return latencies[min(len(latencies) - 1, (len(latencies) * p + 99) // 100 - 1)]

    return {
        "rate": rate,
        "seconds": seconds,
        "warmup_seconds": warmup,
        "customers": CUSTOMERS,
        "events_measured": sum(len(t) for t in sent.values()),
        "covered": len(latencies),
        "missing": missing,
        "latency_ms": {"p50": pct(50), "p99": pct(99), "max": latencies[-1]},
    }


def render(r: dict) -> str:
    lat = r["latency_ms"]
    return (
        f"{r['events_measured']} events at {r['rate']}/s for {r['seconds']} s "
        f"(after {r['warmup_seconds']} s warm-up), {r['customers']} customers\n"
        f"  publish -> balance update: p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms"
        f"  ({r['missing']} events not covered)"
    )
