"""Rating as a Flink function: keyed by (customer, meter, group), thread mode, one call per closed
window or adjustment (core/rating.py is the logic, and keeps each period's positions)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from tallyflow.core.catalog import Catalog
from tallyflow.core.rating import FIELDS, Rater


def ttl_state(runtime_context, name: str, days: int):
    """A string value state that expires `days` after its last write, cleaned by RocksDB compaction.

    Background cleanup is off and the compaction filter is named explicitly, with a placeholder
    for its periodic compaction: PyFlink's defaults build a java.time.Duration through the py4j
    gateway, which only the local MiniCluster has (a TaskManager's embedded interpreter has none:
    FileNotFoundError launching one), and that value never reaches Java (java_utils passes the
    entry count only). Java keeps an explicit compaction-filter strategy with background cleanup off."""
    from pyflink.common import Types
    from pyflink.common.time import Time
    from pyflink.datastream.state import StateTtlConfig, ValueStateDescriptor

    descriptor = ValueStateDescriptor(name, Types.STRING())
    builder = StateTtlConfig.new_builder(Time.days(days)).disable_cleanup_in_background()
    ttl = builder.cleanup_in_rocksdb_compact_filter(1000, _NOT_PASSED_ON).build()
    descriptor.enable_time_to_live(ttl)
    return runtime_context.get_state(descriptor)


_NOT_PASSED_ON = "periodic compaction: PyFlink's default (30 days)"


def rate_windows(catalog: Catalog):
    """The Flink KeyedProcessFunction, keyed by (customer, meter, group)."""
    from pyflink.common import Row
    from pyflink.datastream import KeyedProcessFunction, RuntimeContext

    class RateWindows(KeyedProcessFunction):
        def __init__(self) -> None:
            self.rater = Rater(catalog)

        def open(self, runtime_context: RuntimeContext) -> None:
            # A key is one customer's meter and group: gone two months after its last window.
            self.positions = ttl_state(runtime_context, "positions", 62)

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
