"""Event validation in the producer (the JVM decoder applies the same rules, see integration tests)."""

import json
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from tallyflow.core.events import InvalidEvent, parse_line

NOW = datetime(2026, 11, 21, tzinfo=UTC)
GOOD = {
    "event_id": "req_7a4f2c",
    "customer_id": "cust_8821",
    "event_type": "llm_call",
    "event_time": "2026-10-03T12:00:00.123Z",
    "values": {"tokens_input": "1500", "tokens_output": "800"},
    "dimensions": {"model": "m-large", "region": "eu-west-1", "user_id": "u-17"},
}


def parse(obj) -> dict:
    return parse_line(json.dumps(obj), max_quantity=D("1e12"), now=NOW, max_future_seconds=86400)


def with_(**kw) -> dict:
    return {**GOOD, **kw}


def test_catalog_example_parses():
    rec = parse(GOOD)
    assert rec["event_time"] == datetime(2026, 10, 3, 12, 0, 0, 123000, tzinfo=UTC)
    assert rec["values"]["tokens_input"] == D("1500")


def test_offset_is_honoured():
    got = parse(with_(event_time="2026-10-31T20:30:00-04:00"))["event_time"]
    assert got == datetime(2026, 11, 1, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"values": {"x": "-1"}}, "negative"),
        ({"values": {"x": "NaN"}}, "not a decimal"),
        ({"values": {"x": "Infinity"}}, "not a decimal"),
        ({"values": {"x": "1e13"}}, "exceeds the limit"),
        ({"values": {"x": 1.5}}, "must be a decimal string"),
        ({"values": {"x": "0.0000000000001"}}, "more than 12 decimal places"),
        ({"values": {"x": "abc"}}, "is not a decimal"),
        ({"event_time": "2026-10-03T12:00:00"}, "no UTC offset"),
        ({"event_time": "2027-01-01T00:00:00Z"}, "in the future"),
        ({"event_id": ""}, "event_id must be"),
        ({"customer_id": None}, "customer_id must be"),
        ({"dimensions": {"model": 3}}, "dimensions must be an object of strings"),
        ({"colour": "red"}, "unknown field"),
    ],
)
def test_rejections_name_the_reason(change, reason):
    with pytest.raises(InvalidEvent, match=reason):
        parse(with_(**change))


def test_not_json():
    with pytest.raises(InvalidEvent, match="not JSON"):
        parse_line("{oops", max_quantity=D(1), now=NOW, max_future_seconds=1)


def test_trailing_zeros_beyond_scale_are_fine():
    assert parse(with_(values={"x": "1.50000000000000"}))["values"]["x"] == D("1.5")
