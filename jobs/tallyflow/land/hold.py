"""A process that only holds the embedded store and answers other processes' reads: the one
`tallyflow serve` starts on a store no job holds (land/shared_store.py)."""

from __future__ import annotations

import os
import signal
import threading

from tallyflow.land import clickhouse, shared_store
from tallyflow.settings import Settings


def hold(settings: Settings) -> None:
    """Holds the embedded store and answers reads until SIGTERM (`python -m tallyflow.land.hold`):
    the process `tallyflow serve` starts on a store no job holds. chdb keeps the interpreter lock
    while a query runs, so the API must never run one in its own process: it would stall every
    request for the length of the query (measured: p99 over a second at 200 requests/s)."""
    parent = os.getppid()
    client = clickhouse.connect(settings)
    server = shared_store.ReadServer(settings, client)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            if os.getppid() != parent:  # the server that started it is gone (even by kill -9)
                break
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    hold(Settings.from_env())
