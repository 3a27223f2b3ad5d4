"""The meter aggregations, one registry for every place that applies them.

Each aggregation says what the job's router (jobs/jvm RouteEvents) emits for one event
(`per_event`), how windows combine into the period (`window_rule`: added, their maximum, or not
at all), and how the period quantity U comes from the raw events (`period_rule`, which
`period_quantity` applies here and every SQL that aggregates applies through `sql_parameters`).
The router receives each meter's `per_event` rule in its meter spec (stream/graph.py meter_spec),
so it never names an aggregation itself; tests/vectors/aggregations.json holds the Python, the
SQL and the Java router to the same answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal, localcontext

from tallyflow.core.model import Charge, Meter

ZERO = Decimal(0)


@dataclass(frozen=True)
class Aggregation:
    name: str
    value_from: str  # "values" (a decimal), "dimensions" (a string) or "" (count takes none)
    per_event: str  # what the router emits per event: one | one_if_dimension | value
    period_rule: str  # how the period's events make U: count | sum | max | distinct | latest | quantile | time_weighted
    window_rule: str  # how windows make U: "add", "max", or "" (only the raw events can)
    level: float | None = None  # the quantile of p95 / p99

    @property
    def additive(self) -> bool:
        """The period value is the sum of the windows' values (the only kind credits can price)."""
        return self.window_rule == "add"

    @property
    def rated_from_windows(self) -> bool:
        """The stream prices each window (rated records); else invoice time only."""
        return bool(self.window_rule)


REGISTRY: dict[str, Aggregation] = {
    a.name: a
    for a in (
        Aggregation("count", "", "one", "count", "add"),
        Aggregation("sum", "values", "value", "sum", "add"),
        Aggregation("max", "values", "value", "max", "max"),
        Aggregation("unique_count", "dimensions", "one_if_dimension", "distinct", ""),
        Aggregation("latest", "values", "value", "latest", ""),
        Aggregation("p95", "values", "value", "quantile", "", 0.95),
        Aggregation("p99", "values", "value", "quantile", "", 0.99),
        # Each event reports a resource's level; U is the integral of the levels over the period.
        Aggregation("time_weighted", "values", "value", "time_weighted", ""),
    )
}
# time_weighted's units, in milliseconds: the integral's level-milliseconds are divided by one.
TIME_UNITS = {"second": 1000, "minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
QUANTITY_PLACES = Decimal(1).scaleb(-12)  # Decimal(38, 12), the scale every quantity is stored in
NAMES = tuple(REGISTRY)
ADDITIVE = tuple(name for name, a in REGISTRY.items() if a.additive)


def sql_parameters() -> dict[str, list]:
    """The registry as the parallel arrays every SQL that aggregates takes (sql/invoice,
    sql/serve/daily_usage, sql/reconcile/metering), so no SQL names an aggregation itself."""
    return {
        "aggregations": list(REGISTRY),
        "per_event": [a.per_event for a in REGISTRY.values()],
        "period_rules": [a.period_rule for a in REGISTRY.values()],
        "levels": [a.level or 0.0 for a in REGISTRY.values()],
        "time_units": list(TIME_UNITS),
        "unit_ms": list(TIME_UNITS.values()),
    }


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


def period_quantity(
    meter: Meter, charge: Charge, events: Iterable[dict], start: datetime | None = None, end: datetime | None = None
) -> Decimal:
    """U: the meter's aggregation over one segment's events that pass the charge's filter. A
    time_weighted meter also reads the levels reported before the segment: pass the events
    before `end`, and the segment's `start` and `end`."""
    rows = [
        e
        for e in events
        if e["event_type"] == meter.event_type and all(e.get("dimensions", {}).get(k) == v for k, v in charge.filter)
    ]
    agg = of(meter)
    if agg.period_rule == "count":
        return Decimal(len(rows))
    if agg.period_rule == "distinct":
        return Decimal(len({e["dimensions"][meter.value] for e in rows if meter.value in e.get("dimensions", {})}))
    valued = [(e, Decimal(e["values"][meter.value])) for e in rows if meter.value in e.get("values", {})]
    if not valued:
        return ZERO
    vals = [v for _, v in valued]
    if agg.period_rule == "sum":
        return sum(vals, ZERO)
    if agg.period_rule == "max":
        return max(vals)
    if agg.period_rule == "latest":
        return max(valued, key=lambda ev: (ev[0]["event_time"], ev[0]["event_id"]))[1]
    if agg.period_rule == "quantile" and agg.level is not None:
        return quantile_exact(vals, agg.level)
    if agg.period_rule == "time_weighted" and start is not None and end is not None:
        return time_weighted(meter, valued, start, end)
    raise ValueError(f"aggregation {agg.name}: no period rule {agg.period_rule!r}")


def time_weighted(meter: Meter, valued: list[tuple[dict, Decimal]], start: datetime, end: datetime) -> Decimal:
    """The integral over [start, end) of the summed levels of the meter's resources (its group_by
    dimensions), in its unit. A level holds from its event until the resource's next event (the
    later event id first at one instant); the last level before `start` carries into it. The
    level-milliseconds are exact; dividing by the unit is truncated to 12 places (docs/catalog.md)."""
    by_resource: dict[tuple[str, ...], list[tuple[datetime, str, Decimal]]] = {}
    for e, level in valued:
        if e["event_time"] < end:
            resource = tuple(e.get("dimensions", {}).get(k, "") for k in meter.group_by)
            by_resource.setdefault(resource, []).append((e["event_time"], e["event_id"], level))
    total = ZERO
    ms = timedelta(milliseconds=1)
    for points in by_resource.values():
        points.sort(key=lambda x: (x[0], x[1]))
        for i, (t, _, level) in enumerate(points):
            following = points[i + 1][0] if i + 1 < len(points) else end
            held = (min(following, end) - max(t, start)) // ms
            if held > 0:
                total += level * held
    with localcontext() as ctx:
        ctx.prec = 80
        return (total / TIME_UNITS[meter.unit]).quantize(QUANTITY_PLACES, rounding=ROUND_DOWN)
