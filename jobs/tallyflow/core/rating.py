"""Rated records from the stream: what each closed window adds to its customer's period.

Runs as a keyed Python function on the window stream (one row per customer, meter, group and
window, so Python's per-row cost is paid per window, not per event). The position is the
period-to-date quantity of the charge within its segment of the customer's own period (counted
from its billing anchor: positions restart at the customer's period start, and at a version
switch);
a record's amount is price(position after) - price(position before), using pricing.py, so the
amounts of a segment add up to the charge's amount for the metered usage. The first record of a
segment is priced from nothing, so a first-tier flat fee or a staircase's first step is in it.

Exact for per_unit, graduated and package; volume and staircase are marked provisional (a
later window can move the whole quantity to another tier). max meters use the running maximum.
unique_count, latest and percentile charges are priced at invoice time only (windows do not
carry what they need).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from tallyflow.core import aggregations, plans, pricing
from tallyflow.core.catalog import Catalog, Charge, Plan, Subscription
from tallyflow.core.periods import Period, iso_utc, period_at, plain

RATED_MODELS_PROVISIONAL = ("volume", "staircase")
SEGMENT_CACHE = 100_000  # (customer, period) entries Rater keeps
# A position is kept while its segment could still be adjusted: late events reach windows hours
# behind, never a period that ended this long before the window.
POSITION_HORIZON = timedelta(days=400)


class RatedRecord(NamedTuple):
    """What one window adds to its customer's period for one charge (the rated topic's record)."""

    customer_id: str
    period: str  # the customer's period's name (core/periods.py)
    plan_id: str
    version: int
    segment_start: str
    meter_id: str
    filter_text: str
    model: str
    window_start: str
    window_end: str
    quantity: str
    position: str  # the charge's period-to-date quantity after this window
    amount: str  # price(position after) - price(position before)
    provisional: bool
    currency: str


FIELDS = list(RatedRecord._fields)


def rated_meters(catalog: Catalog) -> set[tuple[str, str]]:
    """The (customer, meter) pairs whose windows can be rated: a meter rated from windows with a
    charge in some version of a plan the customer subscribes to. Rater.rate returns nothing for
    any other window, so the job filters those out in the JVM."""
    out = set()
    for sub in catalog.subscriptions:
        for plan in catalog.versions_for(sub):
            for charge in plan.charges:
                meter = catalog.meters_by_id.get(charge.meter)
                if meter is not None and aggregations.of(meter).rated_from_windows:
                    out.add((sub.customer, charge.meter))
    return out


class Rater:
    """Pure rating logic; the Flink operator (rate_windows) keeps `positions` in keyed state."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.subs: dict[str, list[Subscription]] = {}
        for s in catalog.subscriptions:
            self.subs.setdefault(s.customer, []).append(s)
        # (customer, period start) -> the period and its segments: the operators ask once per
        # window or usage row, and the catalog never changes under a Rater.
        self._segments: dict[tuple[str, datetime], tuple[Period, list[plans.Segment]]] = {}

    def plan_at(self, customer: str, t: datetime) -> tuple[Plan, datetime, Period] | None:
        """The plan version pricing usage at t, its segment's start, and the customer's period."""
        for sub in self.subs.get(customer, []):
            if sub.start <= t and (sub.end is None or t < sub.end):
                period, segments = self._period_segments(sub, t)
                for seg in segments:
                    if seg.start <= t < seg.end:
                        return seg.plan, seg.start, period
        return None

    def _period_segments(self, sub: Subscription, t: datetime) -> tuple[Period, list[plans.Segment]]:
        period = period_at(t.astimezone(UTC), self.catalog.billing_period(sub.plan), sub.billing_anchor)
        key = (sub.customer, period.start)
        found = self._segments.get(key)
        if found is None:
            if len(self._segments) >= SEGMENT_CACHE:
                self._segments.clear()  # bounded: a long-running job meets new periods forever
            found = self._segments[key] = (
                period,
                plans.segments(self.catalog.versions_for(sub), sub, period.start, period.end),
            )
        return found

    def rate(
        self,
        positions: dict[str, str],
        customer: str,
        meter_id: str,
        group_key: str,
        window_start: datetime,
        window_end: datetime,
        quantity: Decimal,
        max_quantity: Decimal,
    ) -> list[RatedRecord]:
        """Rated records for one window; updates `positions` (charge key -> period-to-date)."""
        meter = self.catalog.meters_by_id.get(meter_id)
        found = self.plan_at(customer, window_start)
        if meter is None or not aggregations.of(meter).rated_from_windows or found is None:
            return []
        plan, segment_start, period = found
        group = json.loads(group_key)
        _forget_before(positions, window_start - POSITION_HORIZON)
        out = []
        for i, charge in enumerate(plan.charges):
            if charge.meter != meter_id or any(group.get(k) != v for k, v in charge.filter):
                continue
            key = f"{plan.version}|{iso_utc(segment_start)}|{i}"
            before = Decimal(positions[key]) if key in positions else None
            base = before or Decimal(0)
            after = max(base, max_quantity) if aggregations.of(meter).window_rule == "max" else base + quantity
            positions[key] = str(after)
            amount = self._price(charge, after) - (self._price(charge, before) if before is not None else 0)
            out.append(
                RatedRecord(
                    customer,
                    period.name,
                    plan.id,
                    plan.version,
                    iso_utc(segment_start),
                    meter_id,
                    charge.filter_text,
                    charge.model,
                    iso_utc(window_start),
                    iso_utc(window_end),
                    plain(max_quantity if aggregations.of(meter).window_rule == "max" else quantity),
                    plain(after),
                    plain(amount),
                    charge.model in RATED_MODELS_PROVISIONAL,
                    plan.currency,
                )
            )
        return out

    @staticmethod
    def _price(charge: Charge, position: Decimal) -> Decimal:
        return pricing.price(charge, position).amount_exact


def _forget_before(positions: dict[str, str], horizon: datetime) -> None:
    """Drops the positions of segments that started before `horizon` (keys version|start|charge):
    one key holds a customer's meter and group across its periods."""
    cut = iso_utc(horizon)
    for key in [k for k in positions if k.split("|", 2)[1] < cut]:
        del positions[key]
