"""The documented Python producer API (ingest/producer.EventProducer): send and send_batch
validate as the job does, refuse bad events with their reasons, and report deliveries; what they
publish is Confluent-framed Avro that fastavro reads back as sent."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

import pytest
from confluent_kafka import Consumer, TopicPartition

from tallyflow.settings import REPO_ROOT
from tallyflow.wire import avro

pytestmark = pytest.mark.integration

PUBLISH = """
import json, sys
from tallyflow.core.events import InvalidEvent
from tallyflow.ingest.producer import EventProducer
from tallyflow.settings import Settings

def event(i, **kw):
    return {"event_id": f"api-{i}", "customer_id": f"c{i % 3}", "event_type": "llm_call",
            "event_time": "2026-10-03T12:00:00.123Z", "values": {"tokens": str(i) + ".5"},
            "dimensions": {"model": "m-large"}, **kw}

with EventProducer(Settings.from_env()) as p:
    p.send(event(0))
    try:
        p.send(event(1, values={"tokens": "-1"}))
        raised = None
    except InvalidEvent as e:
        raised = str(e)
    refused = p.send_batch([event(2), event(3, event_time="yesterday"), event(4), {"event_id": "x"}])
print(json.dumps({"raised": raised, "refused": refused, "report": p.report.as_dict()}))
"""


def test_send_and_send_batch_validate_and_report(tallyflow):
    proc = subprocess.run(
        [sys.executable, "-c", PUBLISH], env=tallyflow.env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["raised"] == "value tokens is negative (-1)"
    assert [i for i, _ in out["refused"]] == [1, 3]
    assert "not ISO 8601" in out["refused"][0][1]
    assert out["report"] == {"sent": 3, "rejected": 2, "failed": 0}

    topic = tallyflow.topic("events")
    consumer = Consumer({"bootstrap.servers": tallyflow.bootstrap, "group.id": "t"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        got = {}
        while len(got) < 3:
            msg = consumer.poll(10)
            assert msg is not None, got
            record = avro.decode(msg.value())
            assert msg.key() == record["customer_id"].encode()
            got[record["event_id"]] = record
    finally:
        consumer.close()
    assert sorted(got) == ["api-0", "api-2", "api-4"]
    assert str(got["api-4"]["values"]["tokens"]) == "4.500000000000"
    assert got["api-0"]["event_time"].isoformat() == "2026-10-03T12:00:00.123000+00:00"


def test_produce_file_mixes_the_native_and_python_paths(tallyflow, tmp_path):
    """Canonical lines go through the native encoder, the others (escapes, non-ASCII, a time with
    an offset) through the Python path; blank lines are skipped and bad ones named by number. What
    lands is the same either way."""
    lines = [
        '{"event_id": "n1", "customer_id": "c1", "event_type": "t", "event_time": "2026-10-01T00:00:00.5Z",'
        ' "values": {"q": "2.5", "n": 3}, "dimensions": {"region": "eu"}, "source": "sdk"}',
        '{"event_id": "p\\u0032", "customer_id": "c1", "event_type": "t", "event_time": "2026-10-01T02:00:00+02:00",'
        ' "dimensions": {"city": "Zürich"}}',
        "",
        '{"event_id": "bad", "customer_id": "c1", "event_type": "t", "event_time": "2026-10-01T00:00:00Z", "x": 1}',
    ]
    path = tmp_path / "e.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b'{"event_id": "\xff"}\n')
    proc = tallyflow("produce", "--file", str(path), "--format", "json", check=False)
    assert json.loads(proc.stdout) == {"sent": 2, "rejected": 2, "failed": 0}
    assert proc.stderr.splitlines() == ["line 4: unknown field(s): x", "line 5: not UTF-8 text (byte 15)"]
    got = _read(tallyflow, tallyflow.topic("events"), 2)
    assert got["n1"]["values"] == {"q": Decimal("2.500000000000"), "n": Decimal("3.000000000000")}
    assert got["n1"]["source"] == "sdk" and got["n1"]["event_time"].isoformat() == "2026-10-01T00:00:00.500000+00:00"
    assert got["p2"]["dimensions"] == {"city": "Zürich"}
    assert got["p2"]["event_time"].isoformat() == "2026-10-01T00:00:00+00:00"


DELIVERY_FAILS = """
import json, secrets, sys
from confluent_kafka.admin import AdminClient, NewTopic
from tallyflow.ingest.producer import EventProducer
from tallyflow.settings import Settings

