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
