"""One Kafka client properties file (TALLYFLOW_KAFKA_PROPERTIES) for every client: librdkafka's
(the producer, the loader, the admin calls, the benches) and Java's (the Flink source and sinks).

It may be the file a managed Kafka hands out, in either dialect:
- Java keys: `security.protocol`, `sasl.mechanism`, `sasl.jaas.config` (PlainLoginModule or
  ScramLoginModule with username and password), `ssl.truststore.location` and `.type` (PEM, or
  JKS/PKCS12 with `ssl.truststore.password`, turned into PEM with the JDK's keytool for
  librdkafka), `ssl.endpoint.identification.algorithm`;
- librdkafka keys: `sasl.username`, `sasl.password`, `sasl.mechanisms`, `ssl.ca.location`.
Each side gets the other's equivalents. Supported: SASL_SSL, SASL_PLAINTEXT and SSL, with PLAIN,
SCRAM-SHA-256 and SCRAM-SHA-512. Errors name the file and the key, never a value.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from tallyflow.errors import UserError
from tallyflow.settings import Settings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
SHADED = "org.apache.flink.kafka.shaded."  # the Kafka SQL connector jar's relocation prefix
_JAAS = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')
REGISTRY_KEYS = (
    "schema.registry.url",
    "basic.auth.credentials.source",
    "basic.auth.user.info",
    "bearer.auth.token",
    "schema.registry.ssl.ca.location",
)
SECRET_KEYS = ("sasl.password", "sasl.jaas.config", "ssl.truststore.password", "ssl.key.password")


@dataclass(frozen=True)
class ClientConfig:
    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_pem: Path | None = None  # the CA bundle librdkafka reads (and Java, as a PEM truststore)
    verify_hostname: bool = True
    source: str = ""
    # The schema registry keys a managed provider's file carries (Confluent's names), for wire/registry.py.
    registry: dict[str, str] = field(default_factory=dict, repr=False)

    def librdkafka(self) -> dict[str, str]:
        if self.protocol == "PLAINTEXT":
            return {}
        out = {"security.protocol": self.protocol.lower()}
        if self.protocol.startswith("SASL"):
            out.update({"sasl.mechanism": self.mechanism or "", "sasl.username": self.username or ""})
            out["sasl.password"] = self.password or ""
        if self.protocol.endswith("SSL"):
            if self.ca_pem is not None:
                out["ssl.ca.location"] = str(self.ca_pem)
            out["ssl.endpoint.identification.algorithm"] = "https" if self.verify_hostname else "none"
        return out

    def java(self, shaded: bool = False) -> dict[str, str]:
        """Java client keys; `shaded` names the login module as flink-sql-connector-kafka relocates it."""
        if self.protocol == "PLAINTEXT":
            return {}
        out = {"security.protocol": self.protocol}
        if self.protocol.startswith("SASL"):
            module = (SHADED if shaded else "") + _MODULES[self.mechanism or "PLAIN"]
            user, password = _jaas_quote(self.username or ""), _jaas_quote(self.password or "")
            out["sasl.mechanism"] = self.mechanism or ""
            out["sasl.jaas.config"] = f'{module} required username="{user}" password="{password}";'
        if self.protocol.endswith("SSL"):
            if self.ca_pem is not None:
                out.update({"ssl.truststore.type": "PEM", "ssl.truststore.location": str(self.ca_pem)})
            out["ssl.endpoint.identification.algorithm"] = "https" if self.verify_hostname else ""
        return out

    def describe(self) -> str:
        """Says how the client connects, without a secret."""
        if self.protocol == "PLAINTEXT":
            return "PLAINTEXT"
        who = f" user '{self.username}'" if self.username else ""
        return f"{self.protocol} {self.mechanism or ''}{who}".strip()


def _jaas_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def parse_properties(text: str, source: str) -> dict[str, str]:
    """Java .properties: key=value or key: value, # and ! comments, backslash continuations.
    Stricter than Java, which also takes "key value": a line without = or : is refused, since it
    is far more often a broken line than that form."""
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        while line.endswith("\\") and not line.endswith("\\\\"):
            line = line[:-1] + next(lines, "").strip()
        if not line or line[0] in "#!":
            continue
        m = re.match(r"^([^=:\s]+)\s*[=:]\s*(.*)$", line)
        if not m:
            raise UserError(f"{source}: line {number} is not key=value")
        out[m.group(1)] = m.group(2)
    return out


def load(path: Path, cache_dir: Path) -> ClientConfig:
    source = f"TALLYFLOW_KAFKA_PROPERTIES {path}"
    try:
        props = parse_properties(path.read_text(), source)
    except OSError as e:
        raise UserError(f"{source}: cannot read it ({e.strerror})") from None
    protocol = props.get("security.protocol", "PLAINTEXT").upper()
    if protocol not in PROTOCOLS:
        raise UserError(f"{source}: security.protocol must be one of {', '.join(PROTOCOLS)}")
    mechanism = (props.get("sasl.mechanism") or props.get("sasl.mechanisms") or "").upper() or None
    username, password = props.get("sasl.username"), props.get("sasl.password")
    if "sasl.jaas.config" in props:
        jaas = dict(_JAAS.findall(props["sasl.jaas.config"]))
        if "username" not in jaas or "password" not in jaas:
            raise UserError(f'{source}: sasl.jaas.config needs username="..." and password="..."')
        username = jaas["username"]
        password = re.sub(r"\\(.)", r"\1", jaas["password"])
        if mechanism is None and "PlainLoginModule" in props["sasl.jaas.config"]:
            mechanism = "PLAIN"
    if protocol.startswith("SASL"):
        mechanism = mechanism or "PLAIN"
        if mechanism not in MECHANISMS:
            raise UserError(f"{source}: sasl.mechanism must be one of {', '.join(MECHANISMS)}")
        if not username or password is None:
            raise UserError(f"{source}: {protocol} needs sasl.jaas.config, or sasl.username and sasl.password")
    ca = None
    if protocol.endswith("SSL"):
        ca = _ca_bundle(props, source, cache_dir)
    algorithm = props.get("ssl.endpoint.identification.algorithm", "https").strip().lower()
    registry = {k: v for k, v in props.items() if k in REGISTRY_KEYS}
    return ClientConfig(protocol, mechanism, username, password, ca, algorithm not in ("", "none"), str(path), registry)


def _ca_bundle(props: dict[str, str], source: str, cache_dir: Path) -> Path | None:
    """The CA certificates as a PEM file: librdkafka reads only PEM."""
    location = props.get("ssl.ca.location") or props.get("ssl.truststore.location")
    if not location:
        return None  # the system's trust store
    key = "ssl.ca.location" if "ssl.ca.location" in props else "ssl.truststore.location"
    path = Path(location).expanduser()
    if not path.is_file():
        raise UserError(f"{source}: {key} {path} does not exist")
    kind = props.get("ssl.truststore.type", "PEM").upper() if key == "ssl.truststore.location" else "PEM"
    if kind == "PEM":
        if "-----BEGIN CERTIFICATE-----" not in path.read_text(errors="replace"):
            raise UserError(f"{source}: {key} {path} holds no PEM certificate")
        return path.resolve()
    if kind not in ("JKS", "PKCS12"):
        raise UserError(f"{source}: ssl.truststore.type must be PEM, JKS or PKCS12")
    listing = subprocess.run(
        ["keytool", "-list", "-rfc", "-keystore", str(path), "-storetype", kind],
        input=props.get("ssl.truststore.password", "") + "\n",
        capture_output=True,
        text=True,
    )
    pems = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", listing.stdout, re.S)
    if listing.returncode != 0 or not pems:
        raise UserError(f"{source}: cannot read the {kind} truststore {path} (wrong ssl.truststore.password?)")
    out = cache_dir / f"truststore-{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}.pem"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(pems) + "\n")
    return out


_cache: dict[tuple[str, int], ClientConfig] = {}


def of(settings: Settings) -> ClientConfig:
    """The client configuration in force (PLAINTEXT without a properties file), read once per version of the file."""
    path = settings.kafka_properties
    if path is None:
        return ClientConfig()
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        raise UserError(f"TALLYFLOW_KAFKA_PROPERTIES {path}: no such file") from None
    key = (str(path), stamp)
    if key not in _cache:
        _cache[key] = load(path, settings.home / "kafka" / "tls")
    return _cache[key]


_recent: deque[tuple[float, str]] = deque(maxlen=32)  # what librdkafka's clients reported lately


def _note(error: object) -> None:
    _recent.append((time.monotonic(), str(error)))


def recent_errors(seconds: float = 30.0) -> list[str]:
    """The client errors of the last `seconds` (librdkafka reports a refused login only here)."""
    now = time.monotonic()
    return [text for at, text in list(_recent) if now - at <= seconds]


def librdkafka(settings: Settings) -> dict:
    """bootstrap.servers and the security settings, for confluent-kafka's clients."""
    return {"bootstrap.servers": settings.bootstrap, **of(settings).librdkafka(), "error_cb": _note}


