"""What a bench run spends: CPU seconds per pipeline component, read from /proc (Linux), and a
per-second timeline.

Every thread's CPU time (utime + stime) is sampled twice a second in the processes that do the
work: this one (the loader, the embedded ClickHouse, the Kafka clients), its child JVM (the Flink
MiniCluster: one task thread per operator chain, named after it, plus JIT, GC and RocksDB
threads) and the broker. A thread's last sample counts, so a task thread that ends with the job
loses at most its last half second. Threads are grouped into components by their names as the
kernel shows them (the first 15 characters of the Java thread name).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")

# (component, process role, name prefixes); the first match wins, in this order.
COMPONENTS: list[tuple[str, str, tuple[str, ...]]] = [
    ("jit", "jvm", ("C1 CompilerThre", "C2 CompilerThre")),
    ("gc", "jvm", ("GC Thread", "G1 ", "VM Thread")),
    ("rocksdb", "jvm", ("rocksdb",)),
    ("source and decode", "jvm", ("Source: raw_eve",)),
    ("classify chain", "jvm", ("classify-events",)),
    ("windows", "jvm", ("GlobalWindowAgg", "LocalWindowAgg", "OverAggregate")),
    (
        "python operators",
        "jvm",
        ("rate-windows", "credit-drawdown", "usage-alerts", "usage-anomalie", "closed-windows"),
    ),
    ("kafka sinks", "jvm", ("kafka-producer", "ConstraintEnfor", "Writer", "dlq_sink", "*anonymous_dat")),
    ("flink other", "jvm", ("",)),
    ("clickhouse", "python", ("QueryPipelineEx", "QueryPullPipeE", "BgSchPool", "MergeMutate", "Background", "Merge")),
    ("loader", "python", ("",)),  # the main thread and the Kafka consumer's librdkafka threads
    ("broker", "broker", ("",)),
]


def _threads(pid: int) -> dict[int, tuple[str, float]]:
    """tid -> (name, CPU seconds) for every thread of a process."""
    out: dict[int, tuple[str, float]] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / TICK)  # utime, stime
    return out


def java_descendants(pid: int) -> list[int]:
    """The JVMs started by this process, directly or through a launcher script."""
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            procs[int(entry)] = (int(stat[stat.rindex(")") + 2 :].split()[1]), name)
    found, frontier = [], {pid}
    while frontier:
        frontier = {p for p, (ppid, _) in procs.items() if ppid in frontier}
        found += [p for p in frontier if procs[p][1] == "java"]
    return found


class Sampler:
    """Samples the threads of this process, its child processes (the JVM) and `broker_pid`
    until stopped; `components()` gives the CPU seconds each component spent meanwhile."""

    def __init__(self, broker_pid: int | None, interval: float = 0.5):
        self.broker_pid, self.interval = broker_pid, interval
        self._start: dict[tuple[int, int], float] = {}
        self._last: dict[tuple[int, int], tuple[str, str, float]] = {}  # (pid, tid) -> (role, name, cpu)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Sampler:
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _roles(self) -> list[tuple[str, int]]:
        me = os.getpid()
        roles = [("python", me)] + [("jvm", pid) for pid in java_descendants(me)]
        if self.broker_pid:
            roles.append(("broker", self.broker_pid))
        return roles

    def _sample(self, first: bool = False) -> None:
        for role, pid in self._roles():
            for tid, (name, cpu) in _threads(pid).items():
                key = (pid, tid)
                if first:
                    self._start[key] = cpu
                self._last[key] = (role, name, cpu)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def components(self) -> dict[str, float]:
        totals = {name: 0.0 for name, _, _ in COMPONENTS}
        for key, (role, name, cpu) in self._last.items():
            spent = cpu - self._start.get(key, 0.0)
            for component, wanted, prefixes in COMPONENTS:
                if role == wanted and any(name.startswith(p) for p in prefixes):
                    totals[component] += spent
                    break
        return {k: round(v, 2) for k, v in totals.items()}


class Timeline:
    """A row a second while a bench's pipeline runs: seconds since the start, input records the
    job has committed (its consumer group: read and covered by a checkpoint), events landed in
    ClickHouse (`landed`, set by the run's progress callback), and the difference (committed but
    not yet landed: what the sinks' transactions and the loader hold)."""

    def __init__(self, committed: Callable[[], int | None], interval: float = 1.0):
        self.committed, self.interval = committed, interval
        self.landed = 0
        self.rows: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Timeline:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                committed = self.committed()
            except Exception:  # the group may not exist before the first checkpoint
                committed = None
            landed = self.landed
            self.rows.append(
                {
                    "t": round(time.monotonic() - self._started, 1),
                    "committed": committed,
                    "landed": landed,
                    "not_yet_landed": None if committed is None else max(0, committed - landed),
                }
            )

    def steady_rate(self, total: int) -> int | None:
        """The landing rate (events/s) from the first second 10% had landed to the first second
        90% had: the run without its start-up and its end. (Landing is stepwise, a step per
        checkpoint, so a median of per-second rates would mostly be 0.)"""
        t10 = next((r for r in self.rows if r["landed"] >= 0.1 * total), None)
        t90 = next((r for r in self.rows if r["landed"] >= 0.9 * total), None)
        if t10 is None or t90 is None or t90["t"] <= t10["t"]:
            return None
        return round((t90["landed"] - t10["landed"]) / (t90["t"] - t10["t"]))
