"""What a process that holds the store offers others while it runs (`run`, `load`)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

from tallyflow.errors import UserError
from tallyflow.land import shared_store
from tallyflow.settings import Settings


class Holder:
    """What a process that holds the store offers others while it runs: reads of an embedded store
    from other processes (land/shared_store.py, with its loader's metrics) and, with `--serve
    HOST:PORT`, the API. On an embedded store the API runs as a child process reading through the
    holder: chdb keeps the interpreter lock while a query runs, so an API thread beside the loader
    would stall for every insert and query (measured: p99 1.5 s at 200 requests/s). On a server,
    it runs as a thread of this process."""

    def __init__(self, settings: Settings, client, serve: str | None = None):
        from tallyflow.land import metrics

        embedded = settings.clickhouse_url.startswith("chdb://")
        self.reads = shared_store.ReadServer(settings, client, metrics.text) if embedded else None
        self.web = None
        self.child: subprocess.Popen | None = None
        if serve and embedded:
            self.child = _serve_child(settings, serve)
        elif serve:
            from tallyflow.serve import server

            self.web = server.start(settings, serve, client)

    def close(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.child.kill()
        if self.web is not None:
            self.web.stop()
        if self.reads is not None:
            self.reads.close()


def _serve_child(settings: Settings, address: str) -> subprocess.Popen:
    """`tallyflow serve ADDRESS` on this run's store; returns once it answers."""
    from tallyflow.serve.server import parse_address

    host, port = parse_address(address)
    env = settings.child_env(TALLYFLOW_KAFKA_BOOTSTRAP=settings.bootstrap)
    child = subprocess.Popen(
        [sys.executable, "-m", "tallyflow.cli", "serve", f"{host}:{port}"], env=env, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise UserError(f"--serve {address}: the server did not start (exit {child.returncode})")
        try:
            urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=1).close()
            return child
        except OSError:
            time.sleep(0.2)  # the server imports and binds; bounded by the deadline
    child.kill()
    raise UserError(f"--serve {address}: the server did not answer within 60 s")
