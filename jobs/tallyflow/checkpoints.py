"""Where a pipeline's checkpoints live and which one `tallyflow run --resume` restores.

Each pipeline (topic prefix) checkpoints under $TALLYFLOW_HOME/checkpoints/<prefix>/<job id>/
chk-<n>/; checkpoints are retained when a job is cancelled or killed, so a later run can restore
the newest complete one (its `_metadata` is written last). A job that finished its bounded input
is marked `_finished`: its final checkpoint holds only finished operators, nothing to resume.
"""

from __future__ import annotations

import json
from pathlib import Path

from tallyflow.settings import Settings

FINISHED = "_finished"


def root(settings: Settings) -> Path:
    return settings.home / "checkpoints" / (settings.topic_prefix.rstrip(".") or "default")


def latest(settings: Settings) -> Path | None:
    """The newest complete checkpoint of this pipeline, unless the newest thing that happened to it
    is a run that finished: then its output is final and an older checkpoint must not be replayed."""
    base = root(settings)
    if not base.is_dir():
        return None
    found = [(chk / "_metadata", chk) for job in base.iterdir() if job.is_dir()
             for chk in job.glob("chk-*") if (chk / "_metadata").is_file()]
    found += [(job / FINISHED, None) for job in base.iterdir() if (job / FINISHED).is_file()]
    if not found:
        return None
    return max(found, key=lambda f: f[0].stat().st_mtime_ns)[1]


def mark_finished(settings: Settings, job_id: str) -> None:
    job = root(settings) / job_id
    if job.is_dir():
        (job / FINISHED).touch()


BOUNDS = "_bounded_end.json"


def write_bounds(settings: Settings, job_id: str, ends: dict[str, int]) -> None:
    """Where a bounded run stops, kept next to its checkpoints for a resumed run."""
    job = root(settings) / job_id
    job.mkdir(parents=True, exist_ok=True)
    (job / BOUNDS).write_text(json.dumps(ends, sort_keys=True))


def read_bounds(checkpoint: Path) -> dict[str, int] | None:
    path = checkpoint.parent / BOUNDS
    return json.loads(path.read_text()) if path.is_file() else None
