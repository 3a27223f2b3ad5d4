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
