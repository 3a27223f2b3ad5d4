"""`make chaos` (`python -m tallyflow.tools.chaos`): faults against an exact oracle.

Publishes N synthetic events (with resends and late arrivals) to fresh topics, keeps the
generator's manifest (the unique events), then runs `tallyflow run --bounded` (each run continues
the newest snapshot) as a child process and injects faults: SIGKILL of the whole run (job,
MiniCluster and loader) at random points, `kills` times; once, the loader dies between an insert and its offset commit
(TALLYFLOW_FAULT=loader-after-insert); once, the Kafka broker restarts mid-run (local stack only).
A last run completes. Then the oracle, computed from the manifest alone, is set against ClickHouse:
per customer and meter, events and their quantities in `events` and in windows + adjustments +
late events, and `tallyflow reconcile` must pass. Lost = expected and missing; duplicated = found
beyond expected. With --unsafe (TALLYFLOW_UNSAFE_AT_LEAST_ONCE: sinks without transactions) the
same faults must produce duplicates the oracle sees: the negative control.

With --cluster URL every run submits to that Flink cluster (`tallyflow cluster up`), and a kill is
a SIGKILL of the TaskManager process running the job: Flink restarts it from its last checkpoint
on the other TaskManager while the run goes on, and `cluster up` brings the killed one back. A run
that dies (the loader's crash) leaves its job running on the cluster; it is cancelled, as a
supervisor would, and the next run continues its retained checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from decimal import Decimal

from tallyflow import faults
from tallyflow.core import catalog
from tallyflow.errors import UserError
from tallyflow.ingest import producer
from tallyflow.ops import stack
from tallyflow.settings import REPO_ROOT, Settings
from tallyflow.tools import generator, oracle
from tallyflow.wire import topics

DEMO = generator.DEMO_CATALOG
PERIOD = "2026-10"


class Chaos:
    def __init__(
        self,
        settings: Settings,
        events: int,
        kills: int,
        seed: int,
        unsafe: bool,
        broker_restart: bool = True,
        kill_window: tuple[float, float] = (8, 30),
        cluster_url: str | None = None,
    ):
        tag = f"chaos{int(time.time())}{'u' if unsafe else ''}{'c' if cluster_url else ''}"
        self.cluster_url = cluster_url
        self.home = settings.home / tag
        self.settings = settings
        self.env = {
            **os.environ,
            # A kill of the run is a kill of its JVM, the crash this test is about.
            "TALLYFLOW_WARM_JVM": "off",
            "TALLYFLOW_TOPIC_PREFIX": f"{settings.topic_prefix}{tag}.",
            "TALLYFLOW_CLICKHOUSE_URL": f"chdb://{self.home / 'clickhouse'}",
            "TALLYFLOW_HOME": str(settings.home),
            "TALLYFLOW_KAFKA_BOOTSTRAP": settings.bootstrap,
            # Longer than the gap between a run's start and its kill, so a kill always
            # lands after output a checkpoint has not covered yet: the case under test.
            "TALLYFLOW_CHECKPOINT_INTERVAL": "10s",
            # Chaos checks counts, not finalization: its month stays open across its runs.
            "TALLYFLOW_SETTLEMENT_WINDOW": "36500d",
        }
        if unsafe:
            self.env["TALLYFLOW_UNSAFE_AT_LEAST_ONCE"] = "true"
        if cluster_url:
            self.env["TALLYFLOW_FLINK_CLUSTER"] = cluster_url
        self.events, self.kills, self.unsafe, self.broker_restart = events, kills, unsafe, broker_restart
        self.kill_window = kill_window
        self.rng = random.Random(seed)
        self.seed = seed
        self.report: dict = {
            "events": events,
            "unsafe": unsafe,
            "mode": "cluster" if cluster_url else "local",
            "faults": [],
            "recovery_seconds": [],
        }

    def _run(self, extra_env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "tallyflow.cli", "run", "--catalog", str(DEMO), "--bounded", "--verbose"],
            env={**self.env, **(extra_env or {})},
            cwd=REPO_ROOT,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its MiniCluster JVM and the loader
        proc.wait()

    def _wait_running(self, proc: subprocess.Popen, started: float) -> float | None:
        """Seconds until the run reports its job RUNNING (restored and reading), or None if it ended."""
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("job RUNNING"):
                return time.monotonic() - started
        return None

    def publish(self) -> list[dict]:
        """Generates the input and splits it into chunks, one published before each run, so every
        fault lands on a run that has input to read and output to land."""
        sent = list(
            generator.generate(
                self.events, customers=10, period=PERIOD, duplicate_rate=0.02, late_rate=0.01, seed=self.seed
            )
        )
        self.pipeline = replace(self.settings, topic_prefix=self.env["TALLYFLOW_TOPIC_PREFIX"])
        topics.ensure_topics(self.pipeline)
        n = 2 * len(self.plan()) + 1  # a run per fault, a retry each, and the last run
        self.chunks = [sent[i * len(sent) // n : (i + 1) * len(sent) // n] for i in range(n)]
        unique = {(e["customer_id"], e["event_id"]): e for e in sent}
        self.report["sent"] = len(sent)
        self.report["unique"] = len(unique)
        return list(unique.values())

    def _publish_next(self, everything: bool = False) -> None:
        while self.chunks:
            chunk = self.chunks.pop(0)
            result = producer.produce_records(self.pipeline, chunk)
            if result.sent != len(chunk):
                raise UserError(f"publishing failed: {result.sent} of {len(chunk)} sent")
            if not everything:
                return

    def plan(self) -> list[str]:
        return ["kill"] * self.kills + ["loader", "clickhouse"] + (["broker"] if self._local_broker() else [])

    def faults(self) -> None:
        """Injects every planned fault and proves it fired; a fault that found the run already
        over is tried again on the next run (with the next chunk of input), up to three times."""
        from tallyflow import progress

        plan = self.plan()
        self.rng.shuffle(plan)
        bar = progress.bar("table", "chaos", total=len(plan), unit="faults")
        for fault in plan:
            for attempt in range(1, 4):
                bar.set_description_str(f"chaos: {fault} (attempt {attempt})")
                self._publish_next()
                outcome = self._inject(fault, attempt)
                self.report["faults"].append({"fault": fault, "attempt": attempt, **outcome})
                if outcome["fired"]:
                    break
            bar.update(1)
        bar.close()
        self.report["faults_planned"] = len(plan)
        self.report["faults_fired"] = sum(1 for f in self.report["faults"] if f["fired"])

    def _inject(self, fault: str, attempt: int) -> dict:
        started = time.monotonic()
        injected = {
            "loader": faults.Fault("loader-after-insert", self.rng.randint(1, 3)),
            "clickhouse": faults.Fault("clickhouse-down", 15),
        }.get(fault)
        extra = {"TALLYFLOW_FAULT": f"{injected.kind}:{injected.n}"} if injected else {}
        proc = self._run(extra)
        up = self._wait_running(proc, started)
        if up is not None:
            self.report["recovery_seconds"].append(round(up, 1))
        fired = False
        if fault == "kill" and up is not None and self.cluster_url:
            low, high = self.kill_window
            time.sleep(self.rng.uniform(low, max(low, high / attempt)))
            fired = proc.poll() is None and self._kill_taskmanager()
            self._finish(proc)  # the job restarts on the other TaskManager; the run goes on
        elif fault == "kill" and up is not None:
            low, high = self.kill_window
            time.sleep(self.rng.uniform(low, max(low, high / attempt)))  # a random point of the run
            fired = proc.poll() is None  # still running: the kill lands mid-run
            self._kill(proc)
        elif fault == "broker" and up is not None:
            time.sleep(self.rng.uniform(2, 6))
            fired = proc.poll() is None
            stack.down(self.settings)
            time.sleep(3)  # the broker stays away a moment
            stack.up(self.settings)
            self._finish(proc)
        else:
            self._finish(proc)  # the loader crashes after its N-th insert / ClickHouse comes back
            if injected is not None:
                fired = injected.marker(self.settings.home, self.pipeline.topic_prefix).exists()
                if fault == "loader":
                    fired = fired and proc.returncode == 137
        # A process that died alone (the loader's crash) leaves its MiniCluster JVM running the
        # job on; a supervisor would kill the whole process group, and so does this (and, on a
        # cluster, cancels the job the run left behind).
        self._kill(proc)
        self._cancel_orphans()
        return {"fired": fired, "exit": proc.returncode, "seconds": round(time.monotonic() - started, 1)}

    def _kill_taskmanager(self) -> bool:
        """SIGKILL of the TaskManager running this pipeline's job; `cluster up` restarts it."""
        from tallyflow.ops import cluster, jobs

        url = self.cluster_url or ""
        running = cluster.running_jobs(url, jobs.job_name(self.pipeline))
        hosts = sorted(cluster.taskmanagers_of(url, running[0])) if running else []
        if not hosts or cluster.kill(self.settings, hosts[0]) is None:
            return False
        # The killed one comes back once the JobManager has dropped it (its heartbeat timed out).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and hosts[0] in {
            tm["id"] for tm in cluster.rest(url, "/taskmanagers").get("taskmanagers", [])
        }:
            time.sleep(0.5)  # a status poll, bounded by the deadline
        cluster.up(self.settings)
        return True

    def _cancel_orphans(self) -> None:
        if not self.cluster_url:
            return
        from tallyflow.ops import cluster, jobs

        for job in cluster.running_jobs(self.cluster_url, jobs.job_name(self.pipeline)):
            cluster.rest(self.cluster_url, f"/jobs/{job}?mode=cancel", method="PATCH")
        deadline = time.monotonic() + 60
        while cluster.running_jobs(self.cluster_url, jobs.job_name(self.pipeline)) and time.monotonic() < deadline:
            time.sleep(0.5)  # the slot is free again once the job is over

    def _local_broker(self) -> bool:
        return (
            self.broker_restart
            and not self.settings.kafka_bootstrap
            and stack.status(self.settings)["kafka"].get("pid") is not None
        )

    @staticmethod
    def _finish(proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for _ in proc.stdout:
            pass
        proc.wait()

    def complete(self) -> None:
        self._publish_next(everything=True)
        started = time.monotonic()
        proc = self._run()
        out = proc.communicate()[0]
        if proc.returncode != 0:
            raise UserError(f"the final run failed: {out.strip().splitlines()[-1] if out.strip() else proc.returncode}")
        self.report["final_run_seconds"] = round(time.monotonic() - started, 1)

    def check(self, manifest: list[dict]) -> None:
        cat = catalog.load(DEMO)
        want = oracle.expected(manifest, cat)
        got = json.loads(
            self._cli(
                "sql",
                """
            SELECT customer_id, meter_id, toString(sum(n)) AS n, toString(sum(q)) AS q FROM (
                SELECT customer_id, meter_id, event_count AS n, quantity AS q FROM usage_windows FINAL
                UNION ALL SELECT customer_id, meter_id, event_count, quantity FROM usage_adjustments FINAL
            ) GROUP BY customer_id, meter_id""",
            )
        )
        windows = {(r["customer_id"], r["meter_id"]): (int(r["n"]), Decimal(r["q"])) for r in got}
        late = oracle.expected(self._late_events(), cat)
        lost = duplicated = 0
        for key in set(want) | set(windows) | set(late):
            n_want = want.get(key, (0, 0))[0]
            n_got = windows.get(key, (0, 0))[0] + late.get(key, (0, 0))[0]
            lost += max(0, n_want - n_got)
            duplicated += max(0, n_got - n_want)
        stored = json.loads(self._cli("sql", "SELECT count() AS n FROM events FINAL"))[0]["n"]
        accepted = oracle.accepted_records(replace(self.settings, topic_prefix=self.env["TALLYFLOW_TOPIC_PREFIX"]))
        rec = subprocess.run(
            [sys.executable, "-m", "tallyflow.cli", "reconcile", "--period", PERIOD, "--format", "json"],
            env=self.env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        )
        self.report.update(
            {
                "events_stored": int(stored),
                "events_lost": max(0, len(manifest) - int(stored)),
                "metered_events_lost": lost,
                "metered_events_duplicated": duplicated,
                # The job's own output, before any table key collapses it: each event once in `accepted`.
                "accepted_records": accepted,
                "accepted_records_duplicated": max(0, accepted - len(manifest)),
                "reconcile_exit": rec.returncode,
                "reconcile_discrepancies": json.loads(rec.stdout)["discrepancies"] if rec.stdout.strip() else None,
            }
        )

    def _late_events(self) -> list[dict]:
        return json.loads(
            self._cli(
                "sql",
                """SELECT customer_id, event_type, `values`, dimensions, event_time
                                              FROM late_events FINAL""",
            )
        )

    def _cli(self, *args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "tallyflow.cli", *args, "--format", "json"],
            env=self.env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise UserError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "query failed")
        return proc.stdout


