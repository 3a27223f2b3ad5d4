"""Where a pipeline's Flink state lives between runs, and which snapshot the next run restores.

Each pipeline (topic prefix) checkpoints under $TALLYFLOW_HOME/checkpoints/<prefix>/<job id>/
chk-<n>/ (retained when a job is cancelled or killed) and ends a bounded run with a savepoint under
savepoints/. Every run restores the newest complete one of either kind (its `_metadata` is written
last), so dedup state, windows, rated positions, credit balances and offsets continue from run to
run; `tallyflow run --fresh` starts without it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tallyflow.settings import Settings

SAVEPOINTS = "savepoints"


def root(settings: Settings) -> Path:
    return settings.home / "checkpoints" / (settings.topic_prefix.rstrip(".") or "default")


def savepoints(settings: Settings) -> Path:
    return root(settings) / SAVEPOINTS


def latest(settings: Settings) -> Path | None:
    """The newest complete checkpoint or savepoint of this pipeline."""
    base = root(settings)
    if not base.is_dir():
        return None
    found = [meta.parent for meta in base.glob("*/*/_metadata")]
    return max(found, key=lambda snapshot: (snapshot / "_metadata").stat().st_mtime_ns, default=None)


def prune(settings: Settings, keep: Path) -> None:
    """After a run ended with the savepoint `keep`, everything older of this pipeline can go: a
    savepoint is self-contained (a full copy, also in the native format), and a restore never reads
    an older snapshot."""
    keep = keep.resolve()
    for directory in root(settings).iterdir():
        candidates = directory.iterdir() if directory.name == SAVEPOINTS else [directory]
        for path in candidates:
            if path.is_dir() and path.resolve() != keep:
                shutil.rmtree(path, ignore_errors=True)
