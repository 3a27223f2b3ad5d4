"""A bounded load test of the API on loopback: `rate` requests a second for `seconds` seconds to one
path (open loop: each request is sent at its scheduled time, whatever the earlier ones do), and the
latency of each, from send to the whole response read. Used by the tests and for the README figure:

    python -m tallyflow.tools.loadtest --url http://127.0.0.1:8900 --token T \\
        --path /api/customers/c1/usage --rate 200 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

import httpx


def run(url: str, path: str, token: str, rate: int, seconds: float) -> dict:
    return asyncio.run(_run(url, path, token, rate, seconds))


async def _run(url: str, path: str, token: str, rate: int, seconds: float) -> dict:
    total = int(rate * seconds)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10, limits=limits
    ) as client:
        await client.get("/healthz")  # connect once before the clock starts
        start = time.perf_counter() + 0.1

        async def one(i: int) -> None:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))  # its scheduled time
            sent = time.perf_counter()
            try:
                status = (await client.get(path)).status_code
            except httpx.HTTPError:
                status = 0
            latencies.append(time.perf_counter() - sent)
            statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(one(i) for i in range(total)))
    wall = time.perf_counter() - start
    ordered = sorted(latencies)
    q = lambda p: ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000  # noqa: E731
    return {
        "requests": total,
        "seconds": round(wall, 2),
        "rate": round(total / wall, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": round(q(0.50), 2),
        "p99_ms": round(q(0.99), 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


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
