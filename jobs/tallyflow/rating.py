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

from tallyflow import billing, pricing
from tallyflow.catalog import Catalog, Charge, Plan
from tallyflow.generator import month_bounds

RATED_MODELS_PROVISIONAL = ("volume", "staircase")
RATED_AGGREGATIONS = ("count", "sum", "max")
FIELDS = ["customer_id", "period", "plan_id", "version", "segment_start", "meter_id", "filter_text", "model",
          "window_start", "window_end", "quantity", "position", "amount", "provisional", "currency"]


def iso_utc(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Rater:
    """Pure rating logic; the Flink operator (rate_windows) keeps `positions` in keyed state."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.subs: dict[str, list] = {}
        for s in catalog.subscriptions:
            self.subs.setdefault(s.customer, []).append(s)

    def plan_at(self, customer: str, t: datetime) -> tuple[Plan, datetime] | None:
        for sub in self.subs.get(customer, []):
            if sub.start <= t < (sub.end or datetime.max.replace(tzinfo=UTC)):
                start, end = month_bounds(t.strftime("%Y-%m"))
                for seg in billing.segments(self.catalog.plan_versions(sub.plan), sub, start, end):
                    if seg.start <= t < seg.end:
                        return seg.plan, seg.start
        return None

    def rate(self, positions: dict[str, str], customer: str, meter_id: str, group_key: str, window_start: datetime,
             window_end: datetime, quantity: Decimal, max_quantity: Decimal) -> list[list]:
        """Rated records for one window; updates `positions` (charge key -> period-to-date)."""
        meter = self.catalog.meters_by_id.get(meter_id)
        found = self.plan_at(customer, window_start)
        if meter is None or meter.aggregation not in RATED_AGGREGATIONS or found is None:
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
            after = max(base, max_quantity) if meter.aggregation == "max" else base + quantity
            positions[key] = str(after)
            amount = self._price(charge, after) - (self._price(charge, before) if before is not None else 0)
            out.append([customer, window_start.strftime("%Y-%m"), plan.id, plan.version, iso_utc(segment_start),
                        meter_id,
                        ",".join(f"{k}={v}" for k, v in charge.filter), charge.model, iso_utc(window_start),
                        iso_utc(window_end), plain(quantity if meter.aggregation != "max" else max_quantity),
                        plain(after), plain(amount), charge.model in RATED_MODELS_PROVISIONAL, plan.currency])
        return out

    @staticmethod
    def _price(charge: Charge, position: Decimal) -> Decimal:
        return pricing.price(charge, position).amount_exact


def plain(d: Decimal) -> str:
    text = format(Decimal(d).normalize(), "f")
    return "0" if text == "-0" else text


def rate_windows(catalog: Catalog):
    """The Flink KeyedProcessFunction, keyed by (customer, meter, group, period)."""
    from pyflink.common import Row, Types
    from pyflink.common.time import Time
    from pyflink.datastream import KeyedProcessFunction, RuntimeContext
    from pyflink.datastream.state import StateTtlConfig, ValueStateDescriptor

    class RateWindows(KeyedProcessFunction):
        def __init__(self) -> None:
            self.rater = Rater(catalog)

        def open(self, runtime_context: RuntimeContext) -> None:
            descriptor = ValueStateDescriptor("positions", Types.STRING())
            # A key is one period of one customer's meter and group: gone two months after it.
            descriptor.enable_time_to_live(StateTtlConfig.new_builder(Time.days(62)).build())
            self.positions = runtime_context.get_state(descriptor)

        def process_element(self, w, ctx):
            positions = json.loads(self.positions.value() or "{}")
            records = self.rater.rate(positions, w.customer_id, w.meter_id, w.group_key, _ts(w.window_start),
                                      _ts(w.window_end), Decimal(w.quantity), Decimal(w.max_quantity))
            if records:
                self.positions.update(json.dumps(positions))
            for r in records:
                yield Row(*r)

    return RateWindows()


def _ts(value: str) -> datetime:
    """Window bounds arrive as 'yyyy-MM-dd HH:mm:ss.SSS' strings in UTC (the job's local time zone)."""
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def output_type():
    from pyflink.common import Types

    types = [Types.STRING()] * len(FIELDS)
    types[FIELDS.index("version")] = Types.INT()
    types[FIELDS.index("provisional")] = Types.BOOLEAN()
    return Types.ROW_NAMED(FIELDS, types)
