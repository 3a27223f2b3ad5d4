"""Runs the API (uvicorn): in a thread of `run --serve` (beside the loader, on its store), or on
its own as `tallyflow serve`. Binds 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import threading
import time
from typing import Any

from tallyflow.errors import UserError
from tallyflow.settings import Settings


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    if not re.fullmatch(r"[0-9]{1,5}", port):  # ASCII digits only, as every number a user writes
        raise UserError(f"--serve '{text}' is not HOST:PORT (e.g. 127.0.0.1:8900)")
    number = int(port)
    if not 0 < number < 65536:
        raise UserError(f"--serve '{text}': port {number} is out of range")
    return host or "127.0.0.1", number


class Running:
    def __init__(self, server: Any, thread: threading.Thread, store: Any, url: str):
        self.server, self.thread, self.store, self.url = server, thread, store, url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.store.close()


def _server(settings: Settings, address: str, client: Any = None, store: Any = None):
    import uvicorn

    from tallyflow.serve.api import create_app
    from tallyflow.serve.http import BoundedHead
    from tallyflow.serve.store import Store

    host, port = parse_address(address)
    store = store or Store(settings, client)
    app = create_app(settings, store)
    # Access logs would print every request (and tokens live in headers, never in URLs).
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="uvloop",
        http=BoundedHead,  # httptools, with a bounded request head (serve/http.py)
    )
    return uvicorn.Server(config), store, f"http://{host}:{port}"


def start(settings: Settings, address: str, client: Any = None, store: Any = None) -> Running:
    """Serves in a background thread; returns once it listens (or raises UserError)."""
    server, store, url = _server(settings, address, client, store)
    thread = threading.Thread(target=server.run, name="tallyflow-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise UserError(f"cannot serve on {address}: the address is taken or not this machine's")
        time.sleep(0.05)  # uvicorn binds within milliseconds; bounded by the deadline
    return Running(server, thread, store, url)


def serve_forever(settings: Settings, address: str, on_ready=None) -> None:
    """`tallyflow serve`: until Ctrl-C or SIGTERM."""
    from tallyflow.serve.store import Store, Unavailable

    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    store = Store(settings)
    # An embedded store this process opens: other processes read through it (before the API
    # answers, so nobody finds the store locked and unshared). Not ready yet: the API answers 503,
    # and /readyz says why, until it is.
    with contextlib.suppress(Unavailable):
        store.share()
    running = start(settings, address, store=store)
    if on_ready is not None:
        on_ready(running.url)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            if not running.thread.is_alive():
                raise UserError("the server stopped")
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        running.stop()
