"""Reads from another process while a run holds the embedded store (the bench's --concurrent-reads):
every 1/rate seconds an analyst's query (`SELECT count() FROM events FINAL`) and one customer's
draft invoice (the API's usage view asks the same), through the holder (land/shared_store.py).
Prints a JSON summary when stopped (SIGTERM)."""

from __future__ import annotations

import json
import signal
import sys
import time

from tallyflow.billing import invoice
from tallyflow.errors import UserError
from tallyflow.land import clickhouse
from tallyflow.settings import Settings


def main() -> int:
    rate = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    settings = Settings.from_env()
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    latencies: list[float] = []
    failures = 0
    client = None
    while not stop["now"]:
        tick = time.monotonic()
        try:
            client = client or clickhouse.reader(settings)
            client.query("SELECT count() FROM events FINAL")
            invoice.compute(client, "2026-10", customer="cust_001")
            latencies.append(time.monotonic() - tick)
        except UserError:
            failures += 1  # the holder is not up yet, or has tables still to create
            client = None
        time.sleep(max(0.0, 1 / rate - (time.monotonic() - tick)))  # the read rate
    ordered = sorted(latencies) or [0.0]
    print(
        json.dumps(
            {
                "reads": len(latencies),
                "not_answered": failures,
                "p50_ms": round(ordered[len(ordered) // 2] * 1000, 1),
                "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
