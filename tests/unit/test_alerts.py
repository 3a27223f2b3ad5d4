"""Usage alerts and spike detection (core/alerts.py) on their own: thresholds fire once per period,
a synthetic spike is found against the median of the same hour, and steady traffic raises nothing."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tallyflow.core import alerts, catalog
from tallyflow.core.model import Spike
from tallyflow.core.periods import plain
from tallyflow.core.rating import Rater

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


def _spike_check_rebuilding(state: dict, start: datetime, quantity: Decimal) -> Decimal | None:
    """The reference (what spike_check did before it kept the stored text): the whole series as
    Decimals, the baseline, the series rebuilt. Returns the baseline when the window is a spike."""
    start_ms = int(start.timestamp() * 1000)
    state.setdefault("first", start_ms)
    hours = {int(k): Decimal(v) for k, v in state.get("hours", {}).items()}
    days = min(SPIKE.baseline_days, (start_ms - int(state["first"])) // alerts.DAY_MS)
    back = [hours.get(start_ms - k * alerts.DAY_MS, Decimal(0)) for k in range(1, days + 1)]
    base = Decimal(statistics.median(back)) if days >= SPIKE.min_history_days else None
    hours[start_ms] = quantity
    keep_after = start_ms - SPIKE.baseline_days * alerts.DAY_MS
    state["hours"] = {str(k): str(v) for k, v in hours.items() if k >= keep_after}
    if base is None or quantity <= SPIKE.factor * max(base, SPIKE.min_quantity):
        return None
    return base


def test_the_kept_text_series_decides_and_prunes_like_a_full_rebuild():
    # 12 days of hours with spikes, partly out of order, and some hours arriving twice.
    rng = random.Random(7)
    hours = list(range(24 * 12))
    for i in range(0, len(hours) - 3, 17):
        hours[i], hours[i + 3] = hours[i + 3], hours[i]
    hours += rng.sample(range(24 * 12), 20)
    state: dict = {}
    reference: dict = {}
    spikes = 0
    for h in hours:
        start = START + timedelta(hours=h)
        q = Decimal(rng.choice(["0", "1", "2", "10", "60", "2.5"]))
        signal = alerts.spike_check(state, SPIKE, "c", PLAN, "calls", start, start + timedelta(hours=1), q)
        base = _spike_check_rebuilding(reference, start, q)
        assert (signal.baseline if signal else None) == (None if base is None else plain(base)), h
        assert state == reference, h
        spikes += signal is not None
    assert spikes > 10  # the sequence does exercise the verdict


def test_only_the_customers_with_alerts_reach_the_alert_operators():
    from tallyflow.tools.generator import DEMO_CATALOG

    demo = catalog.load(str(DEMO_CATALOG))
    alerted, spiking = alerts.customers_with(demo, False), alerts.customers_with(demo, True)
    assert spiking <= alerted <= set(demo.customers) and spiking
    rater = Rater(demo)
    for customer in demo.customers:
        for month in ("2026-01", "2026-06", "2026-11"):
            found = rater.plan_at(customer, datetime.fromisoformat(f"{month}-15T12:00:00+00:00"))
            plan = found[0] if found else None
            # What the operators test per record, against the filter the job applies before them.
            assert plan is None or plan.alerts is None or customer in alerted
            assert plan is None or plan.alerts is None or plan.alerts.spike is None or customer in spiking
