"""The catalog's contract terms (docs/catalog.md): per-subscription overrides of a plan's
prices, coupons and the subscriptions that use them, taxes and the customers they apply to.
Read like the rest of the catalog: every problem recorded, naming where and the rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tallyflow.core import catalog_fields as read
from tallyflow.core import periods
from tallyflow.core.catalog_fields import Problems
from tallyflow.core.model import Charge, Coupon, CouponUse, Plan, Subscription, Tax
from tallyflow.core.periods import shown

DURATIONS = ("once", "repeating", "forever")
MONEY_KEYS = ("unit_price", "package_price", "flat_fee", "price")
ChargeReader = Callable[[Problems, str, int, Any], Charge | None]


def coupons(p: Problems, raw: Any, meter_ids: set[str]) -> tuple[Coupon, ...]:
    out: list[Coupon] = []
    for i, c in enumerate(read.items(p, "coupons", raw)):
        c = read.mapping(p, f"coupons[{i}]", c)
        where = f"coupon {shown(c.get('id', f'#{i}'))}"
        read.keys(
            p,
            where,
            c,
            {"id", "percent_off", "amount_off", "currency", "duration", "periods", "applies_to", "name"},
            {"id", "duration"},
        )
        cid = read.text(p, where, "id", c.get("id"))
        if any(o.id == cid for o in out):
            p.add(where, "duplicate coupon id")
        percent = amount = None
        if ("percent_off" in c) == ("amount_off" in c):
            p.add(where, "a coupon has exactly one of percent_off and amount_off")
        elif "percent_off" in c:
            percent = read.decimal(p, where, "percent_off", c["percent_off"], positive=True, quoted=True)
            if percent > 100:
                p.add(where, f"percent_off must be in (0, 100] (got {c['percent_off']})")
            if "currency" in c:
                p.add(where, "currency belongs to amount_off coupons")
        else:
            amount = read.decimal(p, where, "amount_off", c["amount_off"], positive=True, quoted=True)
            currency = c.get("currency")
            if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha() or not currency.isupper():
                p.add(where, f"amount_off needs currency, an ISO 4217 code like USD (got '{shown(currency)}')")
        duration = read.choice(c.get("duration"))
        if duration not in DURATIONS:
            p.add(where, f"duration '{shown(c.get('duration'))}' is not one of {', '.join(DURATIONS)}")
        count = c.get("periods")
        if duration == "repeating":
            if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count < 10_000:
                p.add(where, "duration repeating needs periods, a whole number from 1 to 9999")
                count = 1
        elif count is not None:
            p.add(where, "periods belongs to duration repeating")
        applies_to = read.items(p, f"{where}, applies_to", c.get("applies_to"))
        for m in applies_to:
            if m not in meter_ids:
                p.add(where, f"applies_to: meter '{shown(m)}' is not defined in meters")
        out.append(
            Coupon(
                cid,
                str(duration),
                percent,
                amount,
                str(c.get("currency") or ""),
                count if duration == "repeating" and isinstance(count, int) else 0,
                tuple(str(m) for m in applies_to),
            )
        )
    return tuple(out)


def taxes(p: Problems, raw: Any) -> tuple[Tax, ...]:
    out: list[Tax] = []
    for i, t in enumerate(read.items(p, "taxes", raw)):
        t = read.mapping(p, f"taxes[{i}]", t)
        where = f"tax {shown(t.get('id', f'#{i}'))}"
        read.keys(p, where, t, {"id", "rate", "name"}, {"id", "rate", "name"})
        tid = read.text(p, where, "id", t.get("id"))
        if any(o.id == tid for o in out):
            p.add(where, "duplicate tax id")
        rate = read.decimal(p, where, "rate", t.get("rate"), quoted=True)
        if not 0 <= rate < 1:
            p.add(where, f"rate must be at least 0 and below 1 (a fraction: 0.19 for 19%; got {t.get('rate')})")
        out.append(Tax(tid, rate, read.text(p, where, "name", t.get("name"))))
    return tuple(out)


def customers(p: Problems, raw: Any, tax_ids: set[str]) -> dict[str, tuple[str, ...]]:
    """customers: [{id, taxes}] -> customer -> the ids of the taxes on its invoices."""
    out: dict[str, tuple[str, ...]] = {}
    for i, c in enumerate(read.items(p, "customers", raw)):
        c = read.mapping(p, f"customers[{i}]", c)
        where = f"customer {shown(c.get('id', f'#{i}'))}"
        read.keys(p, where, c, {"id", "taxes", "name"}, {"id"})
        cid = read.text(p, where, "id", c.get("id"))
        if cid in out:
            p.add(where, "duplicate customer id")
        listed = read.items(p, f"{where}, taxes", c.get("taxes"))
        for t in listed:
            if t not in tax_ids:
                p.add(where, f"tax '{shown(t)}' is not defined in taxes")
        if len(set(map(str, listed))) != len(listed):
            p.add(where, "a tax is listed twice")
        out[cid] = tuple(str(t) for t in listed)
    return out


def coupon_uses(p: Problems, where: str, raw: Any, sub_start: Any) -> tuple[CouponUse, ...]:
    out = []
    for j, u in enumerate(read.items(p, f"{where}, coupons", raw)):
        u = read.mapping(p, f"{where}, coupons[{j}]", u)
        read.keys(p, f"{where}, coupons[{j}]", u, {"coupon", "start"}, {"coupon"})
        start = sub_start if u.get("start") is None else read.time(p, where, f"coupons[{j}].start", u.get("start"))
        out.append(CouponUse(read.text(p, where, f"coupons[{j}].coupon", u.get("coupon")), start))
    return tuple(out)


def check_coupon_uses(
    p: Problems, subs: tuple[Subscription, ...], known: tuple[Coupon, ...], plans: tuple[Plan, ...]
) -> None:
    """Coupons named on subscriptions exist, bill in the customer's currency, and no coupon is
    used twice on one subscription over the same periods."""
    by_id = {c.id: c for c in known}
    plan = {pl.id: pl for pl in plans}
    for s in subs:
        where = f"subscription of {s.customer}"
        ranges: dict[str, list[tuple[int, int | None]]] = {}  # first period, end (None: forever)
        length = plan[s.plan].billing_period if s.plan in plan else "month"
        for use in s.coupons:
            coupon = by_id.get(use.coupon)
            if coupon is None:
                p.add(where, f"coupon '{shown(use.coupon)}' is not defined in coupons")
                continue
            if coupon.amount_off is not None and s.plan in plan and coupon.currency != plan[s.plan].currency:
                p.add(
                    where,
                    f"coupon {coupon.id} is {coupon.currency} and plan {s.plan} bills in {plan[s.plan].currency}",
                )
            first = first_period_index(use, length, s.billing_anchor)
            last = None if coupon.span is None else first + coupon.span
            for a, b in ranges.get(coupon.id, []):
                if (b is None or first < b) and (last is None or a < last):
                    p.add(where, f"coupon {coupon.id} is used twice over the same periods")
            ranges.setdefault(coupon.id, []).append((first, last))


def first_period_index(use: CouponUse, length: str, anchor: Any) -> int:
    """The index of the first period that starts at or after the coupon's start."""
    k = periods.period_index(use.start, length, anchor)
    return k if periods.period_k(k, length, anchor).start >= use.start else k + 1


