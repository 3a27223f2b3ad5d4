"""A customer's prepaid credits as values: grants as they arrive (GrantRecord) and the state the
drawdown keeps per customer (CustomerCredits: each grant's remaining credits, the entry numbers,
the alerts fired), serialized to JSON for Flink's keyed state with decimals kept exact."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tallyflow.core.catalog import Grant

ZERO = Decimal(0)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(t: datetime) -> int:
    """Epoch milliseconds, in integers (no float near a time); naive times are UTC (ClickHouse)."""
    return ((t if t.tzinfo else t.replace(tzinfo=UTC)) - EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True)
class GrantRecord:
    customer: str
    grant_id: str
    credits: Decimal
    priority: int
    effective_at: int  # epoch milliseconds
    expires_at: int | None

    @staticmethod
    def of(g: Grant) -> GrantRecord:
        return GrantRecord(
            g.customer,
            g.grant_id,
            g.credits,
            g.priority,
            epoch_ms(g.effective_at),
            None if g.expires_at is None else epoch_ms(g.expires_at),
        )


def validate_grant(g: GrantRecord) -> str | None:
    """The reason a grant is unusable, or None."""
    if not g.customer or not g.grant_id:
        return "customer_id and grant_id must be non-empty"
    if not g.credits.is_finite() or g.credits <= 0:
        return f"credits must be a positive decimal, got {g.credits}"
    if g.effective_at % 1000 or (g.expires_at is not None and g.expires_at % 1000):
        return "effective_at and expires_at must be whole seconds"
    if g.expires_at is not None and g.expires_at <= g.effective_at:
        return "expires_at must be after effective_at"
    return None


@dataclass
class GrantState:
    credits: Decimal
    remaining: Decimal
    priority: int
    effective_at: int  # epoch ms
    expires_at: int | None
    source: str  # catalog | event

    @staticmethod
    def of(g: GrantRecord, source: str) -> GrantState:
        return GrantState(g.credits, g.credits, g.priority, g.effective_at, g.expires_at, source)

    def usable_at(self, at: int) -> bool:
        return self.effective_at <= at and (self.expires_at is None or at < self.expires_at)


@dataclass
class CustomerCredits:
    """One customer's drawdown state, kept in Flink keyed state (as JSON, decimals as strings)."""

    grants: dict[str, GrantState] = field(default_factory=dict)
    seq: int = 0  # the last entry number (ledger entries and signals share it)
    fired: list[str] = field(default_factory=list)  # alert thresholds already signalled
    exhausted: bool = False
    last: int | None = None  # the latest event second drawn for (epoch ms)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)

    @staticmethod
    def from_json(text: str) -> CustomerCredits:
        d = json.loads(text)
        grants = {
            gid: GrantState(
                Decimal(g["credits"]),
                Decimal(g["remaining"]),
                g["priority"],
                g["effective_at"],
                g["expires_at"],
                g["source"],
            )
            for gid, g in d["grants"].items()
        }
        return CustomerCredits(grants, d["seq"], d["fired"], d["exhausted"], d["last"])

    def usable(self, at: int) -> list[tuple[str, GrantState]]:
        """Grants usable at `at` (inside [effective_at, expires_at)), in drawdown order."""
        never = 1 << 62
        return sorted(
            ((gid, g) for gid, g in self.grants.items() if g.usable_at(at)),
            key=lambda x: (
                x[1].priority,
                x[1].expires_at if x[1].expires_at is not None else never,
                x[1].effective_at,
                x[0],
            ),
        )

    def balance(self, at: int) -> tuple[Decimal, Decimal]:
        """(remaining, granted) over the grants usable at `at`."""
        usable = self.usable(at)
        return sum((g.remaining for _, g in usable), ZERO), sum((g.credits for _, g in usable), ZERO)
