"""Rating as a Flink function: keyed by (customer, meter, group, period), thread mode, one call
per closed window or adjustment (core/rating.py is the logic)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from tallyflow.core.catalog import Catalog
from tallyflow.core.rating import FIELDS, Rater


def rate_windows(catalog: Catalog):
    """The Flink KeyedProcessFunction, keyed by (customer, meter, group, period)."""
    from pyflink.common import Row, Types
    from pyflink.common.time import Time
    from pyflink.datastream import KeyedProcessFunction, RuntimeContext
    from pyflink.datastream.state import StateTtlConfig, ValueStateDescriptor

    class RateWindows(KeyedProcessFunction):
        def __init__(self) -> None:
            self.rater = Rater(catalog)

        def open(self, runtime_context: RuntimeContext) -> None:
            descriptor = ValueStateDescriptor("positions", Types.STRING())
            # A key is one period of one customer's meter and group: gone two months after it.
            descriptor.enable_time_to_live(StateTtlConfig.new_builder(Time.days(62)).build())
            self.positions = runtime_context.get_state(descriptor)

        def process_element(self, w, ctx):
            positions = json.loads(self.positions.value() or "{}")
            records = self.rater.rate(
                positions,
                w.customer_id,
                w.meter_id,
                w.group_key,
                _ts(w.window_start),
                _ts(w.window_end),
                Decimal(w.quantity),
                Decimal(w.max_quantity),
            )
            if records:
                self.positions.update(json.dumps(positions))
            for r in records:
                yield Row(*r)

    return RateWindows()


def _ts(value: str) -> datetime:
    """Window bounds arrive as 'yyyy-MM-dd HH:mm:ss.SSS' strings in UTC (the job's local time zone)."""
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def output_type():
    from pyflink.common import Types

    types = [Types.STRING()] * len(FIELDS)
    types[FIELDS.index("version")] = Types.INT()
    types[FIELDS.index("provisional")] = Types.BOOLEAN()
    return Types.ROW_NAMED(FIELDS, types)
