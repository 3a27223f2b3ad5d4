"""The DDL for a ClickHouse cluster (TALLYFLOW_CLICKHOUSE_CLUSTER), against golden files. No
ClickHouse server, let alone a cluster, can run here: the rendered statements are compared with
tests/golden/ddl_on_cluster/ (regenerate with UPDATE_GOLDEN=1 after a reviewed change) and parsed
by ClickHouse's own parser (chdb's EXPLAIN AST), but never executed on a cluster."""

from __future__ import annotations

import os
import re

import chdb
import pytest

from tallyflow.land import clickhouse
from tallyflow.settings import REPO_ROOT

GOLDEN = REPO_ROOT / "tests" / "golden" / "ddl_on_cluster"
RENDERED = clickhouse.ddl("billing")


@pytest.mark.parametrize(("name", "statement"), RENDERED, ids=[n for n, _ in RENDERED])
def test_rendered_ddl_matches_its_golden_file(name, statement):
    golden = GOLDEN / f"{name}.sql"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(statement + "\n")
    assert statement + "\n" == golden.read_text()


def test_every_golden_file_is_rendered():
    assert {p.stem for p in GOLDEN.glob("*.sql")} == {n for n, _ in RENDERED}


@pytest.mark.parametrize(("name", "statement"), RENDERED, ids=[n for n, _ in RENDERED])
def test_every_statement_runs_on_the_cluster_with_replicated_engines(name, statement):
    assert " ON CLUSTER `billing`" in statement.splitlines()[0]
    engines = re.findall(r"ENGINE = (\w+)\(", statement)
    assert all(e.startswith("Replicated") for e in engines), engines
    if engines:
        table = re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", statement).group(1)
        assert f"'/clickhouse/tables/{{shard}}/{{database}}/{table}', '{{replica}}'" in statement
    assert "non_replicated_deduplication_window" not in statement
    if "deduplication_window" in clickhouse.ddl()[[n for n, _ in RENDERED].index(name)][1]:
        assert "SETTINGS replicated_deduplication_window = 1000" in statement
    chdb.query(f"EXPLAIN AST {statement}", "CSV")  # ClickHouse's parser accepts it


def test_a_copied_table_gets_its_own_replication_path():
    late = dict(RENDERED)["030_late_events"]
    assert late.startswith("CREATE TABLE IF NOT EXISTS late_events ON CLUSTER `billing` AS events\nENGINE")
    assert "/late_events'" in late and "/events'" not in late


def test_a_cluster_name_is_checked(monkeypatch):
    from tallyflow.errors import UserError
    from tallyflow.settings import Settings

    monkeypatch.setenv("TALLYFLOW_CLICKHOUSE_CLUSTER", "bad name;")
    with pytest.raises(UserError, match="TALLYFLOW_CLICKHOUSE_CLUSTER"):
        Settings.from_env()
