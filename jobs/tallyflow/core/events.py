"""The JSON form of a usage event (docs/catalog.md): parse and validate before producing.

The job validates again on the JVM side (jobs/jvm DecodeUsageEvent) because producers other than
this CLI exist; the limits come from one file (schemas/event_limits.json) and the verdicts are
held equal by tests/vectors/events.json, so the CLI rejects early with a line number.
"""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tallyflow.core.periods import UNSEEN, parse_decimal, shown

# One home for the limits, shared with the JVM decoder: schemas/event_limits.json.
LIMITS = json.loads((Path(__file__).resolve().parents[3] / "schemas" / "event_limits.json").read_text())
SCALE = LIMITS["decimal_scale"]  # DECIMAL(38, 12): the Avro decimal of schemas/usage_event.v*.avsc
MAX_ID_LENGTH = LIMITS["max_id_length"]
MAX_DIMENSIONS = LIMITS["max_dimensions"]
MAX_DIMENSION_LENGTH = LIMITS["max_dimension_length"]
MAX_VALUES = LIMITS["max_values"]
MAX_SOURCE_LENGTH = LIMITS["max_source_length"]
MAX_INTEGER_DIGITS = 40  # a JSON integer longer than this is no quantity tallyflow holds
_FIELDS = {"event_id", "customer_id", "event_type", "event_time", "values", "dimensions", "source"}


class InvalidEvent(ValueError):
    pass


def parse_time(raw: Any) -> datetime:
    if not isinstance(raw, str):
        raise InvalidEvent("event_time must be an ISO 8601 string")
    try:
        t = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidEvent(f"event_time '{shown(raw)}' is not ISO 8601") from None
    if t.tzinfo is None:
        raise InvalidEvent(f"event_time '{shown(raw)}' has no UTC offset")
    return t.astimezone(UTC)


def parse_quantity(key: str, raw: Any, max_quantity: Decimal) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise InvalidEvent(f"value {shown(key)} must be a decimal string")
    try:
        q = parse_decimal(str(raw).strip())
    except InvalidOperation:
        raise InvalidEvent(f"value {shown(key)} '{shown(raw)}' is not a decimal") from None
    if not q.is_finite():
        raise InvalidEvent(f"value {shown(key)} is not finite ({shown(raw)})")
    if q < 0:
        raise InvalidEvent(f"value {shown(key)} is negative ({shown(raw)})")
    if q > max_quantity:
        raise InvalidEvent(f"value {shown(key)} exceeds the limit of {max_quantity}")
    exponent = q.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -SCALE and q != q.quantize(Decimal(1).scaleb(-SCALE)):
        raise InvalidEvent(f"value {shown(key)} has more than {SCALE} decimal places")
    return q.quantize(Decimal(1).scaleb(-SCALE))


def id_problem(name: str, v: Any) -> str | None:
    """Why `v` cannot be an id (an event's, a customer's, a type's), or None."""
    if not isinstance(v, str) or not v or len(v) > MAX_ID_LENGTH:
        return f"{name} must be a string of 1 to {MAX_ID_LENGTH} characters"
    return unseen_problem(name, v)


def unseen_problem(name: str, v: str) -> str | None:
    """No id, type or key holds an UNSEEN character (the JVM decoder refuses the same categories)."""
    for ch in v:
        if unicodedata.category(ch) in UNSEEN:
            return f"{name} holds a control or invisible character (U+{ord(ch):04X})"
    return None


def _surrogate(v: str) -> bool:
    """Whether `v` holds a lone surrogate, which JSON's \\ud800 can write and UTF-8 cannot."""
    try:
        v.encode()
    except UnicodeEncodeError:
        return True
    return False


def _text(obj: dict, name: str) -> str:
    v = obj.get(name)
    problem = id_problem(name, v)
    if problem:
        raise InvalidEvent(problem)
    return str(v)


def _keys(kind: str, mapping: dict) -> None:
    for k in mapping:
        if not isinstance(k, str):
            raise InvalidEvent(f"{kind} keys must be strings")
        problem = unseen_problem(f"{kind} key", k)
        if problem:
            raise InvalidEvent(problem)


def validate(obj: Any, *, max_quantity: Decimal, now: datetime, max_future_seconds: float) -> dict:
    """Returns the Avro record for a valid JSON event, or raises InvalidEvent with the reason."""
    if not isinstance(obj, dict):
        raise InvalidEvent("an event must be a JSON object")
    unknown = set(obj) - _FIELDS
    if unknown:
        raise InvalidEvent(f"unknown field(s): {', '.join(sorted(unknown))}")
    event_time = parse_time(obj.get("event_time"))
    if (event_time - now).total_seconds() > max_future_seconds:
        raise InvalidEvent(f"event_time {event_time.isoformat()} is more than {max_future_seconds:.0f} s in the future")
    if event_time.year < 1970:
        raise InvalidEvent("event_time is before 1970")
    values = obj.get("values", {})
    dims = obj.get("dimensions", {})
    if not isinstance(values, dict):
        raise InvalidEvent("values must be an object of decimal strings")
    if not isinstance(dims, dict) or any(not isinstance(v, str) for v in dims.values()):
        raise InvalidEvent("dimensions must be an object of strings")
    if len(values) > MAX_VALUES:
        raise InvalidEvent(f"more than {MAX_VALUES} values")
    if len(dims) > MAX_DIMENSIONS:
        raise InvalidEvent(f"more than {MAX_DIMENSIONS} dimensions")
    _keys("value", values)
    _keys("dimension", dims)
    for k, v in dims.items():
        if not v.isascii() and _surrogate(v):
            raise InvalidEvent(f"dimension {shown(k)} holds a lone surrogate (not Unicode text)")
        if len(k) > MAX_DIMENSION_LENGTH or len(v) > MAX_DIMENSION_LENGTH:
            raise InvalidEvent(f"dimension {shown(k)} is longer than {MAX_DIMENSION_LENGTH} characters")
    source = obj.get("source")
    if source is not None and not isinstance(source, str):
        raise InvalidEvent("source must be a string")
    if source is not None and not source.isascii() and _surrogate(source):
        raise InvalidEvent("source holds a lone surrogate (not Unicode text)")
    if source is not None and len(source) > MAX_SOURCE_LENGTH:
        raise InvalidEvent(f"source is longer than {MAX_SOURCE_LENGTH} characters")
    return {
        "event_id": _text(obj, "event_id"),
        "customer_id": _text(obj, "customer_id"),
        "event_type": _text(obj, "event_type"),
        "event_time": event_time,
        "values": {str(k): parse_quantity(str(k), v, max_quantity) for k, v in values.items()},
        "dimensions": dict(dims),
        "source": source,
    }


def _object(pairs: list[tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):  # JSON allows it, and the last would win: "calls" twice bills the larger
        keys = [k for k, _ in pairs]
        twice = next(k for i, k in enumerate(keys) if k in keys[:i])
        raise InvalidEvent(f"duplicate key '{shown(twice)}'")
    return obj


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise InvalidEvent(f"a number of {len(text)} digits (at most {MAX_INTEGER_DIGITS})")
    return int(text)


def parse_line(line: str, **kw: Any) -> dict:
    try:
        obj = json.loads(line, object_pairs_hook=_object, parse_int=_integer)
    except json.JSONDecodeError as e:
        raise InvalidEvent(f"not JSON: {e.msg} at column {e.colno}") from None
    except RecursionError:
        raise InvalidEvent("not an event: JSON nested too deeply") from None
    return validate(obj, **kw)
