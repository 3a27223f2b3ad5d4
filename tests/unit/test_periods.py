"""One period rule, in Python (core/periods.py) and in SQL (sql/ddl/000..006), on the shared
vectors of tests/vectors/periods.json; and the period names commands take."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tallyflow.core import periods
from tallyflow.core.events import parse_time
from tallyflow.errors import UserError

CASES = json.loads((Path(__file__).parents[1] / "vectors" / "periods.json").read_text())["cases"]
IDS = [f"{c['length']} {c['anchor'] or 'calendar'} {c['at']}" for c in CASES]


def _anchor(case: dict) -> datetime | None:
    return parse_time(case["anchor"]) if case["anchor"] else None


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_python(case):
    p = periods.period_at(parse_time(case["at"]), case["length"], _anchor(case))
    assert (p.name, p.start, p.end) == (case["name"], parse_time(case["start"]), parse_time(case["end"]))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sql(case, clickhouse_client):
    naive = lambda t: t.replace(tzinfo=None)  # noqa: E731
    anchor = _anchor(case)
    row = clickhouse_client.query(
        "WITH tf_period_months({length:String}) AS n,"
        " tf_period_anchor({anchor:Nullable(DateTime64(3, 'UTC'))}, {length:String}) AS a,"
        " tf_period_index({at:DateTime64(3, 'UTC')}, n, a) AS k, tf_period_start(k, n, a) AS ps"
        " SELECT tf_period_name(ps, {length:String}, {anchored:Bool}), ps, tf_period_start(k + 1, n, a)",
        parameters={
            "at": naive(parse_time(case["at"])),
            "length": case["length"],
            "anchor": naive(anchor) if anchor else None,
            "anchored": anchor is not None,
        },
    ).result_rows[0]
    name, start, end = row
    assert (name, naive(start), naive(end)) == (
        case["name"],
        naive(parse_time(case["start"])),
        naive(parse_time(case["end"])),
    )


@pytest.mark.parametrize(
    ("text", "start", "end", "length", "anchored"),
    [
        ("2026-10", datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC), "", None),
        ("2026-10-15", datetime(2026, 10, 15, tzinfo=UTC), datetime(2026, 10, 16, tzinfo=UTC), "", True),
        ("2026-Q4", datetime(2026, 10, 1, tzinfo=UTC), None, "quarter", False),
        ("2026", datetime(2026, 1, 1, tzinfo=UTC), None, "year", False),
        ("2026-W42", datetime(2026, 10, 12, tzinfo=UTC), None, "week", False),
        ("2026-W53", datetime(2026, 12, 28, tzinfo=UTC), None, "week", False),
    ],
)
def test_period_names(text, start, end, length, anchored):
    s = periods.parse_period(text)
    assert (s.mode, s.start, s.length, s.anchored) == ("starts", start, length, anchored)
    if end:
        assert s.end == end


@pytest.mark.parametrize("text", ["2026-13", "2026-Q5", "2027-W53", "2026-10-32", "٢٠٢٦-10", "26-10", "2026-W4", ""])
def test_bad_period_names_are_one_line_errors(text):
    with pytest.raises(UserError) as e:
        periods.parse_period(text)
    assert "\n" not in str(e.value)


def test_a_month_selects_every_weekly_period_that_starts_in_it():
    feb = periods.parse_period("2026-02")
    assert [p.name for p in feb.periods("week", None)] == ["2026-W06", "2026-W07", "2026-W08", "2026-W09"]
    assert [p.name for p in feb.periods("month", datetime(2026, 1, 31, tzinfo=UTC))] == ["2026-02-28"]
    assert feb.periods("quarter", None) == []  # Q1 starts in January
