"""Reading catalog fields: each reader records a problem (naming where and which rule) and
returns a usable placeholder, so one pass over a catalog reports every problem it has."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, rule: str) -> None:
        self.items.append(f"{where}: {rule}" if where else rule)


def decimal(
    p: Problems, where: str, name: str, raw: Any, *, minimum: Decimal | None = Decimal(0), positive: bool = False
) -> Decimal:
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


def time(p: Problems, where: str, name: str, raw: Any) -> datetime:
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


def text(p: Problems, where: str, name: str, raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        p.add(where, f"{name} must be a non-empty string")
        return ""
    return raw


def keys(p: Problems, where: str, obj: dict, allowed: set[str], required: set[str]) -> None:
    for k in obj:
        if k not in allowed:
            p.add(where, f"unknown field '{k}' (allowed: {', '.join(sorted(allowed))})")
    for k in sorted(required - set(obj)):
        p.add(where, f"missing required field '{k}'")


def mapping(p: Problems, where: str, raw: Any) -> dict:
    if not isinstance(raw, dict):
        p.add(where, "must be a mapping")
        return {}
    return raw


def items(p: Problems, where: str, raw: Any) -> list:
    if raw is None:
        return []
    if not isinstance(raw, list):
        p.add(where, "must be a list")
        return []
    return raw
