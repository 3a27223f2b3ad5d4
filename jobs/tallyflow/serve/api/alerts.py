"""A customer's usage alerts, anomalies and credit alerts, with the thresholds of its plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from tallyflow.serve.api.common import Grant, StoreOf, as_json, customer_of
from tallyflow.serve.store import answer

router = APIRouter(tags=["customers"])


@router.get("/api/customers/{customer}/alerts")
async def alerts(customer: str, g: Grant, store: StoreOf) -> Response:
    """Usage alerts, anomalies and credit alerts of the last 90 days, newest first."""
    since = datetime.now(UTC) - timedelta(days=90)
    found = await answer(lambda: store.alerts(customer_of(store, customer, g), since))
    cat = await answer(store.catalog)
    return as_json({"customer": customer, "alerts": found, "thresholds": _thresholds(cat, customer)})


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