def overridden(
    p: Problems, doc: dict, plans: tuple[Plan, ...], subs: tuple[Subscription, ...], read_charge: ChargeReader
) -> dict[str, tuple[Plan, ...]]:
    """Each subscription with overrides -> every version of its plan with them applied."""
    raw_plans = [pl for pl in doc.get("plans") or [] if isinstance(pl, dict)]
    raw_subs = [s for s in doc.get("subscriptions") or [] if isinstance(s, dict)]
    out: dict[str, tuple[Plan, ...]] = {}
    for sub, raw in zip(subs, raw_subs, strict=False):
        if not sub.overridden:
            continue
        versions = []
        for plan in sorted((pl for pl in plans if pl.id == sub.plan), key=lambda pl: pl.version):
            raw_plan = next(r for r in raw_plans if r.get("id") == plan.id and r.get("version") == plan.version)
            versions.append((plan, [c for c in raw_plan.get("charges") or [] if isinstance(c, dict)]))
        out[sub.price_key] = overrides(
            p, f"subscription of {sub.customer}", raw.get("overrides"), versions, read_charge
        )
    return out


def overrides(
    p: Problems,
    where: str,
    raw: Any,
    versions: list[tuple[Plan, list[dict]]],
    read_charge: ChargeReader,
) -> tuple[Plan, ...]:
    """Every version of the subscription's plan with its overrides applied. An override charge
    replaces the fields it names of the plan charge with the same meter and filter (all of them
    when it changes the model); one that matches no charge of any version is refused."""
    o = read.mapping(p, f"{where}, overrides", raw)
    read.keys(p, f"{where}, overrides", o, {"base_fee", "minimum_commitment", "charges"}, set())
    base_fee = minimum = None
    if "base_fee" in o:
        base_fee = read.decimal(p, f"{where}, overrides", "base_fee", o["base_fee"], quoted=True)
    if "minimum_commitment" in o:
        minimum = read.decimal(p, f"{where}, overrides", "minimum_commitment", o["minimum_commitment"], quoted=True)
    wanted = [
        read.mapping(p, f"{where}, overrides.charges[{j}]", c)
        for j, c in enumerate(read.items(p, where, o.get("charges")))
    ]
    matched = [False] * len(wanted)
    out = []
    for plan, raw_charges in versions:
        charges = list(plan.charges)
        for j, w in enumerate(wanted):
            flt = w.get("filter") or {}
            label = f"{where}, overrides, charge {shown(w.get('meter'))}" + (f" {flt}" if flt else "")
            _money_as_text(p, label, w)
            for i, (charge, raw_charge) in enumerate(zip(plan.charges, raw_charges, strict=False)):
                if charge.meter != w.get("meter") or (raw_charge.get("filter") or {}) != flt:
                    continue
                matched[j] = True
                if "model" in w and w["model"] != charge.model:
                    base = {k: raw_charge[k] for k in ("meter", "filter", "included_units") if k in raw_charge}
                else:
                    base = dict(raw_charge)
                merged = read_charge(p, f"{where}, overrides", i, {**base, **w})
                if merged is not None:
                    charges[i] = replace(merged, override=True)
        replaced = {"base_fee"} if base_fee is not None else set()
        replaced |= {"minimum_commitment"} if minimum is not None else set()
        out.append(
            replace(
                plan,
                base_fee=plan.base_fee if base_fee is None else base_fee,
                minimum_commitment=plan.minimum_commitment if minimum is None else minimum,
                charges=tuple(charges),
                overridden=frozenset(replaced),
            )
        )
    for j, w in enumerate(wanted):
        if not matched[j]:
            p.add(
                f"{where}, overrides",
                f"charge on meter {shown(w.get('meter'))} with filter {w.get('filter') or {}} matches no charge "
                "of the plan (an override charge names a plan charge by meter and filter)",
            )
    return tuple(out)


def _money_as_text(p: Problems, where: str, raw: Any, path: str = "") -> None:
    """Money written as a YAML number is refused (0.1 would be a binary float)."""
    if isinstance(raw, dict):
        for k, v in raw.items():
            if k in MONEY_KEYS and isinstance(v, int | float) and not isinstance(v, bool):
                p.add(where, f'{path}{k} must be a decimal string (write "{v}")')
            _money_as_text(p, where, v, f"{path}{k}.")
    elif isinstance(raw, list):
        for i, v in enumerate(raw):
            _money_as_text(p, where, v, f"{path[:-1]}[{i}].")
