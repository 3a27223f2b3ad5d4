"""Metering semantics on the real stack: lateness classes and adjustments, duplicates versus
conflicts, latest by event time, unique counts over the month, and parallelism independence.

Topics get one partition and watermarks are emitted per event, so the watermark follows send
order exactly (out-of-orderness 5 min, allowed lateness 1 h, hourly windows: the defaults)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Tallyflow

pytestmark = pytest.mark.integration

CATALOG = {
    "meters": [
        {"id": "calls", "event_type": "api_call", "aggregation": "count"},
        {"id": "gauge", "event_type": "gauge", "aggregation": "latest", "value": "v"},
        {"id": "seats", "event_type": "login", "aggregation": "unique_count", "value": "user"},
        {"id": "tagged", "event_type": "tagged", "aggregation": "sum", "value": "v", "group_by": ["tier", "region"]},
    ],
    "plans": [
        {
            "id": "p",
            "version": 1,
            "effective_from": "2026-01-01T00:00:00Z",
            "currency": "USD",
            "charges": [
                {"meter": "calls", "model": "per_unit", "unit_price": "1"},
                {"meter": "gauge", "model": "per_unit", "unit_price": "1"},
                {"meter": "seats", "model": "per_unit", "unit_price": "10"},
            ],
        }
    ],
    "subscriptions": [{"customer": "m1", "plan": "p", "start": "2026-01-01T00:00:00Z"}],
}


def ev(event_id: str, t: str, event_type: str = "api_call", **kw) -> dict:
    values = {"v": kw.pop("v")} if "v" in kw else {}
    return {
        "event_id": event_id,
        "customer_id": "m1",
        "event_type": event_type,
        "event_time": f"2026-10-05T{t}Z",
        "values": values,
        "dimensions": kw,
    }


# Dimension values JSON must escape (the job writes the JSON documents itself: RouteEvents).
AWKWARD = {"region": 'eu "west" \\ 1', "tier": "gr\u00fcn\n\t\u2713 \U0001f600 \u0001"}

EVENTS = [
    ev("a", "10:00:00"),
    ev("t1", "10:01:00", "tagged", v="2.50", **AWKWARD),
    ev("t2", "10:02:00", "tagged", v="1", region="us"),
    ev("login-1", "10:05:00", "login", user="u1"),
    ev("b", "10:30:00"),
    ev("c", "11:10:00"),  # watermark now 11:05
    ev("late-ok", "10:45:00"),  # behind it; window 10-11 closed < 1 h ago: adjusts
    ev("login-2", "11:11:00", "login", user="u1"),
    ev("login-3", "11:12:00", "login", user="u2"),
    ev("g-new", "12:00:00", "gauge", v="9"),
    ev("d", "13:00:00"),  # watermark now 12:55
    ev("late-too", "10:50:00"),  # window 10-11 closed 1 h 55 ago: too late
    ev("g-old", "11:00:00", "gauge", v="4"),  # arrives last, happened first: not the latest
    ev("a", "10:00:00"),  # duplicate: same payload
    {**ev("b", "10:30:00"), "values": {"extra": "1"}},  # conflict: same id, other payload
]


@pytest.fixture
def metering(tallyflow, tmp_path):
    """EVENTS through one bounded run, for a test that goes on from there."""
    return _metered(tallyflow, tmp_path)


@pytest.fixture(scope="module")
def metered(services, tmp_path_factory):
    """EVENTS through one bounded run, shared by the tests that only read what it landed."""
    t = Tallyflow(services, "metered")
    t("stack", "up")
    return _metered(t, tmp_path_factory.mktemp("metered"))


def _metered(tallyflow: Tallyflow, tmp_path: Path) -> Tallyflow:
    tallyflow.env["TALLYFLOW_TOPIC_PREFIX"] += "p1."
    tallyflow.env["TALLYFLOW_PARTITIONS"] = "1"
    tallyflow.env["TALLYFLOW_WATERMARK_EMIT"] = "on-event"  # a replay advances the watermark per event
    tallyflow("stack", "up")
    (tmp_path / "catalog.yaml").write_text(yaml.safe_dump(CATALOG))
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    tallyflow("produce", "--file", str(tmp_path / "events.jsonl"))
    tallyflow.catalog = tmp_path / "catalog.yaml"
    tallyflow("run", "--catalog", str(tallyflow.catalog), "--bounded")
    return tallyflow


def test_lateness_classes_and_one_adjustment(metered):
    lateness = {r["event_id"]: r["lateness"] for r in metered.sql("SELECT event_id, lateness FROM events FINAL")}
    assert lateness["late-ok"] == "adjust"
    assert lateness["late-too"] == "too_late"
    assert lateness["g-old"] == "adjust"
    assert {lateness[i] for i in ("a", "b", "c", "d", "g-new")} == {"on_time"}

    adjustments = metered.sql("""SELECT meter_id, toString(window_start) AS w, version, toString(quantity) AS q,
                                         event_count, event_id FROM usage_adjustments FINAL ORDER BY meter_id""")
    assert adjustments == [
        {
            "meter_id": "calls",
            "w": "2026-10-05 10:00:00.000",
            "version": 1,
            "q": "1",
            "event_count": 1,
            "event_id": "late-ok",
        },
        {
            "meter_id": "gauge",
            "w": "2026-10-05 11:00:00.000",
            "version": 1,
            "q": "4",
            "event_count": 1,
            "event_id": "g-old",
        },
    ]
    window = metered.sql("""SELECT sum(event_count) AS n FROM usage_windows FINAL
                             WHERE meter_id = 'calls' AND window_start = '2026-10-05 10:00:00'""")
    assert window == [{"n": 2}]  # a, b: the window as it fired; the adjustment adds late-ok
    assert [r["event_id"] for r in metered.sql("SELECT event_id FROM late_events FINAL")] == ["late-too"]


def test_duplicates_and_conflicts_are_stored_not_billed(metered):
    dups = metered.sql("SELECT event_id, conflict FROM duplicates FINAL ORDER BY event_id")
    assert dups == [{"event_id": "a", "conflict": 0}, {"event_id": "b", "conflict": 1}]
    (invoice,) = metered.json("invoice", "--period", "2026-10")
    quantities = {x["meter"]: x["quantity"] for x in invoice["lines"]}
    # calls: a b c late-ok d late-too, once each; latest gauge by event time is 9 (12:00), not 4;
    # seats: u1 and u2 over the month (hourly uniques would add up to 3).
    assert quantities == {"calls": "6", "gauge": "9", "seats": "2"}
    assert invoice["total"] == "35.00"


def test_group_keys_and_documents_survive_awkward_text(metered):
    """Group keys are canonical JSON (sorted keys, absent dimensions omitted); the accepted-event
    document carries every dimension byte for byte and decimals exactly."""
    windows = metered.sql("""SELECT group_key, toString(sum(quantity)) AS q FROM usage_windows FINAL
                              WHERE meter_id = 'tagged' GROUP BY group_key ORDER BY q""")
    assert [(json.loads(w["group_key"]), w["q"]) for w in windows] == [({"region": "us"}, "1"), (AWKWARD, "2.5")]
    assert windows[0]["group_key"] == '{"region":"us"}'
    assert windows[1]["group_key"] == json.dumps(AWKWARD, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    (event,) = metered.sql("SELECT dimensions, toString(`values`['v']) AS v FROM events FINAL WHERE event_id = 't1'")
    assert event == {"dimensions": AWKWARD, "v": "2.5"}


def test_the_next_run_continues_dedup_and_lateness(metering, tmp_path):
    """A later run continues the last one's state: its consumer group stands at the ends the first
    run read to, a resend of an event the first run counted is a duplicate, and lateness is judged
    against the watermark the first run reached (12:55), not one that starts over."""
    from confluent_kafka import ConsumerGroupTopicPartitions
    from confluent_kafka.admin import AdminClient

    client = AdminClient({"bootstrap.servers": metering.bootstrap})
    group = metering.env["TALLYFLOW_TOPIC_PREFIX"] + "job"
    (future,) = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)]).values()
    committed = {(tp.topic, tp.partition): tp.offset for tp in future.result().topic_partitions}
    assert committed[(metering.topic("events"), 0)] == len(EVENTS)

    calls = "SELECT sum(event_count) AS n FROM usage_windows FINAL WHERE meter_id = 'calls'"
    assert metering.sql(calls) == [{"n": 4}]  # a b c d; late-ok adjusted, late-too late
    later = [ev("a", "10:00:00"), ev("old", "10:20:00"), ev("adj", "12:10:00"), ev("e", "13:30:00")]
    (tmp_path / "later.jsonl").write_text("".join(json.dumps(e) + "\n" for e in later))
    metering("produce", "--file", str(tmp_path / "later.jsonl"))
    metering("run", "--catalog", str(metering.catalog), "--bounded")

    lateness = {r["event_id"]: r["lateness"] for r in metering.sql("SELECT event_id, lateness FROM events FINAL")}
    assert (lateness["old"], lateness["adj"], lateness["e"]) == ("too_late", "adjust", "on_time")
    assert metering.sql("SELECT count() AS n FROM duplicates FINAL WHERE event_id = 'a'") == [{"n": 2}]
    assert metering.sql(calls) == [{"n": 5}]  # + e only
    assert metering.sql("""SELECT toString(window_start) AS w, version, event_count FROM usage_adjustments FINAL
                           WHERE event_id = 'adj'""") == [
        {"w": "2026-10-05 12:00:00.000", "version": 1, "event_count": 1}
    ]
    assert sorted(r["event_id"] for r in metering.sql("SELECT event_id FROM late_events FINAL")) == ["late-too", "old"]
    (invoice,) = metering.json("invoice", "--period", "2026-10")
    assert {x["meter"]: x["quantity"] for x in invoice["lines"]}["calls"] == "9"  # 6 + old, adj, e; a once


def test_a_bounded_run_ends_on_input_from_a_transactional_producer(metering):
    """A transactional producer leaves a commit marker at a partition's end, which no reader sees
    and the job's committed offset never covers: the bounded run must still end, with every event."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    source = Consumer({"bootstrap.servers": metering.bootstrap, "group.id": "copy", "enable.auto.commit": False})
    source.assign([TopicPartition(metering.topic("events"), 0, 0)])
    records = []
    while len(records) < len(EVENTS):
        msg = source.poll(10)
        assert msg is not None and msg.error() is None
        records.append((msg.key(), msg.value()))
    source.close()

    metering.env["TALLYFLOW_TOPIC_PREFIX"] += "tx."
    metering.env["TALLYFLOW_CLICKHOUSE_URL"] += "-tx"
    metering("stack", "up")
    producer = Producer({"bootstrap.servers": metering.bootstrap, "transactional.id": metering.topic("tx")})
    producer.init_transactions(30)
    for chunk in (records[:5], records[5:]):  # two transactions: two markers, one of them last
        producer.begin_transaction()
        for key, value in chunk:
            producer.produce(metering.topic("events"), key=key, value=value)
        producer.commit_transaction(30)

    metering("run", "--catalog", str(metering.catalog), "--bounded", timeout=300)
    assert metering.sql("SELECT count() AS n FROM events FINAL") == [{"n": 13}]  # 15 sent, 2 duplicates
    assert metering.sql("SELECT sum(event_count) AS n FROM usage_windows FINAL WHERE meter_id = 'calls'") == [{"n": 4}]


