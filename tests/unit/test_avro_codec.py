"""Confluent framing and schema resolution: every catalog version reads under the newest."""

import io
import json
import struct
from datetime import UTC, datetime
from decimal import Decimal as D

import fastavro
import pytest

from tallyflow.wire import avro

RECORD = {
    "event_id": "e1",
    "customer_id": "c1",
    "event_type": "api_call",
    "event_time": datetime(2026, 10, 3, 12, 0, 0, 123000, tzinfo=UTC),
    "values": {"gb": D("491.170000000000"), "tiny": D("0.000000000001"), "big": D("99999999999999.999999999999")},
    "dimensions": {"model": "m-large"},
    "source": "svc-a",
}


def test_round_trip_with_latest():
    data = avro.encode(RECORD, avro.latest())
    assert data[0] == 0 and struct.unpack(">I", data[1:5])[0] == avro.latest().id
    assert avro.decode(data) == RECORD


def test_older_writer_resolves_against_newer_reader():
    v1 = avro.versions()[0]
    assert v1.version == 1
    old = {k: v for k, v in RECORD.items() if k != "source"}
    decoded = avro.decode(avro.encode(old, v1))
    assert decoded == {**old, "source": None}


def test_every_version_is_backward_compatible_with_the_newest():
    newest = avro.latest()
    for v in avro.versions():
        rec = {k: RECORD[k] for k in [f["name"] for f in json.loads(v.text)["fields"]]}
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, v.schema, rec)
        buf.seek(0)
        assert fastavro.schemaless_reader(buf, v.schema, newest.schema)["event_id"] == "e1"


def test_ids_are_unique_and_pinned():
    ids = [v.id for v in avro.versions()]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)


def test_unknown_id_and_bad_magic():
    data = bytearray(avro.encode(RECORD, avro.latest()))
    with pytest.raises(ValueError, match="not Confluent wire format"):
        avro.decode(b"\x01" + bytes(data[1:]))
    data[1:5] = struct.pack(">I", 999999)
    with pytest.raises(ValueError, match="unknown schema id"):
        avro.decode(bytes(data))


def _validated(obj: dict) -> dict:
    from tallyflow.core import events

    now = datetime(2026, 12, 1, tzinfo=UTC)
    return events.validate(obj, max_quantity=D("1e25"), now=now, max_future_seconds=300)


def test_the_direct_event_encoder_writes_what_fastavro_writes():
    import random

    from tallyflow.tools import generator

    rng = random.Random(3)
    records = [_validated(e) for e in generator.generate(3000, customers=50, period="2026-10", seed=9)]
    awkward = [
        RECORD,
        {**RECORD, "values": {}, "dimensions": {}, "source": None},
        {**RECORD, "event_id": "é—" * 40, "dimensions": {"ключ": "值\u0000\n"}, "source": ""},
        {**RECORD, "values": {"zero": D("0E-12"), "max": D("99999999999999999999999999.999999999999")}},
        {**RECORD, "event_time": datetime(1970, 1, 1, 0, 0, 0, 999, tzinfo=UTC)},
        {**RECORD, "event_time": datetime(2262, 4, 11, 23, 47, 16, 854000, tzinfo=UTC)},
        # Blocks of many entries and long strings: multi-byte varints.
        {
            **RECORD,
            "values": {f"k{i}": D(rng.randrange(10**20)).scaleb(-12) for i in range(70)},
            "dimensions": {f"d{i}": "x" * rng.randrange(300) for i in range(40)},
        },
    ]
    for r in records + awkward:
        for version_id in (None, 123456):
            assert avro.encode_event(r, avro.latest(), version_id) == avro.encode(r, avro.latest(), version_id), r


def test_the_direct_encoder_refuses_what_it_cannot_write_exactly():
    with pytest.raises(ValueError, match="decimal places"):
        avro.encode_event({**RECORD, "values": {"q": D("0.0000000000001")}}, avro.latest())
    with pytest.raises(ValueError, match="precision"):
        avro.encode_event({**RECORD, "values": {"q": D(10**40)}}, avro.latest())
    with pytest.raises(ValueError, match="encode_event writes"):
        avro.encode_event(RECORD, avro.versions()[0])  # v1 has no source field
