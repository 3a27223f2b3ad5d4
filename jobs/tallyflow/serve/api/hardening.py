"""Headers every answer carries, and redirects that never name a host.

- Content-Security-Policy (scripts, styles and data from this server only; no framing),
  X-Frame-Options, X-Content-Type-Options, Referrer-Policy on every answer; Swagger's /docs pages
  load their assets from a CDN, so they carry no CSP.
- Cache-Control: no-store on /api/ answers: they are read with a token and hold a customer's data.
- A redirect (the router's trailing-slash one) keeps only the path and query: the Host header is
  the client's to write, and `Host: evil.example` must not become `Location: http://evil.example/`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_EVERYWHERE = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_NO_CSP = ("/docs", "/redoc", "/openapi.json")


class Hardened:
    """A plain ASGI middleware: it edits the response's start message, nothing else."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        extra = list(_EVERYWHERE)
        if not path.startswith(_NO_CSP):
            extra.append((b"content-security-policy", CSP.encode()))
        if path.startswith("/api/"):
            extra.append((b"cache-control", b"no-store"))

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, _relative(v) if k.lower() == b"location" else v) for k, v in message.get("headers", [])]
                message = {**message, "headers": headers + extra}
            await send(message)

        await self.app(scope, receive, sending)


def _relative(location: bytes) -> bytes:
    parts = urlsplit(location.decode("latin-1"))
    path = "/" + parts.path.lstrip("/")  # never '//host': a scheme-relative URL names a host too
    return (path + (f"?{parts.query}" if parts.query else "")).encode("latin-1")
