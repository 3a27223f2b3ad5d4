"""The meter aggregations, one registry for every place that applies them.

Each aggregation says what the job's router (jobs/jvm RouteEvents) emits for one event, whether
windows can be summed into the period (additive: count and sum, the only ones credits can
price), whether the stream rates it per window, and how the period quantity U comes from the raw
events (`period_quantity`, the invoice rule the SQL in sql/invoice/invoice_lines.sql implements).
The router receives each meter's `per_event` rule in its meter spec (stream/graph.py meter_spec),
so it never names an aggregation itself; tests/vectors/aggregations.json holds the Python, the
SQL and the Java router to the same answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from tallyflow.core.model import Charge, Meter

ZERO = Decimal(0)


@dataclass(frozen=True)
class Aggregation:
    name: str
    additive: bool  # the period value is the sum of the windows' values
    value_from: str  # "values" (a decimal), "dimensions" (a string) or "" (count takes none)
    per_event: str  # what the router emits per event: one | one_if_dimension | value
    rated_from_windows: bool  # the stream prices each window (rated records); else invoice time only
    level: float | None = None  # the quantile of p95 / p99


REGISTRY: dict[str, Aggregation] = {
    a.name: a
    for a in (
        Aggregation("count", True, "", "one", True),
        Aggregation("sum", True, "values", "value", True),
        Aggregation("max", False, "values", "value", True),
        Aggregation("unique_count", False, "dimensions", "one_if_dimension", False),
        Aggregation("latest", False, "values", "value", False),
        Aggregation("p95", False, "values", "value", False, 0.95),
        Aggregation("p99", False, "values", "value", False, 0.99),
    )
}
NAMES = tuple(REGISTRY)
ADDITIVE = tuple(name for name, a in REGISTRY.items() if a.additive)


def of(meter: Meter) -> Aggregation:
    return REGISTRY[meter.aggregation]


def row_quantity(meter: Meter, event: dict) -> Decimal | None:
    """What the router emits for one event of the meter's type: the row's quantity, or None when
    the meter does not count the event (its value or dimension is absent)."""
    rule = of(meter).per_event
    if rule == "one":
        return Decimal(1)
    if rule == "one_if_dimension":
        return Decimal(1) if meter.value in event.get("dimensions", {}) else None
    raw = event.get("values", {}).get(meter.value)
    return None if raw is None else Decimal(raw)


def quantile_exact(values: list[Decimal], level: float) -> Decimal:
    """ClickHouse quantileExact: the element at index floor(level * n) of the sorted values.
    The index is computed in binary floating point exactly as ClickHouse does (an index, never money)."""
    ordered = sorted(values)
    return ordered[min(int(level * len(ordered)), len(ordered) - 1)]


def period_quantity(meter: Meter, charge: Charge, events: Iterable[dict]) -> Decimal:
    """U: the meter's aggregation over one segment's events that pass the charge's filter."""
    rows = [
        e
        for e in events
        if e["event_type"] == meter.event_type and all(e.get("dimensions", {}).get(k) == v for k, v in charge.filter)
    ]
    agg = of(meter)
    if agg.name == "count":
        return Decimal(len(rows))
    if agg.name == "unique_count":
        return Decimal(len({e["dimensions"][meter.value] for e in rows if meter.value in e.get("dimensions", {})}))
    valued = [(e, Decimal(e["values"][meter.value])) for e in rows if meter.value in e.get("values", {})]
    if not valued:
        return ZERO
    vals = [v for _, v in valued]
    if agg.name == "sum":
        return sum(vals, ZERO)
    if agg.name == "max":
        return max(vals)
    if agg.name == "latest":
        return max(valued, key=lambda ev: (ev[0]["event_time"], ev[0]["event_id"]))[1]
    assert agg.level is not None
    return quantile_exact(vals, agg.level)
