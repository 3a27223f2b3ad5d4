"""Rated records from the stream: what each closed window adds to its customer's period.

Runs as a keyed Python function on the window stream (one row per customer, meter, group and
window, so Python's per-row cost is paid per window, not per event). The position is the
period-to-date quantity of the charge within its segment (tiers restart at a version switch);
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
from datetime import UTC, datetime
from decimal import Decimal
from typing import NamedTuple

from tallyflow.core import aggregations, plans, pricing
from tallyflow.core.catalog import Catalog, Charge, Plan, Subscription
from tallyflow.core.periods import iso_utc, month_bounds, period_of, plain

RATED_MODELS_PROVISIONAL = ("volume", "staircase")
SEGMENT_CACHE = 100_000  # (customer, month) entries Rater.plan_at keeps


class RatedRecord(NamedTuple):
    """What one window adds to its customer's period for one charge (the rated topic's record)."""

    customer_id: str
    period: str
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
        for plan in catalog.plan_versions(sub.plan):
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
        # (customer, year, month) -> that month's segments of each of its subscriptions: the
        # operators ask once per window or usage row, and the catalog never changes under a Rater.
        self._segments: dict[tuple[str, int, int], list[list[plans.Segment]]] = {}

    def plan_at(self, customer: str, t: datetime) -> tuple[Plan, datetime] | None:
        for seg_list in self._month_segments(customer, t):
            for seg in seg_list:
                if seg.start <= t < seg.end:
                    return seg.plan, seg.start
        return None

    def _month_segments(self, customer: str, t: datetime) -> list[list[plans.Segment]]:
        utc = t.astimezone(UTC)
        key = (customer, utc.year, utc.month)
        found = self._segments.get(key)
        if found is None:
            if len(self._segments) >= SEGMENT_CACHE:
                self._segments.clear()  # bounded: a long-running job meets new months forever
            start, end = month_bounds(period_of(t))
            found = self._segments[key] = [
                plans.segments(self.catalog.plan_versions(sub.plan), sub, start, end)
                for sub in self.subs.get(customer, [])
            ]
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
        plan, segment_start = found
        group = json.loads(group_key)
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
                    period_of(window_start),
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