settings = Settings.from_env()
topic = settings.topic("tiny")
admin = AdminClient({"bootstrap.servers": settings.bootstrap})
admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": "200"})])[topic].result()
with EventProducer(settings, topic=topic) as p:
    p.send({"event_id": "e1", "customer_id": "c1", "event_type": "t", "event_time": "2026-10-01T00:00:00Z",
            "dimensions": {"d": secrets.token_urlsafe(700)}})  # incompressible: over 200 bytes in lz4
print(json.dumps({"report": p.report.as_dict(), "problems": p.report.problems}))
"""


def test_a_record_the_broker_refuses_is_reported_failed(tallyflow):
    proc = subprocess.run(
        [sys.executable, "-c", DELIVERY_FAILS],
        env=tallyflow.env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["report"] == {"sent": 0, "rejected": 0, "failed": 1}
    assert out["problems"][0].startswith("delivery failed:"), out


def _read(tallyflow, topic: str, n: int) -> dict:
    consumer = Consumer({"bootstrap.servers": tallyflow.bootstrap, "group.id": "t-read"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        got: dict = {}
        while len(got) < n:
            msg = consumer.poll(10)
            assert msg is not None, got
            record = avro.decode(msg.value())
            assert msg.key() == record["customer_id"].encode()
            got[record["event_id"]] = record
        return got
    finally:
        consumer.close()


def test_each_bad_line_is_named_and_the_rest_is_sent(tallyflow, tmp_path):
    """Hostile lines, each refused on its own line with one message, never a traceback; the
    lines after them are still checked and sent."""
    ok = '{"event_id": "%s", "customer_id": "c1", "event_type": "t", "event_time": "2026-10-01T00:00:00Z"}'
    head = '{"event_id": "x", "customer_id": "c1", "event_type": "t", "event_time": "2026-10-01T00:00:00Z", '
    big_dims = {f"k{i:02d}": "x" * 1024 for i in range(64)}  # within each limit, over TALLYFLOW_MAX_RECORD_BYTES
    lines = [
        ok % "first",
        head + '"values": {"q": ' + "9" * 5000 + "}}",
        '{"event_id": "x", "customer_id": "c\\ud800", "event_type": "t", "event_time": "2026-10-01T00:00:00Z"}',
        "[" * 100_000 + "]" * 100_000,
        head + '"dimensions": ' + json.dumps(big_dims) + "}",
        '{"event_id": "x", "customer_id": "c1\\u202e", "event_type": "t", "event_time": "2026-10-01T00:00:00Z"}',
        head + '"values": {"calls": "1", "calls": "1000000"}}',
        ok % "last",
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(lines) + "\n")
    proc = tallyflow("produce", "--file", str(path), "--format", "json", check=False)
    assert json.loads(proc.stdout) == {"sent": 2, "rejected": 6, "failed": 0}, proc.stderr
    errors = proc.stderr.splitlines()
    assert [e.split(":")[0] for e in errors] == [f"line {n}" for n in range(2, 8)], errors
    assert "Traceback" not in proc.stderr
    assert "digits" in errors[0] and "U+D800" in errors[1] and "nested too deeply" in errors[2]
    assert "exceeds the limit of 65536" in errors[3] and "U+202E" in errors[4] and "duplicate key 'calls'" in errors[5]
    assert set(_read(tallyflow, tallyflow.topic("events"), 2)) == {"first", "last"}
