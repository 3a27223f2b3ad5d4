"""The drawdown's pure logic (jobs/tallyflow/core/drawdown.py): order, expiry, exactness, alerts,
exhaustion, top-ups, the grant wire format and seeding from the ledger."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tallyflow.core import catalog
from tallyflow.core.credit_state import CustomerCredits, GrantRecord, validate_grant
from tallyflow.core.drawdown import Drawdown
from tallyflow.ingest import grants
from tallyflow.wire import grants as wire_grants

OCT = "2026-10-01T00:00:00Z"


def ms(text: str) -> int:
    return grants.parse_time(text, "t")


def make(grants: list[dict], on_exhausted: str = "overage", rates: dict | None = None) -> Drawdown:
    return Drawdown(
        catalog.parse(
            {
                "meters": [
                    {"id": "calls", "event_type": "call", "aggregation": "count"},
                    {"id": "tokens", "event_type": "llm", "aggregation": "sum", "value": "t"},
                ],
                "plans": [
                    {
                        "id": "p",
                        "version": 1,
                        "effective_from": "2026-01-01T00:00:00Z",
                        "currency": "USD",
                        "credits": {
                            "rates": rates or {"calls": "1", "tokens": "0.003"},
                            "credit_price": "1",
                            "on_exhausted": on_exhausted,
                            "alert_thresholds": ["0.5", "1"],
                        },
                    }
                ],
                "subscriptions": [{"customer": "c", "plan": "p", "start": "2026-01-01T00:00:00Z"}],
                "grants": [{"customer": "c", **g} for g in grants],
            }
        )
    )


def draws(rows: list[dict]) -> list[tuple]:
    return [(r["kind"], r["grant_id"], r["credits"], r["quantity"]) for r in rows if r["stream"] == "ledger"]


def kinds(rows: list[dict]) -> list[str]:
    return [r["kind"] for r in rows if r["stream"] == "signal"]


def test_order_priority_then_expiry_then_effective_then_id():
    dd = make(
        [
            {"grant_id": "late-start", "credits": "10", "priority": 1, "effective_at": "2026-10-02T00:00:00Z"},
            {"grant_id": "no-expiry", "credits": "10", "priority": 1, "effective_at": OCT},
            {
                "grant_id": "expires",
                "credits": "10",
                "priority": 1,
                "effective_at": OCT,
                "expires_at": "2026-11-01T00:00:00Z",
            },
            {"grant_id": "low", "credits": "10", "priority": 0, "effective_at": OCT},
            {"grant_id": "b-same", "credits": "10", "priority": 1, "effective_at": "2026-10-02T00:00:00Z"},
        ]
    )
    st = dd.new_state()
    rows = dd.usage(st, "c", "calls", ms("2026-10-05T00:00:00Z"), Decimal(45), 0, 0)
    assert [(g, c) for _, g, c, _ in draws(rows)] == [
        ("low", "10"),
        ("expires", "10"),
        ("no-expiry", "10"),
        ("b-same", "10"),
        ("late-start", "5"),
    ]


def test_grant_usable_only_inside_its_interval():
    dd = make(
        [
            {
                "grant_id": "g",
                "credits": "100",
                "effective_at": "2026-10-10T00:00:00Z",
                "expires_at": "2026-10-20T00:00:00Z",
            }
        ]
    )
    st = dd.new_state()
    assert draws(dd.usage(st, "c", "calls", ms("2026-10-09T23:59:59Z"), Decimal(1), 0, 0)) == [
        ("uncovered", "", "1", "1")
    ]
    assert draws(dd.usage(st, "c", "calls", ms("2026-10-10T00:00:00Z"), Decimal(1), 0, 0))[0][:2] == ("draw", "g")
    assert draws(dd.usage(st, "c", "calls", ms("2026-10-19T23:59:59Z"), Decimal(1), 0, 0))[0][:2] == ("draw", "g")
    assert draws(dd.usage(st, "c", "calls", ms("2026-10-20T00:00:00Z"), Decimal(1), 0, 0)) == [
        ("uncovered", "", "1", "1")
    ]


def test_split_quantities_add_up_exactly():
    # 0.003 credits per token; a grant of 1 credit covers 333.333333333333 tokens (12 places),
    # the rest of the usage goes to the next grant, and the parts add up to the quantity.
    dd = make(
        [
            {"grant_id": "a", "credits": "1", "priority": 0, "effective_at": OCT},
            {"grant_id": "b", "credits": "100", "priority": 1, "effective_at": OCT},
        ]
    )
    st = dd.new_state()
    rows = draws(dd.usage(st, "c", "tokens", ms("2026-10-05T00:00:00Z"), Decimal(1000), 0, 0))
    assert rows == [("draw", "a", "1", "333.333333333333"), ("draw", "b", "2", "666.666666666667")]
    assert sum(Decimal(q) for *_, q in rows) == 1000


def test_alerts_exhausted_and_restored_by_a_top_up():
    dd = make([{"grant_id": "g", "credits": "100", "effective_at": OCT}])
    st = dd.new_state()
    t = ms("2026-10-05T00:00:00Z")
    assert kinds(dd.usage(st, "c", "calls", t, Decimal(40), 0, 0)) == ["balance"]
    assert kinds(dd.usage(st, "c", "calls", t, Decimal(20), 0, 0)) == ["balance", "alert"]  # 60%
    rows = dd.usage(st, "c", "calls", t, Decimal(50), 0, 0)
    assert kinds(rows) == ["balance", "alert", "exhausted"]
    assert draws(rows) == [("draw", "g", "40", "40"), ("uncovered", "", "10", "10")]
    assert kinds(dd.usage(st, "c", "calls", t, Decimal(5), 0, 0)) == ["balance"]  # still exhausted: no repeat
    top_up = GrantRecord("c", "top", Decimal(300), 0, ms(OCT), None)
    rows = dd.grant(st, top_up)
    assert draws(rows) == [("grant", "top", "300", None)] and kinds(rows) == ["restored", "balance"]
    assert kinds(dd.grant(st, top_up)) == ["grant_ignored"]  # idempotent by grant id
    # 400 granted, 100 consumed (25%) re-armed both alerts; 100 more reach 50%: the 0.5 alert again.
    assert kinds(dd.usage(st, "c", "calls", t, Decimal(99), 0, 0)) == ["balance"]
    assert kinds(dd.usage(st, "c", "calls", t, Decimal(1), 0, 0)) == ["balance", "alert"]


def test_meters_without_a_credit_rate_draw_nothing():
    dd = make([{"grant_id": "g", "credits": "100", "effective_at": OCT}], rates={"calls": "1"})
    assert dd.usage(dd.new_state(), "c", "tokens", ms("2026-10-05T00:00:00Z"), Decimal(5), 0, 0) == []
    assert dd.usage(dd.new_state(), "nobody", "calls", ms("2026-10-05T00:00:00Z"), Decimal(5), 0, 0) == []


def test_seed_from_ledger_rows_continues_where_the_ledger_ends():
    dd = make([{"grant_id": "g", "credits": "100", "priority": 1, "effective_at": OCT}])
    st = dd.new_state()
    rows = dd.grant(st, GrantRecord("c", "top", Decimal(50), 0, ms(OCT), None))
    rows += dd.usage(st, "c", "calls", ms("2026-10-05T00:00:00Z"), Decimal(120), 0, 0)
    day = datetime(2026, 10, 5, tzinfo=UTC).replace(tzinfo=None)
    ledger = [
        {
            "customer_id": "c",
            "grant_id": "top",
            "granted": Decimal(50),
            "priority": 0,
            "is_top_up": 1,
            "effective_at": datetime(2026, 10, 1),
            "expires_at": None,
            "drawn": Decimal(50),
            "max_seq": 3,
            "last_usage": day,
        },
        {
            "customer_id": "c",
            "grant_id": "g",
            "granted": None,
            "priority": None,
            "is_top_up": 0,
            "effective_at": None,
            "expires_at": None,
            "drawn": Decimal(70),
            "max_seq": 4,
            "last_usage": day,
        },
    ]
    signals = [{"customer_id": "c", "max_seq": max(r["seq"] for r in rows), "exhausted": False}]
    seeded = dd.seed(ledger, signals)["c"]
    assert seeded.grants["top"].remaining == st.grants["top"].remaining == 0
    assert seeded.grants["g"].remaining == st.grants["g"].remaining == 30
    assert (seeded.seq, seeded.last, sorted(seeded.fired)) == (st.seq, st.last, sorted(st.fired))
    # The state survives Flink's keyed state (JSON) exactly, decimals included.
    assert CustomerCredits.from_json(seeded.to_json()) == seeded


def test_grant_wire_format_and_rejections():
    g = GrantRecord("c", "g1", Decimal("12.5"), 2, ms(OCT), ms("2026-12-01T00:00:00Z"))
    assert wire_grants.decode_grant(wire_grants.encode_grant(g)) == g
    with pytest.raises(ValueError, match="not Confluent wire format"):
        wire_grants.decode_grant(b"garbage")
    with pytest.raises(ValueError, match="malformed Avro"):
        wire_grants.decode_grant(b"\x00\x00\x00\x07\xd1\xff\xff")
    with pytest.raises(ValueError, match="positive"):
        wire_grants.decode_grant(wire_grants.encode_grant(GrantRecord("c", "g", Decimal(0), 0, ms(OCT), None)))
    assert "whole seconds" in validate_grant(GrantRecord("c", "g", Decimal(1), 0, ms(OCT) + 5, None))
    assert "after" in validate_grant(GrantRecord("c", "g", Decimal(1), 0, ms(OCT), ms(OCT)))


def test_catalog_grants_need_whole_seconds():
    with pytest.raises(catalog.CatalogError, match="whole seconds"):
        make([{"grant_id": "g", "credits": "1", "effective_at": "2026-10-01T00:00:00.500Z"}])


class _State:
    """Stands in for Flink's ValueState: the text the function reads and writes, and how often."""

    def __init__(self) -> None:
        self.text: str | None = None
        self.reads = self.writes = 0

    def value(self) -> str | None:
        self.reads += 1
        return self.text

    def update(self, text: str) -> None:
        self.writes += 1
        self.text = text


