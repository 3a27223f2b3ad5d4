"""The DDL for a ClickHouse cluster (TALLYFLOW_CLICKHOUSE_CLUSTER), against golden files. No
ClickHouse server, let alone a cluster, can run here: the rendered statements are compared with
tests/golden/ddl_on_cluster/ (regenerate with UPDATE_GOLDEN=1 after a reviewed change) and parsed
by ClickHouse's own parser (chdb's EXPLAIN AST), but never executed on a cluster."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

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
def test_every_statement_runs_on_the_cluster_with_replicated_engines(name, statement, parsed):
    assert " ON CLUSTER `billing`" in statement.splitlines()[0]
    engines = re.findall(r"ENGINE = (\w+)\(", statement)
    assert all(e.startswith("Replicated") for e in engines), engines
    if engines:
        table = re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", statement).group(1)
        assert f"'/clickhouse/tables/{{shard}}/{{database}}/{table}', '{{replica}}'" in statement
    assert "non_replicated_deduplication_window" not in statement
    if "deduplication_window" in clickhouse.ddl()[[n for n, _ in RENDERED].index(name)][1]:
        assert "SETTINGS replicated_deduplication_window = 1000" in statement
    assert parsed[name] == "ok", parsed[name]  # ClickHouse's own parser accepts it


# chdb's engine is one per process, with one path: an integration test's store may already hold it,
# so the statements are parsed in a process of their own.
PARSE = """
import json, sys, chdb
out = {}
for name, statement in json.load(sys.stdin):
    try:
        chdb.query("EXPLAIN AST " + statement, "CSV")
        out[name] = "ok"
    except Exception as e:
        out[name] = str(e).splitlines()[0]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def parsed() -> dict[str, str]:
    """Each rendered statement's name -> "ok", or the parser's first line of complaint."""
    statements = [*RENDERED, ("broken", "CREATE TABLE t ON CLUSTER `c` (a String) ENGINE = MergeTree(")]
    proc = subprocess.run(
        [sys.executable, "-c", PARSE], input=json.dumps(statements), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "Syntax error" in out.pop("broken")  # the parser does refuse what it cannot read
    return out


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
