"""Billing periods and the formats money and times are read and written in.

A period is `[start, end)` in UTC, decided by event time, never arrival time. A subscription's
periods are counted from its billing anchor in whole weeks, months, quarters (3 months) or years
(12 months); without an anchor they are calendar periods, which are the same rule counted from a
fixed anchor (1970-01-01, or Monday 1970-01-05 for weeks). Month k after an anchor on the 31st
ends on the last day of a shorter month and returns to the 31st (Stripe's rule). The SQL home of
these rules is sql/ddl/000..006 (the tf_period_* functions); tests/vectors/periods.json holds
both to the same answers.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cached_property, lru_cache

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


LENGTHS = ("week", "month", "quarter", "year")
MONTHS = {"month": 1, "quarter": 3, "year": 12}  # a week is 7 days
CALENDAR_ANCHOR = {"week": datetime(1970, 1, 5, tzinfo=UTC), **dict.fromkeys(MONTHS, datetime(1970, 1, 1, tzinfo=UTC))}
WEEK = timedelta(days=7)


@dataclass(frozen=True, order=True)
class Period:
    """One billing period: `[start, end)` in UTC and its name (docs/catalog.md, Periods)."""

    start: datetime
    end: datetime
    name: str

    @cached_property
    def texts(self) -> tuple[str, str]:
        """period_start and period_end as the documents write them (every line repeats them)."""
        return iso_utc(self.start), iso_utc(self.end)

    def as_dict(self) -> dict:
        return {"period": self.name, "period_start": self.texts[0], "period_end": self.texts[1]}


def add_months(anchor: datetime, months: int) -> datetime:
    """`anchor` plus whole months, the day clipped to the month's last (Jan 31 + 1 = Feb 28)."""
    year, month0 = divmod(anchor.year * 12 + anchor.month - 1 + months, 12)
    return anchor.replace(year=year, month=month0 + 1, day=min(anchor.day, calendar.monthrange(year, month0 + 1)[1]))


def period_index(t: datetime, length: str, anchor: datetime | None = None) -> int:
    """k such that period k (counted from the anchor) contains t."""
    a = anchor or CALENDAR_ANCHOR[length]
    if length == "week":
        return (t - a) // WEEK
    n = MONTHS[length]
    k = ((t.year - a.year) * 12 + t.month - a.month) // n
    return k - 1 if add_months(a, k * n) > t else k


def period_k(k: int, length: str, anchor: datetime | None = None) -> Period:
    """Period k of a subscription whose periods have `length` and count from `anchor` (None:
    calendar periods), with its name: the start date when anchored, else 2026-W42, 2026-10,
    2026-Q4 or 2026."""
    a = anchor or CALENDAR_ANCHOR[length]
    if length == "week":
        start, end = a + k * WEEK, a + (k + 1) * WEEK
    else:
        start, end = add_months(a, k * MONTHS[length]), add_months(a, (k + 1) * MONTHS[length])
    if anchor is not None:
        name = start.strftime("%Y-%m-%d")
    elif length == "week":
        iso = start.isocalendar()
        name = f"{iso.year:04d}-W{iso.week:02d}"
    elif length == "month":
        name = start.strftime("%Y-%m")
    elif length == "quarter":
        name = f"{start.year:04d}-Q{(start.month - 1) // 3 + 1}"
    else:
        name = f"{start.year:04d}"
    return Period(start, end, name)


def period_at(t: datetime, length: str = "month", anchor: datetime | None = None) -> Period:
    """The period of that length and anchor that contains t."""
    return period_k(period_index(t, length, anchor), length, anchor)