def flink_options(settings: Settings) -> str:
    """The Kafka connector's WITH options: bootstrap servers and security, as 'properties.*'."""
    pairs = {"bootstrap.servers": settings.bootstrap, **of(settings).java(shaded=True)}
    return ", ".join(f"'properties.{k}' = '{_sql_quote(v)}'" for k, v in pairs.items())


def _sql_quote(value: str) -> str:
    return value.replace("'", "''")


def explain(error: object, settings: Settings) -> str | None:
    """A one-line reason for an authentication or TLS failure (None for other errors)."""
    text = " ".join([str(error), *recent_errors()])
    who = of(settings).describe()
    where = f"Kafka at {settings.bootstrap}"
    if "Authentication failed" in text or "_AUTHENTICATION" in text or "SASL authentication error" in text:
        return f"{where} refused the credentials: authentication failed ({who})"
    if "SSL handshake failed" in text or "certificate verify failed" in text:
        return f"{where}: the TLS handshake failed (is the CA file the broker's? {who})"
    if "incorrect security.protocol" in text:
        return f"{where} refused the connection: it wants another security.protocol than {who}"
    return None


def refused(settings: Settings) -> str | None:
    """explain() for what the clients reported lately, for a caller that is still waiting."""
    errors = recent_errors(10.0)
    return explain(" ".join(errors), settings) if errors else None
