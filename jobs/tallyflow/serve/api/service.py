"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from tallyflow.serve import metrics
from tallyflow.serve.api.common import StoreOf, as_json
from tallyflow.serve.store import Unavailable

router = APIRouter(tags=["service"])


@router.get("/healthz")
async def healthz() -> Response:
    """The process answers (liveness)."""
    return as_json({"status": "ok"})


@router.get("/readyz")
def readyz(store: StoreOf) -> JSONResponse:
    """ClickHouse answers (readiness): 503 while it does not."""
    try:
        store.ping()
    except Unavailable as e:
        return JSONResponse({"ready": False, "error": str(e)}, status_code=503)
    return JSONResponse({"ready": True})


@router.get("/metrics")
def prometheus() -> Response:
    """Prometheus metrics: the loader, the API, lag, invoice readiness."""
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
