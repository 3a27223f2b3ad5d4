"""`tallyflow bench --publish`: `produce --file` against a raw librdkafka producer, in one run.

All send the same N synthetic events to fresh topics of the configured broker, with the same
producer settings (idempotent, acks=all, lz4, the same batching): first the JSON-lines file
through tallyflow's producer (parse, validate, Avro-encode, send; timed from opening the file to
the last delivery report), then the same events as dicts through the Python API
(`EventProducer.send_batch`, timed the same way), then the same records pre-encoded, through a
bare confluent-kafka producer (timed from the first send to the last delivery report). The ratios
say what tallyflow's own per-event work costs on top of librdkafka's. The three take turns ROUNDS
times, and each is reported as its median with every run beside it: on this two-core VM one
run of the same code varies by half (the broker, librdkafka's threads and the producer share the
cores), so a single run says more about the moment than about the code.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from confluent_kafka import Producer

from tallyflow.errors import UserError
from tallyflow.ingest import producer
from tallyflow.settings import Settings
from tallyflow.tools import generator
from tallyflow.wire import avro, kafka_config, topics


def _raw(settings: Settings, records: list[tuple[bytes, bytes]]) -> float:
    raw = Producer({**kafka_config.librdkafka(settings), **producer.EventProducer.PRODUCER_CONFIG})
    topic = settings.topic(topics.EVENTS)
    started = time.perf_counter()
    for n, (key, value) in enumerate(records, start=1):
        while True:
            try:
                raw.produce(topic, value=value, key=key)
                break
            except BufferError:
                raw.poll(0.1)
        if n % 1000 == 0:
            raw.poll(0)
    if raw.flush(120):
        raise UserError("the raw producer did not deliver every record within 120 s")
    return time.perf_counter() - started


ROUNDS = 3  # file, batch, raw; file, batch, raw; ...: the median of each


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def _round(settings: Settings, path: Path, events: int, customers: int, stamp: int, phase) -> tuple[float, ...]:
    """One of each, on fresh topics: produce --file, send_batch, raw librdkafka (seconds)."""
    phase("produce --file")
    started = time.perf_counter()
    report = producer.produce_file(settings, path)
    seconds = time.perf_counter() - started
    if report.sent != events:
        raise UserError(f"produce --file sent {report.sent} of {events} events")
    phase("send_batch")
    # Made here, not kept from the start: the file's run is timed, as a user runs it, without a
    # million dicts in memory for each garbage collection to walk.
    generated = list(generator.generate(events, customers=customers, period="2026-10", seed=stamp))
    batch = replace(settings, topic_prefix=f"{settings.topic_prefix}batch.")
    started = time.perf_counter()
    with producer.EventProducer(batch) as p:
        p.send_batch(generated)
    batch_seconds = time.perf_counter() - started
    if p.report.sent != events:
        raise UserError(f"send_batch sent {p.report.sent} of {events} events")
    del generated
    phase("raw librdkafka")
    version = avro.latest()
    with path.open() as fh:
        encoded = [
            (r["customer_id"].encode(), avro.encode_event(r, version))
            for r in producer.validated_lines(fh, settings, producer.ProduceReport())
        ]
    raw_seconds = _raw(replace(settings, topic_prefix=f"{settings.topic_prefix}raw."), encoded)
    return seconds, batch_seconds, raw_seconds, sum(len(v) for _, v in encoded)


def run(settings: Settings, events: int, customers: int, on_phase=None) -> dict:
    """ROUNDS rounds, each on its own topics: the three producers take turns, so each meets the
    broker as warm (or as busy) as the others on the whole."""
    phase = on_phase or (lambda name: None)
    stamp = int(time.time())
    rounds = [replace(settings, topic_prefix=f"{settings.topic_prefix}pubbench{stamp}r{n}.") for n in range(ROUNDS)]
    targets = [
        t
        for r in rounds
        for t in (
            r,
            replace(r, topic_prefix=f"{r.topic_prefix}batch."),
            replace(r, topic_prefix=f"{r.topic_prefix}raw."),
        )
    ]
    with tempfile.TemporaryDirectory(prefix="tallyflow-publish-bench-") as tmp:
        path = Path(tmp) / "events.jsonl"
        with path.open("w") as fh:
            for e in generator.generate(events, customers=customers, period="2026-10", seed=stamp):
                fh.write(json.dumps(e) + "\n")
        try:
            for target in targets:
                topics.ensure_topics(target)
            runs = [_round(r, path, events, customers, stamp, phase) for r in rounds]
        finally:
            for target in targets:
                topics.delete_topics(target)
    files, batches, raws = ([timed[i] for timed in runs] for i in range(3))
    seconds, batch_seconds, raw_seconds = _median(files), _median(batches), _median(raws)
    return {
        "mode": "publish",
        "events": events,
        "bytes": runs[0][3],
        "rounds": ROUNDS,
        "produce_file": {
            "seconds": round(seconds, 2),
            "events_per_second": round(events / seconds),
            "runs": [round(events / t) for t in files],
        },
        "send_batch": {
            "seconds": round(batch_seconds, 2),
            "events_per_second": round(events / batch_seconds),
            "runs": [round(events / t) for t in batches],
        },
        "raw_librdkafka": {
            "seconds": round(raw_seconds, 2),
            "records_per_second": round(events / raw_seconds),
            "runs": [round(events / t) for t in raws],
        },
        "ratio": round(raw_seconds / seconds, 3),
        "send_batch_ratio": round(raw_seconds / batch_seconds, 3),
    }


def render(r: dict) -> str:
    return "\n".join(
        [
            f"publish bench: {r['events']:,} events ({r['bytes']:,} bytes of Avro), "
            f"median of {r['rounds']} alternating rounds",
            f"  produce --file   {r['produce_file']['seconds']:>7} s  "
            f"{r['produce_file']['events_per_second']:>9,} events/s (runs {r['produce_file']['runs']})",
            f"  send_batch       {r['send_batch']['seconds']:>7} s  "
            f"{r['send_batch']['events_per_second']:>9,} events/s (the same events as dicts, the Python API; "
            f"runs {r['send_batch']['runs']})",
            f"  raw librdkafka   {r['raw_librdkafka']['seconds']:>7} s  "
            f"{r['raw_librdkafka']['records_per_second']:>9,} records/s (the same records, pre-encoded; "
            f"runs {r['raw_librdkafka']['runs']})",
            f"  ratio            {r['ratio']:>7} (produce --file), {r['send_batch_ratio']} (send_batch): "
            "medians, raw over ours",
        ]
    )
