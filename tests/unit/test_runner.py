"""The runner's waits end in a result or a named error, never silently at a deadline."""

from __future__ import annotations

import pytest

from tallyflow.errors import UserError
from tallyflow.ops import runner


class _Status:
    def __init__(self, value: str):
        self.value = value

    def result(self) -> str:
        return self.value


class StuckJob:
    """A job client whose job never leaves INITIALIZING (no free slot, say)."""

    def get_job_status(self) -> _Status:
        return _Status("JobStatus.INITIALIZING")


class RunningJob:
    def __init__(self) -> None:
        self.polls = 0

    def get_job_status(self) -> _Status:
        self.polls += 1
        return _Status("JobStatus.RUNNING" if self.polls > 2 else "JobStatus.CREATED")


def test_wait_running_times_out_with_an_error_naming_what_did_not_happen():
    with pytest.raises(UserError, match=r"did not reach RUNNING within 0.2 s \(still INITIALIZING\)"):
        runner.wait_running(StuckJob(), deadline_s=0.2)


def test_wait_running_returns_once_running():
    job = RunningJob()
    runner.wait_running(job, deadline_s=5)
    assert job.polls == 3


@pytest.mark.parametrize(
    ("jit", "bounded", "cluster", "held", "c1"),
    [
        ("auto", True, None, 51_000, True),  # the demo's input
        ("auto", True, None, 250_001, False),  # long enough for C2 to pay back
        ("auto", True, None, None, False),  # the broker did not say: the default
        ("auto", False, None, 10, False),  # a job that keeps running
        ("auto", True, "http://jm:8081", 10, False),  # a cluster's JVMs are its own
        ("c1", False, None, 10**9, True),
        ("tiered", True, None, 10, False),
    ],
)
def test_a_short_bounded_run_compiles_with_c1_only(monkeypatch, jit, bounded, cluster, held, c1):
    from dataclasses import replace

    from tallyflow.settings import Settings
    from tallyflow.stream import gateway
    from tallyflow.wire import topics

    monkeypatch.setattr(topics, "records_in", lambda settings, names: held)
    settings = replace(Settings.from_env(), jit=jit, flink_cluster=cluster)
    assert gateway.short_run(settings, bounded) is c1


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("", "-XX:TieredStopAtLevel=1"),
        ("-Xmx2g", "-Xmx2g -XX:TieredStopAtLevel=1"),
        ("-XX:TieredStopAtLevel=4", "-XX:TieredStopAtLevel=4"),  # the caller's choice wins
        ("-XX:-TieredCompilation", "-XX:-TieredCompilation"),
    ],
)
def test_c1_only_keeps_a_jit_choice_in_jvm_args(monkeypatch, given, expected):
    from tallyflow.stream import gateway

    monkeypatch.setenv("JVM_ARGS", given)
    gateway._c1_only()
    import os

    assert os.environ["JVM_ARGS"] == expected
