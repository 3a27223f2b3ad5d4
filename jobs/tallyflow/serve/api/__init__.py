"""The HTTP API and the dashboard pages (FastAPI), one router module per resource. Every amount
is a decimal string.

Access: `Authorization: Bearer <token>`. A customer's token (`tallyflow token create`) reads that
customer only (403 for another); TALLYFLOW_ADMIN_TOKEN reads every customer and the pipeline view.
No token, or an unknown or revoked one: 401. Errors are JSON `{"error": ...}`: 400 for a malformed
period or date, 404 for an unknown customer, 503 while ClickHouse does not answer.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from tallyflow.errors import UserError
from tallyflow.serve import limits, metrics
from tallyflow.serve.api import alerts, balance, customers, hardening, invoices, pages, pipeline, service, usage
from tallyflow.serve.api.common import ApiError
from tallyflow.serve.api.pages import STATIC
from tallyflow.serve.store import NotFound, Store, Unavailable
from tallyflow.settings import Settings

ROUTERS = (service, customers, usage, balance, invoices, alerts, pipeline, pages)


def create_app(settings: Settings, store: Store) -> FastAPI:
    app = FastAPI(
        title="tallyflow",
        version="1",
        description="Usage, balances, invoices and alerts of tallyflow's customers, as of the last landed "
        "checkpoint. Amounts are decimal strings. Authorization: Bearer token (see `tallyflow token`).",
    )
    app.state.settings = settings
    app.state.store = store
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    metrics.register_store(settings, store)
    app.add_middleware(hardening.Hardened)
    app.add_middleware(_Measured, http=metrics.HttpMetrics())
    _error_handlers(app)
    for module in ROUTERS:
        app.include_router(module.router)
    return app


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, e: ApiError) -> JSONResponse:
        return JSONResponse({"error": e.message}, status_code=e.status)

    @app.exception_handler(limits.Limited)
    async def _limited(_: Request, e: limits.Limited) -> JSONResponse:
        return JSONResponse({"error": str(e)}, status_code=429, headers={"Retry-After": str(e.retry_after)})

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
