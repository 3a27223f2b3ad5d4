"""Confluent wire format for UsageEvent: magic byte 0, 4-byte big-endian schema id, Avro body.

Ids come from schemas/catalog.json (pinned) unless a registry URL is configured, in which case the
writer schema is registered under the subject `<events topic>-value` and its id used.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro

from tallyflow.settings import REPO_ROOT

SCHEMAS_DIR = REPO_ROOT / "schemas"
SUBJECT = "usage-event"
MAGIC = 0
_HEADER = struct.Struct(">bI")


@dataclass(frozen=True)
class SchemaVersion:
    id: int
    version: int
    schema: Any  # parsed fastavro schema
    text: str


@cache
def versions(subject: str = SUBJECT, schemas_dir: Path = SCHEMAS_DIR) -> tuple[SchemaVersion, ...]:
    doc = json.loads((schemas_dir / "catalog.json").read_text())
    out = []
    for v in doc["subjects"][subject]:
        text = (schemas_dir / v["file"]).read_text()
        out.append(SchemaVersion(v["id"], v["version"], fastavro.parse_schema(json.loads(text)), text))
    return tuple(sorted(out, key=lambda s: s.version))


def latest(subject: str = SUBJECT) -> SchemaVersion:
    return versions(subject)[-1]


def by_id(schema_id: int, subject: str = SUBJECT) -> SchemaVersion | None:
    return next((v for v in versions(subject) if v.id == schema_id), None)


def encode(record: dict, version: SchemaVersion, schema_id: int | None = None) -> bytes:
    buf = io.BytesIO()
    buf.write(_HEADER.pack(MAGIC, version.id if schema_id is None else schema_id))
    fastavro.schemaless_writer(buf, version.schema, record)
    return buf.getvalue()


def decode(data: bytes, reader: SchemaVersion | None = None, subject: str = SUBJECT) -> dict:
    """Decodes with the writer schema named by the id, resolved against the reader schema."""
    if len(data) < 5 or data[0] != MAGIC:
        raise ValueError("not Confluent wire format")
    _, schema_id = _HEADER.unpack_from(data)
    writer = by_id(schema_id, subject)
    if writer is None:
        raise ValueError(f"unknown schema id {schema_id}")
    reader = reader or latest(subject)
    record = fastavro.schemaless_reader(io.BytesIO(data[5:]), writer.schema, reader.schema)
    if not isinstance(record, dict):
        raise ValueError(f"schema id {schema_id} is not a record schema")
    return record
