"""Loads tests/vectors/invoices.json: one customer per case, all under one catalog."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from tallyflow.core import catalog
from tallyflow.core.events import parse_time

VECTORS = Path(__file__).parent / "vectors" / "invoices.json"
# The `events` columns a test that writes accepted events straight into the store fills.
EVENT_COLUMNS = [
    "customer_id",
    "event_id",
    "event_type",
    "event_time",
    "values",
    "dimensions",
    "schema_id",
    "on_time",
    "kafka_partition",
    "kafka_offset",
]


def store_events(client, events: list[dict]) -> None:
    """Accepted, on-time events (datetime event_time) straight into the store's `events`."""
    rows = [
        [
            e["customer_id"],
            e["event_id"],
            e["event_type"],
            e["event_time"],
            {k: Decimal(v) for k, v in e["values"].items()},
            e["dimensions"],
            1002,
            1,
            "on_time",
            0,
            n,
        ]
        for n, e in enumerate(events)
    ]
    # A token of its own: the table's insert deduplication would drop a block inserted before.
    client.insert(
        "events",
        rows,
        column_names=[*EVENT_COLUMNS[:8], "lateness", *EVENT_COLUMNS[8:]],
        settings={"insert_deduplication_token": uuid.uuid4().hex},
    )


def norm(d: Decimal | str) -> str:
    text = format(Decimal(d).normalize(), "f")
    return "0" if text in ("-0", "0E-0") else text


@dataclass
class Case:
    name: str
    customer: str
    events: list[dict]
    expected_lines: list[tuple]
    expected_total: str


def load() -> tuple[str, catalog.Catalog, list[Case]]:
    doc = json.loads(VECTORS.read_text())
    cases, subs = [], []
    for i, c in enumerate(doc["cases"]):
        customer = f"v{i:02d}"
        subs.append({"customer": customer, "plan": c["plan"], "start": c["subscription_start"]})
        events = [
            {**e, "customer_id": customer, "event_id": f"{customer}-{j}", "event_time": parse_time(e["event_time"])}
            for j, e in enumerate(c["events"])
        ]
        lines = [
            (x["type"], x["meter"], x["filter"], norm(x["quantity"]), norm(x["amount_exact"]), x["amount"])
            for x in c["expected"]["lines"]
        ]
        cases.append(Case(c["name"], customer, events, lines, c["expected"]["total"]))
    cat = catalog.parse({"meters": doc["meters"], "plans": doc["plans"], "subscriptions": subs}, "vectors")
    return doc["period"], cat, cases


VERSION_VECTORS = Path(__file__).parent / "vectors" / "versions.json"


@dataclass
class VersionCase:
    name: str
    catalog: catalog.Catalog  # plan `p`: version N prices meter `api` per_unit at N
    period: str
    at: str
    expected: int


def load_versions() -> list[VersionCase]:
    """tests/vectors/versions.json, each case as a one-plan catalog."""
    out = []
    for c in json.loads(VERSION_VECTORS.read_text())["cases"]:
        plans = [
            {
                "id": "p",
                "version": v,
                "effective_from": t,
                "apply": a,
                "currency": "USD",
                "charges": [{"meter": "api", "model": "per_unit", "unit_price": str(v)}],
            }
            for v, t, a in c["versions"]
        ]
        cat = catalog.parse(
            {"meters": [{"id": "api", "event_type": "api", "aggregation": "count"}], "plans": plans}, c["name"]
        )
        out.append(VersionCase(c["name"], cat, c["period"], c["at"], c["expected"]))
    return out
