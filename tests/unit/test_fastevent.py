"""The native line encoder (wire/_fastevent.c) against the Python path it stands in for: for every
line, either it declines (None, and the Python path decides) or it gives exactly the key and bytes
that events.parse_line then avro.encode_event give. Never a verdict of its own."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tallyflow.core import events
from tallyflow.tools import generator
from tallyflow.wire import avro

NOW = datetime(2026, 11, 15, 12, 0, 0, 123456, tzinfo=UTC)
LIMITS = {"max_quantity": Decimal("1000000000000"), "max_future_seconds": 86400.0}
VERSION = avro.latest()
VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "events.json").read_text())["cases"]


@pytest.fixture(scope="module")
def fast():
    encoder = avro.native_encoder(VERSION, 1234, now=NOW, **LIMITS)
    assert encoder is not None, "the native encoder was not built (make setup compiles it)"
    return encoder.encode


@pytest.fixture(scope="module")
def fast_record():
    encoder = avro.native_encoder(VERSION, 1234, now=NOW, **LIMITS)
    assert encoder is not None
    return encoder.encode_record


def python_path(line: str) -> tuple[bytes, bytes] | None:
    try:
        record = events.parse_line(line, now=NOW, **LIMITS)
    except events.InvalidEvent:
        return None
    return record["customer_id"].encode(), avro.encode_event(record, VERSION, 1234)


def python_record_path(event) -> tuple[bytes, bytes] | None:
    try:
        record = events.validate(event, now=NOW, **LIMITS)
    except events.InvalidEvent:
        return None
    return record["customer_id"].encode(), avro.encode_event(record, VERSION, 1234)


def check_record(fast_record, event) -> bool:
    got = fast_record(event)
    if got is not None:
        assert got == python_record_path(event), event
    return got is not None


def check(fast, line: str) -> bool:
    """True when the native path took the line; fails if it took it differently."""
    got = fast(line.encode())
    if got is not None:
        assert got == python_path(line), line
    return got is not None


def base(**over) -> dict:
    e = {"event_id": "e1", "customer_id": "c1", "event_type": "api_call", "event_time": "2026-11-05T10:00:00Z"}
    return {**e, **over}


def test_generated_lines_take_the_native_path(fast):
    lines = [json.dumps(e) for e in generator.generate(3000, customers=50, period="2026-10", seed=7)]
    taken = sum(check(fast, line) for line in lines)
    assert taken == len(lines)  # the generator writes the canonical shape
    compact = [json.dumps(e, separators=(",", ":")) + "\r\n" for e in generator.generate(500, period="2026-10")]
    assert all(check(fast, line) for line in compact)


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_event_vectors(fast, case):
    line = case.get("line") or json.dumps(case["event"])
    took = check(fast, line)
    if not case["accepted"]:
        assert not took  # a rejected event always goes the Python way, for its reason


@pytest.mark.parametrize(
    "event, native",
    [
        (base(values={"q": "0"}), True),
        (base(values={"q": "007.250"}), True),
        (base(values={"q": 15}), True),
        (base(values={"q": 0}), True),
        (base(values={"q": "1000000000000"}), True),  # the limit itself
        (base(values={"q": "1000000000000.000000000001"}), False),  # rejected: over the limit
        (base(values={"q": "1.123456789012"}), True),
        (base(values={"q": "1.1234567890120"}), False),  # 13 places: Python's call (it accepts this one)
        (base(values={"q": "1.1234567890123"}), False),  # rejected
        (base(values={"q": "-1"}), False),
        (base(values={"q": "1e3"}), False),
        (base(values={"q": " 5"}), False),
        (base(values={"q": 1.5}), False),
        (base(values={"q": True}), False),
        (base(values={"a": "1", "b": "2", "c": "127", "d": "128", "e": "255", "f": "256"}), True),
        (base(dimensions={"k": "v" * 1024}), True),
        (base(dimensions={"k": "v" * 1025}), False),
        (base(dimensions={f"k{i}": "v" for i in range(64)}), True),
        (base(dimensions={f"k{i}": "v" for i in range(65)}), False),
        (base(dimensions={"k": 1}), False),
        (base(dimensions={"k": "é"}), False),  # non-ASCII: Python's call
        (base(source="sdk"), True),
        (base(source=None), True),
        (base(source=3), False),
        (base(extra=1), False),
        (base(event_id="x" * 256), True),
        (base(event_id="x" * 257), False),
        (base(event_id=""), False),
        (base(event_time="2026-11-05T10:00:00.5Z"), True),
        (base(event_time="2026-11-05T10:00:00.123456+00:00"), True),
        (base(event_time="2026-11-05T10:00:00.1234567Z"), False),
        (base(event_time="2024-02-29T00:00:00Z"), True),
        (base(event_time="2026-02-29T00:00:00Z"), False),
        (base(event_time="1969-12-31T23:59:59Z"), False),
        (base(event_time="1970-01-01T00:00:00Z"), True),
        (base(event_time="2026-11-05T10:00:00+01:00"), False),
        (base(event_time="2026-11-05 10:00:00Z"), False),
        (base(event_time="2026-11-05T24:00:00Z"), False),
        (base(event_time=(NOW + timedelta(days=1)).isoformat()), True),  # exactly at the horizon
        (base(event_time=(NOW + timedelta(days=1, microseconds=1)).isoformat()), False),
    ],
)
def test_edges(fast, event, native):
    assert check(fast, json.dumps(event)) is native


@pytest.mark.parametrize(
    "line",
    [
        '{"event_id": "e1", "event_id": "e2", "customer_id": "c1", "event_type": "t", '
        '"event_time": "2026-11-05T10:00:00Z"}',
        '{"event_id": "e1", "customer_id": "c1", "event_type": "t", "event_time": "2026-11-05T10:00:00Z", '
        '"values": {"q": "1", "q": "2"}}',
        '{"event_id": "e\\u0031", "customer_id": "c1", "event_type": "t", "event_time": "2026-11-05T10:00:00Z"}',
        '{"event_id": "e1", "customer_id": "c1", "event_type": "t", "event_time": "2026-11-05T10:00:00Z"} x',
        '{"event_id": "e1", "customer_id": "c1", "event_type": "t", "event_time": "2026-11-05T10:00:00Z",}',
        '{"event_id": "e1", "customer_id": "c1", "event_type": "t", "event_time": "2026-11-05T10:00:00Z", '
        '"values": {"q": 012}}',
        '{"event_id": "e1", "customer_id": "c1", "event_type": "t"}',
        "[]",
        "",
        "   \n",
    ],
)
def test_lines_it_declines(fast, line):
    assert fast(line.encode()) is None


def test_mutated_lines_never_disagree(fast):
    """Random edits of valid lines (characters dropped, doubled, swapped for JSON's own): whatever
    the native path takes, it takes exactly as the Python path does."""
    rng = random.Random(12)
    seeds = [json.dumps(e) for e in generator.generate(200, customers=20, period="2026-10", seed=3)]
    seeds += [json.dumps(c["event"]) for c in VECTORS if isinstance(c.get("event"), dict)]
    alphabet = '{}[]:,"\\ 0123456789.-+eEZT_aé\t'
    taken = 0
    for _ in range(20_000):
        chars = list(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(chars))
            edit = rng.random()
            if edit < 0.4:
                chars[i] = rng.choice(alphabet)
            elif edit < 0.7:
                del chars[i]
            else:
                chars.insert(i, chars[i])
        taken += check(fast, "".join(chars))
    assert taken > 1000  # many mutants stay valid and canonical, so the comparison is exercised


def test_records_take_the_native_path_as_the_python_path_would(fast_record):
    generated = list(generator.generate(2000, customers=50, period="2026-10", seed=9))
    assert all(check_record(fast_record, e) for e in generated)
    for case in (c for c in VECTORS if "event" in c):  # a repeated key has no dict
        took = check_record(fast_record, case["event"])
        assert case["accepted"] or not took


class Text(str):
    pass


@pytest.mark.parametrize(
    "event, native",
    [
        (base(values={"q": 15, "r": "2.5"}), True),
        (base(values={"q": 2**63}), False),  # past a C long: Python's call (it accepts this one)
        (base(values={"q": -1}), False),
        (base(values={"q": True}), False),
        (base(values={"q": 1.5}), False),
        (base(values={"q": Decimal("1.5")}), False),
        (base(values={1: "2"}), False),
        (base(values=None), False),
        (base(dimensions={"k": 'a"b\\c'}), True),  # printable ASCII: no JSON escaping here
        (base(dimensions={"k": "v\x01"}), False),  # a control character: Python's call
        (base(dimensions={"k": 1}), False),
        (base(dimensions={"k": Text("v")}), False),  # a str subclass: Python's call
        (base(source="sdk"), True),
        (base(source=None), True),
        (base(source=5), False),
        (base(extra=1), False),
        ({"event_id": "e1"}, False),
        (base(event_time=datetime(2026, 11, 5, tzinfo=UTC)), False),
        ([], False),
    ],
)
def test_record_edges(fast_record, event, native):
    assert check_record(fast_record, event) is native


def test_mutated_records_never_disagree(fast_record):
    """Fields swapped for other types and values: whatever the native path takes, it takes
    exactly as events.validate then encode_event do."""
    rng = random.Random(5)
    seeds = list(generator.generate(200, customers=20, period="2026-10", seed=4))
    odd = [None, 0, 7, -3, 2.5, True, "", "x" * 257, "1.5", "-1", "2026-10-01T00:00:00Z", {}, {"k": "v"}, {"q": 3}]
    taken = 0
    for _ in range(10_000):
        event = json.loads(json.dumps(rng.choice(seeds)))
        for _ in range(rng.randint(1, 2)):
            field = rng.choice(sorted(events._FIELDS))
            target = event
            if isinstance(event.get(field), dict) and event[field] and rng.random() < 0.5:
                target, field = event[field], rng.choice(list(event[field]))
            if rng.random() < 0.2:
                target.pop(field, None)
            else:
                target[field] = rng.choice(odd)
        taken += check_record(fast_record, event)
    assert taken > 500
