"""The billing catalog's model (docs/catalog.md): meters, plans and their charges, credits,
subscriptions and grants, as immutable values. core/catalog.py loads and validates them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tallyflow.errors import UserError

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
    unit: str = ""  # time_weighted: second | minute | hour | day


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
    override: bool = False  # priced by the subscription's overrides, not the plan's list price

    @property
    def filter_text(self) -> str:
        """The filter as invoices and rated records write it: `k=v,k2=v2` (keys sorted)."""
        return ",".join(f"{k}={v}" for k, v in self.filter)

    @property
    def label(self) -> str:
        return self.meter + "{" + self.filter_text + "}" if self.filter else self.meter


@dataclass(frozen=True)
class Credits:
    rates: tuple[tuple[str, Decimal], ...]
    credit_price: Decimal
    on_exhausted: str = "overage"
    overage_multiplier: Decimal = Decimal(1)
    alert_thresholds: tuple[Decimal, ...] = ()


@dataclass(frozen=True)
class Spike:
    """Spike detection on a plan's meters (core/alerts.py): a closed window whose quantity is over
    `factor` times its trailing baseline (the median of the same hour on the previous
    `baseline_days` days, at least `min_quantity`) is an anomaly."""

    factor: Decimal = Decimal(3)
    baseline_days: int = 7
    min_history_days: int = 3
    min_quantity: Decimal = Decimal(1)


@dataclass(frozen=True)
class Alerts:
    """Postpaid usage alerts of a plan, each signalled once per period: fractions of a charge's
    included units used, and amounts of the period's usage spend so far."""

    included_usage: tuple[Decimal, ...] = ()
    spend: tuple[Decimal, ...] = ()
    spike: Spike | None = None


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
    alerts: Alerts | None = None
    # What a subscription's overrides replaced in this version: base_fee, minimum_commitment.
    overridden: frozenset[str] = frozenset()

    @property
    def label(self) -> str:
        return f"plan {self.id} v{self.version}"

    @property
    def minor_units(self) -> int:
        return minor_units(self.currency)


@dataclass(frozen=True)
class CouponUse:
    coupon: str
    start: datetime


@dataclass(frozen=True)
class Subscription:
    customer: str
    plan: str
    start: datetime
    end: datetime | None = None
    billing_anchor: datetime | None = None  # None: calendar periods
    coupons: tuple[CouponUse, ...] = ()
    overridden: bool = False  # has overrides (Catalog.versions_for applies them)

    @property
    def price_key(self) -> str:
        """Names the subscription's own prices in the catalog tables ('' = the plan's list prices)."""
        return f"{self.customer}|{self.start.isoformat()}" if self.overridden else ""


@dataclass(frozen=True)
class Coupon:
    id: str
    duration: str  # once | repeating | forever
    percent_off: Decimal | None = None
    amount_off: Decimal | None = None
    currency: str = ""
    periods: int = 0  # repeating: how many periods
    applies_to: tuple[str, ...] = ()  # meters; () = every line

    @property
    def span(self) -> int | None:
        """How many periods it applies to from its first: once 1, repeating `periods`, forever None."""
        return {"once": 1, "repeating": self.periods}.get(self.duration)


@dataclass(frozen=True)
class Tax:
    id: str
    rate: Decimal
    name: str


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
    # Dimension keys whose values the decoder replaces by a keyed HMAC (privacy.pseudonymize).
    pseudonymize: tuple[str, ...] = ()
    coupons: tuple[Coupon, ...] = ()
    taxes: tuple[Tax, ...] = ()
    customer_taxes: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    # A subscription with overrides -> every version of its plan with them applied.
    overridden: dict[str, tuple[Plan, ...]] = field(default_factory=dict, compare=False, repr=False)

    def meter(self, meter_id: str) -> Meter:
        return self.meters_by_id[meter_id]

    def plan_versions(self, plan_id: str) -> list[Plan]:
        return sorted((p for p in self.plans if p.id == plan_id), key=lambda p: p.version)

    def versions_for(self, sub: Subscription) -> list[Plan]:
        """The versions a subscription is billed under: its plan's, with its overrides applied."""
        return list(self.overridden.get(sub.price_key, ())) or self.plan_versions(sub.plan)

    def billing_period(self, plan_id: str) -> str:
        """A plan's period length (every version has the same, checked at load)."""
        versions = self.plan_versions(plan_id)
        return versions[0].billing_period if versions else "month"

    def coupon(self, coupon_id: str) -> Coupon:
        return next(c for c in self.coupons if c.id == coupon_id)

    def taxes_of(self, customer: str) -> list[Tax]:
        by_id = {t.id: t for t in self.taxes}
        return [by_id[t] for t in self.customer_taxes.get(customer, ())]

    @property
    def customers(self) -> list[str]:
        return sorted({s.customer for s in self.subscriptions})
