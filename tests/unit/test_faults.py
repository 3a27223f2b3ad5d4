"""TALLYFLOW_FAULT is parsed in one place; an unknown fault stops the command at start."""

from __future__ import annotations

import pytest

from tallyflow import faults
from tallyflow.errors import UserError
from tallyflow.settings import Settings


@pytest.mark.parametrize("text", ["loader-crash:1", "drawdown-after", "clickhouse-down:x", "kill:3"])
def test_unknown_or_malformed_fault_is_an_error(text, monkeypatch):
    monkeypatch.setenv("TALLYFLOW_FAULT", text)
    with pytest.raises(UserError, match="is not one of drawdown-after:N, loader-after-insert:N, clickhouse-down:S"):
        Settings.from_env()


def test_a_fault_fires_once_per_pipeline(tmp_path):
    fault = faults.parse("loader-after-insert:2")
    assert fault == faults.Fault("loader-after-insert", 2)
    assert fault.fire_once(tmp_path, "p1.") and not fault.fire_once(tmp_path, "p1.")
    assert fault.fire_once(tmp_path, "p2.")
    assert fault.marker(tmp_path, "p1.").exists()
    assert faults.parse("") is None
