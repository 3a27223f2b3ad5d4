"""Which checkpoint `run --resume` restores."""

from __future__ import annotations

import os
from dataclasses import replace

from tallyflow import checkpoints
from tallyflow.settings import Settings


def _touch(path, t: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    os.utime(path, ns=(t, t))


def test_resume_takes_the_newest_checkpoint_unless_a_later_run_finished(tmp_path):
    s = replace(Settings.from_env(), home=tmp_path, topic_prefix="p.")
    assert checkpoints.latest(s) is None
    base = checkpoints.root(s)
    _touch(base / "job-a" / "chk-3" / "_metadata", 1_000)
    _touch(base / "job-a" / "chk-4" / "x", 1_500)  # incomplete: no _metadata
    assert checkpoints.latest(s) == base / "job-a" / "chk-3"
    _touch(base / "job-b" / "chk-1" / "_metadata", 2_000)
    assert checkpoints.latest(s) == base / "job-b" / "chk-1"
    _touch(base / "job-b" / checkpoints.FINISHED, 3_000)
    assert checkpoints.latest(s) is None  # job-b finished after job-a's checkpoint: nothing to resume
    _touch(base / "job-c" / "chk-1" / "_metadata", 4_000)
    assert checkpoints.latest(s) == base / "job-c" / "chk-1"
