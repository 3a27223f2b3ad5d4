"""A plan's prepaid credit terms (docs/catalog.md, Credits): which meters draw credits at what
rate, the credit's price, and what happens when grants run out. Read like the rest of the
catalog: every problem recorded, naming where and the rule."""

from __future__ import annotations

from typing import Any

from tallyflow.core import aggregations
from tallyflow.core import catalog_fields as read
from tallyflow.core.catalog_fields import Problems
from tallyflow.core.model import Credits, Meter


def parse(p: Problems, plan_label: str, raw: Any, meters: dict[str, Meter]) -> Credits | None:
    if raw is None:
        return None
    c = read.mapping(p, f"{plan_label}, credits", raw)
    where = f"{plan_label}, credits"
    read.keys(
        p,
        where,
        c,
        {"rates", "credit_price", "on_exhausted", "overage_multiplier", "alert_thresholds"},
        {"rates", "credit_price"},
    )
    rates = []
    for meter_id, rate in read.mapping(p, f"{where}, rates", c.get("rates") or {}).items():
        meter = meters.get(meter_id)
        if meter is None:
            p.add(where, f"rates: meter '{meter_id}' is not defined in meters")
        elif meter.aggregation in aggregations.REGISTRY and not aggregations.of(meter).additive:
            p.add(where, f"rates: meter '{meter_id}' is {meter.aggregation}; credits need count or sum meters")
        rates.append((str(meter_id), read.decimal(p, where, f"rates.{meter_id}", rate, positive=True)))
    if not rates:
        p.add(where, "rates must name at least one meter")
    on_exhausted = c.get("on_exhausted", "overage")
    if on_exhausted not in ("overage", "pause"):
        p.add(where, f"on_exhausted '{on_exhausted}' is not one of overage, pause")
    thresholds = [
        read.decimal(p, where, f"alert_thresholds[{i}]", t, positive=True)
        for i, t in enumerate(read.items(p, where, c.get("alert_thresholds")))
    ]
    if any(t > 1 for t in thresholds):
        p.add(where, "alert_thresholds are fractions of the granted credits, at most 1")
    if thresholds != sorted(set(thresholds)):
        p.add(where, "alert_thresholds must strictly increase")
    return Credits(
        rates=tuple(sorted(rates)),
        credit_price=read.decimal(p, where, "credit_price", c.get("credit_price")),
        on_exhausted=str(on_exhausted),
        overage_multiplier=read.decimal(p, where, "overage_multiplier", c.get("overage_multiplier", "1")),
        alert_thresholds=tuple(thresholds),
    )
