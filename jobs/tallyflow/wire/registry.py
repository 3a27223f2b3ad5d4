"""The schema registry (a Confluent-compatible REST API), with its credentials and TLS.

Where it is: TALLYFLOW_SCHEMA_REGISTRY_URL, else `schema.registry.url` in the Kafka properties
file. How to log in, in the names Confluent's client files use: credentials in the URL
(https://user:pass@host), or `basic.auth.user.info=user:pass` or `bearer.auth.token=...` in that
file; a private CA with `schema.registry.ssl.ca.location`. Both clients use them: the producer
here, and the job's decoder, which gets the URL without credentials and reads the Authorization
header from a file of mode 0600 that this writes (on a cluster, that path must exist on every
TaskManager: mount the secret there). The credentials are never printed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from tallyflow import private_files
from tallyflow.errors import UserError
from tallyflow.settings import Settings
from tallyflow.wire import kafka_config


@dataclass(frozen=True)
class Registry:
    url: str  # without credentials: safe to print
    authorization: str | None = field(default=None, repr=False)
    ca: Path | None = None

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        headers = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
        if self.authorization:
            headers["Authorization"] = self.authorization
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        context = ssl.create_default_context(cafile=str(self.ca)) if self.ca else None
        try:
            with urllib.request.urlopen(req, timeout=10, context=context) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                raise UserError(f"the schema registry at {self.url} refused the credentials (HTTP {e.code})") from None
            raise UserError(f"the schema registry at {self.url} answered HTTP {e.code} to {method} {path}") from None
        except (urllib.error.URLError, OSError) as e:
            raise UserError(f"the schema registry at {self.url} does not answer ({getattr(e, 'reason', e)})") from None

    def check(self) -> None:
        """One request that needs the credentials: a refusal is one line before anything runs."""
        self.request("GET", "/subjects")

    def register(self, subject: str, schema_text: str) -> int:
        """Registers (or finds) the schema under the subject; returns its id."""
        return int(self.request("POST", f"/subjects/{subject}/versions", {"schema": schema_text})["id"])

    def decoder_options(self, settings: Settings) -> dict[str, str]:
        """What the job's decoder takes in its settings literal: the URL, and the paths of the
        Authorization header file and the CA (never a credential itself)."""
        out = {"registry": self.url}
        if self.authorization:
            digest = hashlib.sha256(self.authorization.encode()).hexdigest()[:16]
            path = settings.home / "registry" / f"authorization-{digest}"
            private_files.write(path, self.authorization)
            out["registry_auth_file"] = str(path.resolve())
        if self.ca:
            out["registry_ca"] = str(self.ca)
        return out


def of(settings: Settings) -> Registry | None:
    keys = kafka_config.of(settings).registry
    raw = settings.schema_registry_url or keys.get("schema.registry.url")
    if not raw:
        return None
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UserError("TALLYFLOW_SCHEMA_REGISTRY_URL is not an http(s) URL")
    netloc = parsed.hostname + (f":{parsed.port}" if parsed.port else "")
    url = parsed._replace(netloc=netloc).geturl().rstrip("/")
    authorization = None
    if parsed.username:
        authorization = _basic(f"{unquote(parsed.username)}:{unquote(parsed.password or '')}")
    elif keys.get("basic.auth.user.info"):
        authorization = _basic(keys["basic.auth.user.info"])
    elif keys.get("bearer.auth.token"):
        authorization = f"Bearer {keys['bearer.auth.token']}"
    ca = None
    if keys.get("schema.registry.ssl.ca.location"):
        ca = Path(keys["schema.registry.ssl.ca.location"]).expanduser().resolve()
        if not ca.is_file():
            raise UserError(f"schema.registry.ssl.ca.location {ca} does not exist")
    return Registry(url, authorization, ca)


def _basic(user_info: str) -> str:
    return "Basic " + base64.b64encode(user_info.encode()).decode()
