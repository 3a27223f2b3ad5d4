"""privacy.pseudonymize: listed dimensions are stored as a keyed HMAC (decoder, JVM), so a
unique count stays exact while no raw user id lands in ClickHouse; and the retention settings
of rejects and duplicates."""

from __future__ import annotations

import json

import pytest
import yaml

pytestmark = pytest.mark.integration

CATALOG = {
    "meters": [{"id": "active_users", "event_type": "login", "aggregation": "unique_count", "value": "user_id"}],
    "plans": [
        {
            "id": "seat",
            "version": 1,
            "effective_from": "2026-01-01T00:00:00Z",
            "currency": "USD",
            "charges": [{"meter": "active_users", "model": "per_unit", "unit_price": "2.00"}],
        }
    ],
    "subscriptions": [{"customer": "acme", "plan": "seat", "start": "2026-01-01T00:00:00Z"}],
    "privacy": {"pseudonymize": ["user_id"]},
}


def test_pseudonymized_users_are_counted_exactly_and_never_stored_raw(tallyflow, tmp_path):
    key = tmp_path / "pseudonym.key"
    key.write_text("a-long-random-secret\n")
    key.chmod(0o600)
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump(CATALOG))
    users = [f"user{i}@example.com" for i in range(37)]
    events = [
        {
            "event_id": f"l{i}",
            "customer_id": "acme",
            "event_type": "login",
            "event_time": f"2026-10-{1 + i % 28:02d}T10:00:00Z",
            "dimensions": {"user_id": users[i % len(users)]},
        }
        for i in range(400)
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    tallyflow("produce", "--file", str(path))
    missing = tallyflow("run", "--catalog", str(catalog), "--bounded", check=False)
    assert missing.returncode == 1 and "TALLYFLOW_PSEUDONYM_KEY_FILE" in missing.stderr  # no key: no run
    tallyflow.env.update(TALLYFLOW_PSEUDONYM_KEY_FILE=str(key), TALLYFLOW_REJECTS_TTL="30d")
    tallyflow("run", "--catalog", str(catalog), "--bounded")
    (invoice,) = tallyflow.json("invoice", "--period", "2026-10")
    (line,) = [x for x in invoice["lines"] if x["meter"] == "active_users"]
    assert (line["quantity"], line["amount"]) == ("37", "74.00")  # 37 distinct users, exactly
    stored = {r["u"] for r in tallyflow.sql("SELECT DISTINCT dimensions['user_id'] AS u FROM events FINAL")}
    assert len(stored) == 37 and not stored & set(users)
    assert all(len(u) == 32 and int(u, 16) >= 0 for u in stored)  # 128-bit hex HMACs
    ddl = tallyflow.sql("SELECT create_table_query AS q FROM system.tables WHERE name = 'rejects'")[0]["q"]
    assert "TTL toDateTime(kafka_time) + toIntervalSecond(2592000)" in ddl
