"""Confluent wire format for UsageEvent: magic byte 0, 4-byte big-endian schema id, Avro body.

Ids come from schemas/catalog.json (pinned) unless a registry URL is configured, in which case the
writer schema is registered under the subject `<events topic>-value` and its id used.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import fastavro

from tallyflow.settings import REPO_ROOT

SCHEMAS_DIR = REPO_ROOT / "schemas"
SUBJECT = "usage-event"
MAGIC = 0
_HEADER = struct.Struct(">bI")
_SCALE_FACTOR = 10**12  # the decimal scale of the values (schemas/event_limits.json decimal_scale)


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
    """Any record of any version, through fastavro (about 50 us a record: its per-call set-up)."""
    buf = io.BytesIO()
    buf.write(_HEADER.pack(MAGIC, version.id if schema_id is None else schema_id))
    fastavro.schemaless_writer(buf, version.schema, record)
    return buf.getvalue()


# The UsageEvent layout encode_event writes, field by field: checked against the latest schema at
# first use, so a new schema version fails loudly instead of being written in the old layout.
_EVENT_LAYOUT = (
    ("event_id", "string"),
    ("customer_id", "string"),
    ("event_type", "string"),
    ("event_time", "timestamp-millis"),
    ("values", "map<decimal(38,12)>"),
    ("dimensions", "map<string>"),
    ("source", "[null,string]"),
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _layout(schema: dict) -> tuple[tuple[str, str], ...]:
    def kind(t: Any) -> str:
        if isinstance(t, list):
            return "[" + ",".join(kind(x) for x in t) + "]"
        if isinstance(t, dict):
            if t.get("logicalType") == "decimal":
                return f"decimal({t['precision']},{t.get('scale', 0)})"
            if t.get("logicalType"):
                return str(t["logicalType"])
            if t["type"] == "map":
                return f"map<{kind(t['values'])}>"
            return kind(t["type"])
        return str(t)

    return tuple((f["name"], kind(f["type"])) for f in schema["fields"])


@cache
def _event_writer(schema_text: str) -> None:
    layout = _layout(json.loads(schema_text))
    if layout != _EVENT_LAYOUT:
        raise ValueError(f"encode_event writes {_EVENT_LAYOUT}, the schema has {layout}")


def _long(out: bytearray, n: int) -> None:
    n = (n << 1) ^ (n >> 63)  # zigzag
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _string_bytes(s: str) -> bytes:
    b = s.encode()
    out = bytearray()
    _long(out, len(b))
    return bytes(out + b)


# Customer ids, event types and dimension keys and values repeat across events: their encodings
# are kept (bounded: cleared when full), which halves the encoder's cost.
_STRINGS: dict[str, bytes] = {}
_STRINGS_MAX = 200_000


def _string(out: bytearray, s: str) -> None:
    b = _STRINGS.get(s)
    if b is None:
        if len(_STRINGS) >= _STRINGS_MAX:
            _STRINGS.clear()
        b = _STRINGS[s] = _string_bytes(s)
    out += b


def encode_event(record: dict, version: SchemaVersion, schema_id: int | None = None) -> bytes:
    """A validated UsageEvent (core/events.validate), written directly: byte for byte what
    fastavro writes (tests/unit/test_avro_codec.py), at a fraction of its cost. Decimal values
    must fit the schema's scale (validate quantizes them); times must be timezone-aware."""
    _event_writer(version.text)
    out = bytearray(_HEADER.pack(MAGIC, version.id if schema_id is None else schema_id))
    out += _string_bytes(record["event_id"])  # unique: not worth keeping
    _string(out, record["customer_id"])
    _string(out, record["event_type"])
    delta = record["event_time"] - _EPOCH
    _long(out, (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000)
    values = record["values"]
    if values:
        _long(out, len(values))
        for k, v in values.items():
            _string(out, k)
            num, den = v.as_integer_ratio()
            unscaled, rest = divmod(num * _SCALE_FACTOR, den)
            if rest:
                raise ValueError(f"value {k} has more decimal places than the schema's scale")
            b = unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)
            if len(b) > 17:  # DECIMAL(38, 12) needs at most 17 bytes, so its length is one byte
                raise ValueError(f"value {k} has more digits than the schema's precision")
            out.append(len(b) << 1)
            out += b
    out.append(0)  # end of the map's blocks
    dims = record["dimensions"]
    if dims:
        _long(out, len(dims))
        for k, v in dims.items():
            _string(out, k)
            _string(out, v)
    out.append(0)
    source = record.get("source")
    if source is None:
        out.append(0)  # union branch 0: null
    else:
        out.append(2)  # union branch 1 (zigzag 1)
        _string(out, source)
    return bytes(out)


class NativeEncoder(Protocol):
    """wire/_fastevent.c's Encoder: each method gives (key, Avro value), byte for byte what the
    Python path gives, or None for anything outside its canonical shape (the caller then runs the
    Python path, which decides and says why)."""

    def encode(self, line: bytes) -> tuple[bytes, bytes] | None: ...

    def encode_record(self, event: dict) -> tuple[bytes, bytes] | None: ...


def native_encoder(
    version: SchemaVersion, schema_id: int | None, *, now: datetime, max_quantity: Decimal, max_future_seconds: float
) -> NativeEncoder | None:
    """The native fast path of publishing, for JSON lines (`produce --file`) and for event dicts
    (EventProducer.send, send_batch), with the limits of core/events.validate at `now`. None when
    the extension was not built (no C compiler at install): everything takes the Python path."""
    try:
        from tallyflow.wire import _fastevent  # type: ignore[attr-defined]
    except ImportError:
        return None
    _event_writer(version.text)
    from tallyflow.core.events import LIMITS

    since = now - _EPOCH
    # The largest accepted quantity times 10^12, clamped to what DECIMAL(38, 12) holds.
    limit = min(int((max_quantity * _SCALE_FACTOR).to_integral_value(ROUND_FLOOR)), 10**38 - 1)
    if limit < 0:
        return None  # no quantity passes: let the Python path say why
    encoder: NativeEncoder = _fastevent.Encoder(
        header=_HEADER.pack(MAGIC, version.id if schema_id is None else schema_id),
        now_us=(since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds,
        max_future_s=max_future_seconds,
        max_unscaled=limit,
        max_id=LIMITS["max_id_length"],
        max_dims=LIMITS["max_dimensions"],
        max_dim_len=LIMITS["max_dimension_length"],
    )
    return encoder


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
