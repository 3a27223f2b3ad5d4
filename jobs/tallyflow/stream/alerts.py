"""Usage alerts and spike detection as Flink functions (core/alerts.py is the logic): keyed Python,
one call per rated record or closed window, never per event."""

from __future__ import annotations

import json
from decimal import Decimal

from tallyflow.core import aggregations, alerts
from tallyflow.core.catalog import Catalog
from tallyflow.core.rating import Rater
from tallyflow.stream.rating import _ts, ttl_state


def usage_alerts(catalog: Catalog):
    """Keyed by customer, over the rated records."""
    from pyflink.common import Row
    from pyflink.datastream import KeyedProcessFunction

    class UsageAlerts(KeyedProcessFunction):
        def open(self, runtime_context) -> None:
            # Spend so far and what fired, per period: kept two months past the customer's last record.
            self.fired = ttl_state(runtime_context, "usage-alerts", 62)

        def process_element(self, r, ctx):
            state = json.loads(self.fired.value() or "{}")
            signals = alerts.usage_alerts(catalog, state, r.as_dict())
            for old in sorted(state)[:-2]:  # keep the current and the previous period
                del state[old]
            self.fired.update(json.dumps(state))  # the spend so far moved, whether or not a threshold fired
            for s in signals:
                yield Row(*s)

    return UsageAlerts()


def spikes(catalog: Catalog):
    """Keyed by customer, meter and group, over the closed windows."""
    from pyflink.common import Row
    from pyflink.datastream import KeyedProcessFunction

    rater = Rater(catalog)
    days = max((p.alerts.spike.baseline_days for p in catalog.plans if p.alerts and p.alerts.spike), default=7)

    class Spikes(KeyedProcessFunction):
        def open(self, runtime_context) -> None:
            self.series = ttl_state(runtime_context, "usage-series", days + 1)

        def process_element(self, w, ctx):
            start = _ts(w.window_start)
            found = rater.plan_at(w.customer_id, start)
            if found is None or found[0].alerts is None or found[0].alerts.spike is None:
                return
            plan = found[0]
            meter = catalog.meters_by_id.get(w.meter_id)
            quantity = Decimal(
                w.max_quantity if meter is not None and aggregations.of(meter).window_rule == "max" else w.quantity
            )
            state = json.loads(self.series.value() or "{}")
            signal = alerts.spike_check(
                state,
                plan.alerts.spike,
                w.customer_id,
                plan,
                alerts.subject(w.meter_id, w.group_key),
                start,
                _ts(w.window_end),
                quantity,
            )
            self.series.update(json.dumps(state))
            if signal is not None:
                yield Row(*signal)

    return Spikes()


def output_type():
    from pyflink.common import Types

    return Types.ROW_NAMED(alerts.FIELDS, [Types.STRING()] * len(alerts.FIELDS))


def enabled(catalog: Catalog) -> tuple[bool, bool]:
    """(usage alerts, spike detection): whether any plan asks for them."""
    usage = any(p.alerts and (p.alerts.included_usage or p.alerts.spend) for p in catalog.plans)
    return bool(usage), any(p.alerts and p.alerts.spike for p in catalog.plans)