WINDOW_TOTALS = """
    SELECT meter_id, toString(window_start) AS w, sum(n) AS n FROM (
        SELECT meter_id, window_start, event_count AS n FROM usage_windows FINAL
        UNION ALL SELECT meter_id, window_start, event_count FROM usage_adjustments FINAL
        UNION ALL SELECT multiIf(event_type = 'api_call', 'calls', event_type = 'gauge', 'gauge', 'seats'),
                         toStartOfHour(event_time), 1 FROM late_events FINAL)
    GROUP BY 1, 2 ORDER BY 1, 2"""


def test_parallelism_does_not_change_results(metering, tallyflow, tmp_path):
    """What an event is worth never depends on parallelism. Which events are late may: an idle
    source subtask holds the watermark back until the idle timeout, so the split between windows,
    adjustments and the late output can differ, but not the per-window totals over all three."""
    first = {"invoice": metering.json("invoice", "--period", "2026-10"), "windows": metering.sql(WINDOW_TOTALS)}
    tallyflow.env["TALLYFLOW_TOPIC_PREFIX"] += "par2."
    tallyflow.env["TALLYFLOW_PARALLELISM"] = "2"
    tallyflow.env["TALLYFLOW_CLICKHOUSE_URL"] += "-par2"
    tallyflow("stack", "up")
    tallyflow("produce", "--file", str(tmp_path / "events.jsonl"))
    tallyflow("run", "--catalog", str(tmp_path / "catalog.yaml"), "--bounded")
    second = {"invoice": tallyflow.json("invoice", "--period", "2026-10"), "windows": tallyflow.sql(WINDOW_TOTALS)}
    assert second == first
    assert {(r["meter_id"], r["w"][11:16]): r["n"] for r in first["windows"]}[("calls", "10:00")] == 4


