"""`tallyflow sql` is read-only for real: each of these is refused with one line and a non-zero
exit, and the store (and the file system) are unchanged afterwards."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

REFUSED = [
    "SELECT 0; DROP TABLE rejects; SELECT 1",
    "INSERT INTO FUNCTION file('{out}', 'CSV') SELECT 1",
    "SELECT * FROM file('/etc/hostname', 'LineAsString')",
    "CREATE TEMPORARY TABLE t (x UInt8)",
    "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV')",
    "SET readonly = 0",
]


@pytest.mark.parametrize("query", REFUSED)
def test_refused_with_one_line(tallyflow, tmp_path, query):
    out = tmp_path / "x.csv"
    before = tallyflow.sql("SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name")
    proc = tallyflow("sql", query.format(out=out), check=False)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("tallyflow: refused:"), line
    assert not out.exists()
    after = tallyflow.sql("SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name")
    assert after == before and {"name": "rejects"} in after


def test_reads_still_work(tallyflow):
    assert tallyflow.sql("SELECT 1 AS one, ';' AS semicolon -- a comment; not a statement") == [
        {"one": 1, "semicolon": ";"}
    ]
