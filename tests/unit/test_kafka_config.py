"""One Kafka client properties file, both dialects: what each client gets from a provider's file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tallyflow.errors import UserError
from tallyflow.wire import kafka_config

CA = """-----BEGIN CERTIFICATE-----
MIIBszCCAVmgAwIBAgIUQ2VydGlmaWNhdGUtZm9yLXRlc3RzMAoGCCqGSM49BAMC
-----END CERTIFICATE-----
"""


def load(tmp_path: Path, text: str) -> kafka_config.ClientConfig:
    path = tmp_path / "client.properties"
    path.write_text(text)
    return kafka_config.load(path, tmp_path / "cache")


def test_java_keys_map_to_librdkafka(tmp_path):
    (tmp_path / "ca.pem").write_text(CA)
    cfg = load(
        tmp_path,
        "# a provider's file\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-256\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n"
        '  username="svc" password="p\\"w";\n'
        f"ssl.truststore.type=PEM\nssl.truststore.location={tmp_path / 'ca.pem'}\n",
    )
    assert cfg.librdkafka() == {
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "svc",
        "sasl.password": 'p"w',
        "ssl.ca.location": str(tmp_path / "ca.pem"),
        "ssl.endpoint.identification.algorithm": "https",
    }
    assert 'p\\"w' in cfg.java()["sasl.jaas.config"]  # quoted back for JAAS
    assert cfg.java(shaded=True)["sasl.jaas.config"].startswith(
        "org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram.ScramLoginModule required"
    )
    assert 'p"w' not in repr(cfg) and "svc" in cfg.describe()


def test_librdkafka_keys_map_to_java(tmp_path):
    (tmp_path / "ca.pem").write_text(CA)
    cfg = load(
        tmp_path,
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanisms=PLAIN\nsasl.username=u\nsasl.password=secret\n",
    )
    assert cfg.java() == {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.jaas.config": "org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="u" password="secret";',
    }
    ssl = load(
        tmp_path,
        f"security.protocol=SSL\nssl.ca.location={tmp_path / 'ca.pem'}\nssl.endpoint.identification.algorithm=\n",
    )
    assert ssl.java() == {
        "security.protocol": "SSL",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(tmp_path / "ca.pem"),
        "ssl.endpoint.identification.algorithm": "",
    }
    assert ssl.librdkafka()["ssl.endpoint.identification.algorithm"] == "none"


def test_plaintext_adds_nothing(tmp_path):
    assert load(tmp_path, "security.protocol=PLAINTEXT\nclient.id=x\n").librdkafka() == {}


def test_a_pkcs12_truststore_becomes_pem_for_librdkafka(tmp_path):
    subprocess.run(
        [
            "keytool",
            "-genkeypair",
            "-alias",
            "ca",
            "-dname",
            "CN=test",
            "-keyalg",
            "RSA",
            "-keystore",
            str(tmp_path / "ts.p12"),
            "-storetype",
            "PKCS12",
            "-storepass",
            "changeit",
            "-keypass",
            "changeit",
        ],
        check=True,
        capture_output=True,
    )
    cfg = load(
        tmp_path,
        f"security.protocol=SSL\nssl.truststore.type=PKCS12\nssl.truststore.location={tmp_path / 'ts.p12'}\n"
        "ssl.truststore.password=changeit\n",
    )
    assert cfg.ca_pem is not None and "BEGIN CERTIFICATE" in cfg.ca_pem.read_text()
    with pytest.raises(UserError, match="wrong ssl.truststore.password"):
        load(
            tmp_path,
            f"security.protocol=SSL\nssl.truststore.type=PKCS12\nssl.truststore.location={tmp_path / 'ts.p12'}\n"
            "ssl.truststore.password=nope\n",
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "security.protocol=SASL_SSL\nsasl.mechanism=OAUTHBEARER\nsasl.username=a\nsasl.password=b\n",
            "sasl.mechanism must be",
        ),
        ("security.protocol=SASL_SSL\nsasl.jaas.config=PlainLoginModule required;\n", 'needs username="..."'),
        ("security.protocol=SSL\nssl.ca.location=/no/such/ca.pem\n", "does not exist"),
        ("just a line\n", "line 1 is not key=value"),
    ],
)
def test_mistakes_name_the_key_never_the_value(tmp_path, text, message):
    with pytest.raises(UserError, match=message) as err:
        load(tmp_path, text)
    assert "sasl.password=b" not in str(err.value) and "\n" not in str(err.value)