def _usage_row(*entries: tuple[str, str]):
    """One customer's flush, as CreditBatcher emits it: (second, quantity) entries of meter calls."""
    from pyflink.common import Row

    batch = json.dumps([["calls", ms(second), quantity, ms(second), ms(second)] for second, quantity in entries])
    return Row(record="usage", customer_id="c", batch=batch, payload=None, source_partition=None, source_offset=None)


def test_the_drawdown_function_reuses_only_the_state_text_it_wrote():
    from tallyflow.core.drawdown import FIELDS
    from tallyflow.stream import credits

    cat = make([{"grant_id": "g", "credits": "7", "effective_at": "2026-11-01T00:00:00Z"}]).plans.catalog
    rows = [_usage_row((f"2026-11-02T00:00:0{i}Z", "2")) for i in range(5)]
    keep = [FIELDS.index(f) for f in ("kind", "seq", "grant_id", "credits", "balance", "consumed")]

    def feed(fn, row) -> list[tuple]:
        return [tuple(out[k] for k in keep) for out in fn.process_element(row, None)]

    straight = credits.drawdown_function(cat)
    straight.state = _State()
    expected = [feed(straight, row) for row in rows]
    assert [k for k, *_ in expected[3]] == ["draw", "uncovered", "balance", "alert", "exhausted"]

    # A restore to the state after the first row: the function still holds the object it wrote
    # after the second one, and must not use it for the older text.
    fn = credits.drawdown_function(cat)
    fn.state = _State()
    feed(fn, rows[0])
    after_first = fn.state.text
    feed(fn, rows[1])
    fn.state.text = after_first
    assert [feed(fn, row) for row in rows[1:]] == expected[1:]


