"""Fixtures both tiers share: an in-process ClickHouse (chdb by default) for the tests that query it
directly. The real services (broker, Flink, the CLI as a subprocess) are tests/integration's."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def clickhouse_client(tmp_path_factory: pytest.TempPathFactory):
    """ClickHouse for tests that query it in-process: the server of TALLYFLOW_CLICKHOUSE_URL, else one
    chdb store for the whole session (an embedded engine opens a single path per process)."""
    from tallyflow.land import clickhouse
    from tallyflow.settings import Settings

    mp = pytest.MonkeyPatch()
    if not os.environ.get("TALLYFLOW_CLICKHOUSE_URL"):
        mp.setenv("TALLYFLOW_CLICKHOUSE_URL", f"chdb://{tmp_path_factory.mktemp('in-process-ch')}")
    client = clickhouse.ready(Settings.from_env())
    yield client
    mp.undo()
