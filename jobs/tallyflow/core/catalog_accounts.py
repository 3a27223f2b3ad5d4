"""The catalog's accounts: subscriptions (who follows which plan, and when), the one currency a
customer is billed in, and prepaid credit grants. Read like the rest of the catalog: every
problem recorded, naming where and the rule."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tallyflow.core import catalog_contracts as contracts
from tallyflow.core import catalog_fields as read
from tallyflow.core import periods
from tallyflow.core.catalog_fields import Problems
from tallyflow.core.model import Grant, Plan, Subscription


def subscriptions(p: Problems, raw: Any, plan_ids: set[str]) -> tuple[Subscription, ...]:
    out: list[Subscription] = []
    for i, s in enumerate(read.items(p, "subscriptions", raw)):
        s = read.mapping(p, f"subscriptions[{i}]", s)
        where = f"subscription of {s.get('customer', f'#{i}')}"
        read.keys(
            p,
            where,
            s,
            {"customer", "plan", "start", "end", "billing_anchor", "overrides", "coupons"},
            {"customer", "plan", "start"},
        )
        plan = read.text(p, where, "plan", s.get("plan"))
        if plan and plan not in plan_ids:
            p.add(where, f"plan '{plan}' is not defined in plans")
        start = read.time(p, where, "start", s.get("start"))
        end = None if s.get("end") is None else read.time(p, where, "end", s.get("end"))
        if end is not None and end <= start:
            p.add(where, "end must be after start")
        anchor = None
        if s.get("billing_anchor") is not None:
            anchor = read.time(p, where, "billing_anchor", s.get("billing_anchor"))
            if anchor.microsecond:
                p.add(where, f"billing_anchor {anchor.isoformat()} must be whole seconds")
            if not periods.FIRST_DAY <= anchor.date() <= periods.LAST_DAY:
                p.add(where, f"billing_anchor must fall within {periods.FIRST_DAY}..{periods.LAST_DAY}")
        out.append(
            Subscription(
                read.text(p, where, "customer", s.get("customer")),
                plan,
                start,
                end,
                anchor,
                contracts.coupon_uses(p, where, s.get("coupons"), start),
                s.get("overrides") is not None,
            )
        )
    far = datetime.max.replace(tzinfo=UTC)
    by_customer: dict[str, list[Subscription]] = {}
    for sub in out:
        by_customer.setdefault(sub.customer, []).append(sub)
    for subs in by_customer.values():  # per customer: a catalog of 10,000 customers loads in linear time
        for i, a in enumerate(subs):
            for b in subs[i + 1 :]:
                if a.start < (b.end or far) and b.start < (a.end or far):
                    p.add(f"subscription of {a.customer}", "subscriptions of one customer must not overlap")
    return tuple(out)


def one_currency_per_customer(p: Problems, plans: tuple[Plan, ...], subs: tuple[Subscription, ...]) -> None:
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
            p.add(
                f"customer {s.customer}",
                f"subscriptions bill in {first[0]} (plan {first[1]}) and {currency} "
                f"(plan {s.plan}); a customer is billed in one currency",
            )
            seen[s.customer] = (currency, s.plan)


def grants(p: Problems, raw: Any) -> tuple[Grant, ...]:
    out: list[Grant] = []
    seen: set[tuple[str, str]] = set()
    for i, g in enumerate(read.items(p, "grants", raw)):
        g = read.mapping(p, f"grants[{i}]", g)
        where = f"grant {g.get('grant_id', f'#{i}')} of {g.get('customer', '?')}"
        read.keys(
            p,
            where,
            g,
            {"customer", "grant_id", "credits", "priority", "effective_at", "expires_at"},
            {"customer", "grant_id", "credits", "effective_at"},
        )
        key = (str(g.get("customer")), str(g.get("grant_id")))
        if key in seen:
            p.add(where, "duplicate grant_id for this customer")
        seen.add(key)
        priority = g.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            p.add(where, "priority must be an integer")
            priority = 0
        effective = read.time(p, where, "effective_at", g.get("effective_at"))
        expires = None if g.get("expires_at") is None else read.time(p, where, "expires_at", g.get("expires_at"))
        if expires is not None and expires <= effective:
            p.add(where, "expires_at must be after effective_at")
        if effective.microsecond or (expires is not None and expires.microsecond):
            # Usage is drawn down per event-time second (as Stripe's grants use Unix seconds).
            p.add(where, "effective_at and expires_at must be whole seconds")
        out.append(
            Grant(
                read.text(p, where, "customer", g.get("customer")),
                read.text(p, where, "grant_id", g.get("grant_id")),
                read.decimal(p, where, "credits", g.get("credits"), positive=True),
                priority,
                effective,
                expires,
            )
        )
    return tuple(out)
