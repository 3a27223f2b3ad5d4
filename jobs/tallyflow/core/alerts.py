"""Usage alerts and spike detection, on what the stream already produces per window (never per event).

Usage alerts (a plan's `alerts.included_usage` and `alerts.spend`) read the rated records of one
customer: a record carries its charge's period-to-date quantity (`position`) and what the window
added to the charge's amount. A charge's included-usage threshold t fires when the position
reaches t x included_units; a spend threshold S fires when the period's usage amounts (exact,
before rounding; base fees, minimum commitments and credits are not usage) reach S. Each fires once
per customer, period and threshold: the fired set is keyed state, and the ClickHouse table is
keyed the same way, so a replay after a restart lands nothing twice.

Spike detection (`alerts.spike`) reads the closed windows of one customer, meter and group. The
baseline of a window starting at hour h is the median of that series' quantities at h - 1 day,
h - 2 days, ... h - baseline_days (an hour without usage counts as 0), over the days the series
has existed (at least min_history_days, or no verdict). The window is an anomaly when its quantity
is over factor x max(baseline, min_quantity): a median is not moved by one odd day, and the
min_quantity floor keeps a near-zero baseline from flagging every small rise. The signal carries
the observed value, the baseline and the factor.
"""

from __future__ import annotations

import json
import statistics
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from tallyflow.core.model import Catalog, Charge, Plan, Spike
from tallyflow.core.periods import iso_utc, plain

DAY_MS = 86_400_000


class UsageSignal(NamedTuple):
    """A row of the usage-signals topic (and the usage_signals table)."""

    customer_id: str
    period: str
    kind: str  # included_usage | spend | anomaly
    signal_key: str  # unique per customer and period: what fired, once
    subject: str  # the charge (meter{filter}), "spend", or the meter and group of a window
    threshold: str  # the fraction, the amount, or the factor
    observed: str  # the position, the spend so far, or the window's quantity
    limit: str  # the quantity or amount the threshold stands for (anomaly: factor x baseline)
    baseline: str | None  # anomaly: the median baseline
    plan_id: str
    currency: str
    window_start: str
    window_end: str


FIELDS = list(UsageSignal._fields)


def _charge(plan: Plan, meter: str, filter_text: str) -> Charge | None:
    for c in plan.charges:
        if c.meter == meter and c.filter_text == filter_text:
            return c
    return None


def usage_alerts(catalog: Catalog, state: dict, rated: dict) -> list[UsageSignal]:
    """Signals a rated record (a dict of core/rating.py's fields) raises; updates `state`
    (period -> {"spend": str, "fired": [signal keys]}) for its customer."""
    plan = next(
        (p for p in catalog.plans if p.id == rated["plan_id"] and p.version == int(rated["version"])),
        None,
    )
    if plan is None or plan.alerts is None:
        return []
    period = state.setdefault(rated["period"], {"spend": "0", "fired": []})
    fired = set(period["fired"])
    spend = Decimal(period["spend"]) + Decimal(rated["amount"])
    period["spend"] = str(spend)
    out = []

    def fire(kind: str, key: str, subject: str, threshold: Decimal, observed: Decimal, limit: Decimal) -> None:
        if key in fired:
            return
        fired.add(key)
        out.append(
            UsageSignal(
                rated["customer_id"],
                rated["period"],
                kind,
                key,
                subject,
                plain(threshold),
                plain(observed),
                plain(limit),
                None,
                plan.id,
                plan.currency,
                rated["window_start"],
                rated["window_end"],
            )
        )

    charge = _charge(plan, rated["meter_id"], rated["filter_text"])
    if charge is not None and charge.included_units > 0:
        position = Decimal(rated["position"])
        for t in plan.alerts.included_usage:
            limit = t * charge.included_units
            if position >= limit:
                fire("included_usage", f"included_usage|{charge.label}|{plain(t)}", charge.label, t, position, limit)
    for amount in plan.alerts.spend:
        if spend >= amount:
            fire("spend", f"spend|{plain(amount)}", "spend", amount, spend, amount)
    period["fired"] = sorted(fired)
    return out


def baseline(hours: dict[str, str], window_start_ms: int, first_ms: int, spike: Spike) -> Decimal | None:
    """The median of the same hour on the previous days the series has existed, or None when it
    has existed for fewer than min_history_days. `hours`: the stored series, {"ms": "quantity"}."""
    days = min(spike.baseline_days, (window_start_ms - first_ms) // DAY_MS)
    if days < spike.min_history_days:
        return None
    values = [Decimal(hours.get(str(window_start_ms - k * DAY_MS), 0)) for k in range(1, days + 1)]
    return Decimal(statistics.median(values))


def spike_check(
    state: dict,
    spike: Spike,
    customer: str,
    plan: Plan,
    subject: str,
    start: datetime,
    end: datetime,
    quantity: Decimal,
) -> UsageSignal | None:
    """The anomaly signal of a closed window, if it is one; records the window in `state`
    ({"first": ms, "hours": {ms: quantity}}, pruned to the baseline's days)."""
    start_ms = int(start.timestamp() * 1000)
    state.setdefault("first", start_ms)
    # The state keeps its text form ({"ms": "quantity"}); only the baseline's few hours become
    # Decimals (converting every kept hour twice a window cost ~300 us of a 350 us call).
    hours: dict[str, str] = state.get("hours", {})
    base = baseline(hours, start_ms, int(state["first"]), spike)
    hours[str(start_ms)] = str(quantity)
    keep_after = start_ms - spike.baseline_days * DAY_MS
    state["hours"] = {k: v for k, v in hours.items() if int(k) >= keep_after}
    if base is None:
        return None
    limit = spike.factor * max(base, spike.min_quantity)
    if quantity <= limit:
        return None
    return UsageSignal(
        customer,
        start.strftime("%Y-%m"),
        "anomaly",
        f"anomaly|{subject}|{iso_utc(start)}",
        subject,
        plain(spike.factor),
        plain(quantity),
        plain(limit),
        plain(base),
        plan.id,
        plan.currency,
        iso_utc(start),
        iso_utc(end),
    )


def customers_with(catalog: Catalog, spikes: bool) -> set[str]:
    """The customers some version of whose subscribed plans has an alerts block (spikes=False:
    usage_alerts keeps state for them only) or spike detection (spikes=True: spike_check runs for
    them only). The job sends the operators no one else's records."""
    return {
        sub.customer
        for sub in catalog.subscriptions
        for plan in catalog.plan_versions(sub.plan)
        if plan.alerts is not None and (plan.alerts.spike is not None or not spikes)
    }


def subject(meter_id: str, group_key: str) -> str:
    """A window series' name: the meter, and its group when it has one (`tokens{model=a}`)."""
    group = json.loads(group_key) if group_key else {}
    return meter_id + ("{" + ",".join(f"{k}={v}" for k, v in sorted(group.items())) + "}" if group else "")


def horizon(spike: Spike) -> timedelta:
    return timedelta(days=spike.baseline_days + 1)
