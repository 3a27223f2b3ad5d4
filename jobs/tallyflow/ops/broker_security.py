"""`stack up --security sasl_ssl`: the local broker's TLS material and SCRAM users.

Made once per $TALLYFLOW_HOME/kafka with the JDK's keytool: a CA (PKCS12, its certificate also as
ca.pem), a broker certificate signed by it for 127.0.0.1 and localhost, and two SCRAM-SHA-512
users created when the storage is formatted: `broker` (inter-broker) and `tallyflow` (the
project's own clients, whose client.properties this writes). Passwords are random, kept in files
of mode 0600, and never printed.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tallyflow import private_files
from tallyflow.errors import UserError

MECHANISM = "SCRAM-SHA-512"
CLIENT_USER = "tallyflow"


@dataclass(frozen=True)
class BrokerSecurity:
    root: Path  # $TALLYFLOW_HOME/kafka

    tls = property(lambda self: self.root / "tls")
    ca_pem = property(lambda self: self.tls / "ca.pem")
    keystore = property(lambda self: self.tls / "broker.p12")
    client_properties = property(lambda self: self.root / "client.properties")
    secrets_file = property(lambda self: self.tls / "secrets")

    def secret(self, name: str) -> str:
        """A random secret, made on first use and kept (0600)."""
        known = dict(line.split("=", 1) for line in _read(self.secrets_file).splitlines() if "=" in line)
        if name not in known:
            known[name] = secrets.token_urlsafe(18)
            self.tls.mkdir(parents=True, exist_ok=True)
            private_files.write(self.secrets_file, "".join(f"{k}={v}\n" for k, v in known.items()))
        return known[name]

    def ensure(self) -> None:
        """The CA, the broker's keystore and the client properties, made once."""
        if not self.keystore.exists():
            self._certificates()
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{CLIENT_USER}" password="{self.secret(CLIENT_USER)}";'
        )
        private_files.write(
            self.client_properties,
            "# Written by `tallyflow stack up --security sasl_ssl` for the project's own clients.\n"
            "security.protocol=SASL_SSL\n"
            f"sasl.mechanism={MECHANISM}\n"
            f"sasl.jaas.config={jaas}\n"
            "ssl.truststore.type=PEM\n"
            f"ssl.truststore.location={self.ca_pem}\n",
        )

    def _certificates(self) -> None:
        self.tls.mkdir(parents=True, exist_ok=True)
        os.chmod(self.tls, 0o700)  # the keystores hold the private keys
        password = self.secret("keystore")
        ca_store = self.tls / "ca.p12"
        for f in (ca_store, self.keystore):
            f.unlink(missing_ok=True)
        common = ["-storetype", "PKCS12", "-storepass:env", "TF_STOREPASS", "-keypass:env", "TF_STOREPASS"]
        keypair = ["-genkeypair", "-keyalg", "RSA", "-keysize", "2048", "-validity", "3650", *common]
        _keytool(
            password, *keypair, "-alias", "ca", "-dname", "CN=tallyflow local CA", "-ext", "bc:c", "-keystore", ca_store
        )
        ca = _keytool(password, "-exportcert", "-rfc", "-alias", "ca", "-keystore", ca_store, *common)
        self.ca_pem.write_text(ca)
        _keytool(password, *keypair, "-alias", "broker", "-dname", "CN=localhost", "-keystore", self.keystore)
        request = _keytool(password, "-certreq", "-alias", "broker", "-keystore", self.keystore, *common)
        signed = _keytool(
            password,
            "-gencert",
            "-alias",
            "ca",
            "-keystore",
            ca_store,
            "-rfc",
            "-validity",
            "3650",
            "-ext",
            "SAN=dns:localhost,ip:127.0.0.1",
            "-ext",
            "eku=serverAuth",
            *common,
            stdin=request,
        )
        (self.tls / "broker.pem").write_text(signed)
        _keytool(
            password,
            "-importcert",
            "-noprompt",
            "-alias",
            "ca",
            "-file",
            self.ca_pem,
            "-keystore",
            self.keystore,
            *common,
        )
        _keytool(
            password,
            "-importcert",
            "-noprompt",
            "-alias",
            "broker",
            "-file",
            self.tls / "broker.pem",
            "-keystore",
            self.keystore,
            *common,
        )

    def server_properties(self, port: int) -> list[str]:
        """The broker's listener lines: SASL_SSL for clients, the KRaft controller on loopback."""
        password = self.secret("keystore")
        return [
            f"listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}",
            f"advertised.listeners=SASL_SSL://127.0.0.1:{port}",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=SASL_SSL",
            f"sasl.enabled.mechanisms={MECHANISM}",
            f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
            f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="broker" password="{self.secret("broker")}";',
            f"ssl.keystore.location={self.keystore}",
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.password={password}",
            f"ssl.key.password={password}",
            # The broker is its own inter-broker client: it trusts the same CA.
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.ca_pem}",
            "ssl.client.auth=none",
        ]

    def format_arguments(self) -> list[str]:
        """StorageTool's --add-scram for both users: KRaft keeps SCRAM credentials in its metadata."""
        return [
            arg
            for user in ("broker", CLIENT_USER)
            for arg in ("--add-scram", f"{MECHANISM}=[name={user},password={self.secret(user)}]")
        ]


def _keytool(password: str, *args: object, stdin: str | None = None) -> str:
    # The store password goes through the environment (-storepass:env), never the command line.
    proc = subprocess.run(
        ["keytool", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_STOREPASS": password},
    )
    if proc.returncode != 0:
        raise UserError(f"keytool {args[0]} failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    return proc.stdout


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
