"""The schema registry with credentials and TLS, in both clients: events serialized by
confluent-kafka's own AvroSerializer are decoded by the job; an id unknown when first seen is
picked up once registered; an incompatible writer schema goes to the dead-letter topic; a
registry that refuses the credentials stops `run` and `produce` with one line."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tallyflow.settings import REPO_ROOT
from tests.integration.conftest import TALLYFLOW
from tests.registry_server import Registry

pytestmark = pytest.mark.integration
SCHEMA = (REPO_ROOT / "schemas" / "usage_event.v2.avsc").read_text()
CATALOG = REPO_ROOT / "deploy" / "demo" / "catalog.yaml"


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA), made with openssl."""
    d = tmp_path_factory.mktemp("registry-tls")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(d / "key.pem"),
            "-out",
            str(d / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    return d / "cert.pem", d / "key.pem"


@pytest.fixture
def registry(tls):
    reg = Registry()
    server, url = reg.serve(*tls)
    yield reg, url, tls[0]
    server.shutdown()


def use(tallyflow, url: str, ca: Path, tmp_path: Path, user_info: str = "reg-user:reg-pass") -> None:
    """The registry's URL in the environment, its credentials and CA in the client properties file."""
    props = tmp_path / "client.properties"
    props.write_text(f"basic.auth.user.info={user_info}\nschema.registry.ssl.ca.location={ca}\n")
    tallyflow.env.update(TALLYFLOW_SCHEMA_REGISTRY_URL=url, TALLYFLOW_KAFKA_PROPERTIES=str(props))


def event(i: int, **extra) -> dict:
    return {
        "event_id": f"r{i}",
        "customer_id": "cust_001",
        "event_type": "api_call",
        "event_time": datetime(2026, 10, 5, 10, i % 60, tzinfo=UTC),
        "values": {},
        "dimensions": {"endpoint": "/v1/x"},
        "source": None,
        **extra,
    }


def send_raw(tallyflow, values: list[bytes]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": tallyflow.bootstrap})
    for v in values:
        producer.produce(tallyflow.topic("events"), key=b"cust_001", value=v)
    assert producer.flush(30) == 0


def test_events_from_confluents_avro_serializer_are_decoded(tallyflow, registry, tmp_path):
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    reg, url, ca = registry
    use(tallyflow, url, ca, tmp_path)
    client = SchemaRegistryClient({"url": url, "basic.auth.user.info": "reg-user:reg-pass", "ssl.ca.location": str(ca)})
    serialize = AvroSerializer(client, SCHEMA)
    topic = tallyflow.topic("events")
    values = [serialize(event(i), SerializationContext(topic, MessageField.VALUE)) for i in range(40)]
    assert {v[1:5] for v in values} == {(100_001).to_bytes(4, "big")}  # the registry's id, not a pinned one
    send_raw(tallyflow, values)
    tallyflow("produce", "--generate", "20", "--customers", "3")  # tallyflow's own producer registers too
    tallyflow("run", "--catalog", str(CATALOG), "--bounded")
    assert tallyflow.sql("SELECT count() AS n FROM rejects FINAL")[0]["n"] in (0, "0")
    calls = tallyflow.sql("SELECT count() AS n FROM events FINAL WHERE event_id LIKE 'r%'")
    assert int(calls[0]["n"]) == 40
    assert "GET /schemas/ids/100001" in reg.requests  # the job's decoder asked, with credentials, over TLS


def test_an_unknown_id_is_picked_up_once_registered_and_an_incompatible_one_is_rejected(tallyflow, registry, tmp_path):
    from tallyflow.wire import avro

    reg, url, ca = registry
    use(tallyflow, url, ca, tmp_path)
    version = avro.latest()
    late_id = 424_242
    run = subprocess.Popen(
        [*TALLYFLOW, "run", "--catalog", str(CATALOG)],
        env=tallyflow.env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        send_raw(tallyflow, [avro.encode({**event(1), "values": {}}, version, late_id)])
        wait_for(tallyflow, "SELECT count() AS n FROM rejects FINAL WHERE reason = 'unknown schema id 424242'")
        reg.add(f"{tallyflow.topic('events')}-value", version.text, late_id)
        time.sleep(6)  # past the decoder's 5 s before it asks about an unknown id again
        send_raw(tallyflow, [avro.encode({**event(2), "values": {}}, version, late_id)])
        wait_for(tallyflow, "SELECT count() AS n FROM events FINAL WHERE event_id = 'r2'")
        # A writer schema the reader cannot resolve (event_time as a string) is a reject with its reason.
        bad = json.loads(SCHEMA)
        bad["fields"][3] = {"name": "event_time", "type": "string"}
        bad_id = reg.add("other-value", json.dumps(bad))
        send_raw(tallyflow, [b"\x00" + bad_id.to_bytes(4, "big") + b"\x02a"])
        wait_for(
            tallyflow,
            f"SELECT count() AS n FROM rejects FINAL WHERE reason LIKE 'incompatible writer schema id {bad_id}%'",
        )
    finally:
        run.terminate()
        run.communicate(timeout=120)


def wait_for(tallyflow, query: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if int(tallyflow.sql(query)[0]["n"]) > 0:
            return
        time.sleep(1)
    raise AssertionError(f"nothing for {query} within {timeout} s")


def test_a_registry_that_refuses_the_credentials_gets_one_line(tallyflow, registry, tmp_path):
    _, url, ca = registry
    use(tallyflow, url, ca, tmp_path, user_info="reg-user:wrong")
    for args in (("run", "--catalog", str(CATALOG), "--bounded"), ("produce", "--generate", "5")):
        started = time.monotonic()
        proc = tallyflow(*args, check=False)
        assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "refused the credentials (HTTP 401)" in proc.stderr and "wrong" not in proc.stderr
        assert time.monotonic() - started < 30


def test_a_bearer_token_and_credentials_in_the_url(tmp_path):
    from tallyflow.settings import Settings
    from tallyflow.wire import registry as registry_mod

    reg = Registry(token="t0ken")
    server, url = reg.serve()
    try:
        props = tmp_path / "client.properties"
        props.write_text("bearer.auth.token=t0ken\n")
        base = Settings.from_env()
        s = dataclasses.replace(base, schema_registry_url=url, kafka_properties=props)
        assert registry_mod.of(s).register("s-value", SCHEMA) == 100_001
        reg_basic = Registry()
        server2, url2 = reg_basic.serve()
        try:
            with_user = url2.replace("http://", "http://reg-user:reg-pass@")
            r = registry_mod.of(dataclasses.replace(base, schema_registry_url=with_user))
            assert r.url == url2 and "reg-pass" not in repr(r)  # the URL printed has no credentials
            assert r.register("s-value", SCHEMA) == 100_001
        finally:
            server2.shutdown()
    finally:
        server.shutdown()
