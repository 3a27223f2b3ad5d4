"""A plan's `alerts` section (docs/catalog.md): usage alerts and spike detection settings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tallyflow.core import catalog_fields as read
from tallyflow.core.catalog_fields import Problems
from tallyflow.core.model import Alerts, Charge, Spike


def _increasing(p: Problems, where: str, name: str, raw: Any) -> tuple[Decimal, ...]:
    values = [read.decimal(p, where, f"{name}[{i}]", v, positive=True) for i, v in enumerate(read.items(p, where, raw))]
    if values != sorted(set(values)):
        p.add(where, f"{name} must strictly increase")
    return tuple(values)


def _int(p: Problems, where: str, name: str, raw: Any, default: int) -> int:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        p.add(where, f"{name} must be an integer of at least 1")
        return default
    return raw


def parse(p: Problems, plan_label: str, raw: Any, charges: tuple[Charge, ...]) -> Alerts | None:
    if raw is None:
        return None
    where = f"{plan_label}, alerts"
    a = read.mapping(p, where, raw)
    read.keys(p, where, a, {"included_usage", "spend", "spike"}, set())
    included = _increasing(p, where, "included_usage", a.get("included_usage"))
    if included and not any(c.included_units > 0 for c in charges):
        p.add(where, "included_usage needs a charge with included_units")
    spike = None
    if a.get("spike") is not None:
        s = read.mapping(p, f"{where}, spike", a["spike"])
        sw = f"{where}, spike"
        read.keys(p, sw, s, {"factor", "baseline_days", "min_history_days", "min_quantity"}, set())
        factor = read.decimal(p, sw, "factor", s.get("factor", "3"), positive=True)
        if factor <= 1:
            p.add(sw, f"factor must be greater than 1 (got {s.get('factor')})")
        days = _int(p, sw, "baseline_days", s.get("baseline_days"), 7)
        history = _int(p, sw, "min_history_days", s.get("min_history_days"), min(3, days))
        if history > days:
            p.add(sw, "min_history_days must not exceed baseline_days")
        spike = Spike(factor, days, history, read.decimal(p, sw, "min_quantity", s.get("min_quantity", "1")))
    return Alerts(included, _increasing(p, where, "spend", a.get("spend")), spike)
