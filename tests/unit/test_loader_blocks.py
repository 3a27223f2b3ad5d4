"""The loader's JSON bodies (land/loader.py): a record's documents, one or a block, each with the
record's Kafka coordinates first."""

from __future__ import annotations

import json

from tallyflow.land.loader import rows_in, with_coordinates


def test_every_document_of_a_block_gets_the_records_coordinates():
    docs = [{"event_id": "a", "note": "line\nbreak {x}"}, {"event_id": "b", "values": {}}, {"event_id": "c"}]
    block = b"\n".join(json.dumps(d, separators=(",", ":")).encode() for d in docs)
    body = with_coordinates(3, 1234, block)
    rows = [json.loads(line) for line in body.split(b"\n")]
    assert rows == [{"kafka_partition": 3, "kafka_offset": 1234, **d} for d in docs]
    assert rows_in(body) == 3


def test_a_single_document_is_a_block_of_one():
    body = with_coordinates(0, 7, b'{"event_id":"a"}')
    assert json.loads(body) == {"kafka_partition": 0, "kafka_offset": 7, "event_id": "a"}
    assert rows_in(body) == 1 and rows_in(b"") == 0