@dataclass(frozen=True)
class Selection:
    """Which periods a command means (`--period NAME` or `--at T`): each subscription's periods
    that start in `[start, end)` (mode "starts"), or the one that contains `start` ("contains");
    `length` and `anchored` narrow a name to its kind of period ("" and None: any)."""

    text: str
    mode: str
    start: datetime
    end: datetime
    length: str = ""
    anchored: bool | None = None
    name: str = ""  # the name every selected period has ('' when a month means every start in it)
    # mode "list": exactly these (customer, period start) pairs (corrections recompute them)
    pairs: tuple[tuple[str, datetime], ...] = ()

    def holds(self, period: Period, length: str, anchored: bool) -> bool:
        if self.length and length != self.length:
            return False
        if self.anchored is not None and anchored != self.anchored:
            return False
        if self.mode == "contains":
            return period.start <= self.start < period.end
        return self.start <= period.start < self.end

    @property
    def candidates(self) -> int:
        """How many periods from the one containing `start` can be selected: in "starts" mode,
        enough weeks to cover the window and one more; else the one."""
        return (self.end - self.start) // WEEK + 2 if self.mode == "starts" else 1

    def periods(self, length: str, anchor: datetime | None) -> list[Period]:
        """The selected periods of one subscription's series."""
        k0 = period_index(self.start, length, anchor)
        found = [period_k(k, length, anchor) for k in range(k0, k0 + self.candidates)]
        return [p for p in found if self.holds(p, length, anchor is not None)]

    @property
    def sql(self) -> dict:
        """The parameters the selection in sql/invoice/invoice_lines.sql reads."""
        return {
            "sel_mode": self.mode,
            "sel_start": self.start.replace(tzinfo=None),
            "sel_end": self.end.replace(tzinfo=None),
            "sel_length": self.length,
            "sel_anchored": -1 if self.anchored is None else int(self.anchored),
            "sel_candidates": self.candidates,
            "list_customers": [c for c, _ in self.pairs],
            "list_starts": [t.replace(tzinfo=None) for _, t in self.pairs],
        }


_YEAR = re.compile(r"[0-9]{4}")
_QUARTER = re.compile(r"([0-9]{4})-Q([1-4])")
_WEEK = re.compile(r"([0-9]{4})-W([0-9]{2})")
_MS = timedelta(milliseconds=1)


def parse_period(text: str) -> Selection:
    """A period name as commands take it: 2026-10 (every period that starts in that month),
    2026-10-15 (anchored periods that start that day), 2026-W42, 2026-Q4 or 2026 (calendar ones)."""
    if isinstance(text, str) and _MONTH.fullmatch(text):
        return Selection(text, "starts", *month_bounds(text))
    if isinstance(text, str) and _DAY.fullmatch(text):
        day = parse_day(text, "period")
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return Selection(text, "starts", midnight, midnight + timedelta(days=1), anchored=True, name=text)
    start: datetime | None = None
    length = ""
    if isinstance(text, str) and _YEAR.fullmatch(text):
        start, length = datetime(int(text), 1, 1, tzinfo=UTC), "year"
    elif isinstance(text, str) and (m := _QUARTER.fullmatch(text)):
        start, length = datetime(int(m[1]), 3 * int(m[2]) - 2, 1, tzinfo=UTC), "quarter"
    elif isinstance(text, str) and (m := _WEEK.fullmatch(text)):
        try:
            day = date.fromisocalendar(int(m[1]), int(m[2]), 1)
        except ValueError:
            raise UserError(f"period '{text}': {m[1]} has no ISO week {m[2]}") from None
        start, length = datetime(day.year, day.month, day.day, tzinfo=UTC), "week"
    if start is None:
        raise UserError(
            f"period '{shown(text)}' is not a period name (2026-10, 2026-10-15, 2026-W42, 2026-Q4 or 2026, "
            "in ASCII digits)"
        )
    if not FIRST_DAY <= start.date() <= LAST_DAY:
        raise UserError(f"period {text} is outside {FIRST_DAY}..{LAST_DAY}")
    return Selection(text, "starts", start, start + _MS, length=length, anchored=False, name=text)


def starting_in(start: datetime, end: datetime, text: str) -> Selection:
    """Every period that starts in [start, end) (a list of the last months' invoices)."""
    return Selection(text, "starts", start, end)


def listed(pairs: list[tuple[str, datetime]]) -> Selection:
    """The periods of these customers that start at these instants (each pair one period)."""
    first = min((t for _, t in pairs), default=datetime(1970, 1, 1, tzinfo=UTC))
    return Selection("listed periods", "list", first, first + _MS, pairs=tuple(sorted(pairs)))


def at_instant(t: datetime) -> Selection:
    """`--at T`: every subscription's period that contains T."""
    return Selection(iso_utc(t), "contains", t, t + _MS)


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
    return _plain(d if isinstance(d, Decimal) else Decimal(d))


@lru_cache(maxsize=1 << 16)
def _plain(d: Decimal) -> str:
    # Kept by value: equal decimals (1.0 and 1) are written alike, and a month's invoices repeat
    # the same prices and quantities hundreds of thousands of times.
    text = format(d.normalize(), "f")
    return "0" if text == "-0" else text
