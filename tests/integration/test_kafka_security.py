"""The golden path over a broker with only a SASL_SSL listener (`stack up --security sasl_ssl`:
a keytool CA and certificate, SCRAM-SHA-512 users), and every way a client can be refused."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tallyflow.settings import REPO_ROOT
from tests.integration.conftest import Tallyflow, _free_port_pair
from tests.integration.test_invoice_e2e import assert_invoices_exact, month

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secure(services, tmp_path_factory) -> Tallyflow:
    if services.kind != "local":
        pytest.skip("the SASL_SSL broker is the local stack's")
    home = tmp_path_factory.mktemp("secure-home")
    env = {**services.env, "TALLYFLOW_HOME": str(home), "TALLYFLOW_KAFKA_PORT": str(_free_port_pair())}
    t = Tallyflow(services, "secure")
    t.env.update(env)
    up = t("stack", "up", "--security", "sasl_ssl", "--format", "json", timeout=180)
    assert '"security": "sasl_ssl"' in up.stdout
    try:
        yield t
    finally:
        t("stack", "down", check=False)


def client_properties(t: Tallyflow) -> Path:
    return Path(t.env["TALLYFLOW_HOME"]) / "kafka" / "client.properties"


def one_line_failure(proc: subprocess.CompletedProcess, started: float) -> str:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert time.monotonic() - started < 30
    return lines[0]


def test_the_golden_path_over_sasl_ssl_is_exact(secure, tmp_path):
    props = client_properties(secure)
    assert stat.S_IMODE(props.stat().st_mode) == 0o600
    text = props.read_text()
    assert "security.protocol=SASL_SSL" in text and "SCRAM-SHA-512" in text
    password = text.split('password="', 1)[1].split('"', 1)[0]
    path, events, sent = month(tmp_path, n=3000, seed=41)
    produced = secure("produce", "--file", str(events))
    run = secure("run", "--catalog", str(path), "--bounded")
    assert_invoices_exact(secure, sent)
    # The password is in no output, log or command line the project makes.
    broker_log = (Path(secure.env["TALLYFLOW_HOME"]) / "kafka" / "broker.log").read_text()
    for shown in (produced.stdout, produced.stderr, run.stdout, run.stderr, broker_log):
        assert password not in shown
    pid = (Path(secure.env["TALLYFLOW_HOME"]) / "kafka" / "broker.pid").read_text().strip()
    assert password not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")


def test_a_wrong_password_is_refused_in_one_line_and_nothing_is_sent(secure, tmp_path, monkeypatch):
    bad = tmp_path / "bad.properties"
    good = client_properties(secure).read_text()
    bad.write_text(good.split('password="')[0] + 'password="not-the-password";\n' + good.split('";', 1)[1])
    before = events_end_offsets(secure, monkeypatch)
    started = time.monotonic()
    proc = secure("produce", "--generate", "50", check=False, env_extra={"TALLYFLOW_KAFKA_PROPERTIES": str(bad)})
    line = one_line_failure(proc, started)
    assert "authentication failed" in line and "not-the-password" not in proc.stderr + proc.stdout
    assert events_end_offsets(secure, monkeypatch) == before  # nothing reached the topic


def events_end_offsets(t: Tallyflow, monkeypatch) -> dict[str, int]:
    """The events topic's end offsets, read with the good credentials."""
    from tallyflow.settings import Settings
    from tallyflow.wire import topics

    for key, value in t.env.items():
        if key.startswith("TALLYFLOW_"):
            monkeypatch.setenv(key, value)
    return topics.committed_ends(Settings.from_env(), (topics.EVENTS,))


@pytest.mark.parametrize(
    "content, expected",
    [
        ("security.protocol=PLAINTEXT\n", "refused this client (PLAINTEXT)"),
        ("security.protocol=SASL_SSL\n", "needs sasl.jaas.config, or sasl.username and sasl.password"),
        ("security.protocol=SASL_SSL\nsasl.mechanism=GSSAPI\nsasl.username=a\nsasl.password=b\n", "sasl.mechanism"),
        (
            "security.protocol=SASL_SSL\nsasl.username=a\nsasl.password=b\nssl.ca.location=/nope/ca.pem\n",
            "ssl.ca.location /nope/ca.pem does not exist",
        ),
        ("this line has no value\n", "line 1 is not key=value"),
        ("security.protocol=SASL_SSLX\n", "security.protocol must be one of"),
    ],
)
def test_a_client_without_good_settings_gets_one_line(secure, tmp_path, content, expected):
    path = tmp_path / "client.properties"
    path.write_text(content)
    started = time.monotonic()
    proc = secure("topics", "list", check=False, env_extra={"TALLYFLOW_KAFKA_PROPERTIES": str(path)})
    assert expected in one_line_failure(proc, started)


def test_librdkafka_keys_and_a_pkcs12_truststore_are_accepted(secure, tmp_path):
    home = Path(secure.env["TALLYFLOW_HOME"])
    password = (home / "kafka" / "tls" / "secrets").read_text().split("tallyflow=", 1)[1].split()[0]
    librdkafka = tmp_path / "librdkafka.properties"
    librdkafka.write_text(
        "security.protocol=SASL_SSL\nsasl.mechanisms=SCRAM-SHA-512\n"
        f"sasl.username=tallyflow\nsasl.password={password}\nssl.ca.location={home / 'kafka' / 'tls' / 'ca.pem'}\n"
    )
    listed = secure("topics", "list", "--format", "json", env_extra={"TALLYFLOW_KAFKA_PROPERTIES": str(librdkafka)})
    assert "events" in listed.stdout
    store = tmp_path / "truststore.p12"
    subprocess.run(
        [
            "keytool",
            "-importcert",
            "-noprompt",
            "-alias",
            "ca",
            "-file",
            str(home / "kafka" / "tls" / "ca.pem"),
            "-keystore",
            str(store),
            "-storetype",
            "PKCS12",
            "-storepass",
            "changeit",
        ],
        check=True,
        capture_output=True,
    )
    java = tmp_path / "java.properties"
    java.write_text(
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n"
        f'    username="tallyflow" password="{password}";\n'
        f"ssl.truststore.type=PKCS12\nssl.truststore.location={store}\nssl.truststore.password=changeit\n"
    )
    listed = secure("topics", "list", "--format", "json", env_extra={"TALLYFLOW_KAFKA_PROPERTIES": str(java)})
    assert "events" in listed.stdout


EXPLAIN = """
import sys
from tallyflow.core import catalog
from tallyflow.settings import Settings
from tallyflow.stream import environment, graph

t_env = environment.create_environment()
job = graph.kafka_job(t_env, Settings.from_env(), catalog.load(sys.argv[1]), environment.JobOptions())
print(job.explain())
"""


def test_the_plan_text_flink_shows_holds_no_secret(tmp_path):
    props = tmp_path / "client.properties"
    props.write_text("security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.username=u\nsasl.password=Pl4nSecret\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYFLOW_")}
    env.update(TALLYFLOW_HOME=str(tmp_path), TALLYFLOW_KAFKA_PROPERTIES=str(props))
    proc = subprocess.run(
        [sys.executable, "-c", EXPLAIN, str(REPO_ROOT / "deploy" / "demo" / "catalog.yaml")],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "TableSourceScan" in proc.stdout  # the operators the Flink UI lists
    assert "Pl4nSecret" not in proc.stdout + proc.stderr
