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
    def __init__(self, rate: int, queries: int):
        self.rate, self.burst, self.queries = rate, 2 * rate, queries
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # token -> (tokens left, at)
        self._in_flight: dict[str, int] = {}

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
        """One store query of the request's token, or Limited when it has too many in flight."""
        token = current_token.get()
        if token is None or self.queries <= 0:
            yield
            return
        with self._lock:
            if self._in_flight.get(token, 0) >= self.queries:
                raise Limited(f"{self.queries} queries of this token are still running; ask again when they end", 1)
            self._in_flight[token] = self._in_flight.get(token, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight[token] -= 1
                if not self._in_flight[token]:
                    del self._in_flight[token]
