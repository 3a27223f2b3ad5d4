"""The producer's event validation on the shared vectors (the JVM decoder runs the same file:
jobs/jvm DecodeUsageEventTest)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tallyflow.core import events

CASES = json.loads((Path(__file__).parents[1] / "vectors" / "events.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_event_vector(case):
    kw = {"max_quantity": Decimal("1000000000000"), "now": datetime.now(UTC), "max_future_seconds": 86400}
    check = (
        (lambda: events.parse_line(case["line"], **kw))
        if "line" in case
        else lambda: events.validate(case["event"], **kw)
    )
    if case["accepted"]:
        assert check()["event_id"] == case["event"]["event_id"]
    else:
        with pytest.raises(events.InvalidEvent) as e:
            check()
        assert case["reason"] in str(e.value)
