"""uvicorn's HTTP protocol with bounds on a request's head: at most MAX_HEAD_BYTES of request line
and headers (431 past that) and HEAD_SECONDS to send them (408, then the connection is closed).
Without them one 120 MB header slowed every request, and slow clients could hold thousands of
half-open requests; uvicorn's httptools protocol bounds neither."""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 16 * 1024  # a bearer token and a browser's headers take about 2 KiB
HEAD_SECONDS = 10.0


class BoundedHead(HttpToolsProtocol):
    _head_bytes = 0
    _in_head = True
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:
            self._start_head()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_timer()
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(431, "Request Header Fields Too Large", f"request headers over {MAX_HEAD_BYTES} bytes")
                return
        super().data_received(data)

    def _start_head(self) -> None:
        self._in_head, self._head_bytes = True, 0
        self._stop_timer()
        self._head_timer = asyncio.get_running_loop().call_later(HEAD_SECONDS, self._too_slow)

    def _stop_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _too_slow(self) -> None:
        self._refuse(408, "Request Timeout", f"request headers not received within {HEAD_SECONDS:.0f} s")

    def _refuse(self, status: int, reason: str, message: str) -> None:
        self._stop_timer()
        if self.transport.is_closing():
            return
        body = json.dumps({"error": message}).encode()
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n".encode()
            + body
        )
        self.transport.close()
