"""Synthetic usage: a month of events for several customers, with duplicates and late arrivals.

Events are produced in send order: mostly by event time, but a `late_rate` share is held back
and sent 1 to 48 hours (of event time) later, and a `duplicate_rate` share is sent again, half
right away and half hours later. The event ids are deterministic for a seed, so generating the
same month twice resends the same events (and bills nothing twice).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from datetime import datetime, timedelta

from tallyflow.core.periods import month_bounds, previous_month
from tallyflow.settings import REPO_ROOT

# The catalog whose customers and meters these events are for (the benches and chaos price with it).
DEMO_CATALOG = REPO_ROOT / "deploy" / "demo" / "catalog.yaml"

MODELS = ("m-large", "m-small")
REGIONS = ("eu-west-1", "us-east-1")
# (event_type, weight)
MIX = (("api_call", 50), ("llm_call", 25), ("login", 12), ("storage_snapshot", 5), ("image_generated", 8))


def customer_ids(customers: int) -> list[str]:
    return [f"cust_{i:03d}" for i in range(1, customers + 1)]


def _event(rng: random.Random, seq: int, seed: int, customer: str, t: datetime) -> dict:
    event_type = rng.choices([m[0] for m in MIX], weights=[m[1] for m in MIX])[0]
    values: dict[str, str] = {}
    dims: dict[str, str] = {"region": rng.choice(REGIONS)}
    if event_type == "llm_call":
        values = {"tokens_input": str(rng.randint(10, 4000)), "tokens_output": str(rng.randint(1, 2000))}
        dims["model"] = rng.choice(MODELS)
    elif event_type == "storage_snapshot":
        values = {"gb": f"{rng.randint(1, 50000) / 100:.2f}"}
    elif event_type == "login":
        dims["user_id"] = f"u-{rng.randint(1, 40)}"
    elif event_type == "api_call":
        values = {"duration_ms": str(rng.randint(1, 900))}
    return {
        "event_id": f"evt_{seed}_{seq:010d}",
        "customer_id": customer,
        "event_type": event_type,
        "event_time": t.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "values": values,
        "dimensions": dims,
    }


def generate(
    n: int,
    *,
    customers: int = 5,
    period: str | None = None,
    duplicate_rate: float = 0.0,
    late_rate: float = 0.0,
    seed: int = 7,
    span: timedelta | None = None,
) -> Iterator[dict]:
    """Yields n unique events (plus resent duplicates) in send order, spread over the month, or
    over `span` of event time from the month's start."""
    if not 0 <= duplicate_rate <= 1 or not 0 <= late_rate <= 1:
        from tallyflow.errors import UserError

        raise UserError("--duplicate-rate and --late-rate must be between 0 and 1")
    start, end = month_bounds(period or previous_month())
    span_ms = int(min(span or (end - start), end - start).total_seconds() * 1000)
    rng = random.Random(seed)
    custs = customer_ids(customers)
    held: list[tuple[datetime, int, dict]] = []  # (send at event time, tiebreak, event)
    for i in range(n):
        step = span_ms // max(n, 1)
        t = start + timedelta(milliseconds=i * step + rng.randint(0, max(step - 1, 0)))
        while held and held[0][0] <= t:
            yield heapq.heappop(held)[2]
        ev = _event(rng, i, seed, rng.choice(custs), t)
        if rng.random() < late_rate:
            heapq.heappush(held, (t + timedelta(hours=rng.uniform(1, 48)), i, ev))
        else:
            yield ev
        if rng.random() < duplicate_rate:
            delay = timedelta(seconds=rng.uniform(0, 5)) if rng.random() < 0.5 else timedelta(hours=rng.uniform(1, 72))
            heapq.heappush(held, (t + delay, n + i, dict(ev)))
    while held:
        yield heapq.heappop(held)[2]
