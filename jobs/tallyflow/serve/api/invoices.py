"""A customer's invoices, draft or finalized."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from tallyflow.serve.api.common import ApiError, Grant, StoreOf, as_json, customer_of, parse_period
from tallyflow.serve.store import answer

router = APIRouter(tags=["customers"])


@router.get("/api/customers/{customer}/invoices")
async def invoices(customer: str, g: Grant, store: StoreOf) -> Response:
    """The last twelve periods' invoices, draft or finalized."""
    return as_json({"invoices": await answer(lambda: store.invoices(customer_of(store, customer, g)))})


@router.get("/api/customers/{customer}/invoices/{period}")
async def invoice(customer: str, period: str, g: Grant, store: StoreOf) -> Response:
    """The invoice document of `tallyflow invoice --format json`, draft or finalized."""
    doc = await answer(lambda: store.invoice(customer_of(store, customer, g), parse_period(period)))
    if doc is None:
        raise ApiError(404, f"customer {customer} has no invoice for {period}")
    return as_json(doc)
