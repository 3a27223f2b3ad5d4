"""The credit drawdown as a Flink function: keyed by customer, thread mode, over the JVM's
micro-batches of credit-priced usage (CreditBatcher: one row per customer and flush) and the raw
grant records (core/drawdown.py is the logic). A call reads and writes its customer's state once:
PyFlink's state access costs several times the drawdown's own logic."""

from __future__ import annotations

import json
import time
from decimal import Decimal

from tallyflow.core.catalog import Catalog
from tallyflow.core.credit_state import CustomerCredits
from tallyflow.core.drawdown import FIELDS, INT_FIELDS, LONG_FIELDS, Drawdown
from tallyflow.wire.grants import decode_grant

PARSED_STATES = 100_000  # customers whose parsed state the drawdown keeps beside Flink's


def drawdown_function(
    catalog: Catalog, seeds: dict[str, CustomerCredits] | None = None, fault: tuple[int, str] | None = None
):
    """KeyedProcessFunction keyed by customer over usage batches and raw grant records; `seeds`
    are states rebuilt from the ledger for customers Flink has no state for. `fault` (tests only):
    fail once after that many usage rows, remembered by a marker file across the restart."""
    from pyflink.common import Row
    from pyflink.common.typeinfo import Types
    from pyflink.datastream import KeyedProcessFunction, RuntimeContext
    from pyflink.datastream.state import ValueStateDescriptor

    class DrawdownFunction(KeyedProcessFunction):
        def __init__(self) -> None:
            self.drawdown = Drawdown(catalog, seeds)
            self.rows = 0
            # customer -> (the state text this function last wrote, the object it came from): the
            # next call for that customer reads the same text back and skips parsing it. Only a
            # written state is kept (a call may change its object without writing), and the text
            # is compared, so a restored or rewound state is always parsed.
            self.parsed: dict[str, tuple[str, CustomerCredits]] = {}

        def open(self, runtime_context: RuntimeContext) -> None:
            # No TTL: grants and balances live as long as the customer.
            self.state = runtime_context.get_state(ValueStateDescriptor("credits", Types.STRING()))

        def process_element(self, r, ctx):
            raw = self.state.value()
            cached = self.parsed.pop(r.customer_id, None)
            if cached is not None and raw == cached[0]:
                st = cached[1]
            else:
                st = CustomerCredits.from_json(raw) if raw else self.drawdown.initial_state(r.customer_id)
            if r.record == "usage":
                rows = []
                # [meter_id, second, quantity, first event time, last event time] per entry, in
                # the order the events arrived (CreditBatcher).
                for meter_id, second, quantity, first, last in json.loads(r.batch):
                    self._maybe_fail()
                    rows += self.drawdown.usage(st, r.customer_id, meter_id, second, Decimal(quantity), first, last)
            else:
                try:
                    g = decode_grant(bytes(r.payload))
                    if g.customer != r.customer_id:
                        raise ValueError(f"customer_id {g.customer!r} differs from the record key {r.customer_id!r}")
                except (ValueError, KeyError, TypeError) as e:
                    row = dict.fromkeys(FIELDS)
                    row.update(
                        stream="dlq",
                        customer_id=r.customer_id,
                        reason=f"grant rejected: {e}"[:500],
                        payload=bytes(r.payload or b""),
                        source_partition=r.source_partition,
                        source_offset=r.source_offset,
                        emitted_at=time.time_ns() // 1_000_000,
                    )
                    yield Row(*(row[f] for f in FIELDS))
                    return
                rows = self.drawdown.grant(st, g)
            if rows:
                text = st.to_json()
                self.state.update(text)
                if len(self.parsed) >= PARSED_STATES:
                    self.parsed.clear()  # bounded: one entry per customer seen
                self.parsed[r.customer_id] = (text, st)
            for row in rows:
                yield Row(*(row[f] for f in FIELDS))

        def _maybe_fail(self) -> None:
            self.rows += 1
            if fault and self.rows == fault[0]:
                import os

                if not os.path.exists(fault[1]):
                    open(fault[1], "w").close()
                    raise RuntimeError(f"injected fault after {fault[0]} usage rows (TALLYFLOW_FAULT)")

    return DrawdownFunction()


def output_type():
    from pyflink.common import Types

    def kind(f: str):
        if f in LONG_FIELDS:
            return Types.LONG()
        if f in INT_FIELDS:
            return Types.INT()
        if f == "payload":
            return Types.PRIMITIVE_ARRAY(Types.BYTE())
        return Types.STRING()

    return Types.ROW_NAMED(FIELDS, [kind(f) for f in FIELDS])
