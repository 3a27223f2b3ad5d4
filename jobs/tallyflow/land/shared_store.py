"""Reads of the embedded store from other processes while one process holds it.

chdb locks its store to one process. The process that holds it (`run`, `load` or `serve`) answers
other processes' read queries over a loopback socket (multiprocessing.connection: HMAC-authenticated
with a key in a file only this user can read, next to the store). Read commands find that file, and
send their queries there instead of opening the store. Each query runs as
`SELECT * FROM (<query>) SETTINGS readonly=1`: the setting lives only as long as that query (a
session setting would also make the holder's loader read-only), and a text that is not one SELECT
does not parse inside the parentheses. The holder's loader and these reads share chdb's own lock,
so a read waits for a batch insert to end and the reverse; none is lost.

While the holder's loader is at work (it inserted in the last 2 s), other processes' reads get at
most READ_SHARE of the store's time: after a read that took d seconds the next one waits
d x (1 / READ_SHARE - 1). So reads cannot slow the pipeline by more than that share, however
many arrive; they wait instead. With the loader idle, reads run at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import struct
import threading
import time
from multiprocessing.connection import Client as _connect
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from pathlib import Path
from typing import Any, NamedTuple

from tallyflow import private_files
from tallyflow.errors import UserError
from tallyflow.settings import Settings

READ_SHARE = 0.04  # of the store's time, while the loader works
BUSY_SECONDS = 2.0
HANDSHAKE_SECONDS = 5  # a peer that has not proved it holds the key by then is dropped
MAX_CONNECTIONS = 64  # readers at once (each a thread of the holder)


def _receive_timeout(conn: Connection, seconds: int) -> None:
    with socket.socket(fileno=os.dup(conn.fileno())) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", seconds, 0))


class Result(NamedTuple):
    """The part of clickhouse-connect's QueryResult that readers use."""

    column_names: tuple[str, ...]
    result_rows: list[tuple]


def read_limits(settings: Settings) -> dict[str, int | str]:
    """What one read may take (TALLYFLOW_READ_*): memory, time and result rows. A read whose client
    goes away is cancelled by a ClickHouse server; on the embedded store it runs to its time limit
    (chdb cannot cancel a running query), and a queued read of a client that has gone is skipped."""
    return {
        "max_memory_usage": settings.read_max_memory,
        "max_execution_time": max(1, int(settings.read_timeout.total_seconds())),
        "max_result_rows": settings.read_max_rows,
        "result_overflow_mode": "throw",
        "cancel_http_readonly_queries_on_client_close": 1,
    }


def guarded(statement: str, limits: dict[str, int | str], max_threads: int | None = None) -> str:
    """One read-only SELECT: the query's own settings cannot lift readonly (ClickHouse refuses to
    change it inside a read-only query). The limits and `max_threads` are set before readonly,
    which forbids changing them."""
    chosen = {**limits, **({"max_threads": int(max_threads)} if max_threads else {})}
    rendered = "".join(f"{k} = {v!r}, " if isinstance(v, str) else f"{k} = {int(v)}, " for k, v in chosen.items())
    return f"SELECT * FROM (\n{statement.strip().rstrip(';')}\n) SETTINGS {rendered}readonly = 1"


def address_file(settings: Settings) -> Path | None:
    url = settings.clickhouse_url
    if not url.startswith("chdb://"):
        return None
    store = Path(url[len("chdb://") :])
    return store.with_name(store.name + ".reads")


