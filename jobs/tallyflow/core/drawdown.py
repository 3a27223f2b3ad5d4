"""Prepaid credits: grants, drawdown, balances, threshold alerts and the exhausted signal.

Pure logic on a customer's typed state (CustomerCredits); the job keeps that state in Flink
(stream/credits.py) and feeds it a reduced stream: the JVM (CreditBatcher) sums credit-priced
usage per customer, meter and event-time second over a short flush interval, and the job calls
this code once per customer and interval with those rows, never per event.

Per usage row (docs/catalog.md, Credits): credits needed = quantity x rate of the plan version in
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

import time
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

from tallyflow.core.catalog import Catalog, Plan
from tallyflow.core.credit_state import CustomerCredits, GrantRecord, GrantState, epoch_ms
from tallyflow.core.periods import plain
from tallyflow.core.rating import Rater

QUANTUM = Decimal("1e-12")  # DECIMAL(38, 12): the scale of a covered quantity
FIELDS = [
    "stream",
    "customer_id",
    "seq",
    "kind",
    "grant_id",
    "meter_id",
    "event_time",
    "quantity",
    "credits",
    "priority",
    "effective_at",
    "expires_at",
    "plan_id",
    "version",
    "balance",
    "granted",
    "consumed",
    "threshold",
    "first_event_time",
    "last_event_time",
    "emitted_at",
    "reason",
    "payload",
    "source_partition",
    "source_offset",
]
LONG_FIELDS = (
    "seq",
    "event_time",
    "effective_at",
    "expires_at",
    "first_event_time",
    "last_event_time",
    "emitted_at",
    "source_offset",
)
INT_FIELDS = ("priority", "version", "source_partition")
ZERO = Decimal(0)


class Drawdown:
    """Pure drawdown logic on a customer's CustomerCredits. Each call returns the output rows as
    dicts of FIELDS (ledger entries, signals)."""

    def __init__(self, catalog: Catalog, seeds: dict[str, CustomerCredits] | None = None):
        self.plans = Rater(catalog)
        self.catalog_grants: dict[str, list[GrantRecord]] = defaultdict(list)
        for g in catalog.grants:
            self.catalog_grants[g.customer].append(GrantRecord.of(g))
        self.seeds = seeds or {}

    @staticmethod
    def new_state() -> CustomerCredits:
        return CustomerCredits()

    def initial_state(self, customer: str) -> CustomerCredits:
        """A customer's state when Flink has none: the seed from the ledger, else empty."""
        seed = self.seeds.get(customer)
        return CustomerCredits.from_json(seed.to_json()) if seed else self.new_state()

    def seed(self, ledger_rows: list[dict], signal_rows: list[dict]) -> dict[str, CustomerCredits]:
        """States rebuilt from ClickHouse (sql/credits/drawdown_state.sql and signal_state.sql), for a
        job that starts without Flink state: grants, remaining credits, entry numbers, the last
        event second drawn for, thresholds already alerted and the exhausted flag."""
        states: dict[str, CustomerCredits] = {}
        for r in ledger_rows:  # run-time grants first: draws below may refer to them
            st = states.setdefault(r["customer_id"], self.new_state())
            if r["grant_id"] and r["is_top_up"]:
                st.grants[r["grant_id"]] = GrantState.of(
                    GrantRecord(
                        r["customer_id"],
                        r["grant_id"],
                        Decimal(r["granted"]),
                        int(r["priority"]),
                        epoch_ms(r["effective_at"]),
                        None if r["expires_at"] is None else epoch_ms(r["expires_at"]),
                    ),
                    "event",
                )
        for r in ledger_rows:
            st = states[r["customer_id"]]
            self._with_catalog_grants(st, r["customer_id"])
            g = st.grants.get(r["grant_id"])
            if g is not None and r["drawn"]:
                g.remaining -= Decimal(r["drawn"])
            st.seq = max(st.seq, int(r["max_seq"]))
            if r["last_usage"] is not None and epoch_ms(r["last_usage"]) > 0:
                st.last = max(st.last or 0, epoch_ms(r["last_usage"]))
        for r in signal_rows:
            st = states.setdefault(r["customer_id"], self.new_state())
            st.seq = max(st.seq, int(r["max_seq"]))
            st.exhausted = bool(r["exhausted"])
        for customer, st in states.items():
            plan = self._credit_terms(customer, st.last) if st.last is not None else None
            balance, granted = st.balance(st.last) if st.last is not None else (ZERO, ZERO)
            if plan is not None and plan.credits is not None and granted > 0:
                fraction = (granted - balance) / granted
                st.fired = [plain(t) for t in plan.credits.alert_thresholds if fraction >= t]
        return states

    def _with_catalog_grants(self, st: CustomerCredits, customer: str) -> None:
        """Catalog grants join a customer's state on first touch (and when a new catalog adds one)."""
        for g in self.catalog_grants.get(customer, ()):
            if g.grant_id not in st.grants:
                st.grants[g.grant_id] = GrantState.of(g, "catalog")

    def _out(self, st: CustomerCredits, customer: str, stream: str, kind: str, **values: object) -> dict:
        st.seq += 1
        row: dict = dict.fromkeys(FIELDS)
        row.update(
            stream=stream, customer_id=customer, seq=st.seq, kind=kind, emitted_at=time.time_ns() // 1_000_000, **values
        )
        return row

    def _credit_terms(self, customer: str, at_ms: int) -> Plan | None:
        found = self.plans.plan_at(customer, datetime.fromtimestamp(at_ms // 1000, UTC))
        if found is None or found[0].credits is None:
            return None
        return found[0]

    def usage(
        self,
        st: CustomerCredits,
        customer: str,
        meter_id: str,
        second: int,
        quantity: Decimal,
        first_ms: int,
        last_ms: int,
    ) -> list[dict]:
        self._with_catalog_grants(st, customer)
        plan = self._credit_terms(customer, second)
        rates = dict(plan.credits.rates) if plan and plan.credits else {}
        if plan is None or meter_id not in rates:
            return []  # not credit-priced for this customer at this time (billed by charges, if any)
        rate = rates[meter_id]
        out = []
        if st.exhausted and st.balance(second)[0] > 0:
            st.exhausted = False
            out.append(self._signal(st, customer, "restored", second, plan))
        need = quantity * rate
        quantity_left = quantity
        common = {
            "meter_id": meter_id,
            "event_time": second,
            "plan_id": plan.id,
            "version": plan.version,
            "first_event_time": first_ms,
            "last_event_time": last_ms,
        }
        for gid, g in st.usable(second):
            if need <= 0:
                break
            if g.remaining <= 0:
                continue  # a used-up grant covers nothing: no zero-credit draw in the ledger
            take = min(g.remaining, need)
            need -= take
            g.remaining -= take
            covered = quantity_left if need == 0 else (take / rate).quantize(QUANTUM)
            quantity_left -= covered
            out.append(
                self._out(
                    st,
                    customer,
                    "ledger",
                    "draw",
                    grant_id=gid,
                    quantity=plain(covered),
                    credits=plain(take),
                    priority=g.priority,
                    effective_at=g.effective_at,
                    expires_at=g.expires_at,
                    **common,
                )
            )
        if need > 0:
            out.append(
                self._out(
                    st,
                    customer,
                    "ledger",
                    "uncovered",
                    grant_id="",
                    quantity=plain(quantity_left),
                    credits=plain(need),
                    **common,
                )
            )
        st.last = max(st.last or second, second)
        out.append(
            self._signal(st, customer, "balance", second, plan, first_event_time=first_ms, last_event_time=last_ms)
        )
        out.extend(self._thresholds(st, customer, second, plan))
        if not st.exhausted and st.balance(second)[0] <= 0:
            st.exhausted = True
            out.append(self._signal(st, customer, "exhausted", second, plan))
        return out

    def grant(self, st: CustomerCredits, g: GrantRecord) -> list[dict]:
        self._with_catalog_grants(st, g.customer)
        if g.grant_id in st.grants:
            # Idempotent by grant id: a resend (or a clash with a catalog grant) changes nothing.
            return [
                self._out(
                    st,
                    g.customer,
                    "signal",
                    "grant_ignored",
                    grant_id=g.grant_id,
                    reason="grant_id already known for this customer",
                    event_time=st.last,
                )
            ]
        st.grants[g.grant_id] = GrantState.of(g, "event")
        out = [
            self._out(
                st,
                g.customer,
                "ledger",
                "grant",
                grant_id=g.grant_id,
                credits=plain(g.credits),
                priority=g.priority,
                effective_at=g.effective_at,
                expires_at=g.expires_at,
                event_time=g.effective_at,
            )
        ]
        at = st.last if st.last is not None else g.effective_at
        plan = self._credit_terms(g.customer, at)
        if st.exhausted and st.balance(at)[0] > 0:
            st.exhausted = False
            out.append(self._signal(st, g.customer, "restored", at, plan))
        out.append(self._signal(st, g.customer, "balance", at, plan))
        out.extend(self._thresholds(st, g.customer, at, plan))
        return out

    def _signal(
        self, st: CustomerCredits, customer: str, kind: str, at: int, plan: Plan | None, **values: object
    ) -> dict:
        balance, granted = st.balance(at)
        return self._out(
            st,
            customer,
            "signal",
            kind,
            event_time=at,
            balance=plain(balance),
            granted=plain(granted),
            consumed=plain(granted - balance),
            plan_id=plan.id if plan else None,
            version=plan.version if plan else None,
            **values,
        )

    def _thresholds(self, st: CustomerCredits, customer: str, at: int, plan: Plan | None) -> list[dict]:
        """An alert the first time consumption reaches a threshold; re-armed when a top-up brings
        the fraction back below it."""
        if plan is None or plan.credits is None or not plan.credits.alert_thresholds:
            return []
        balance, granted = st.balance(at)
        if granted <= 0:
            return []
        fraction = (granted - balance) / granted
        out = []
        for t in plan.credits.alert_thresholds:
            key = plain(t)
            if fraction >= t and key not in st.fired:
                st.fired.append(key)
                out.append(self._signal(st, customer, "alert", at, plan, threshold=key))
            elif fraction < t and key in st.fired:
                st.fired.remove(key)
        return out
