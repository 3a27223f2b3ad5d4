"""Usage alerts and spike detection (core/alerts.py) on their own: thresholds fire once per period,
a synthetic spike is found against the median of the same hour, and steady traffic raises nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tallyflow.core import alerts, catalog
from tallyflow.core.model import Spike

CAT = catalog.parse(
    {
        "meters": [{"id": "calls", "event_type": "api_call", "aggregation": "count"}],
        "plans": [
            {
                "id": "p",
                "version": 1,
                "effective_from": "2026-01-01T00:00:00Z",
                "currency": "USD",
                "charges": [{"meter": "calls", "model": "per_unit", "unit_price": "0.1", "included_units": "100"}],
                "alerts": {"included_usage": ["0.8", "1.0"], "spend": ["2.00"]},
            }
        ],
        "subscriptions": [{"customer": "c", "plan": "p", "start": "2026-01-01T00:00:00Z"}],
    }
)


def rated(position: str, amount: str, period: str = "2026-11") -> dict:
    return {
        "customer_id": "c",
        "period": period,
        "plan_id": "p",
        "version": 1,
        "meter_id": "calls",
        "filter_text": "",
        "position": position,
        "amount": amount,
        "window_start": f"{period}-01T00:00:00.000Z",
        "window_end": f"{period}-01T01:00:00.000Z",
    }


def test_thresholds_fire_once_per_period():
    state: dict = {}
    fired = [
        [(s.kind, s.threshold) for s in alerts.usage_alerts(CAT, state, rated(pos, amt))]
        for pos, amt in (("50", "0"), ("80", "0"), ("90", "0"), ("125", "2.5"), ("130", "0.5"))
    ]
    assert fired == [[], [("included_usage", "0.8")], [], [("included_usage", "1"), ("spend", "2")], []]
    again = alerts.usage_alerts(CAT, state, rated("90", "0", period="2026-12"))
    assert [(s.kind, s.threshold, s.period) for s in again] == [("included_usage", "0.8", "2026-12")]


SPIKE = Spike(factor=Decimal(3), baseline_days=7, min_history_days=3, min_quantity=Decimal(5))
PLAN = CAT.plans[0]
START = datetime(2026, 11, 1, tzinfo=UTC)


def series(quantities: list[int]) -> list[alerts.UsageSignal]:
    state: dict = {}
    out = []
    for h, q in enumerate(quantities):
        start = START + timedelta(hours=h)
        s = alerts.spike_check(state, SPIKE, "c", PLAN, "calls", start, start + timedelta(hours=1), Decimal(q))
        if s is not None:
            out.append(s)
    return out


def test_a_spike_is_found_against_the_same_hour():
    hours = [10] * (24 * 8)
    hours[24 * 7 + 5] = 100
    (found,) = series(hours)
    assert (found.window_start, found.observed, found.baseline, found.limit) == (
        "2026-11-08T05:00:00.000Z",
        "100",
        "10",
        "30",
    )


@pytest.mark.parametrize("level", [0, 1, 10, 1000])
def test_steady_traffic_raises_nothing(level):
    # A daily rhythm (busy afternoons) repeats; nothing is a spike against its own hour.
    assert series([level * (3 if 12 <= h % 24 < 18 else 1) for h in range(24 * 10)]) == []


def test_no_verdict_before_the_minimum_history():
    assert series([1] * 24 * 2 + [1000]) == []  # two days of history only


def test_state_keeps_only_the_baseline_days():
    state: dict = {}
    for h in range(24 * 20):
        start = START + timedelta(hours=h)
        alerts.spike_check(state, SPIKE, "c", PLAN, "calls", start, start, Decimal(1))
    assert len(state["hours"]) == 24 * 7 + 1
