"""The operator's view of the pipeline (admin token only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tallyflow.serve import metrics
from tallyflow.serve.api.common import Grant, StoreOf, as_json, require_admin

router = APIRouter(tags=["operator"])


@router.get("/api/pipeline")
def pipeline(g: Grant, store: StoreOf, request: Request) -> Response:
    """The admin view: what landed, the rate, lag, checkpoint, settlement and open alerts."""
    require_admin(g)
    settings = request.app.state.settings
    view = dict(store.pipeline())
    view.update(store.cached(("pipeline-extras",), lambda _client: metrics.pipeline_extras(settings)))
    since = datetime.now(UTC) - timedelta(days=40)
    open_alerts: dict[str, int] = {}
    for a in store.alerts("", since):
        open_alerts[a["customer_id"]] = open_alerts.get(a["customer_id"], 0) + 1
    view["customers_with_alerts"] = [{"customer": c, "alerts": n} for c, n in sorted(open_alerts.items())]
    return as_json(view)
