"""`tallyflow quote` reproduces the worked examples of docs/catalog.md and the seed examples."""

from __future__ import annotations

import json

import pytest

from tallyflow.cli import main

CATALOG = """
meters:
  - {id: api_calls, event_type: api_call, aggregation: count}
  - {id: minutes, event_type: transcode, aggregation: sum, value: minutes}
  - {id: units, event_type: unit, aggregation: sum, value: q}
  - {id: tokens, event_type: llm, aggregation: sum, value: t, group_by: [model]}
plans:
  - id: growth
    version: 1
    effective_from: "2026-01-01T00:00:00Z"
    currency: USD
    charges:
      - meter: api_calls
        model: graduated
        tiers: &card
          - {up_to: "5000", unit_price: "0.02"}
          - {up_to: "20000", unit_price: "0.015"}
          - {up_to: null, unit_price: "0.01"}
      - meter: minutes
        model: graduated
        tiers: [{up_to: "1000", unit_price: "0.10"}, {up_to: null, unit_price: "0.07"}]
      - {meter: units, model: package, included_units: "10", package_size: "10", package_price: "100"}
      - {meter: tokens, filter: {model: big}, model: per_unit, unit_price: "0.0005"}
      - {meter: tokens, filter: {model: small}, model: per_unit, unit_price: "0.0001"}
  - id: growth
    version: 2
    effective_from: "2026-06-01T00:00:00Z"
    currency: USD
    charges:
      - meter: api_calls
        model: volume
        tiers: *card
"""


@pytest.fixture
def catalog_file(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text(CATALOG)
    return str(path)


def quote(capsys, catalog_file, *args) -> dict:
    assert main(["quote", "--catalog", catalog_file, "--plan", "growth", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_graduated_15000(capsys, catalog_file):
    q = quote(capsys, catalog_file, "--meter", "api_calls", "--quantity", "15000", "--at", "2026-03-01T00:00:00Z")
    assert (q["version"], q["amount_exact"], q["amount"]) == (1, "250", "250.00")
    assert [(r["tier"], r["units"], r["amount"]) for r in q["breakdown"]] == [(1, "5000", "100"), (2, "10000", "150")]


def test_volume_15000_in_the_later_version(capsys, catalog_file):
    q = quote(capsys, catalog_file, "--meter", "api_calls", "--quantity", "15000", "--at", "2026-07-01T00:00:00Z")
    assert (q["version"], q["model"], q["amount"]) == (2, "volume", "225.00")


def test_transcoding_3400(capsys, catalog_file):
    q = quote(capsys, catalog_file, "--meter", "minutes", "--quantity", "3400", "--at", "2026-03-01T00:00:00Z")
    assert q["amount"] == "268.00"


def test_package_121_with_10_included(capsys, catalog_file):
    q = quote(capsys, catalog_file, "--meter", "units", "--quantity", "121", "--at", "2026-03-01T00:00:00Z")
    assert (q["billable"], q["amount"], q["breakdown"][0]["packages"]) == ("111", "1200.00", "12")


def test_json_shape_and_exact_vs_rounded(capsys, catalog_file):
    q = quote(
        capsys,
        catalog_file,
        "--meter",
        "tokens",
        "--quantity",
        "12345",
        "--filter",
        "model=big",
        "--at",
        "2026-03-01T00:00:00Z",
    )
    assert {"plan", "version", "meter", "quantity", "currency", "amount_exact", "amount", "breakdown"} <= set(q)
    assert (q["amount_exact"], q["amount"]) == ("6.1725", "6.17")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--meter", "tokens", "--quantity", "1", "--at", "2026-03-01T00:00:00Z"],
            "choose one with --filter model=big; --filter model=small",
        ),
        (["--meter", "nope", "--quantity", "1"], "has no charge on meter nope"),
        (["--meter", "units", "--quantity", "-1"], "non-negative"),
        (["--meter", "units", "--quantity", "1", "--at", "2025-01-01T00:00:00Z"], "no version effective"),
    ],
)
def test_mistakes_are_one_line(capsys, catalog_file, args, message):
    assert main(["quote", "--catalog", catalog_file, "--plan", "growth", *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
