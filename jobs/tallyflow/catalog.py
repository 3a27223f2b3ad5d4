"""The billing catalog (shared/CATALOG.md): load YAML or JSON, validate every rule, or reject.

Nothing runs on a half-valid catalog: `load` collects every violation, each naming the plan
(with version), the charge and the rule, and raises CatalogError with all of them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from tallyflow.errors import UserError

AGGREGATIONS = ("count", "sum", "max", "unique_count", "latest", "p95", "p99")
ADDITIVE = ("count", "sum")
MODELS = ("per_unit", "graduated", "volume", "package", "staircase")
ZERO_DECIMAL_CURRENCIES = ("JPY", "KRW")


class CatalogError(UserError):
    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        # The first line stands alone (scripts read one line); further problems follow, one a line.
        more = f"\n  and {len(problems) - 1} more:\n  " + "\n  ".join(problems[1:]) if len(problems) > 1 else ""
        super().__init__(f"{source}: catalog rejected: {problems[0]}{more}")


def minor_units(currency: str) -> int:
    return 0 if currency in ZERO_DECIMAL_CURRENCIES else 2


@dataclass(frozen=True)
class Meter:
    id: str
    event_type: str
    aggregation: str
    value: str | None = None
    group_by: tuple[str, ...] = ()

    @property
    def additive(self) -> bool:
        return self.aggregation in ADDITIVE


@dataclass(frozen=True)
class Tier:
    up_to: Decimal | None
    unit_price: Decimal = Decimal(0)
    flat_fee: Decimal = Decimal(0)


@dataclass(frozen=True)
class Step:
    up_to: Decimal | None
    price: Decimal


@dataclass(frozen=True)
class Charge:
    meter: str
    model: str
    filter: tuple[tuple[str, str], ...] = ()
    included_units: Decimal = Decimal(0)
    unit_price: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    package_size: Decimal | None = None
    package_price: Decimal | None = None
    steps: tuple[Step, ...] = ()

    @property
    def label(self) -> str:
        if not self.filter:
            return self.meter
        return self.meter + "{" + ",".join(f"{k}={v}" for k, v in self.filter) + "}"


@dataclass(frozen=True)
class Credits:
    rates: tuple[tuple[str, Decimal], ...]
    credit_price: Decimal
    on_exhausted: str = "overage"
    overage_multiplier: Decimal = Decimal(1)
    alert_thresholds: tuple[Decimal, ...] = ()


@dataclass(frozen=True)
class Plan:
    id: str
    version: int
    effective_from: datetime
    currency: str
    apply: str = "next_period"
    billing_period: str = "month"
    base_fee: Decimal = Decimal(0)
    minimum_commitment: Decimal | None = None
    charges: tuple[Charge, ...] = ()
    credits: Credits | None = None

    @property
    def label(self) -> str:
        return f"plan {self.id} v{self.version}"

    @property
    def minor_units(self) -> int:
        return minor_units(self.currency)


@dataclass(frozen=True)
class Subscription:
    customer: str
    plan: str
    start: datetime
    end: datetime | None = None


@dataclass(frozen=True)
class Grant:
    customer: str
    grant_id: str
    credits: Decimal
    priority: int
    effective_at: datetime
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Catalog:
    meters: tuple[Meter, ...]
    plans: tuple[Plan, ...]
    subscriptions: tuple[Subscription, ...] = ()
    grants: tuple[Grant, ...] = ()
    digest: str = ""
    meters_by_id: dict[str, Meter] = field(default_factory=dict, compare=False, repr=False)
    document: str = field(default="", compare=False, repr=False)  # the canonical JSON the digest is of

    def meter(self, meter_id: str) -> Meter:
        return self.meters_by_id[meter_id]

    def plan_versions(self, plan_id: str) -> list[Plan]:
        return sorted((p for p in self.plans if p.id == plan_id), key=lambda p: p.version)

    @property
    def customers(self) -> list[str]:
        return sorted({s.customer for s in self.subscriptions})


# --- parsing helpers: each records a problem and returns a usable placeholder -----------------


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, rule: str) -> None:
        self.items.append(f"{where}: {rule}" if where else rule)


def _decimal(p: _Problems, where: str, name: str, raw: Any, *, minimum: Decimal | None = Decimal(0),
             positive: bool = False) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        hint = f' (write "{raw}")' if isinstance(raw, float) else ""
        p.add(where, f"{name} must be a decimal string{hint}")
        return Decimal(0)
    try:
        d = Decimal(str(raw).strip())
    except InvalidOperation:
        p.add(where, f"{name} '{raw}' is not a decimal")
        return Decimal(0)
    if not d.is_finite():
        p.add(where, f"{name} must be finite")
        return Decimal(0)
    if positive and d <= 0:
        p.add(where, f"{name} must be greater than 0 (got {raw})")
    elif minimum is not None and d < minimum:
        p.add(where, f"{name} must be at least {minimum} (got {raw})")
    return d


def _time(p: _Problems, where: str, name: str, raw: Any) -> datetime:
    if isinstance(raw, datetime):
        raw = raw.isoformat()
    if not isinstance(raw, str):
        p.add(where, f"{name} must be an ISO 8601 time string with an offset")
        return datetime(1970, 1, 1, tzinfo=UTC)
    try:
        t = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        p.add(where, f"{name} '{raw}' is not an ISO 8601 time")
        return datetime(1970, 1, 1, tzinfo=UTC)
    if t.tzinfo is None:
        p.add(where, f"{name} '{raw}' has no UTC offset (add Z or +00:00)")
        return t.replace(tzinfo=UTC)
    return t.astimezone(UTC)


def _str(p: _Problems, where: str, name: str, raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        p.add(where, f"{name} must be a non-empty string")
        return ""
    return raw


def _keys(p: _Problems, where: str, obj: dict, allowed: set[str], required: set[str]) -> None:
    for k in obj:
        if k not in allowed:
            p.add(where, f"unknown field '{k}' (allowed: {', '.join(sorted(allowed))})")
    for k in sorted(required - set(obj)):
        p.add(where, f"missing required field '{k}'")


def _mapping(p: _Problems, where: str, raw: Any) -> dict:
    if not isinstance(raw, dict):
        p.add(where, "must be a mapping")
        return {}
    return raw


def _list(p: _Problems, where: str, raw: Any) -> list:
    if raw is None:
        return []
    if not isinstance(raw, list):
        p.add(where, "must be a list")
        return []
    return raw


# --- sections -------------------------------------------------------------------------------


def _meters(p: _Problems, raw: Any) -> tuple[Meter, ...]:
    out: list[Meter] = []
    seen: set[str] = set()
    for i, m in enumerate(_list(p, "meters", raw)):
        m = _mapping(p, f"meters[{i}]", m)
        where = f"meter {m.get('id', f'#{i}')}"
        _keys(p, where, m, {"id", "event_type", "aggregation", "value", "group_by", "description"},
              {"id", "event_type", "aggregation"})
        mid = _str(p, where, "id", m.get("id"))
        if mid in seen:
            p.add(where, "duplicate meter id")
        seen.add(mid)
        agg = m.get("aggregation")
        if agg not in AGGREGATIONS:
            p.add(where, f"aggregation '{agg}' is not one of {', '.join(AGGREGATIONS)}")
        value = m.get("value")
        if agg != "count" and agg in AGGREGATIONS and not value:
            p.add(where, f"aggregation {agg} needs 'value' (a key of values, or of dimensions for unique_count)")
        if value is not None and not isinstance(value, str):
            p.add(where, "value must be a string key")
        group_by = _list(p, f"{where}, group_by", m.get("group_by"))
        if any(not isinstance(g, str) or not g for g in group_by) or len(set(group_by)) != len(group_by):
            p.add(where, "group_by must be a list of distinct dimension keys")
        out.append(Meter(mid, _str(p, where, "event_type", m.get("event_type")), str(agg),
                         value if isinstance(value, str) else None, tuple(str(g) for g in group_by)))
    if not out:
        p.add("meters", "at least one meter is required")
    return tuple(out)


def _bounds(p: _Problems, where: str, what: str, rows: list[dict]) -> list[Decimal | None]:
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
        b = _decimal(p, where, f"{what}[{i}].up_to", raw, positive=True)
        if last:
            p.add(where, f"the last {what[:-1]} must have up_to: null (unbounded)")
        prev = next((x for x in reversed(bounds) if x is not None), None)
        if prev is not None and b <= prev:
            p.add(where, f"{what[:-1]} bounds must strictly increase ({b} after {prev})")
        bounds.append(b)
    return bounds


def _charge(p: _Problems, plan_label: str, i: int, c: Any, meters: dict[str, Meter]) -> Charge | None:
    c = _mapping(p, f"{plan_label}, charge #{i}", c)
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
    _keys(p, where, c, common | per_model[model], {"meter", "model"} | per_model[model])
    meter_id = c.get("meter")
    meter = meters.get(meter_id) if isinstance(meter_id, str) else None
    if meter is None:
        p.add(where, f"meter '{meter_id}' is not defined in meters")
    flt = _mapping(p, f"{where}, filter", c.get("filter") or {})
    for k, v in flt.items():
        if meter is not None and k not in meter.group_by:
            p.add(where, f"filter key '{k}' is not in meter {meter.id}'s group_by {list(meter.group_by)}")
        if not isinstance(v, str):
            p.add(where, f"filter value for '{k}' must be a string")
    included = _decimal(p, where, "included_units", c.get("included_units", "0"))
    charge = Charge(meter=str(meter_id), model=model, filter=tuple(sorted((str(k), str(v)) for k, v in flt.items())),
                    included_units=included)
    if model == "per_unit":
        return _replace(charge, unit_price=_decimal(p, where, "unit_price", c.get("unit_price")))
    if model in ("graduated", "volume"):
        rows = [_mapping(p, f"{where}, tiers[{j}]", t) for j, t in enumerate(_list(p, where, c.get("tiers")))]
        bounds = _bounds(p, where, "tiers", rows)
        tiers = []
        for j, (row, b) in enumerate(zip(rows, bounds, strict=False)):
            _keys(p, f"{where}, tiers[{j}]", row, {"up_to", "unit_price", "flat_fee"}, {"up_to", "unit_price"})
            tiers.append(Tier(b, _decimal(p, where, f"tiers[{j}].unit_price", row.get("unit_price")),
                              _decimal(p, where, f"tiers[{j}].flat_fee", row.get("flat_fee", "0"))))
        return _replace(charge, tiers=tuple(tiers))
    if model == "package":
        return _replace(charge,
                        package_size=_decimal(p, where, "package_size", c.get("package_size"), positive=True),
                        package_price=_decimal(p, where, "package_price", c.get("package_price")))
    rows = [_mapping(p, f"{where}, steps[{j}]", t) for j, t in enumerate(_list(p, where, c.get("steps")))]
    bounds = _bounds(p, where, "steps", rows)
    steps = []
    for j, (row, b) in enumerate(zip(rows, bounds, strict=False)):
        _keys(p, f"{where}, steps[{j}]", row, {"up_to", "price"}, {"up_to", "price"})
        steps.append(Step(b, _decimal(p, where, f"steps[{j}].price", row.get("price"))))
    return _replace(charge, steps=tuple(steps))


def _replace(charge: Charge, **kw: Any) -> Charge:
    from dataclasses import replace

    return replace(charge, **kw)


def _filters_overlap(a: tuple[tuple[str, str], ...], b: tuple[tuple[str, str], ...]) -> bool:
    da, db = dict(a), dict(b)
    return all(da[k] == db[k] for k in set(da) & set(db))


def _credits(p: _Problems, plan_label: str, raw: Any, meters: dict[str, Meter]) -> Credits | None:
    if raw is None:
        return None
    c = _mapping(p, f"{plan_label}, credits", raw)
    where = f"{plan_label}, credits"
    _keys(p, where, c, {"rates", "credit_price", "on_exhausted", "overage_multiplier", "alert_thresholds"},
          {"rates", "credit_price"})
    rates = []
    for meter_id, rate in _mapping(p, f"{where}, rates", c.get("rates") or {}).items():
        meter = meters.get(meter_id)
        if meter is None:
            p.add(where, f"rates: meter '{meter_id}' is not defined in meters")
        elif not meter.additive:
            p.add(where, f"rates: meter '{meter_id}' is {meter.aggregation}; credits need count or sum meters")
        rates.append((str(meter_id), _decimal(p, where, f"rates.{meter_id}", rate, positive=True)))
    if not rates:
        p.add(where, "rates must name at least one meter")
    on_exhausted = c.get("on_exhausted", "overage")
    if on_exhausted not in ("overage", "pause"):
        p.add(where, f"on_exhausted '{on_exhausted}' is not one of overage, pause")
    thresholds = [_decimal(p, where, f"alert_thresholds[{i}]", t, positive=True)
                  for i, t in enumerate(_list(p, where, c.get("alert_thresholds")))]
    if any(t > 1 for t in thresholds):
        p.add(where, "alert_thresholds are fractions of the granted credits, at most 1")
    if thresholds != sorted(set(thresholds)):
        p.add(where, "alert_thresholds must strictly increase")
    return Credits(
        rates=tuple(sorted(rates)),
        credit_price=_decimal(p, where, "credit_price", c.get("credit_price")),
        on_exhausted=str(on_exhausted),
        overage_multiplier=_decimal(p, where, "overage_multiplier", c.get("overage_multiplier", "1")),
        alert_thresholds=tuple(thresholds),
    )


def _plans(p: _Problems, raw: Any, meters: dict[str, Meter]) -> tuple[Plan, ...]:
    out: list[Plan] = []
    seen: set[tuple[str, int]] = set()
    allowed = {"id", "version", "effective_from", "apply", "currency", "billing_period", "base_fee",
               "minimum_commitment", "charges", "credits", "name", "description"}
    for i, pl in enumerate(_list(p, "plans", raw)):
        pl = _mapping(p, f"plans[{i}]", pl)
        version = pl.get("version")
        label = f"plan {pl.get('id', f'#{i}')} v{version}"
        _keys(p, label, pl, allowed, {"id", "version", "effective_from", "currency"})
        pid = _str(p, label, "id", pl.get("id"))
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            p.add(label, "version must be an integer of at least 1")
            version = 0
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
        if pl.get("billing_period", "month") != "month":
            p.add(label, "billing_period must be month (calendar month, UTC)")
        charges = tuple(
            ch for j, c in enumerate(_list(p, f"{label}, charges", pl.get("charges")))
            if (ch := _charge(p, label, j, c, meters)) is not None
        )
        for a_i, a in enumerate(charges):
            for b in charges[a_i + 1:]:
                if a.meter == b.meter and _filters_overlap(a.filter, b.filter):
                    p.add(f"{label}, charge {b.label}",
                          f"several charges on meter {a.meter} need disjoint filters (overlaps {a.label})")
        credits = _credits(p, label, pl.get("credits"), meters)
        if credits is not None:
            charged = {c.meter for c in charges}
            for meter_id, _ in credits.rates:
                if meter_id in charged:
                    p.add(f"{label}, charge {meter_id}", "a credit-priced meter must have no charges")
        mc = pl.get("minimum_commitment")
        out.append(Plan(
            id=pid, version=version, effective_from=_time(p, label, "effective_from", pl.get("effective_from")),
            currency=currency, apply=str(apply), base_fee=_decimal(p, label, "base_fee", pl.get("base_fee", "0")),
            minimum_commitment=None if mc is None else _decimal(p, label, "minimum_commitment", mc),
            charges=charges, credits=credits,
        ))
    by_id: dict[str, list[Plan]] = {}
    for plan in out:
        by_id.setdefault(plan.id, []).append(plan)
    for versions in by_id.values():
        versions.sort(key=lambda x: x.version)
        for a, b in zip(versions, versions[1:], strict=False):
            if b.effective_from < a.effective_from:
                p.add(b.label, f"effective_from must not be before v{a.version}'s ({a.effective_from.isoformat()})")
            if b.currency != a.currency:
                p.add(b.label, f"currency {b.currency} differs from v{a.version}'s {a.currency}")
    return tuple(out)


def _subscriptions(p: _Problems, raw: Any, plan_ids: set[str]) -> tuple[Subscription, ...]:
    out: list[Subscription] = []
    for i, s in enumerate(_list(p, "subscriptions", raw)):
        s = _mapping(p, f"subscriptions[{i}]", s)
        where = f"subscription of {s.get('customer', f'#{i}')}"
        _keys(p, where, s, {"customer", "plan", "start", "end"}, {"customer", "plan", "start"})
        plan = _str(p, where, "plan", s.get("plan"))
        if plan and plan not in plan_ids:
            p.add(where, f"plan '{plan}' is not defined in plans")
        start = _time(p, where, "start", s.get("start"))
        end = None if s.get("end") is None else _time(p, where, "end", s.get("end"))
        if end is not None and end <= start:
            p.add(where, "end must be after start")
        out.append(Subscription(_str(p, where, "customer", s.get("customer")), plan, start, end))
    far = datetime.max.replace(tzinfo=UTC)
    for i, a in enumerate(out):
        for b in out[i + 1:]:
            if a.customer == b.customer and a.start < (b.end or far) and b.start < (a.end or far):
                p.add(f"subscription of {a.customer}", "subscriptions of one customer must not overlap")
    return tuple(out)


def _one_currency_per_customer(p: _Problems, plans: tuple[Plan, ...], subs: tuple[Subscription, ...]) -> None:
    """A customer is billed in one currency (as in Stripe and Lago): amounts in two currencies
    would otherwise meet in one invoice total."""
    currency_of = {pl.id: pl.currency for pl in plans}  # every version of a plan has one currency (checked)
    seen: dict[str, tuple[str, str]] = {}  # customer -> (currency, plan)
    for s in subs:
        currency = currency_of.get(s.plan)
        if currency is None:
            continue
        first = seen.setdefault(s.customer, (currency, s.plan))
        if first[0] != currency:
            p.add(f"customer {s.customer}", f"subscriptions bill in {first[0]} (plan {first[1]}) and {currency} "
                                            f"(plan {s.plan}); a customer is billed in one currency")
            seen[s.customer] = (currency, s.plan)


def _grants(p: _Problems, raw: Any) -> tuple[Grant, ...]:
    out: list[Grant] = []
    seen: set[tuple[str, str]] = set()
    for i, g in enumerate(_list(p, "grants", raw)):
        g = _mapping(p, f"grants[{i}]", g)
        where = f"grant {g.get('grant_id', f'#{i}')} of {g.get('customer', '?')}"
        _keys(p, where, g, {"customer", "grant_id", "credits", "priority", "effective_at", "expires_at"},
              {"customer", "grant_id", "credits", "effective_at"})
        key = (str(g.get("customer")), str(g.get("grant_id")))
        if key in seen:
            p.add(where, "duplicate grant_id for this customer")
        seen.add(key)
        priority = g.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            p.add(where, "priority must be an integer")
            priority = 0
        effective = _time(p, where, "effective_at", g.get("effective_at"))
        expires = None if g.get("expires_at") is None else _time(p, where, "expires_at", g.get("expires_at"))
        if expires is not None and expires <= effective:
            p.add(where, "expires_at must be after effective_at")
        if effective.microsecond or (expires is not None and expires.microsecond):
            # Usage is drawn down per event-time second (as Stripe's grants use Unix seconds).
            p.add(where, "effective_at and expires_at must be whole seconds")
        out.append(Grant(_str(p, where, "customer", g.get("customer")), _str(p, where, "grant_id", g.get("grant_id")),
                         _decimal(p, where, "credits", g.get("credits"), positive=True), priority, effective, expires))
    return tuple(out)


def parse(doc: Any, source: str = "catalog") -> Catalog:
    p = _Problems()
    doc = _mapping(p, "", doc)
    _keys(p, "", doc, {"meters", "plans", "subscriptions", "grants"}, {"meters", "plans"})
    meters = _meters(p, doc.get("meters"))
    by_id = {m.id: m for m in meters}
    plans = _plans(p, doc.get("plans"), by_id)
    subs = _subscriptions(p, doc.get("subscriptions"), {pl.id for pl in plans})
    grants = _grants(p, doc.get("grants"))
    _one_currency_per_customer(p, plans, subs)
    if p.items:
        raise CatalogError(source, p.items)
    document = json.dumps(doc, sort_keys=True, default=str)
    digest = hashlib.sha256(document.encode()).hexdigest()[:16]
    return Catalog(meters, plans, subs, grants, digest, by_id, document)


def load(path: str | Path) -> Catalog:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(f"cannot read catalog {path}: {e.strerror}") from None
    try:
        # YAML is a superset of JSON, but keep JSON's own error messages for .json files.
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise UserError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                        f"{str(e).splitlines()[0]}") from None
    return parse(doc, str(path))