def run(
    settings: Settings,
    events: int,
    kills: int,
    seed: int,
    unsafe: bool = False,
    broker_restart: bool = True,
    kill_window: tuple[float, float] = (8, 30),
    cluster_url: str | None = None,
) -> dict:
    chaos = Chaos(settings, events, kills, seed, unsafe, broker_restart, kill_window, cluster_url)
    started = time.monotonic()
    manifest = chaos.publish()
    chaos.faults()
    chaos.complete()
    chaos.check(manifest)
    chaos.report["seconds"] = round(time.monotonic() - started, 1)
    return chaos.report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tallyflow-chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--unsafe", action="store_true", help="the negative control: sinks without transactions")
    parser.add_argument("--no-broker-restart", action="store_true", help="skip the broker restart fault")
    parser.add_argument("--kill-window", default="8,30", help="seconds after RUNNING a kill lands in (min,max)")
    parser.add_argument(
        "--cluster", metavar="URL", help="run on this Flink cluster; a kill is a SIGKILL of the job's TaskManager"
    )
    args = parser.parse_args(argv)
    try:
        low, _, high = args.kill_window.partition(",")
        window = (float(low), float(high))
    except ValueError:
        print("chaos: --kill-window is MIN,MAX seconds", file=sys.stderr)
        return 2
    try:
        report = run(
            Settings.from_env(),
            args.events,
            args.kills,
            args.seed,
            args.unsafe,
            not args.no_broker_restart,
            window,
            args.cluster,
        )
    except UserError as e:
        print(f"chaos: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2, default=str))
    if report["faults_fired"] != report["faults_planned"]:
        print(f"chaos: only {report['faults_fired']} of {report['faults_planned']} faults fired", file=sys.stderr)
        return 1
    clean = (
        report["metered_events_lost"] == 0
        and report["metered_events_duplicated"] == 0
        and report["accepted_records_duplicated"] == 0
        and report["accepted_records"] >= report["unique"]
        and report["events_lost"] == 0
        and report["reconcile_exit"] == 0
    )
    return 0 if clean != args.unsafe else 1


if __name__ == "__main__":
    sys.exit(main())