def test_a_state_kept_under_leveled_compaction_continues_under_universal(tallyflow, tmp_path):
    """Before session 17 the dedup state was kept with RocksDB's leveled compaction; a run of
    this version restores such a native savepoint (its SST files as they are) under universal
    compaction and goes on deduplicating against it."""
    tallyflow.env["TALLYFLOW_FLINK_CONF"] = "state.backend.rocksdb.compaction.style=LEVEL"
    metering = _metered(tallyflow, tmp_path)
    del metering.env["TALLYFLOW_FLINK_CONF"]
    later = [ev("a", "10:00:00"), ev("c", "11:10:00"), ev("e", "13:30:00")]
    (tmp_path / "later.jsonl").write_text("".join(json.dumps(e) + "\n" for e in later))
    metering("produce", "--file", str(tmp_path / "later.jsonl"))
    metering("run", "--catalog", str(metering.catalog), "--bounded")

    dups = metering.sql("SELECT event_id, count() AS n FROM duplicates FINAL GROUP BY event_id ORDER BY event_id")
    assert dups == [{"event_id": "a", "n": 2}, {"event_id": "b", "n": 1}, {"event_id": "c", "n": 1}]
    calls = "SELECT sum(event_count) AS n FROM usage_windows FINAL WHERE meter_id = 'calls'"
    assert metering.sql(calls) == [{"n": 5}]  # a b c d from the first run, e from this one
