"""Bad records go to the dead-letter topic with a reason and their original bytes; the job stays
up, good events around them are billed, and a reject's time never moves the watermark."""

from __future__ import annotations

import io
import random
import struct
from datetime import UTC, datetime
from decimal import Decimal as D

import fastavro
import pytest
import yaml
from confluent_kafka import Producer

from tallyflow.wire import avro as wire_avro

pytestmark = pytest.mark.integration

CATALOG = {
    "meters": [{"id": "api_calls", "event_type": "api_call", "aggregation": "count"}],
    "plans": [
        {
            "id": "p",
            "version": 1,
            "effective_from": "2026-01-01T00:00:00Z",
            "currency": "USD",
            "charges": [{"meter": "api_calls", "model": "per_unit", "unit_price": "1"}],
        }
    ],
    "subscriptions": [{"customer": "good", "plan": "p", "start": "2026-01-01T00:00:00Z"}],
}


def avro(record: dict, schema_id: int | None = None) -> bytes:
    v = wire_avro.latest()
    buf = io.BytesIO()
    buf.write(struct.pack(">bI", 0, v.id if schema_id is None else schema_id))
    fastavro.schemaless_writer(buf, v.schema, record)
    return buf.getvalue()


def event(event_id: str, when: datetime, **overrides) -> dict:
    base = {
        "event_id": event_id,
        "customer_id": "good",
        "event_type": "api_call",
        "event_time": when,
        "values": {},
        "dimensions": {},
        "source": None,
    }
    return {**base, **overrides}


OCT = datetime(2026, 10, 10, tzinfo=UTC)


def test_rejects_reach_dead_letter_with_reason_and_bytes(tallyflow, tmp_path):
    good = avro(event("ok-1", OCT))
    bad = {
        "garbage": b"hello, not avro",
        "unknown id": avro(event("x", OCT), schema_id=4242),
        "truncated": avro(event("x", OCT))[:12],
        "negative": avro(event("neg", OCT, values={"q": D("-1.000000000000")})),
        "future": avro(event("fut", datetime(2099, 1, 1, tzinfo=UTC))),
        "empty id": avro(event("", OCT)),
        "oversized": avro(event("big", OCT, dimensions={"blob": "x" * 1000, **{f"d{i}": "y" for i in range(70)}})),
        "too big": avro(event("huge", OCT, dimensions={f"k{i}": "v" * 1000 for i in range(66)})),
    }
    later = avro(event("ok-2", datetime(2026, 10, 10, 0, 10, tzinfo=UTC)))
    producer = Producer({"bootstrap.servers": tallyflow.bootstrap, "log_level": 0})
    for value in [good, *bad.values(), later]:
        producer.produce(tallyflow.topic("events"), key=b"good", value=value)
    producer.produce(tallyflow.topic("events"), key=b"good", value=None)  # a tombstone
    assert producer.flush(30) == 0

    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump(CATALOG))
    tallyflow("run", "--catalog", str(catalog), "--bounded")

    rejects = tallyflow.sql("SELECT reason, hex(raw_value) AS raw FROM rejects FINAL ORDER BY source_offset")
    reasons = [r["reason"] for r in rejects]
    expected = [
        "not Confluent wire format",
        "unknown schema id 4242",
        "undecodable Avro body",
        "value q is negative",
        "in the future",
        "event_id must be a string of 1 to 256 characters",
        "more than 64 dimensions",
        "exceeds the limit of 65536",
        "empty record",
    ]
    assert len(reasons) == len(expected), " | ".join(reasons)
    for reason, want in zip(reasons, expected, strict=True):
        assert want in reason
    assert [bytes.fromhex(r["raw"]) for r in rejects[:8]] == list(bad.values())

    # The reject dated 2099 did not push the watermark: the event 10 minutes after the first is on time.
    placed = tallyflow.sql("SELECT event_id, on_time FROM events FINAL ORDER BY event_id")
    assert placed == [{"event_id": "ok-1", "on_time": 1}, {"event_id": "ok-2", "on_time": 1}]
    (invoice,) = tallyflow.json("invoice", "--period", "2026-10")
    assert invoice["total"] == "2.00"


def test_fuzzed_stream_counts_in_equal_counts_out(tallyflow, tmp_path):
    """Random bytes, mutated and truncated records, huge quantities and unknown customers among
    valid events: the job finishes, every record is accepted, a resend, or a reject with a reason."""
    rng = random.Random(2026)
    valid = [avro(event(f"v{i}", OCT, values={"q": D(i)})) for i in range(300)]
    records = list(valid)
    records += [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 120))) for _ in range(200)]
    records += [
        b"\x00\x00\x00\x03\xea" + bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 80))) for _ in range(200)
    ]  # the right header, a random body: deep into the decoder
    for _ in range(300):
        r = bytearray(rng.choice(valid))
        if rng.random() < 0.5:
            del r[rng.randint(1, len(r) - 1) :]
        else:
            for _ in range(rng.randint(1, 3)):
                r[rng.randrange(len(r))] = rng.getrandbits(8)
        records.append(bytes(r))
    records += [avro(event(f"huge{i}", OCT, values={"q": D("10000000000000")})) for i in range(20)]
    records += [avro(event(f"who{i}", OCT, customer_id="nobody")) for i in range(20)]
    rng.shuffle(records)
    producer = Producer({"bootstrap.servers": tallyflow.bootstrap, "log_level": 0})
    for value in records:
        producer.produce(tallyflow.topic("events"), key=b"good", value=value)
    assert producer.flush(30) == 0

    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump(CATALOG))
    tallyflow.env["TALLYFLOW_REQUIRE_KNOWN_CUSTOMER"] = "true"
    tallyflow("run", "--catalog", str(catalog), "--bounded")

    (counts,) = tallyflow.sql("""SELECT (SELECT count() FROM events FINAL) AS accepted,
        (SELECT count() FROM duplicates FINAL) AS resent, (SELECT count() FROM rejects FINAL) AS rejected,
        (SELECT countIf(reason = '') FROM rejects FINAL) AS without_reason""")
    assert counts["accepted"] + counts["resent"] + counts["rejected"] == len(records), counts
    assert counts["without_reason"] == 0 and counts["accepted"] >= 300 - 1
    reasons = {r["reason"] for r in tallyflow.sql("SELECT DISTINCT reason FROM rejects FINAL")}
    assert any("exceeds" in r or "larger" in r or "limit" in r for r in reasons), reasons  # huge quantities
    assert any("customer" in r for r in reasons), reasons  # unknown customers
