"""Billing periods and the formats money and times are written in: calendar months in UTC,
`[first day 00:00, next month's first day)`, decided by event time, never arrival time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tallyflow.errors import UserError


def month_bounds(period: str) -> tuple[datetime, datetime]:
    """The start and end of the calendar month `YYYY-MM` (UTC)."""
    try:
        start = datetime.strptime(period, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise UserError(f"period '{period}' is not a month like 2026-10") from None
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def period_of(t: datetime) -> str:
    """The billing period (`YYYY-MM`) that contains `t`."""
    return t.astimezone(UTC).strftime("%Y-%m")


def previous_month(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")


def iso_utc(t: datetime) -> str:
    """A time as the documents write it: ISO 8601, milliseconds, Z (naive times are UTC)."""
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def plain(d: Decimal | int | str) -> str:
    """A decimal as the documents write it: no exponent, no trailing zeros, never '-0'."""
    text = format(Decimal(d).normalize(), "f")
    return "0" if text == "-0" else text
