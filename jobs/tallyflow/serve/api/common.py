"""What every router of the API shares: its error type, the bearer token check, the parsers of
its parameters and the JSON answer."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response

from tallyflow.core import periods
from tallyflow.errors import UserError
from tallyflow.serve import limits, tokens
from tallyflow.serve.store import Store


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def parse_period(value: str | None) -> str:
    """The one spelling of a period name (ASCII: 2026-10, 2026-10-15, 2026-W42, 2026-Q4, 2026),
    so one period is one cache entry; none: '', the customer's own period that holds now."""
    if value is None:
        return ""
    try:
        return periods.parse_period(value).text
    except UserError as e:
        raise ApiError(400, str(e)) from None


def parse_day(value: str | None, name: str, default: date) -> date:
    if value is None:
        return default
    try:
        return periods.parse_day(value, name)
    except UserError as e:
        raise ApiError(400, str(e)) from None


def as_json(obj: Any) -> Response:
    """A JSON body as is: the documents are plain dicts of strings (amounts are decimal strings),
    so no model validation runs per request."""
    return Response(json.dumps(obj, separators=(",", ":"), default=str).encode(), media_type="application/json")


async def _grant(request: Request) -> tokens.Grant:  # async: no thread hop per request
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "a bearer token is required (Authorization: Bearer <token>)")
    found = tokens.resolve(request.app.state.settings, token.strip())
    if found is None:
        raise ApiError(401, "unknown token")
    if found.scope is None:
        raise ApiError(401, "this token was revoked")
    if found.scope != tokens.ADMIN:
        request.app.state.store.limits.admit(found.token_id)  # 429 past the token's rate
        limits.current_token.set(found.token_id)  # the store counts this token's queries
    return found


def _store(request: Request) -> Store:
    return request.app.state.store


Grant = Annotated[tokens.Grant, Depends(_grant)]
StoreOf = Annotated[Store, Depends(_store)]


def customer_of(store: Store, customer: str, g: tokens.Grant) -> str:
    """The customer, once the token may read it and the catalog knows it (403, 404)."""
    if g.scope not in (tokens.ADMIN, customer):
        raise ApiError(403, f"this token reads customer {g.scope} only")
    store.require(customer)
    return customer


def require_admin(g: tokens.Grant) -> None:
    if g.scope != tokens.ADMIN:
        raise ApiError(403, "the pipeline view needs the admin token")
