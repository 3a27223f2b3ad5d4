"""The rows the pipeline writes to its output topics, each defined once.

A shape names its table and its columns with their kinds. The Flink sink columns
(stream/tables.py), the drawdown's projection onto its sinks (stream/graph.py) and the Python
row types (core/rating.RatedRecord, core/alerts.UsageSignal, core/drawdown.FIELDS) come from or
are checked against these; tests/unit/test_rows.py holds the DDL (sql/ddl/) to them, and the
loader refuses a document with a field its table does not have. The accepted, late and duplicate
documents are written by the JVM router (jobs/jvm RouteEvents), which the same test reads.
"""

from __future__ import annotations

from dataclasses import dataclass

# Kind -> Flink SQL type. Amounts beyond DECIMAL(38, 12) (a rated amount: scale 24) travel as text.
FLINK_TYPES = {
    "string": "STRING",
    "long": "BIGINT",
    "int": "INT",
    "bool": "BOOLEAN",
    "decimal": "DECIMAL(38, 12)",
    "time": "TIMESTAMP_LTZ(3)",
    "decimal_map": "MAP<STRING, DECIMAL(38, 12)>",
    "string_map": "MAP<STRING, STRING>",
}
# What the loader adds to every row (the Kafka record that carried it) and the table itself.
LANDED_COLUMNS = ("kafka_partition", "kafka_offset", "loaded_at")


@dataclass(frozen=True)
class Shape:
    name: str
    table: str
    columns: tuple[tuple[str, str], ...]  # (name, kind), in the order written

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.columns)

    def of_kind(self, *kinds: str) -> tuple[str, ...]:
        return tuple(n for n, k in self.columns if k in kinds)

    def flink_columns(self) -> str:
        return ", ".join(f"`{n}` {FLINK_TYPES[k]}" for n, k in self.columns)


def _shape(name: str, table: str, spec: str) -> Shape:
    """`spec`: "column:kind ..." (whitespace separated)."""
    return Shape(name, table, tuple(tuple(c.split(":")) for c in spec.split()))  # type: ignore[misc]


_EVENT_HEAD = "customer_id:string event_id:string event_type:string event_time:time"
ACCEPTED = _shape(
    "accepted",
    "events",
    f"{_EVENT_HEAD} values:decimal_map dimensions:string_map schema_id:int on_time:bool lateness:string"
    " source_partition:int source_offset:long",
)
LATE = Shape("late", "late_events", ACCEPTED.columns)
DUPLICATES = _shape(
    "duplicates",
    "duplicates",
    f"{_EVENT_HEAD} conflict:bool payload_hash:long source_partition:int source_offset:long",
)
USAGE = _shape(
    "usage",
    "usage_windows",
    "customer_id:string meter_id:string group_key:string window_start:time window_end:time quantity:decimal"
    " max_quantity:decimal event_count:long",
)
ADJUSTMENTS = _shape(
    "adjustments",
    "usage_adjustments",
    "customer_id:string meter_id:string group_key:string window_start:time window_end:time version:long"
    " quantity:decimal max_quantity:decimal event_count:long event_id:string",
)
RATED = _shape(
    "rated",
    "rated_records",
    "customer_id:string period:string plan_id:string version:int segment_start:string meter_id:string"
    " filter_text:string model:string window_start:string window_end:string quantity:string position:string"
    " amount:string provisional:bool currency:string",
)
USAGE_SIGNALS = _shape(
    "usage_signals",
    "usage_signals",
    "customer_id:string period:string kind:string signal_key:string subject:string threshold:string"
    " observed:string limit:string baseline:string plan_id:string currency:string window_start:string"
    " window_end:string",
)
LEDGER = _shape(
    "ledger",
    "credit_ledger",
    "customer_id:string seq:long kind:string grant_id:string meter_id:string event_time:time quantity:decimal"
    " credits:decimal priority:int effective_at:time expires_at:time plan_id:string version:int"
    " first_event_time:time last_event_time:time emitted_at:time",
)
SIGNALS = _shape(
    "signals",
    "credit_signals",
    "customer_id:string seq:long kind:string event_time:time balance:decimal granted:decimal consumed:decimal"
    " threshold:decimal grant_id:string reason:string plan_id:string first_event_time:time last_event_time:time"
    " emitted_at:time",
)
SHAPES = {s.name: s for s in (ACCEPTED, LATE, DUPLICATES, USAGE, ADJUSTMENTS, RATED, USAGE_SIGNALS, LEDGER, SIGNALS)}
