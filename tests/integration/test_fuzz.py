"""A short `make fuzz`: hostile inputs against produce, catalog validate and the API's parameters,
with no traceback, no 500 and no hang."""

from __future__ import annotations

from tallyflow.tools import fuzz


def test_a_short_fuzz_finds_no_traceback_500_or_hang(tallyflow):
    result = fuzz.run(cases=400, seed=20261207, base_env=tallyflow.env)
    assert result["cases"] >= 390, result["examples"]  # a few generated catalogs cannot be written as YAML at all
    assert (result["tracebacks"], result["server_errors"], result["hangs"]) == (0, 0, 0), result["examples"]
