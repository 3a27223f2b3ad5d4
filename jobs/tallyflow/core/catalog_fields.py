"""Reading catalog fields: each reader records a problem (naming where and which rule) and
returns a usable placeholder, so one pass over a catalog reports every problem it has."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from tallyflow.core.periods import parse_decimal, shown

SCALE = 12
SMALLEST = Decimal(1).scaleb(-SCALE)
LARGEST = Decimal(10) ** (38 - SCALE)


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, rule: str) -> None:
        self.items.append(f"{where}: {rule}" if where else rule)


def decimal(
    p: Problems,
    where: str,
    name: str,
    raw: Any,
    *,
    minimum: Decimal | None = Decimal(0),
    positive: bool = False,
    quoted: bool = False,
) -> Decimal:
    """A decimal in a string (or an integer, unless `quoted`: money in the newer fields must be
    written as a string, as YAML reads 0.1 as a binary float)."""
    if quoted and not isinstance(raw, str):
        hint = f' (write "{raw}")' if isinstance(raw, int | float) and not isinstance(raw, bool) else ""
        p.add(where, f"{name} must be a decimal string{hint}")
        return Decimal(0)
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        hint = f' (write "{raw}")' if isinstance(raw, float) else ""
        p.add(where, f"{name} must be a decimal string{hint}")
        return Decimal(0)
    try:
        d = parse_decimal(str(raw).strip())
    except InvalidOperation:
        p.add(where, f"{name} '{shown(raw)}' is not a decimal (ASCII digits, an exponent of at most 4 digits)")
        return Decimal(0)
    # The catalog lands in ClickHouse as Decimal(38, 12) (sql/ddl/130_catalog_charges.sql).
    if abs(d) >= LARGEST:
        p.add(where, f"{name} {shown(raw)} is not below 10^{LARGEST.adjusted()} (ClickHouse's Decimal(38, 12))")
        return Decimal(0)
    if d != d.quantize(SMALLEST):
        p.add(where, f"{name} {shown(raw)} has more than {SCALE} decimal places (ClickHouse's Decimal(38, 12))")
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


def choice(raw: Any) -> str | None:
    """A value compared with a set of names: a string, or None (a list or a mapping is no name,
    and cannot be looked up in a set)."""
    return raw if isinstance(raw, str) else None


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


MAX_DEPTH = 32  # levels of nesting: a catalog needs about eight
MAX_VALUES = 200_000  # values once aliases are expanded: nine levels of aliases make billions


class Loader(yaml.SafeLoader):
    """Safe YAML at most MAX_DEPTH levels deep (the composer recurses per level)."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise yaml.YAMLError(f"line {self.peek_event().start_mark.line + 1}: nested more than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def shape_problem(doc: Any) -> str | None:
    """Why a loaded document is no catalog by its shape alone (too deep, or an alias bomb), or None.
    Walks it as every later step would, aliases expanded, and stops at the first bound."""
    values, stack = 0, [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        values += 1
        if depth > MAX_DEPTH:
            return f"nested more than {MAX_DEPTH} levels"
        if values > MAX_VALUES:
            return f"more than {MAX_VALUES:,} values once its aliases are expanded"
        if isinstance(node, dict | list):
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return None
