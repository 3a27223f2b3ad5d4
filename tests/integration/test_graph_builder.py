"""The job graph takes its sources and sinks as parameters (stream/graph.py build): here the
pipeline's Kafka sources feed filesystem sinks, and the outputs are read back from the files."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from tallyflow.core import catalog
from tallyflow.settings import Settings

pytestmark = pytest.mark.integration

CATALOG = {
    "meters": [{"id": "calls", "event_type": "api_call", "aggregation": "count"}],
    "plans": [
        {
            "id": "p",
            "version": 1,
            "effective_from": "2026-01-01T00:00:00Z",
            "currency": "USD",
            "charges": [{"meter": "calls", "model": "per_unit", "unit_price": "1"}],
        }
    ],
    "subscriptions": [{"customer": "c1", "plan": "p", "start": "2026-01-01T00:00:00Z"}],
}


def _files(root: Path) -> list[dict]:
    return [
        json.loads(line)
        for f in sorted(root.rglob("*"))
        if f.is_file() and not f.name.startswith(".")
        for line in f.read_text().splitlines()
        if line.strip()
    ]


def _job_inputs(tallyflow) -> tuple[Settings, catalog.Catalog]:
    """The test's settings (its topics, broker and home) and CATALOG, parsed."""
    settings = replace(
        Settings.from_env(),
        topic_prefix=tallyflow.env["TALLYFLOW_TOPIC_PREFIX"],
        kafka_bootstrap=tallyflow.bootstrap,
        home=Path(tallyflow.env["TALLYFLOW_HOME"]),
    )
    return settings, catalog.parse(yaml.safe_load(yaml.safe_dump(CATALOG)), "test")


def test_the_builder_writes_to_the_sinks_it_is_given(tallyflow, tmp_path):
    events = [
        {"event_id": f"e{i}", "customer_id": "c1", "event_type": "api_call", "event_time": f"2026-10-05T10:{i:02d}:00Z"}
        for i in range(30)
    ]
    events.append(events[3])  # a resend
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    tallyflow("produce", "--file", str(path))

    from tallyflow.stream import environment, graph
    from tallyflow.stream.tables import SINK_COLUMNS, Sinks, kafka_sources

    settings, cat = _job_inputs(tallyflow)
    t_env = environment.create_environment()
    options = environment.JobOptions(
        bounded=True, name="builder-test", checkpoint_dir=(tmp_path / "checkpoints").as_uri()
    )
    environment.configure(t_env, settings, options)
    sinks = Sinks(**{name: f"fs_{name}" for name in Sinks.__dataclass_fields__})
    columns = {
        **SINK_COLUMNS,
        "accepted": "v BYTES",
        "late": "v BYTES",
        "duplicates": "v BYTES",
        "dlq": "k BYTES, v BYTES, headers MAP<STRING, BYTES>",
    }
    for name, cols in columns.items():
        # The documents the router writes arrive as bytes: the raw format writes them one a line.
        fmt = "'format' = 'raw'" if cols == "v BYTES" else "'format' = 'json'"
        t_env.execute_sql(
            f"CREATE TEMPORARY TABLE {getattr(sinks, name)} ({cols}) WITH ("
            f"'connector' = 'filesystem', 'path' = '{(tmp_path / name).as_uri()}', {fmt})"
        )
    graph.build(t_env, settings, cat, options, kafka_sources(t_env, settings, cat, options), sinks).execute().wait()

    accepted = _files(tmp_path / "accepted")
    assert sorted(e["event_id"] for e in accepted) == sorted(f"e{i}" for i in range(30))
    (dup,) = _files(tmp_path / "duplicates")
    assert (dup["event_id"], dup["conflict"]) == ("e3", False)
    usage = _files(tmp_path / "usage")
    assert sum(int(w["event_count"]) for w in usage) == 30 and {w["meter_id"] for w in usage} == {"calls"}
    rated = _files(tmp_path / "rated")
    assert sum(Decimal(r["quantity"]) for r in rated) == 30
    assert sum(Decimal(r["amount"]) for r in rated) == 30  # per_unit at 1


def _operator_uids(t_env, stmts) -> list[str]:
    """The uids of every operator the statement set plans into, as a savepoint maps its state."""
    sinks = t_env._j_tenv.getPlanner().translate(stmts._j_statement_set.getOperations())
    return sorted({t.getUid() for sink in sinks for t in sink.getTransitivePredecessors() if t.getUid()})


def test_the_pipeline_keeps_its_operator_uids_in_a_jvm_that_planned_another_job_first(tallyflow, tmp_path):
    """The planner numbers SQL operators per JVM and their uids carry the number: without the
    numbering restarted in build(), the second build's uids were shifted and a savepoint of the
    first could not be restored onto it."""
    from tallyflow.stream import environment, graph

    settings, cat = _job_inputs(tallyflow)
    options = environment.JobOptions(bounded=True, checkpoint_dir=(tmp_path / "checkpoints").as_uri())
    planned = []
    for _ in range(2):
        t_env = environment.create_environment()
        planned.append(_operator_uids(t_env, graph.kafka_job(t_env, settings, cat, options)))
    first, second = planned
    numbered = [uid for uid in first if uid.split("_", 1)[0].isdigit()]
    assert len(numbered) > 10, first  # the planner's operators, not only the ones named by hand
    assert "classify-events" in first
    assert second == first
