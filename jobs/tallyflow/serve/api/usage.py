"""A customer's usage: this period's charges with their projection, and usage per day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from tallyflow.serve.api.common import ApiError, Grant, StoreOf, as_json, customer_of, parse_day, parse_period
from tallyflow.serve.store import answer

router = APIRouter(tags=["customers"])


@router.get("/api/customers/{customer}/usage")
async def usage(customer: str, g: Grant, store: StoreOf, period: str | None = None) -> Response:
    """Per charge: quantity so far, included units, billable, cost so far and projected cost."""
    return as_json(await answer(lambda: store.usage(customer_of(store, customer, g), parse_period(period))))


@router.get("/api/customers/{customer}/usage/daily")
async def daily(
    customer: str,
    g: Grant,
    store: StoreOf,
    start: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
) -> Response:
    """Usage per UTC day and meter, from..to inclusive (default: the last 90 days), for charts."""
    await answer(lambda: customer_of(store, customer, g))
    last = parse_day(to, "to", datetime.now(UTC).date())
    first = parse_day(start, "from", last - timedelta(days=89))
    if first > last:
        raise ApiError(400, f"from {first} is after to {last}")
    if (last - first).days > 731:
        raise ApiError(400, "at most two years at a time")
    days = await answer(lambda: store.daily(customer, first.isoformat(), last.isoformat()))
    return as_json({"customer": customer, "from": first.isoformat(), "to": last.isoformat(), "days": days})
