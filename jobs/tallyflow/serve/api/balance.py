"""A customer's prepaid credits."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from tallyflow.serve.api.common import Grant, StoreOf, as_json, customer_of
from tallyflow.serve.store import answer

router = APIRouter(tags=["customers"])


@router.get("/api/customers/{customer}/balance")
async def balance(customer: str, g: Grant, store: StoreOf) -> Response:
    """Credit grants: granted, consumed, remaining, expiry (as `tallyflow balance`)."""
    return as_json(await answer(lambda: store.balance(customer_of(store, customer, g))))
