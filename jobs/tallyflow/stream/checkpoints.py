"""Where a pipeline's Flink state lives between runs, and which snapshot the next run restores.

Each pipeline (topic prefix) checkpoints under $TALLYFLOW_HOME/checkpoints/<prefix>/<job id>/
chk-<n>/ (retained when a job is cancelled or killed) and ends a bounded run with a savepoint under
savepoints/. Every run restores the newest complete one of either kind (its `_metadata` is written
last), so dedup state, windows, rated positions, credit balances and offsets continue from run to
run; `tallyflow run --fresh` starts without it.

On a Flink cluster the cluster's own config.yaml says where checkpoints and savepoints go; each run
remembers its job's checkpoint directory and its savepoint there (in cluster-snapshots under this
pipeline's root), and the next run restores the newest of those too, when it can read them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlparse

from tallyflow.settings import Settings

SAVEPOINTS = "savepoints"
REMEMBERED = "cluster-snapshots"  # a cluster job's checkpoint directory or savepoint, one URI a line


def root(settings: Settings) -> Path:
    return settings.home / "checkpoints" / (settings.topic_prefix.rstrip(".") or "default")


def savepoints(settings: Settings) -> Path:
    return root(settings) / SAVEPOINTS


def remember(settings: Settings, location: str) -> None:
    """Keeps a cluster job's checkpoint directory (or a savepoint it took) for the next run."""
    record = root(settings) / REMEMBERED
    record.parent.mkdir(parents=True, exist_ok=True)
    with record.open("a") as f:
        f.write(location.rstrip("/") + "\n")


def _remembered(settings: Settings) -> list[Path]:
    """The remembered locations this process can read (file: URIs; object stores are Flink's)."""
    record = root(settings) / REMEMBERED
    lines = record.read_text().split() if record.is_file() else []
    return [Path(urlparse(u).path) for u in dict.fromkeys(lines) if urlparse(u).scheme in ("file", "")]


def latest(settings: Settings) -> Path | None:
    """The newest complete checkpoint or savepoint of this pipeline."""
    base = root(settings)
    found = [meta.parent for meta in base.glob("*/*/_metadata")] if base.is_dir() else []
    for location in _remembered(settings):
        found += [meta.parent for meta in [*location.glob("chk-*/_metadata"), location / "_metadata"] if meta.is_file()]
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
    remembered = _remembered(settings)
    for path in remembered:
        if path.resolve() != keep:
            shutil.rmtree(path, ignore_errors=True)
    if remembered:
        (root(settings) / REMEMBERED).write_text(keep.as_uri() + "\n")
