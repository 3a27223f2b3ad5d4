"""The HTTP API and the dashboard pages (FastAPI). Every amount is a decimal string.

Access: `Authorization: Bearer <token>`. A customer's token (`tallyflow token create`) reads that
customer only (403 for another); TALLYFLOW_ADMIN_TOKEN reads every customer and the pipeline view.
No token, or an unknown or revoked one: 401. Errors are JSON `{"error": ...}`: 400 for a malformed
period or date, 404 for an unknown customer, 503 while ClickHouse does not answer.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from tallyflow.core.periods import period_of
from tallyflow.errors import UserError
from tallyflow.serve import metrics, tokens
from tallyflow.serve.store import NotFound, Store, Unavailable, answer
from tallyflow.settings import Settings

STATIC = Path(__file__).parent / "static"
PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def _period(value: str | None) -> str:
    if value is None:
        return period_of(datetime.now(UTC))
    if not PERIOD.match(value):
        raise ApiError(400, f"period '{value}' is not YYYY-MM")
    return value


def _day(value: str | None, name: str, default: date) -> date:
    if value is None:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"{name} '{value}' is not a date (YYYY-MM-DD)") from None


def _json(obj: Any) -> Response:
    """A JSON body as is: the documents are plain dicts of strings (amounts are decimal strings),
    so no model validation runs per request."""
    return Response(json.dumps(obj, separators=(",", ":"), default=str).encode(), media_type="application/json")


class _Measured:
    """Request count and latency per route (a plain ASGI middleware: no per-request task)."""

    def __init__(self, app: Any, http: metrics.HttpMetrics):
        self.app, self.http = app, http

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            self.http.observe(getattr(route, "path", "other"), status["code"], time.perf_counter() - started)


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
    return found


Grant = Annotated[tokens.Grant, Depends(_grant)]


def create_app(settings: Settings, store: Store) -> FastAPI:
    app = FastAPI(
        title="tallyflow",
        version="1",
        description="Usage, balances, invoices and alerts of tallyflow's customers, as of the last landed "
        "checkpoint. Amounts are decimal strings. Authorization: Bearer token (see `tallyflow token`).",
    )
    app.state.settings = settings
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    http = metrics.HttpMetrics()
    metrics.register_store(settings, store)

    app.add_middleware(_Measured, http=http)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, e: ApiError) -> JSONResponse:
        return JSONResponse({"error": e.message}, status_code=e.status)

    @app.exception_handler(Unavailable)
    async def _unavailable(_: Request, e: Unavailable) -> JSONResponse:
        return JSONResponse({"error": f"ClickHouse is not available: {e}"}, status_code=503)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, e: NotFound) -> JSONResponse:
        return JSONResponse({"error": str(e)}, status_code=404)

    @app.exception_handler(UserError)
    async def _user_error(_: Request, e: UserError) -> JSONResponse:
        return JSONResponse({"error": str(e)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}"}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, e: Exception) -> JSONResponse:  # a bug: no stack trace to the client
        return JSONResponse({"error": f"internal error ({type(e).__name__})"}, status_code=500)

    def customer_of(customer: str, g: tokens.Grant) -> str:
        if g.scope not in (tokens.ADMIN, customer):
            raise ApiError(403, f"this token reads customer {g.scope} only")
        store.require(customer)
        return customer

    def admin(g: tokens.Grant) -> None:
        if g.scope != tokens.ADMIN:
            raise ApiError(403, "the pipeline view needs the admin token")

    @app.get("/healthz", tags=["service"])
    async def healthz() -> Response:
        """The process answers (liveness)."""
        return _json({"status": "ok"})

    @app.get("/readyz", tags=["service"])
    def readyz() -> JSONResponse:
        """ClickHouse answers (readiness): 503 while it does not."""
        try:
            store.ping()
        except Unavailable as e:
            return JSONResponse({"ready": False, "error": str(e)}, status_code=503)
        return JSONResponse({"ready": True})

    @app.get("/metrics", tags=["service"])
    def prometheus() -> Response:
        """Prometheus metrics: the loader, the API, lag, invoice readiness."""
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @app.get("/api/customers", tags=["customers"])
    async def customers(g: Grant) -> Response:
        """The customers this token may read, with their subscriptions."""
        every = await answer(store.customers)
        visible = every if g.scope == tokens.ADMIN else {k: v for k, v in every.items() if k == g.scope}
        return _json({"customers": [{"id": k, "subscriptions": v} for k, v in sorted(visible.items())]})

    @app.get("/api/customers/{customer}/usage", tags=["customers"])
    async def usage(customer: str, g: Grant, period: str | None = None) -> Response:
        """Per charge: quantity so far, included units, billable, cost so far and projected cost."""
        return _json(await answer(lambda: store.usage(customer_of(customer, g), _period(period))))

    @app.get("/api/customers/{customer}/usage/daily", tags=["customers"])
    async def daily(
        customer: str,
        g: Grant,
        start: Annotated[str | None, Query(alias="from")] = None,
        to: str | None = None,
    ) -> Response:
        """Usage per UTC day and meter, from..to inclusive (default: the last 90 days), for charts."""
        await answer(lambda: customer_of(customer, g))
        last = _day(to, "to", datetime.now(UTC).date())
        first = _day(start, "from", last - timedelta(days=89))
        if first > last:
            raise ApiError(400, f"from {first} is after to {last}")
        if (last - first).days > 731:
            raise ApiError(400, "at most two years at a time")
        days = await answer(lambda: store.daily(customer, first.isoformat(), last.isoformat()))
        return _json({"customer": customer, "from": first.isoformat(), "to": last.isoformat(), "days": days})

    @app.get("/api/customers/{customer}/balance", tags=["customers"])
    async def balance(customer: str, g: Grant) -> Response:
        """Credit grants: granted, consumed, remaining, expiry (as `tallyflow balance`)."""
        return _json(await answer(lambda: store.balance(customer_of(customer, g))))

    @app.get("/api/customers/{customer}/invoices", tags=["customers"])
    async def invoices(customer: str, g: Grant) -> Response:
        """The last twelve periods' invoices, draft or finalized."""
        return _json({"invoices": await answer(lambda: store.invoices(customer_of(customer, g)))})

    @app.get("/api/customers/{customer}/invoices/{period}", tags=["customers"])
    async def invoice(customer: str, period: str, g: Grant) -> Response:
        """The invoice document of `tallyflow invoice --format json`, draft or finalized."""
        doc = await answer(lambda: store.invoice(customer_of(customer, g), _period(period)))
        if doc is None:
            raise ApiError(404, f"customer {customer} has no invoice for {period}")
        return _json(doc)

    @app.get("/api/customers/{customer}/alerts", tags=["customers"])
    async def alerts(customer: str, g: Grant) -> Response:
        """Usage alerts, anomalies and credit alerts of the last 90 days, newest first."""
        since = datetime.now(UTC) - timedelta(days=90)
        found = await answer(lambda: store.alerts(customer_of(customer, g), since))
        cat = await answer(store.catalog)
        thresholds = _thresholds(cat, customer)
        return _json({"customer": customer, "alerts": found, "thresholds": thresholds})

    @app.get("/api/pipeline", tags=["operator"])
    def pipeline(g: Grant) -> Response:
        """The admin view: what landed, the rate, lag, checkpoint, settlement and open alerts."""
        admin(g)
        view = dict(store.pipeline())
        view.update(store.cached(("pipeline-extras",), lambda _client: metrics.pipeline_extras(settings)))
        since = datetime.now(UTC) - timedelta(days=40)
        open_alerts: dict[str, int] = {}
        for a in store.alerts("", since):
            open_alerts[a["customer_id"]] = open_alerts.get(a["customer_id"], 0) + 1
        view["customers_with_alerts"] = [{"customer": c, "alerts": n} for c, n in sorted(open_alerts.items())]
        return _json(view)

    @app.get("/", include_in_schema=False)
    def admin_page() -> FileResponse:
        return FileResponse(STATIC / "admin.html")

    @app.get("/customers/{customer}", include_in_schema=False)
    def customer_page(customer: str) -> FileResponse:
        return FileResponse(STATIC / "customer.html")

    return app


def _thresholds(cat: Any, customer: str) -> dict:
    """The alert settings of the customer's current plan(s), as decimal strings."""
    now = datetime.now(UTC)
    out: dict = {"credits": [], "included_usage": [], "spend": [], "spike": None}
    for sub in cat.subscriptions:
        if sub.customer != customer or sub.start > now or (sub.end is not None and sub.end <= now):
            continue
        versions = [p for p in cat.plan_versions(sub.plan) if p.effective_from <= now] or cat.plan_versions(sub.plan)
        plan = versions[-1]
        if plan.credits is not None:
            out["credits"] = [str(t) for t in plan.credits.alert_thresholds]
        if plan.alerts is not None:
            out["included_usage"] = [str(t) for t in plan.alerts.included_usage]
            out["spend"] = [str(t) for t in plan.alerts.spend]
            if plan.alerts.spike is not None:
                s = plan.alerts.spike
                out["spike"] = {
                    "factor": str(s.factor),
                    "baseline_days": s.baseline_days,
                    "min_history_days": s.min_history_days,
                    "min_quantity": str(s.min_quantity),
                }
    return out
