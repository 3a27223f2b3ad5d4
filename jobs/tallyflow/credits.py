"""Prepaid credits: grants, drawdown, balances, threshold alerts and the exhausted signal.

The drawdown runs in the job as one keyed Python function per customer (thread mode) on a reduced
stream: the JVM (CreditBatcher) sums credit-priced usage per customer, meter and event-time second
over a short flush interval, so Python sees a few rows per customer per interval, never each event.
Run-time grants arrive on the grants topic (Avro, schemas/credit_grant.v1.avsc) in the same keyed
stream; catalog grants are known from the start.

Per usage row (shared/CATALOG.md, Credits): credits needed = quantity x rate of the plan version in
force at the event time; they come from the grants usable at that second, in order of priority,
then earliest expiry (none last), then earliest effective time, then grant id. Every draw is an
immutable ledger entry (the usage it covers: customer, meter, event second, quantity; the grant;
the credits). What no grant covers is a ledger entry of kind `uncovered`: billed as overage at
credit_price x overage_multiplier with `on_exhausted: overage`, not billed with `pause`.

Signals (balance, alert, exhausted, restored, grant_ignored) go to a topic a product subscribes to
for entitlement checks. Balance, granted and consumed are over the grants usable at the time the
signal is about (the latest event time drawn for, or a grant's arrival).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tallyflow import avro_codec
from tallyflow.catalog import Catalog, Grant
from tallyflow.errors import UserError
from tallyflow.rating import Rater, plain

SUBJECT = "credit-grant"
QUANTUM = Decimal("1e-12")  # DECIMAL(38, 12): the scale of a covered quantity
FIELDS = ["stream", "customer_id", "seq", "kind", "grant_id", "meter_id", "event_time", "quantity", "credits",
          "priority", "effective_at", "expires_at", "plan_id", "version", "balance", "granted", "consumed",
          "threshold", "first_event_time", "last_event_time", "emitted_at", "reason", "payload",
          "source_partition", "source_offset"]
LONG_FIELDS = ("seq", "event_time", "effective_at", "expires_at", "first_event_time", "last_event_time",
               "emitted_at", "source_offset")
INT_FIELDS = ("priority", "version", "source_partition")
ZERO = Decimal(0)


@dataclass(frozen=True)
class GrantRecord:
    customer: str
    grant_id: str
    credits: Decimal
    priority: int
    effective_at: int  # epoch milliseconds
    expires_at: int | None

    @staticmethod
    def of(g: Grant) -> GrantRecord:
        return GrantRecord(g.customer, g.grant_id, g.credits, g.priority, _ms(g.effective_at),
                           None if g.expires_at is None else _ms(g.expires_at))


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(t: datetime) -> int:
    """Epoch milliseconds, in integers (no float near a time); naive times are UTC (ClickHouse)."""
    return ((t if t.tzinfo else t.replace(tzinfo=UTC)) - EPOCH) // timedelta(milliseconds=1)


# --- grant events on the wire ---------------------------------------------------------------


def validate_grant(g: GrantRecord) -> str | None:
    """The reason a grant is unusable, or None."""
    if not g.customer or not g.grant_id:
        return "customer_id and grant_id must be non-empty"
    if not g.credits.is_finite() or g.credits <= 0:
        return f"credits must be a positive decimal, got {g.credits}"
    if g.effective_at % 1000 or (g.expires_at is not None and g.expires_at % 1000):
        return "effective_at and expires_at must be whole seconds"
    if g.expires_at is not None and g.expires_at <= g.effective_at:
        return "expires_at must be after effective_at"
    return None


def encode_grant(g: GrantRecord) -> bytes:
    version = avro_codec.latest(SUBJECT)
    return avro_codec.encode({
        "grant_id": g.grant_id, "customer_id": g.customer, "credits": g.credits, "priority": g.priority,
        "effective_at": datetime.fromtimestamp(g.effective_at // 1000, UTC),
        "expires_at": None if g.expires_at is None else datetime.fromtimestamp(g.expires_at // 1000, UTC),
    }, version)


def decode_grant(data: bytes) -> GrantRecord:
    """Raises ValueError with the reason for anything that is not a valid grant."""
    try:
        r = avro_codec.decode(data, subject=SUBJECT)
    except ValueError:
        raise
    except Exception as e:  # fastavro raises EOFError, StopIteration, UnicodeDecodeError...
        raise ValueError(f"malformed Avro: {type(e).__name__}: {e}") from None
    expires = r.get("expires_at")
    g = GrantRecord(r["customer_id"], r["grant_id"], Decimal(r["credits"]), int(r["priority"]),
                    _ms(r["effective_at"]), None if expires is None else _ms(expires))
    reason = validate_grant(g)
    if reason:
        raise ValueError(reason)
    return g


# --- the drawdown ----------------------------------------------------------------------------


class Drawdown:
    """Pure drawdown logic on a per-customer state dict (JSON-serializable; the Flink function
    keeps it in keyed state). Each call returns the output rows as dicts of FIELDS."""

    def __init__(self, catalog: Catalog, seeds: dict[str, dict] | None = None):
        self.plans = Rater(catalog)
        self.catalog_grants: dict[str, list[GrantRecord]] = defaultdict(list)
        for g in catalog.grants:
            self.catalog_grants[g.customer].append(GrantRecord.of(g))
        self.seeds = seeds or {}

    @staticmethod
    def new_state() -> dict:
        return {"grants": {}, "seq": 0, "fired": [], "exhausted": False, "last": None}

    def initial_state(self, customer: str) -> dict:
        """A customer's state when Flink has none: the seed from the ledger, else empty."""
        seed = self.seeds.get(customer)
        return json.loads(json.dumps(seed)) if seed else self.new_state()

    def seed(self, ledger_rows: list[dict], signal_rows: list[dict]) -> dict[str, dict]:
        """States rebuilt from ClickHouse (sql/credits/drawdown_state.sql and signal_state.sql), for a
        job that starts without Flink state: grants, remaining credits, entry numbers, the last
        event second drawn for, thresholds already alerted and the exhausted flag."""
        states: dict[str, dict] = {}
        for r in ledger_rows:  # run-time grants first: draws below may refer to them
            st = states.setdefault(r["customer_id"], self.new_state())
            if r["grant_id"] and r["is_top_up"]:
                st["grants"][r["grant_id"]] = _grant_state(GrantRecord(
                    r["customer_id"], r["grant_id"], Decimal(r["granted"]), int(r["priority"]),
                    _ms(r["effective_at"]), None if r["expires_at"] is None else _ms(r["expires_at"])), "event")
        for r in ledger_rows:
            st = states[r["customer_id"]]
            self._with_catalog_grants(st, r["customer_id"])
            g = st["grants"].get(r["grant_id"])
            if g is not None and r["drawn"]:
                g["remaining"] = plain(Decimal(g["remaining"]) - Decimal(r["drawn"]))
            st["seq"] = max(st["seq"], int(r["max_seq"]))
            if r["last_usage"] is not None and _ms(r["last_usage"]) > 0:
                st["last"] = max(st["last"] or 0, _ms(r["last_usage"]))
        for r in signal_rows:
            st = states.setdefault(r["customer_id"], self.new_state())
            st["seq"] = max(st["seq"], int(r["max_seq"]))
            st["exhausted"] = bool(r["exhausted"])
        for customer, st in states.items():
            plan = self._credit_terms(customer, st["last"]) if st["last"] is not None else None
            balance, granted = _balance(st, st["last"]) if st["last"] is not None else (ZERO, ZERO)
            if plan is not None and granted > 0:
                fraction = (granted - balance) / granted
                st["fired"] = [plain(t) for t in plan.credits.alert_thresholds if fraction >= t]
        return states

    def _with_catalog_grants(self, st: dict, customer: str) -> None:
        """Catalog grants join a customer's state on first touch (and when a new catalog adds one)."""
        for g in self.catalog_grants.get(customer, ()):
            if g.grant_id not in st["grants"]:
                st["grants"][g.grant_id] = _grant_state(g, "catalog")

    def _out(self, st: dict, customer: str, stream: str, kind: str, **values) -> dict:
        st["seq"] += 1
        row = dict.fromkeys(FIELDS)
        row.update(stream=stream, customer_id=customer, seq=st["seq"], kind=kind,
                   emitted_at=time.time_ns() // 1_000_000, **values)
        return row

    def _credit_terms(self, customer: str, at_ms: int):
        found = self.plans.plan_at(customer, datetime.fromtimestamp(at_ms // 1000, UTC))
        if found is None or found[0].credits is None:
            return None
        return found[0]

    def usage(self, st: dict, customer: str, meter_id: str, second: int, quantity: Decimal,
              first_ms: int, last_ms: int) -> list[dict]:
        self._with_catalog_grants(st, customer)
        plan = self._credit_terms(customer, second)
        rates = dict(plan.credits.rates) if plan else {}
        if meter_id not in rates:
            return []  # not credit-priced for this customer at this time (billed by charges, if any)
        rate = rates[meter_id]
        out = []
        if st["exhausted"] and _balance(st, second)[0] > 0:
            st["exhausted"] = False
            out.append(self._signal(st, customer, "restored", second, plan))
        need = quantity * rate
        quantity_left = quantity
        common = {"meter_id": meter_id, "event_time": second, "plan_id": plan.id, "version": plan.version,
                  "first_event_time": first_ms, "last_event_time": last_ms}
        for gid, g in _usable(st, second):
            if need <= 0:
                break
            take = min(Decimal(g["remaining"]), need)
            need -= take
            g["remaining"] = plain(Decimal(g["remaining"]) - take)
            covered = quantity_left if need == 0 else (take / rate).quantize(QUANTUM)
            quantity_left -= covered
            out.append(self._out(st, customer, "ledger", "draw", grant_id=gid, quantity=plain(covered),
                                 credits=plain(take), priority=g["priority"], effective_at=g["effective_at"],
                                 expires_at=g["expires_at"], **common))
        if need > 0:
            out.append(self._out(st, customer, "ledger", "uncovered", grant_id="", quantity=plain(quantity_left),
                                 credits=plain(need), **common))
        st["last"] = max(st["last"] or second, second)
        out.append(self._signal(st, customer, "balance", second, plan, first_event_time=first_ms,
                                last_event_time=last_ms))
        out.extend(self._thresholds(st, customer, second, plan))
        if not st["exhausted"] and _balance(st, second)[0] <= 0:
            st["exhausted"] = True
            out.append(self._signal(st, customer, "exhausted", second, plan))
        return out

    def grant(self, st: dict, g: GrantRecord) -> list[dict]:
        self._with_catalog_grants(st, g.customer)
        if g.grant_id in st["grants"]:
            # Idempotent by grant id: a resend (or a clash with a catalog grant) changes nothing.
            return [self._out(st, g.customer, "signal", "grant_ignored", grant_id=g.grant_id,
                              reason="grant_id already known for this customer", event_time=st["last"])]
        st["grants"][g.grant_id] = _grant_state(g, "event")
        out = [self._out(st, g.customer, "ledger", "grant", grant_id=g.grant_id, credits=plain(g.credits),
                         priority=g.priority, effective_at=g.effective_at, expires_at=g.expires_at,
                         event_time=g.effective_at)]
        at = st["last"] if st["last"] is not None else g.effective_at
        plan = self._credit_terms(g.customer, at)
        if st["exhausted"] and _balance(st, at)[0] > 0:
            st["exhausted"] = False
            out.append(self._signal(st, g.customer, "restored", at, plan))
        out.append(self._signal(st, g.customer, "balance", at, plan))
        out.extend(self._thresholds(st, g.customer, at, plan))
        return out

    def _signal(self, st: dict, customer: str, kind: str, at: int, plan, **values) -> dict:
        balance, granted = _balance(st, at)
        return self._out(st, customer, "signal", kind, event_time=at, balance=plain(balance),
                         granted=plain(granted), consumed=plain(granted - balance),
                         plan_id=plan.id if plan else None, version=plan.version if plan else None, **values)

    def _thresholds(self, st: dict, customer: str, at: int, plan) -> list[dict]:
        """An alert the first time consumption reaches a threshold; re-armed when a top-up brings
        the fraction back below it."""
        if plan is None or not plan.credits.alert_thresholds:
            return []
        balance, granted = _balance(st, at)
        if granted <= 0:
            return []
        fraction = (granted - balance) / granted
        out = []
        for t in plan.credits.alert_thresholds:
            key = plain(t)
            if fraction >= t and key not in st["fired"]:
                st["fired"].append(key)
                out.append(self._signal(st, customer, "alert", at, plan, threshold=key))
            elif fraction < t and key in st["fired"]:
                st["fired"].remove(key)
        return out


def _grant_state(g: GrantRecord, source: str) -> dict:
    return {"credits": plain(g.credits), "remaining": plain(g.credits), "priority": g.priority,
            "effective_at": g.effective_at, "expires_at": g.expires_at, "source": source}


def _usable(st: dict, at: int) -> list[tuple[str, dict]]:
    """Grants usable at `at` (inside [effective_at, expires_at)), in drawdown order."""
    usable = [(gid, g) for gid, g in st["grants"].items()
              if g["effective_at"] <= at and (g["expires_at"] is None or at < g["expires_at"])]
    never = 1 << 62
    return sorted(usable, key=lambda x: (x[1]["priority"], x[1]["expires_at"] if x[1]["expires_at"] is not None
                                         else never, x[1]["effective_at"], x[0]))


def _balance(st: dict, at: int) -> tuple[Decimal, Decimal]:
    """(remaining, granted) over the grants usable at `at`."""
    usable = _usable(st, at)
    return (sum((Decimal(g["remaining"]) for _, g in usable), ZERO),
            sum((Decimal(g["credits"]) for _, g in usable), ZERO))


# --- the Flink function ----------------------------------------------------------------------


def drawdown_function(catalog: Catalog, seeds: dict[str, dict] | None = None, fault: tuple[int, str] | None = None):
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

        def open(self, runtime_context: RuntimeContext) -> None:
            # No TTL: grants and balances live as long as the customer.
            self.state = runtime_context.get_state(ValueStateDescriptor("credits", Types.STRING()))

        def process_element(self, r, ctx):
            raw = self.state.value()
            st = json.loads(raw) if raw else self.drawdown.initial_state(r.customer_id)
            if r.record == "usage":
                self._maybe_fail()
                rows = self.drawdown.usage(st, r.customer_id, r.meter_id, r.event_second, Decimal(r.quantity),
                                           r.first_event_time, r.last_event_time)
            else:
                try:
                    g = decode_grant(bytes(r.payload))
                    if g.customer != r.customer_id:
                        raise ValueError(f"customer_id {g.customer!r} differs from the record key {r.customer_id!r}")
                except (ValueError, KeyError, TypeError) as e:
                    row = dict.fromkeys(FIELDS)
                    row.update(stream="dlq", customer_id=r.customer_id, reason=f"grant rejected: {e}"[:500],
                               payload=bytes(r.payload or b""), source_partition=r.source_partition,
                               source_offset=r.source_offset, emitted_at=time.time_ns() // 1_000_000)
                    yield Row(*(row[f] for f in FIELDS))
                    return
                rows = self.drawdown.grant(st, g)
            if rows:
                self.state.update(json.dumps(st))
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


# --- publishing a grant ------------------------------------------------------------------------


def parse_time(text: str, what: str) -> int:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{what} '{text}' is not an ISO 8601 time") from None
    if t.tzinfo is None:
        raise UserError(f"{what} '{text}' needs an explicit offset (Z or +hh:mm)")
    return _ms(t.astimezone(UTC))


def publish_grant(settings, g: GrantRecord) -> None:
    from confluent_kafka import KafkaException, Producer

    from tallyflow import topics

    reason = validate_grant(g)
    if reason:
        raise UserError(f"grant {g.grant_id}: {reason}")
    if not topics.broker_answers(settings, timeout=5.0):
        raise UserError(f"Kafka at {settings.bootstrap} does not answer; run `tallyflow stack up`")
    topics.ensure_topics(settings)
    producer = Producer({"bootstrap.servers": settings.bootstrap, "enable.idempotence": True, "acks": "all",
                         "logger": topics.quiet_logger()})
    errors: list[str] = []
    producer.produce(settings.topic(topics.GRANTS), key=g.customer.encode(), value=encode_grant(g),
                     on_delivery=lambda err, _msg: errors.append(str(err)) if err else None)
    try:
        left = producer.flush(30)
    except KafkaException as e:
        raise UserError(f"publishing the grant failed: {e}") from None
    if left or errors:
        raise UserError(f"publishing the grant failed: {errors[0] if errors else 'not delivered in 30 s'}")
