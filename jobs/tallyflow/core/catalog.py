"""The billing catalog (docs/catalog.md): load YAML or JSON, validate every rule, or reject.

Nothing runs on a half-valid catalog: `load` collects every violation, each naming the plan
(with version), the charge and the rule, and raises CatalogError with all of them. The model
itself is core/model.py (re-exported here: callers import catalog types from one place).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from tallyflow.core import aggregations, catalog_alerts, catalog_credits, periods
from tallyflow.core import catalog_accounts as accounts
from tallyflow.core import catalog_contracts as contracts
from tallyflow.core import catalog_fields as read
from tallyflow.core.catalog_fields import Problems
from tallyflow.core.model import (
    MODELS,
    Catalog,
    CatalogError,
    Charge,
    Coupon,
    Credits,
    Grant,
    Meter,
    Plan,
    Step,
    Subscription,
    Tax,
    Tier,
    minor_units,
)
from tallyflow.core.periods import shown
from tallyflow.errors import UserError

__all__ = [
    "Catalog",
    "CatalogError",
    "Charge",
    "Coupon",
    "Credits",
    "Grant",
    "Meter",
    "Plan",
    "Step",
    "Subscription",
    "Tax",
    "Tier",
    "load",
    "minor_units",
    "parse",
]


# --- sections -------------------------------------------------------------------------------


def _meters(p: Problems, raw: Any) -> tuple[Meter, ...]:
    out: list[Meter] = []
    seen: set[str] = set()
    for i, m in enumerate(read.items(p, "meters", raw)):
        m = read.mapping(p, f"meters[{i}]", m)
        where = f"meter {m.get('id', f'#{i}')}"
        read.keys(
            p,
            where,
            m,
            {"id", "event_type", "aggregation", "value", "group_by", "unit", "description"},
            {"id", "event_type", "aggregation"},
        )
        mid = read.text(p, where, "id", m.get("id"))
        if mid in seen:
            p.add(where, "duplicate meter id")
        seen.add(mid)
        agg = read.choice(m.get("aggregation"))
        if agg not in aggregations.REGISTRY:
            p.add(where, f"aggregation '{shown(m.get('aggregation'))}' is not one of {', '.join(aggregations.NAMES)}")
        value = m.get("value")
        if agg in aggregations.REGISTRY and aggregations.REGISTRY[agg].value_from and not value:
            p.add(where, f"aggregation {agg} needs 'value' (a key of values, or of dimensions for unique_count)")
        if value is not None and not isinstance(value, str):
            p.add(where, "value must be a string key")
        unit = m.get("unit")
        if agg == "time_weighted" and read.choice(unit) not in aggregations.TIME_UNITS:
            p.add(
                where,
                f"unit '{shown(unit)}' is not one of {', '.join(aggregations.TIME_UNITS)} (time_weighted needs one)",
            )
        elif agg != "time_weighted" and unit is not None:
            p.add(where, "unit belongs to time_weighted meters")
        group_by = read.items(p, f"{where}, group_by", m.get("group_by"))
        if any(not isinstance(g, str) or not g for g in group_by) or len(set(group_by)) != len(group_by):
            p.add(where, "group_by must be a list of distinct dimension keys")
        out.append(
            Meter(
                mid,
                read.text(p, where, "event_type", m.get("event_type")),
                str(agg),
                value if isinstance(value, str) else None,
                tuple(str(g) for g in group_by),
                str(unit) if agg == "time_weighted" and isinstance(unit, str) else "",
            )
        )
    if not out:
        p.add("meters", "at least one meter is required")
    return tuple(out)


def _bounds(p: Problems, where: str, what: str, rows: list[dict]) -> list[Decimal | None]:
    """Validates the `up_to` column of tiers or steps; returns the parsed bounds."""
    bounds: list[Decimal | None] = []
    if not rows:
        p.add(where, f"{what} must not be empty")
        return bounds
    for i, row in enumerate(rows):
        raw = row.get("up_to")
        last = i == len(rows) - 1
        if raw is None:
            if not last:
                p.add(where, f"{what}[{i}]: up_to null is only allowed on the last {what[:-1]}")
            bounds.append(None)
            continue
        b = read.decimal(p, where, f"{what}[{i}].up_to", raw, positive=True)
        if last:
            p.add(where, f"the last {what[:-1]} must have up_to: null (unbounded)")
        prev = next((x for x in reversed(bounds) if x is not None), None)
        if prev is not None and b <= prev:
            p.add(where, f"{what[:-1]} bounds must strictly increase ({b} after {prev})")
        bounds.append(b)
    return bounds


def _charge(p: Problems, plan_label: str, i: int, c: Any, meters: dict[str, Meter]) -> Charge | None:
    c = read.mapping(p, f"{plan_label}, charge #{i}", c)
    where = f"{plan_label}, charge {c.get('meter', f'#{i}')}"
    common = {"meter", "model", "filter", "included_units", "description"}
    per_model = {
        "per_unit": {"unit_price"},
        "graduated": {"tiers"},
        "volume": {"tiers"},
        "package": {"package_size", "package_price"},
        "staircase": {"steps"},
    }
    model = c.get("model")
    if model not in MODELS:
        p.add(where, f"model '{model}' is not one of {', '.join(MODELS)}")
        return None
    read.keys(p, where, c, common | per_model[model], {"meter", "model"} | per_model[model])
    meter_id = c.get("meter")
    meter = meters.get(meter_id) if isinstance(meter_id, str) else None
    if meter is None:
        p.add(where, f"meter '{meter_id}' is not defined in meters")
    flt = read.mapping(p, f"{where}, filter", c.get("filter") or {})
    for k, v in flt.items():
        if meter is not None and k not in meter.group_by:
            p.add(where, f"filter key '{k}' is not in meter {meter.id}'s group_by {list(meter.group_by)}")
        if not isinstance(v, str):
            p.add(where, f"filter value for '{k}' must be a string")
    included = read.decimal(p, where, "included_units", c.get("included_units", "0"))
    charge = Charge(
        meter=str(meter_id),
        model=model,
        filter=tuple(sorted((str(k), str(v)) for k, v in flt.items())),
        included_units=included,
    )
    if model == "per_unit":
        return _replace(charge, unit_price=read.decimal(p, where, "unit_price", c.get("unit_price")))
    if model in ("graduated", "volume"):
        rows = [read.mapping(p, f"{where}, tiers[{j}]", t) for j, t in enumerate(read.items(p, where, c.get("tiers")))]
        bounds = _bounds(p, where, "tiers", rows)
        tiers = []
        for j, (row, b) in enumerate(zip(rows, bounds, strict=False)):
            read.keys(p, f"{where}, tiers[{j}]", row, {"up_to", "unit_price", "flat_fee"}, {"up_to", "unit_price"})
            tiers.append(
                Tier(
                    b,
                    read.decimal(p, where, f"tiers[{j}].unit_price", row.get("unit_price")),
                    read.decimal(p, where, f"tiers[{j}].flat_fee", row.get("flat_fee", "0")),
                )
            )
        return _replace(charge, tiers=tuple(tiers))
    if model == "package":
        return _replace(
            charge,
            package_size=read.decimal(p, where, "package_size", c.get("package_size"), positive=True),
            package_price=read.decimal(p, where, "package_price", c.get("package_price")),
        )
    rows = [read.mapping(p, f"{where}, steps[{j}]", t) for j, t in enumerate(read.items(p, where, c.get("steps")))]
    bounds = _bounds(p, where, "steps", rows)
    steps = []
    for j, (row, b) in enumerate(zip(rows, bounds, strict=False)):
        read.keys(p, f"{where}, steps[{j}]", row, {"up_to", "price"}, {"up_to", "price"})
        steps.append(Step(b, read.decimal(p, where, f"steps[{j}].price", row.get("price"))))
    return _replace(charge, steps=tuple(steps))


def _replace(charge: Charge, **kw: Any) -> Charge:
    return replace(charge, **kw)


def _filters_overlap(a: tuple[tuple[str, str], ...], b: tuple[tuple[str, str], ...]) -> bool:
    da, db = dict(a), dict(b)
    return all(da[k] == db[k] for k in set(da) & set(db))


def _plans(p: Problems, raw: Any, meters: dict[str, Meter]) -> tuple[Plan, ...]:
    out: list[Plan] = []
    seen: set[tuple[str, int]] = set()
    allowed = {
        "id",
        "version",
        "effective_from",
        "apply",
        "currency",
        "billing_period",
        "base_fee",
        "minimum_commitment",
        "charges",
        "credits",
        "alerts",
        "name",
        "description",
    }
    for i, pl in enumerate(read.items(p, "plans", raw)):
        pl = read.mapping(p, f"plans[{i}]", pl)
        version = pl.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 2**31:
            version = 0  # reported below, under a label that never prints a 5,000-digit number
        label = f"plan {shown(pl.get('id', f'#{i}'), 100)} v{version or '?'}"
        read.keys(p, label, pl, allowed, {"id", "version", "effective_from", "currency"})
        pid = read.text(p, label, "id", pl.get("id"))
        if not version:
            p.add(label, "version must be an integer from 1 to 2147483647")
        if (pid, version) in seen:
            p.add(label, "duplicate plan id and version")
        seen.add((pid, version))
        currency = pl.get("currency")
        if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha() or not currency.isupper():
            p.add(label, f"currency '{currency}' is not an ISO 4217 code like USD")
            currency = "XXX"
        apply = pl.get("apply", "next_period")
        if apply not in ("next_period", "immediately"):
            p.add(label, f"apply '{apply}' is not one of next_period, immediately")
        billing_period = read.choice(pl.get("billing_period", "month"))
        if billing_period not in periods.LENGTHS:
            p.add(
                label, f"billing_period '{shown(pl.get('billing_period'))}' is not one of {', '.join(periods.LENGTHS)}"
            )
            billing_period = "month"
        charges = tuple(
            ch
            for j, c in enumerate(read.items(p, f"{label}, charges", pl.get("charges")))
            if (ch := _charge(p, label, j, c, meters)) is not None
        )
        for a_i, a in enumerate(charges):
            for b in charges[a_i + 1 :]:
                if a.meter == b.meter and _filters_overlap(a.filter, b.filter):
                    p.add(
                        f"{label}, charge {b.label}",
                        f"several charges on meter {a.meter} need disjoint filters (overlaps {a.label})",
                    )
        credits = catalog_credits.parse(p, label, pl.get("credits"), meters)
        if credits is not None:
            charged = {c.meter for c in charges}
            for meter_id, _ in credits.rates:
                if meter_id in charged:
                    p.add(f"{label}, charge {meter_id}", "a credit-priced meter must have no charges")
        mc = pl.get("minimum_commitment")
        out.append(
            Plan(
                id=pid,
                version=version,
                effective_from=read.time(p, label, "effective_from", pl.get("effective_from")),
                currency=currency,
                apply=str(apply),
                billing_period=str(billing_period),
                base_fee=read.decimal(p, label, "base_fee", pl.get("base_fee", "0")),
                minimum_commitment=None if mc is None else read.decimal(p, label, "minimum_commitment", mc),
                charges=charges,
                credits=credits,
                alerts=catalog_alerts.parse(p, label, pl.get("alerts"), charges),
            )
        )
    by_id: dict[str, list[Plan]] = {}
    for plan in out:
        by_id.setdefault(plan.id, []).append(plan)
    for versions in by_id.values():
        versions.sort(key=lambda x: x.version)
        for older, newer in zip(versions, versions[1:], strict=False):
            if newer.effective_from < older.effective_from:
                p.add(
                    newer.label,
                    f"effective_from must not be before v{older.version}'s ({older.effective_from.isoformat()})",
                )
            if newer.currency != older.currency:
                p.add(newer.label, f"currency {newer.currency} differs from v{older.version}'s {older.currency}")
            if newer.billing_period != older.billing_period:
                p.add(
                    newer.label,
                    f"billing_period {newer.billing_period} differs from v{older.version}'s {older.billing_period} "
                    "(a subscription keeps its period length; a new length is a new plan)",
                )
    return tuple(out)


def parse(doc: Any, source: str = "catalog") -> Catalog:
    p = Problems()
    doc = read.mapping(p, "", doc)
    read.keys(
        p,
        "",
        doc,
        {"meters", "plans", "subscriptions", "grants", "privacy", "coupons", "taxes", "customers"},
        {"meters", "plans"},
    )
    meters = _meters(p, doc.get("meters"))
    by_id = {m.id: m for m in meters}
    plans = _plans(p, doc.get("plans"), by_id)
    subs = accounts.subscriptions(p, doc.get("subscriptions"), {pl.id for pl in plans})
    grants = accounts.grants(p, doc.get("grants"))
    accounts.one_currency_per_customer(p, plans, subs)
    coupons = contracts.coupons(p, doc.get("coupons"), set(by_id))
    contracts.check_coupon_uses(p, subs, coupons, plans)
    taxes = contracts.taxes(p, doc.get("taxes"))
    customer_taxes = contracts.customers(p, doc.get("customers"), {t.id for t in taxes})
    overridden = contracts.overridden(p, doc, plans, subs, lambda p_, where, i, c: _charge(p_, where, i, c, by_id))
    pseudonymize = _privacy(p, doc.get("privacy"))
    if p.items:
        raise CatalogError(source, p.items)
    document = json.dumps(doc, sort_keys=True, default=str)
    digest = hashlib.sha256(document.encode()).hexdigest()[:16]
    return Catalog(
        meters,
        plans,
        subs,
        grants,
        digest,
        by_id,
        document,
        pseudonymize,
        coupons,
        taxes,
        customer_taxes,
        overridden,
    )


def _privacy(p: Problems, raw: Any) -> tuple[str, ...]:
    """privacy.pseudonymize: dimension keys whose values are stored as a keyed HMAC, never raw."""
    if raw is None:
        return ()
    privacy = read.mapping(p, "privacy", raw)
    read.keys(p, "privacy", privacy, {"pseudonymize"}, {"pseudonymize"})
    keys = read.items(p, "privacy.pseudonymize", privacy.get("pseudonymize", []))
    out: list[str] = []
    for i, key in enumerate(keys):
        name = read.text(p, f"privacy.pseudonymize[{i}]", "a dimension key", key)
        if name in out:
            p.add(f"privacy.pseudonymize[{i}]", f"'{name}' is listed twice")
        elif name:
            out.append(name)
    return tuple(out)


def load(path: str | Path) -> Catalog:
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read catalog {path}: {getattr(e, 'strerror', None) or 'not UTF-8 text'}") from None
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        # YAML is a superset of JSON, but keep JSON's own error messages for .json files.
        doc = json.loads(text) if kind == "JSON" else yaml.load(text, Loader=read.Loader)  # noqa: S506 (safe)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise UserError(f"{path}: not valid {kind}: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise UserError(f"{path}: not a catalog: nested more than {read.MAX_DEPTH} levels") from None
    except ValueError:  # Python's integer limit: a number of more than 4,300 digits
        raise UserError(f"{path}: not a catalog: a number of more than 4,300 digits") from None
    problem = read.shape_problem(doc)
    if problem:
        raise UserError(f"{path}: not a catalog: {problem}")
    return parse(doc, str(path))