def test_one_call_draws_a_whole_flush_with_one_state_read_and_write():
    """A customer's flush of five seconds in one call: the same ledger and signals, in the same
    order, as five calls of one second each, for one state read and one write instead of five."""
    from tallyflow.core.drawdown import FIELDS
    from tallyflow.stream import credits

    cat = make([{"grant_id": "g", "credits": "7", "effective_at": "2026-11-01T00:00:00Z"}]).plans.catalog
    entries = [(f"2026-11-02T00:00:0{i}Z", "2") for i in range(5)]

    timed = FIELDS.index("emitted_at")
    rows = lambda outs: [tuple(v for i, v in enumerate(out) if i != timed) for out in outs]  # noqa: E731

    one_by_one = credits.drawdown_function(cat)
    one_by_one.state = _State()
    expected = rows(out for e in entries for out in one_by_one.process_element(_usage_row(e), None))

    batched = credits.drawdown_function(cat)
    batched.state = _State()
    assert rows(batched.process_element(_usage_row(*entries), None)) == expected
    assert (batched.state.reads, batched.state.writes) == (1, 1)
    assert batched.state.text == one_by_one.state.text
    kinds = [row[FIELDS.index("kind")] for row in expected]  # before emitted_at: same index
    # 7 credits for 5 x 2 calls: 2, 2, 2, then 1 and 1 uncovered, then 2 uncovered (nothing left to
    # draw from, so no draw of zero credits).
    assert kinds == ["draw", "balance", "draw", "balance", "alert", "draw", "balance", "draw", "uncovered",
                     "balance", "alert", "exhausted", "uncovered", "balance"]  # fmt: skip
