"""The documented Python producer API (ingest/producer.EventProducer): send and send_batch
validate as the job does, refuse bad events with their reasons, and report deliveries; what they
publish is Confluent-framed Avro that fastavro reads back as sent."""

from __future__ import annotations

import json
import subprocess
import sys

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
