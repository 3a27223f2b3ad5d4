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
