"""What one customer token may ask of the API: a request rate (a token bucket) and a number of
store queries in flight. Past either, 429 with Retry-After: one customer's script cannot queue
store work that every other customer and the operator would wait behind. The admin token is the
operator's and is not limited."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar

# The customer token a request presents (None: the admin token, or no request at all, such as a
# background refresh). Set by the API's token check; read where a store query starts.
current_token: ContextVar[str | None] = ContextVar("tallyflow_token", default=None)


class Limited(Exception):
    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class TokenLimits:
    """`rate` requests a second per token (bursts of twice that); `queries` store queries in flight
    per token, with room for WAITING_PER_QUERY times as many to wait up to WAIT_SECONDS for a turn
    (a dashboard asks for five things at once). Past that room: Limited, at once."""

    WAITING_PER_QUERY = 3
    WAIT_SECONDS = 10.0

    def __init__(self, rate: int, queries: int):
        self.rate, self.burst, self.queries = rate, 2 * rate, queries
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # token -> (tokens left, at)
        self._turns = threading.Condition()
        self._running: dict[str, int] = {}
        self._waiting: dict[str, int] = {}

    def admit(self, token: str) -> None:
        """One request of `token`, or Limited when it is over its rate."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            left, at = self._buckets.get(token, (float(self.burst), now))
            left = min(float(self.burst), left + (now - at) * self.rate)
            if left < 1:
                self._buckets[token] = (left, now)
                wait = math.ceil((1 - left) / self.rate)
                raise Limited(f"more than {self.rate} requests per second with this token", wait)
            self._buckets[token] = (left - 1, now)
            if len(self._buckets) > 100_000:  # many tokens: forget the full buckets
                self._buckets = {k: v for k, v in self._buckets.items() if v[0] < self.burst}

    @contextlib.contextmanager
    def query(self) -> Iterator[None]:
        """One store query of the request's token: it runs now, waits its turn, or is Limited.
        Called on a worker thread (the store's queries never run on the event loop)."""
        token = current_token.get()
        if token is None or self.queries <= 0:
            yield
            return
        busy = f"{self.queries} queries of this token are running and more wait; ask again when they end"
        with self._turns:
            if self._running.get(token, 0) >= self.queries:
                if self._waiting.get(token, 0) >= self.queries * self.WAITING_PER_QUERY:
                    raise Limited(busy, 1)
                _add(self._waiting, token, 1)
                try:
                    turn = self._turns.wait_for(lambda: self._running.get(token, 0) < self.queries, self.WAIT_SECONDS)
                finally:
                    _add(self._waiting, token, -1)
                if not turn:
                    raise Limited(busy, 1)
            _add(self._running, token, 1)
        try:
            yield
        finally:
            with self._turns:
                _add(self._running, token, -1)
                self._turns.notify_all()


def _add(counts: dict[str, int], key: str, n: int) -> None:
    counts[key] = counts.get(key, 0) + n
    if not counts[key]:
        del counts[key]