class ReadServer:
    """Serves read queries on the store `client` holds, until close()."""

    def __init__(self, settings: Settings, client: Any, metrics: Any = None):
        self.client = client
        self.limits = read_limits(settings)
        self.metrics = metrics  # () -> the holder's Prometheus text (its loader's metrics), if any
        self.path = address_file(settings)
        self.key = secrets.token_bytes(32)
        # A plain socket, not multiprocessing's Listener: its accept() runs the key exchange on
        # the accepting thread, with no deadline, so one silent peer stalled every read.
        self.listener = socket.create_server(("127.0.0.1", 0))
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.closed = False
        self.served = 0
        self._turn = threading.Lock()  # one read at a time, within the budget
        self._next_read = 0.0
        if self.path is not None:
            host, port = self.listener.getsockname()
            private_files.write(
                self.path, json.dumps({"host": host, "port": port, "key": self.key.hex(), "pid": os.getpid()})
            )
        threading.Thread(target=self._accept, name="tallyflow-reads", daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                sock, _ = self.listener.accept()
            except OSError:  # the listener closed
                continue
            if not self._slots.acquire(blocking=False):
                sock.close()  # MAX_CONNECTIONS readers already: this one may ask again
                continue
            threading.Thread(target=self._handshake_then_serve, args=(sock,), daemon=True).start()

    def _handshake_then_serve(self, sock: socket.socket) -> None:
        """Each connection on its own thread: the key exchange within HANDSHAKE_SECONDS (a read
        of the socket times out past it), then its queries."""
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", HANDSHAKE_SECONDS, 0))
            conn = Connection(sock.detach())
            try:
                deliver_challenge(conn, self.key)
                answer_challenge(conn, self.key)
            except Exception:  # a silent or unauthenticated peer: dropped
                conn.close()
                return
            _receive_timeout(conn, 0)  # an authenticated reader may idle between its queries
            self._serve(conn)
        finally:
            self._slots.release()

    def _serve(self, conn: Connection) -> None:
        # Others' reads yield the CPU to this process's own work (the loader, and the job and the
        # API beside it): lowest priority for the thread that runs them (Linux: per thread).
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        with conn:
            while True:
                try:
                    kind, *request = conn.recv()
                except (EOFError, OSError, ValueError):
                    return
                try:
                    if kind == "metrics":
                        reply: tuple = ("ok", self.metrics() if self.metrics is not None else "")
                    else:
                        sql, parameters, *asked = request
                        reply = self._read(sql, parameters, conn, asked[0] if asked else {})
                except Exception as e:  # ClickHouse errors go back as their first line
                    reply = ("error", str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
                self.served += 1
                try:
                    conn.send(reply)
                except OSError:
                    return

    def _read(self, sql: str, parameters: dict, conn: Connection, asked: dict) -> tuple:
        from tallyflow.land import metrics

        with self._turn:
            if conn.poll(0):  # a client waits for its answer: readable now means it has gone
                return ("error", "the client went away before its read ran")
            busy = lambda: time.monotonic() - metrics.last_insert < BUSY_SECONDS  # noqa: E731
            while busy() and time.monotonic() < self._next_read:
                time.sleep(min(0.1, self._next_read - time.monotonic()))  # the loader's turn
            started = time.monotonic()
            # One thread per read: the holder's own work (the loader, the job beside it) keeps the
            # other cores while others read.
            # A reader may ask for tighter limits than the holder's, never for looser ones.
            limits = {
                k: min(v, asked[k]) if isinstance(v, int) and isinstance(asked.get(k), int) else v
                for k, v in self.limits.items()
            }
            result = self.client.query(guarded(sql, limits, max_threads=1), parameters=parameters or {})
            took = time.monotonic() - started
            self._next_read = time.monotonic() + took * (1 / READ_SHARE - 1) if busy() else 0.0
        return ("ok", tuple(result.column_names), [tuple(r) for r in result.result_rows])

    def close(self) -> None:
        self.closed = True
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                if json.loads(self.path.read_text()).get("pid") == os.getpid():
                    self.path.unlink()
        with contextlib.suppress(Exception):
            self.listener.close()


class RemoteReads:
    """A read-only client that sends its queries to the process that holds the store."""

    def __init__(self, conn: Connection, holder_pid: int):
        self.conn = conn
        self.holder_pid = holder_pid
        self.lock = threading.Lock()

    def _ask(self, *request: Any) -> list:
        with self.lock:
            try:
                self.conn.send(request)
                status, *body = self.conn.recv()
            except (EOFError, OSError):
                raise UserError(
                    f"the process that holds the embedded store (pid {self.holder_pid}) stopped answering"
                ) from None
        if status == "error":
            raise RuntimeError(body[0])
        return body

    def query(self, sql: str, parameters: dict | None = None, limits: dict | None = None) -> Result:
        columns, rows = self._ask("query", sql, parameters or {}, limits or {})
        return Result(columns, rows)

    def metrics(self) -> str:
        """The holder's own Prometheus text (its loader's metrics), "" if it has none."""
        return self._ask("metrics")[0]

    def command(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        raise UserError("refused: a read command does not write (only run, load and catalog apply do)")


def connect(settings: Settings) -> RemoteReads | None:
    """The holder's read server, or None when no live process holds the store."""
    path = address_file(settings)
    if path is None or not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
        conn = _connect((info["host"], int(info["port"])), authkey=bytes.fromhex(info["key"]))
    except (OSError, ValueError, KeyError, EOFError):
        return None  # a holder killed before it could remove the file: the store is free again
    except Exception:  # multiprocessing.AuthenticationError: not this holder's key
        return None
    return RemoteReads(conn, int(info.get("pid", 0)))
