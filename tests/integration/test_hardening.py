"""What a hostile customer or local user tried, against the real server, store and CLI: each test
repeats one reproduction and holds the fix (docs/operations.md, Security)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import stat
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.test_serve import background, free_port, stop, wait_http

ADMIN = "hardening-admin-token-0123456789"
ARABIC_PERIOD = "\u0662\u0660\u0662\u0666-11"  # 2026-11 in Arabic-Indic digits


@pytest.fixture(scope="module")
def served(services):
    """The demo catalog applied to a fresh store, and `tallyflow serve` on it."""
    from tests.integration.conftest import Tallyflow

    t = Tallyflow(services, "hardening")
    t.env.update({"TALLYFLOW_ADMIN_TOKEN": ADMIN, "TALLYFLOW_SERVE_RATE": "20", "TALLYFLOW_SERVE_QUERIES": "2"})
    t("catalog", "apply", "deploy/demo/catalog.yaml")
    url = f"http://127.0.0.1:{free_port()}"
    server = background(t, "serve", "--address", url.removeprefix("http://"))
    wait_http(url, server)
    token = t("token", "create", "--customer", "cust_001").stdout.strip()
    try:
        yield t, url, token
    finally:
        stop(server)


def get(url: str, path: str, token: str | None = None, **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(url + path, headers={**headers, **kw.pop("headers", {})}, timeout=60, **kw)


def test_periods_and_days_in_other_digit_scripts_are_refused(served):
    t, url, token = served
    for path in (
        f"/api/customers/cust_001/invoices/{ARABIC_PERIOD}",
        f"/api/customers/cust_001/usage?period={ARABIC_PERIOD}",
        "/api/customers/cust_001/usage/daily?from=\u0662\u0660\u0662\u0666-11-01",
    ):
        r = get(url, path, token)
        assert r.status_code == 400 and "ASCII digits" in r.json()["error"], (path, r.text)
    cli = t("invoice", "--period", ARABIC_PERIOD, check=False)
    assert cli.returncode == 2 and len(cli.stderr.strip().splitlines()) == 1 and "ASCII digits" in cli.stderr


def test_bad_parameters_are_400_in_the_api_s_words(served):
    _, url, token = served
    for path in (
        "/api/customers/cust_001/usage?period=9999-12",
        "/api/customers/cust_001/usage?period=0001-01",
        "/api/customers/cust_001/invoices/0001-01",
        "/api/customers/cust_001/usage/daily?to=0001-01-01",
        "/api/customers/cust_001/usage/daily?from=2026-02-30",
    ):
        r = get(url, path, token)
        assert r.status_code == 400, (path, r.text)
        assert "DB::Exception" not in r.text and "Code:" not in r.text


def test_a_token_cannot_make_the_api_slow_for_everyone(served):
    t, url, _ = served
    fresh = lambda: t("token", "create", "--customer", "cust_001").stdout.strip()  # noqa: E731 (a full bucket)
    token = fresh()
    days = [f"/api/customers/cust_001/usage/daily?from=2025-{m:02d}-{d:02d}" for m in range(1, 5) for d in range(1, 11)]
    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        codes = list(pool.map(lambda p: get(url, p, token).status_code, days))
        started = time.monotonic()
        ready = get(url, "/readyz")
        readyz_seconds = time.monotonic() - started
    assert set(codes) <= {200, 429} and 429 in codes, codes
    assert ready.status_code == 200 and readyz_seconds < 5
    with httpx.Client(headers={"Authorization": f"Bearer {fresh()}"}, timeout=60) as client:
        burst = [client.get(url + "/api/customers/cust_001/balance") for _ in range(100)]
    limited = [r for r in burst if r.status_code == 429]
    assert limited and int(limited[0].headers["retry-after"]) >= 1 and "requests per second" in limited[0].text
    assert get(url, "/api/customers/cust_001/balance", ADMIN).status_code == 200  # the operator is not limited


def test_a_customer_token_never_gets_the_admin_scope(served):
    t, url, _ = served
    star = t("token", "create", "--customer", "*", check=False)
    assert star.returncode != 0 and "admin scope" in star.stderr and len(star.stderr.strip().splitlines()) == 1
    forced = t("token", "create", "--customer", "*", "--force", check=False)
    assert forced.returncode != 0
    unknown = t("token", "create", "--customer", "cust_nobody", check=False)
    assert unknown.returncode != 0 and "--force" in unknown.stderr
    made = t("token", "create", "--customer", "cust_nobody", "--force").stdout.strip()
    assert get(url, "/api/pipeline", made).status_code == 403
    listed = json.loads(t("token", "list", "--format", "json").stdout)
    assert all(e["customer"] != "*" for e in listed)


def test_request_heads_are_bounded(served):
    _, url, _ = served
    big = get(url, "/healthz", headers={"X-Padding": "a" * 200_000})
    assert big.status_code == 431
    host, port = url.removeprefix("http://").split(":")
    slow = socket.create_connection((host, int(port)))
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    slow.settimeout(20)
    started = time.monotonic()
    answer = slow.recv(1000)
    slow.close()
    assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 15
    assert get(url, "/healthz").status_code == 200


def test_redirects_never_name_the_client_s_host_and_answers_carry_security_headers(served):
    _, url, token = served
    r = httpx.get(url + "/api/customers/cust_001/balance/", headers={"Host": "evil.example"}, timeout=30)
    assert r.status_code in (307, 308) and r.headers["location"].startswith("/") and "evil" not in r.headers["location"]
    r = get(url, "/api/customers/cust_001/balance", token)
    assert r.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY" and r.headers["referrer-policy"] == "no-referrer"
    page = httpx.get(url + "/", timeout=30)
    assert "content-security-policy" in page.headers


def test_an_idle_connection_does_not_block_reads_of_the_embedded_store(served):
    t, _, _ = served
    url = t.env.get("TALLYFLOW_CLICKHOUSE_URL", "")
    if not url.startswith("chdb://"):
        pytest.skip("a ClickHouse server serves its own connections")
    info = json.loads(Path(url.removeprefix("chdb://") + ".reads").read_text())
    idle = socket.create_connection((info["host"], info["port"]))  # sends nothing
    try:
        started = time.monotonic()
        assert t("sql", "SELECT 1", timeout=30).stdout.strip().endswith("1")
        assert time.monotonic() - started < 15
    finally:
        idle.close()


def test_reads_have_memory_and_time_limits(served):
    t, _, _ = served
    heavy = t(
        "sql",
        "SELECT length(groupArray(number)) FROM numbers(400000000)",
        check=False,
        timeout=120,
        env_extra={"TALLYFLOW_READ_MAX_MEMORY": str(200 << 20)},
    )
    assert heavy.returncode == 1 and len(heavy.stderr.strip().splitlines()) == 1, heavy.stderr
    assert "memory" in heavy.stderr.lower()
    started = time.monotonic()
    slow = t(
        "sql",
        "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) % 7 = 1",
        check=False,
        timeout=120,
        env_extra={"TALLYFLOW_READ_TIMEOUT": "2s"},
    )
    assert slow.returncode == 1 and "time" in slow.stderr.lower(), slow.stderr
    assert time.monotonic() - started < 60
    assert t("sql", "SELECT 1").returncode == 0


def test_data_files_are_the_user_s_alone(served):
    t, _, _ = served
    url = t.env.get("TALLYFLOW_CLICKHOUSE_URL", "")
    if not url.startswith("chdb://"):
        pytest.skip("a ClickHouse server's files are its own")
    roots = [url.removeprefix("chdb://")]
    kafka = Path(t.env["TALLYFLOW_HOME"]) / "kafka"
    if kafka.is_dir():  # the local broker `stack up` started: its logs
        roots.append(str(kafka))
    for root in roots:
        modes = {p: stat.S_IMODE(os.stat(os.path.join(d, p)).st_mode) for d, _, fs in os.walk(root) for p in fs[:3]}
        assert modes and all(m & 0o077 == 0 for m in modes.values()), (root, modes)
