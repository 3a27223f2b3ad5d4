"""What the API reads, and how: a read-only ClickHouse client that survives outages, and a short
cache in front of it.

The client is the run's own when the server runs inside `run --serve` (the loader and the API
share the embedded store), else a `clickhouse.reader`: a server by URL, the process holding the
embedded store, or the store itself when no process holds it. A failure drops the client (the next
request asks again) and answers 503. Answers are cached for TALLYFLOW_SERVE_CACHE (2 s): a
dashboard polling every few seconds, or many customers' pages at once, cost a few queries a second.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool

from tallyflow.billing import balance, invoice, usage
from tallyflow.core import aggregations
from tallyflow.core import catalog as catalog_mod
from tallyflow.core.periods import at_instant, iso_utc, month_bounds, period_of, starting_in
from tallyflow.errors import UserError
from tallyflow.land import catalog_store, clickhouse, shared_store
from tallyflow.serve import limits
from tallyflow.settings import Settings

_nonblocking: ContextVar[bool] = ContextVar("tallyflow_nonblocking", default=False)


class WouldBlock(Exception):
    """Raised inside `answer` where a figure is not cached yet: it is computed in a thread instead."""


async def answer(fn: Callable[[], Any]) -> Any:
    """Runs `fn` on the event loop when every figure it needs is cached (most requests: no thread
    hop, which costs more than the request itself on a small machine), else in a worker thread."""
    token = _nonblocking.set(True)
    try:
        return fn()
    except WouldBlock:
        pass
    finally:
        _nonblocking.reset(token)
    return await run_in_threadpool(fn)


class Unavailable(Exception):
    """ClickHouse (or the process holding the store) did not answer: the API says 503."""


class NotFound(Exception):
    pass


class Store:
    def __init__(self, settings: Settings, client: Any = None):
        self.settings = settings
        self.own = client is not None  # the run's client: always there
        self._client: Any = clickhouse.ReadOnly(client, settings) if client is not None else None
        self._held_elsewhere = False
        self._lock = threading.Lock()
        self._cache: dict[tuple, tuple[float, Any]] = {}
        self._locks: dict[tuple, threading.Lock] = {}
        self._down = 0.0  # when the store last failed to answer (0: it answers)
        self._down_reason = ""
        self._catalog: tuple[str, catalog_mod.Catalog] | None = None
        self.ttl = settings.serve_cache.total_seconds()
        self.holder: subprocess.Popen | None = None
        self.limits = limits.TokenLimits(settings.serve_rate, settings.serve_queries)

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                if self._held_elsewhere:
                    # Never open the store while its holder restarts: reads wait for a holder.
                    remote = shared_store.connect(self.settings)
                    if remote is None:
                        raise Unavailable("the process that held the embedded store is gone")
                    self._client = clickhouse.ReadOnly(remote, self.settings)
                else:
                    try:
                        self._client = clickhouse.reader(self.settings)
                    except UserError as e:
                        raise Unavailable(str(e)) from None
                    inner = getattr(self._client, "inner", None)
                    self._held_elsewhere = isinstance(inner, shared_store.RemoteReads)
            return self._client

    def share(self) -> None:
        """On an embedded store no process holds, starts one that holds it (land/hold.py) and
        reads through it, as every other read command then does: the API never runs a chdb query
        in its own process (chdb keeps the interpreter lock while a query runs)."""
        if not self.settings.clickhouse_url.startswith("chdb://") or shared_store.connect(self.settings):
            return
        self.holder = subprocess.Popen([sys.executable, "-m", "tallyflow.land.hold"])
        deadline = time.monotonic() + 60
        while shared_store.connect(self.settings) is None:
            if self.holder.poll() is not None or time.monotonic() > deadline:
                raise Unavailable(f"the embedded store {self.settings.clickhouse_url} could not be opened")
            time.sleep(0.2)  # the holder opens the store and publishes its address; bounded
        self._held_elsewhere = True

    def close(self) -> None:
        if self.holder is not None and self.holder.poll() is None:
            self.holder.terminate()
            self.holder.wait(timeout=30)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._down and time.monotonic() < self._down + 1.0:
            raise Unavailable(self._down_reason)  # asked again within a second of a failure
        try:
            value = fn(self.client(), *args)
        except (Unavailable, NotFound) as e:
            if isinstance(e, Unavailable):
                self._mark_down(str(e))
            raise
        except UserError as e:
            if "does not answer" in str(e) or "stopped answering" in str(e):
                self._mark_down(str(e))
                raise Unavailable(str(e)) from None
            raise
        except Exception as e:  # a driver error: the store went away
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            self._mark_down(reason)
            raise Unavailable(reason) from None
        self._down = 0.0
        return value

    def _mark_down(self, reason: str) -> None:
        self._down, self._down_reason = time.monotonic(), reason
        with self._lock:
            if not self.own:
                self._client = None

    def cached(self, key: tuple, fn: Callable[..., Any], *args: Any) -> Any:
        """A fresh answer from the cache; else the last answer while one thread refreshes it in the
        background (so a burst of requests never queues on the store); else computed once, with
        concurrent askers of the same key waiting for that one computation. While the store is
        down (a failed query or /readyz), nothing stale is served: 503."""
        if self._down:
            if _nonblocking.get():
                raise WouldBlock
            return self._compute(key, fn, args)  # raises Unavailable while it stays down
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        if hit is None and _nonblocking.get():
            raise WouldBlock
        lock = self._locks.setdefault(key, threading.Lock())
        if hit is not None:
            if lock.acquire(blocking=False):
                threading.Thread(target=self._refresh, args=(key, lock, fn, args), daemon=True).start()
            return hit[1]
        with lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]  # another request computed it meanwhile
            return self._compute(key, fn, args)

    def _compute(self, key: tuple, fn: Callable[..., Any], args: tuple) -> Any:
        with self.limits.query():
            value = self._call(fn, *args)
        self._cache[key] = (time.monotonic() + self.ttl, value)
        if len(self._cache) > 10_000:  # many customers: drop what has expired
            now = time.monotonic()
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        return value

    def _refresh(self, key: tuple, lock: threading.Lock, fn: Callable[..., Any], args: tuple) -> None:
        # A background refresh yields the CPU to the requests being answered meanwhile.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        try:
            self._compute(key, fn, args)
        except Exception:  # the store is down: the next request answers 503
            self._cache.pop(key, None)
        finally:
            lock.release()

    # --- what the API asks -------------------------------------------------------------------

    def ping(self) -> None:
        self._down = 0.0  # the readiness probe always asks the store itself
        self._call(lambda c: c.query("SELECT 1").result_rows)

    def catalog(self) -> catalog_mod.Catalog:
        def load(client: Any) -> catalog_mod.Catalog:
            shown = catalog_store.in_force(client)
            if self._catalog is None or self._catalog[0] != shown["digest"]:
                self._catalog = (shown["digest"], catalog_mod.parse(shown["catalog"], f"catalog {shown['digest']}"))
            return self._catalog[1]

        return self.cached(("catalog",), load)

    def customers(self) -> dict[str, list[dict]]:
        def load(client: Any) -> dict[str, list[dict]]:
            out: dict[str, list[dict]] = {}
            for r in clickhouse.query(client, "serve/customers", {"customer": ""}):
                out.setdefault(r["customer_id"], []).append(
                    {
                        "plan": r["plan_id"],
                        "start": iso_utc(r["start"]),
                        "end": iso_utc(r["end"]) if r["end"] else None,
                    }
                )
            return out

        return self.cached(("customers",), load)

    def require(self, customer: str) -> None:
        if customer not in self.customers():
            raise NotFound(f"no customer '{customer}' in the catalog in force")

    def usage(self, customer: str, period: str) -> dict:
        """One customer's usage of a named period, or ('') of its own period that holds now."""
        cat = self.catalog()
        return self.cached(("usage", customer, period), lambda c: usage.report(c, cat, customer, period or None))

    def daily(self, customer: str, start: str, end: str) -> list[dict]:
        def load(client: Any) -> list[dict]:
            rows = clickhouse.query(
                client,
                "serve/daily_usage",
                {"customer": customer, "from_day": start, "to_day": end, **aggregations.sql_parameters()},
            )
            return [
                {
                    "day": r["day"].isoformat(),
                    "meter": r["meter_id"],
                    "aggregation": r["aggregation"],
                    "events": r["events"],
                    "quantity": r["quantity"],
                }
                for r in rows
            ]

        return self.cached(("daily", customer, start, end), load)

    def balance(self, customer: str) -> dict:
        return self.cached(("balance", customer), lambda c: balance.report(c, customer))

    def invoice(self, customer: str, period: str) -> dict | None:
        """The customer's invoice of a named period (a month: the first of its periods that start
        in it), or ('') of its own period that holds now."""
        found = self.invoices_of(customer, period)
        return found[0] if found else None

    def invoices_of(self, customer: str, period: str) -> list[dict]:
        def load(client: Any) -> list[dict]:
            chosen = period or at_instant(datetime.now(UTC))
            return [i.as_dict() for i in invoice.compute(client, chosen, customer=customer)]

        return self.cached(("invoices", customer, period), load)

    def invoices(self, customer: str, months: int = 12) -> list[dict]:
        """The invoices of the customer's periods that start in the last `months` months, newest
        first, priced in one query."""

        def load(client: Any) -> list[dict]:
            this_month, end = month_bounds(period_of(datetime.now(UTC)))
            start = this_month
            for _ in range(months - 1):
                start = month_bounds(period_of(start - timedelta(days=1)))[0]
            chosen = starting_in(start, end, f"the {months} months to {end.date()}")
            return [i.as_dict() for i in reversed(invoice.compute(client, chosen, customer=customer))]

        return self.cached(("invoices", customer), load)

    def alerts(self, customer: str, since: datetime) -> list[dict]:
        def load(client: Any) -> list[dict]:
            rows = clickhouse.query(client, "serve/alerts", {"customer": customer, "since": since.replace(tzinfo=None)})
            return [dict(r, at=iso_utc(r["at"])) for r in rows]

        return self.cached(("alerts", customer, since.date().isoformat()), load)

    def pipeline(self) -> dict:
        def load(client: Any) -> dict:
            counts = clickhouse.query(client, "serve/pipeline_counts")
            rate = clickhouse.query(client, "serve/events_per_second", {"seconds": 300})
            periods = clickhouse.query(
                client, "invoice/unsettled_periods", {"due": datetime.now(UTC).replace(tzinfo=None)}
            )
            return {
                "counts": [dict(r, last_loaded=iso_utc(r["last_loaded"])) for r in counts],
                "events_per_second": [{"second": iso_utc(r["second"]), "events": r["n"]} for r in rate],
                "unsettled_periods": [
                    {
                        "period": r["month"],
                        "period_end": iso_utc(r["period_end"]),
                        "due_at": iso_utc(r["period_end"] + self.settings.settlement_window),
                        "open_customers": r["open_customers"],
                    }
                    for r in periods
                ],
            }

        return self.cached(("pipeline",), load)
