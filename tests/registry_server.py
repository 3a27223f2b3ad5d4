"""A minimal schema registry for the tests: the subject/version/id endpoints of the Confluent
Schema Registry REST API (what confluent-kafka's AvroSerializer and tallyflow's two clients
call), behind basic auth or a bearer token, over HTTPS when given a certificate. No registry
server can be installed here (it is a JVM service outside Maven Central's reach), so this stands
in for one; it keeps ids global and versions per subject, as the real one does."""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Registry:
    def __init__(self, user: str = "reg-user", password: str = "reg-pass", token: str | None = None):
        self.user, self.password, self.token = user, password, token
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.next_id = 100_001
        self.lock = threading.Lock()
        self.requests: list[str] = []

    def add(self, subject: str, schema: str, schema_id: int | None = None) -> int:
        """Registers a schema (under a chosen id, for the tests that send an id before it exists)."""
        with self.lock:
            for sid, text in self.schemas.items():
                if text == schema and schema_id in (None, sid):
                    ids = self.subjects.setdefault(subject, [])
                    if sid not in ids:
                        ids.append(sid)
                    return sid
            sid = schema_id if schema_id is not None else self.next_id
            self.next_id = max(self.next_id, sid + 1)
            self.schemas[sid] = schema
            self.subjects.setdefault(subject, []).append(sid)
            return sid

    def authorized(self, header: str | None) -> bool:
        if self.token is not None:
            return header == f"Bearer {self.token}"
        expected = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return header == f"Basic {expected}"

    def serve(self, cert: Path | None = None, key: Path | None = None) -> tuple[ThreadingHTTPServer, str]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _send(self, code: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                path = self.path.split("?", 1)[0]
                registry.requests.append(f"{method} {path}")
                if not registry.authorized(self.headers.get("Authorization")):
                    return self._send(401, {"error_code": 401, "message": "Unauthorized"})
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                if method == "GET" and path == "/subjects":
                    return self._send(200, sorted(registry.subjects))
                if m := re.fullmatch(r"/schemas/ids/(\d+)", path):
                    sid = int(m.group(1))
                    if sid not in registry.schemas:
                        return self._send(404, {"error_code": 40403, "message": "Schema not found"})
                    return self._send(200, {"schema": registry.schemas[sid], "schemaType": "AVRO"})
                if method == "POST" and (m := re.fullmatch(r"/subjects/([^/]+)/versions", path)):
                    sid = registry.add(m.group(1), body["schema"])
                    version = registry.subjects[m.group(1)].index(sid) + 1
                    return self._send(
                        200,
                        {
                            "id": sid,
                            "subject": m.group(1),
                            "version": version,
                            "schema": body["schema"],
                            "schemaType": "AVRO",
                        },
                    )
                if m := re.fullmatch(r"/subjects/([^/]+)/versions/(latest|\d+)", path):
                    ids = registry.subjects.get(m.group(1), [])
                    if not ids:
                        return self._send(404, {"error_code": 40401, "message": "Subject not found"})
                    n = len(ids) if m.group(2) == "latest" else int(m.group(2))
                    return self._send(
                        200,
                        {
                            "id": ids[n - 1],
                            "subject": m.group(1),
                            "version": n,
                            "schema": registry.schemas[ids[n - 1]],
                            "schemaType": "AVRO",
                        },
                    )
                return self._send(404, {"error_code": 404, "message": f"no route {method} {path}"})

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if cert is not None and key is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(cert), str(key))
            server.socket = context.wrap_socket(server.socket, server_side=True)
            scheme = "https"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"{scheme}://127.0.0.1:{server.server_address[1]}"
