"""The testcontainers path of the fixtures (tests/integration/conftest.py) where Docker exists."""

from __future__ import annotations

import pytest

from tests.integration.conftest import docker_answers

pytestmark = pytest.mark.integration


def test_testcontainers_services_answer(services):
    ok, why = docker_answers()
    if not ok:
        pytest.skip(f"testcontainers path not exercised: {why}")
    if services.kind != "testcontainers":
        pytest.skip(f"services came from the {services.kind} stack (an external cluster takes precedence)")
    assert services.env["TALLYFLOW_KAFKA_BOOTSTRAP"]
    assert services.env["TALLYFLOW_CLICKHOUSE_URL"].startswith("http://")
