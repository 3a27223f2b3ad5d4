"""Which snapshot the next run continues, and what a run that ended with a savepoint clears."""

from __future__ import annotations

import os
from dataclasses import replace

from tallyflow.settings import Settings
from tallyflow.stream import checkpoints


def _touch(path, t: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    os.utime(path, ns=(t, t))


def test_the_newest_complete_checkpoint_or_savepoint_is_continued(tmp_path):
    s = replace(Settings.from_env(), home=tmp_path, topic_prefix="p.")
    assert checkpoints.latest(s) is None
    base = checkpoints.root(s)
    _touch(base / "job-a" / "chk-3" / "_metadata", 1_000)
    _touch(base / "job-a" / "chk-4" / "x", 1_500)  # incomplete: no _metadata
    assert checkpoints.latest(s) == base / "job-a" / "chk-3"
    _touch(checkpoints.savepoints(s) / "savepoint-a1" / "_metadata", 2_000)
    assert checkpoints.latest(s) == checkpoints.savepoints(s) / "savepoint-a1"
    _touch(base / "job-b" / "chk-1" / "_metadata", 3_000)  # a run that continued it, then was killed
    assert checkpoints.latest(s) == base / "job-b" / "chk-1"
    other = replace(s, topic_prefix="q.")
    assert checkpoints.latest(other) is None  # pipelines never share state


def test_prune_keeps_only_the_savepoint_a_run_ended_with(tmp_path):
    s = replace(Settings.from_env(), home=tmp_path, topic_prefix="p.")
    base = checkpoints.root(s)
    _touch(base / "job-a" / "chk-3" / "_metadata", 1_000)
    _touch(checkpoints.savepoints(s) / "savepoint-a1" / "_metadata", 2_000)
    _touch(base / "job-b" / "chk-7" / "_metadata", 3_000)
    _touch(checkpoints.savepoints(s) / "savepoint-b1" / "_metadata", 4_000)
    checkpoints.prune(s, checkpoints.savepoints(s) / "savepoint-b1")
    assert sorted(p.relative_to(base).as_posix() for p in base.rglob("*")) == [
        "savepoints",
        "savepoints/savepoint-b1",
        "savepoints/savepoint-b1/_metadata",
    ]
    assert checkpoints.latest(s) == checkpoints.savepoints(s) / "savepoint-b1"
