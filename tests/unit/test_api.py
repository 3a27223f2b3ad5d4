"""The API in-process (FastAPI's TestClient) on a store filled here: no broker, no job. Access,
parameters, errors and the documents' figures; tests/integration/test_serve.py runs the same
API on the real pipeline, over HTTP and in a browser."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from tallyflow.core import catalog
from tallyflow.land import catalog_store
from tallyflow.serve import tokens
from tallyflow.serve.api import create_app
from tallyflow.serve.store import Store
from tallyflow.settings import Settings

ADMIN = "admin-token-for-the-api-tests"
CATALOG = {
    "meters": [{"id": "calls", "event_type": "api_call", "aggregation": "count"}],
    "plans": [
        {
            "id": "basic",
            "version": 1,
            "effective_from": "2026-01-01T00:00:00Z",
            "currency": "USD",
            "base_fee": "10.00",
            "charges": [{"meter": "calls", "model": "per_unit", "included_units": "2", "unit_price": "0.05"}],
        }
    ],
    "subscriptions": [
        {"customer": "c1", "plan": "basic", "start": "2026-01-01T00:00:00Z"},
        {"customer": "c2", "plan": "basic", "start": "2026-01-01T00:00:00Z"},
    ],
}


@pytest.fixture(scope="module")
def api(clickhouse_client, tmp_path_factory):
    client = clickhouse_client
    client.command("TRUNCATE TABLE events")
    catalog_store.apply(client, catalog.parse(CATALOG, "api"), "api.yaml")
    rows = [
        ["c1", f"e{n}", "api_call", datetime(2026, 11, 1 + n % 3, 12, tzinfo=UTC), {}, {}, 1002, 1, "on_time", 0, n]
        for n in range(9)
    ]
    columns = ["customer_id", "event_id", "event_type", "event_time", "values", "dimensions", "schema_id"]
    client.insert(
        "events",
        rows,
        column_names=[*columns, "on_time", "lateness", "kafka_partition", "kafka_offset"],
        settings={"insert_deduplication_token": uuid.uuid4().hex},
    )
    settings = dataclasses.replace(Settings.from_env(), home=tmp_path_factory.mktemp("api-home"), admin_token=ADMIN)
    c1 = tokens.create(settings, "c1")["token"]
    revoked = tokens.create(settings, "c2")["token"]
    tokens.revoke(settings, revoked)
    app = TestClient(create_app(settings, Store(settings, client)))
    return app, {"admin": ADMIN, "c1": c1, "revoked": revoked}


def get(api, path: str, who: str | None = "admin"):
    app, keys = api
    headers = {"Authorization": f"Bearer {keys[who]}"} if who else {}
    return app.get(path, headers=headers)


def test_health_and_readiness(api):
    assert get(api, "/healthz", None).json() == {"status": "ok"}
    assert get(api, "/readyz", None).json() == {"ready": True}


@pytest.mark.parametrize(
    ("who", "path", "status"),
    [
        (None, "/api/customers", 401),
        ("revoked", "/api/customers", 401),
        ("c1", "/api/customers/c2/usage?period=2026-11", 403),
        ("c1", "/api/pipeline", 403),
        ("admin", "/api/customers/nobody/usage?period=2026-11", 404),
        ("c1", "/api/customers/c1/usage?period=2026-13", 400),
        ("c1", "/api/customers/c1/usage/daily?from=2026-11-05&to=2026-11-01", 400),
        ("c1", "/api/customers/c1/usage/daily?from=yesterday", 400),
        ("c1", "/api/customers/c1/usage?period=\u0662\u0660\u0662\u0666-11", 400),  # Arabic-Indic digits
        ("c1", "/api/customers/c1/invoices/\u0662\u0660\u0662\u0666-11", 400),
        ("c1", "/api/customers/c1/usage/daily?from=\uff12\uff10\uff12\uff16-11-01", 400),  # full-width digits
        ("c1", "/api/customers/c1/usage?period=9999-12", 400),
        ("c1", "/api/customers/c1/usage?period=0001-01", 400),
        ("c1", "/api/customers/c1/invoices/0001-01", 400),
        ("c1", "/api/customers/c1/usage/daily?to=0001-01-01", 400),
        ("c1", "/api/customers/c1/usage/daily?from=20261101", 400),  # one spelling of a day only
    ],
)
def test_access_and_bad_parameters_answer_with_a_reason(api, who, path, status):
    answer = get(api, path, who)
    assert answer.status_code == status
    assert answer.json()["error"]
    assert "Code:" not in answer.text and "DB::Exception" not in answer.text  # the API's words, not ClickHouse's


def test_answers_carry_security_headers_and_redirects_name_no_host(api):
    app, keys = api
    answer = get(api, "/api/customers/c1/balance", "c1")
    assert answer.headers["cache-control"] == "no-store" and answer.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    moved = app.get(
        "/api/customers/c1/balance/",
        headers={"Host": "evil.example", "Authorization": f"Bearer {keys['c1']}"},
        follow_redirects=False,
    )
    assert moved.status_code in (307, 308) and moved.headers["location"] == "/api/customers/c1/balance"


def test_a_customer_token_lists_only_its_customer(api):
    assert [c["id"] for c in get(api, "/api/customers", "c1").json()["customers"]] == ["c1"]
    assert [c["id"] for c in get(api, "/api/customers").json()["customers"]] == ["c1", "c2"]


def test_the_invoice_is_the_catalogs_price_of_the_stored_events(api):
    doc = get(api, "/api/customers/c1/invoices/2026-11", "c1").json()
    usage = next(line for line in doc["lines"] if line["type"] == "usage")
    # 9 calls, 2 included: 7 x 0.05 = 0.35; with the base fee 10.00 the total is 10.35.
    assert (usage["quantity"], usage["amount"], doc["total"]) == ("9", "0.35", "10.35")
    assert doc["status"] == "draft"


def test_daily_usage_counts_each_day(api):
    days = get(api, "/api/customers/c1/usage/daily?from=2026-11-01&to=2026-11-30", "c1").json()["days"]
    assert [(d["day"], Decimal(d["quantity"])) for d in days] == [
        ("2026-11-01", 3),
        ("2026-11-02", 3),
        ("2026-11-03", 3),
    ]


def test_usage_reports_each_charge(api):
    doc = get(api, "/api/customers/c1/usage?period=2026-11", "c1").json()
    assert doc["cost_so_far"] == "10.35"
