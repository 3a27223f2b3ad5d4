"""Billing periods and the formats money and times are read and written in: calendar months in UTC,
`[first day 00:00, next month's first day)`, decided by event time, never arrival time."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from tallyflow.errors import UserError

# What a user writes is read in ASCII digits only: Python's \d, int(), strptime() and Decimal()
# also accept 64 other digit scripts, so "٢٠٢٦-11" would be a second spelling of 2026-11.
_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,4})?")
MAX_DECIMAL_TEXT = 100  # characters: no amount or quantity tallyflow holds needs more
# Periods and days a user may ask for: ClickHouse's Date range, in whole months.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2149, 5, 31)


def parse_month(text: str) -> str:
    """`YYYY-MM` in ASCII digits, within FIRST_DAY..LAST_DAY; else UserError saying so."""
    if not isinstance(text, str) or not _MONTH.fullmatch(text):
        raise UserError(f"period '{shown(text)}' is not a month (YYYY-MM, like 2026-10, in ASCII digits)")
    if not FIRST_DAY.strftime("%Y-%m") <= text <= LAST_DAY.strftime("%Y-%m"):
        raise UserError(f"period {text} is outside {FIRST_DAY:%Y-%m}..{LAST_DAY:%Y-%m}")
    return text


def parse_day(text: str, name: str = "day") -> date:
    """`YYYY-MM-DD` in ASCII digits, within FIRST_DAY..LAST_DAY; else UserError saying so."""
    if not isinstance(text, str) or not _DAY.fullmatch(text):
        raise UserError(f"{name} '{shown(text)}' is not a date (YYYY-MM-DD, like 2026-10-31, in ASCII digits)")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{name} '{text}' is not a calendar date") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise UserError(f"{name} {text} is outside {FIRST_DAY}..{LAST_DAY}")
    return day


def parse_decimal(text: str) -> Decimal:
    """A plain decimal in ASCII digits (an exponent of at most four digits); InvalidOperation else."""
    if len(text) > MAX_DECIMAL_TEXT or not _DECIMAL.fullmatch(text):
        raise InvalidOperation(text)
    return Decimal(text)


# Characters that would make a text print or compare as another: controls (NUL, ESC, newlines),
# format characters (bidi overrides, zero-width), lone surrogates, line separators.
UNSEEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def shown(text: object, limit: int = 40) -> str:
    """A user's text as an error message quotes it: at most `limit` characters, and the unseen
    ones written as escapes (no ANSI sequence or bidi override reaches a terminal)."""
    text = str(text)
    cut = "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in UNSEEN else c for c in text[:limit])
    return cut + ("..." if len(text) > limit else "")


def month_bounds(period: str) -> tuple[datetime, datetime]:
    """The start and end of the calendar month `YYYY-MM` (UTC)."""
    start = datetime.strptime(parse_month(period), "%Y-%m").replace(tzinfo=UTC)
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
