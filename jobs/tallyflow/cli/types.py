"""The types of the CLI's arguments: ASCII digits only (int() and float() also read 64 other digit
scripts), so a mistyped number is a one-line usage error, never a second spelling of a value."""

from __future__ import annotations

import argparse
import re

from tallyflow.core import periods
from tallyflow.errors import UserError

_INTEGER = re.compile(r"-?[0-9]{1,18}")
_SHARE = re.compile(r"[0-9]{0,9}(\.[0-9]{1,9})?")


def integer(text: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise argparse.ArgumentTypeError(f"'{text[:40]!a}' is not a whole number in ASCII digits")
    return int(text)


def number(text: str) -> float:
    """A rate or share (not money: no amount is ever a float)."""
    if not text or not _SHARE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"'{text[:40]!a}' is not a number like 0.05 in ASCII digits")
    return float(text)


def month(text: str) -> str:
    try:
        return periods.parse_month(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def period(text: str) -> periods.Selection:
    """A period name: 2026-10 (every period that starts in October), 2026-10-15, 2026-W42,
    2026-Q4 or 2026."""
    try:
        return periods.parse_period(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def instant(text: str) -> periods.Selection:
    """An ISO 8601 instant with an offset: the periods that contain it."""
    from tallyflow.core.events import InvalidEvent, parse_time

    try:
        t = parse_time(text)
    except InvalidEvent:
        raise argparse.ArgumentTypeError(
            f"'{periods.shown(text)}' is not an ISO 8601 time with an offset (like 2026-10-20T12:00:00Z)"
        ) from None
    if not periods.FIRST_DAY <= t.date() <= periods.LAST_DAY:
        raise argparse.ArgumentTypeError(f"{text} is outside {periods.FIRST_DAY}..{periods.LAST_DAY}")
    return periods.at_instant(t)
