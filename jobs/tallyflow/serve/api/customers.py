"""The customers a token may read."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from tallyflow.serve import tokens
from tallyflow.serve.api.common import Grant, StoreOf, as_json
from tallyflow.serve.store import answer

router = APIRouter(tags=["customers"])


@router.get("/api/customers")
async def customers(g: Grant, store: StoreOf) -> Response:
    """The customers this token may read, with their subscriptions."""
    every = await answer(store.customers)
    visible = every if g.scope == tokens.ADMIN else {k: v for k, v in every.items() if k == g.scope}
    return as_json({"customers": [{"id": k, "subscriptions": v} for k, v in sorted(visible.items())]})
