"""A bounded load test of the API on loopback: `rate` requests a second for `seconds` seconds to one
path (open loop: each request is due at its scheduled time, whatever the earlier ones do), and the
latency of each, from its scheduled time to the whole response read. Used by the tests and for the README figure:

    python -m tallyflow.tools.loadtest --url http://127.0.0.1:8900 --token T \\
        --path /api/customers/c1/usage --rate 200 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from urllib.parse import urlsplit


def run(url: str, path: str, token: str, rate: int, seconds: float, connections: int = 16) -> dict:
    return asyncio.run(_run(url, path, token, rate, seconds, connections))


async def _run(url: str, path: str, token: str, rate: int, seconds: float, connections: int) -> dict:
    """Open loop over `connections` keep-alive HTTP/1.1 connections. A request's latency counts from
    its scheduled time, so waiting for a free connection is counted too (no coordinated omission).
    The client is raw asyncio streams: an HTTP library's own cost per request (a few ms of Python)
    would be measured as the server's on a 2-core machine."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n\r\n").encode()
    total = int(rate * seconds)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    due: asyncio.Queue[float] = asyncio.Queue()
    # One request first, not measured: the server computes the figures once (about a second on
    # chdb), then serves them from its cache and refreshes them in the background.
    reader, writer = await asyncio.open_connection(host, port)
    await _exchange(reader, writer, request)
    writer.close()
    start = time.perf_counter() + 0.2

    async def schedule() -> None:
        for i in range(total):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            due.put_nowait(start + i / rate)
        for _ in range(connections):
            due.put_nowait(-1.0)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (scheduled := await due.get()) >= 0:
                status = await _exchange(reader, writer, request)
                latencies.append(time.perf_counter() - scheduled)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(schedule(), *(connection() for _ in range(connections)))
    wall = time.perf_counter() - start
    ordered = sorted(latencies)
    q = lambda p: ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000  # noqa: E731
    return {
        "requests": total,
        "answered": len(ordered),
        "seconds": round(wall, 2),
        "rate": round(len(ordered) / wall, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": round(q(0.50), 2),
        "p99_ms": round(q(0.99), 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Sends one request and reads its whole response; returns the status."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    await reader.readexactly(int(length.group(1)) if length else 0)
    return int(head.split(b" ", 2)[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tallyflow-loadtest", description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--rate", type=int, default=200)
    p.add_argument("--seconds", type=float, default=10)
    a = p.parse_args(argv)
    print(json.dumps(run(a.url, a.path, a.token, a.rate, a.seconds), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
