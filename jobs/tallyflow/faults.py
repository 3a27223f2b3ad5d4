"""Fault injection for tests and `make chaos` (TALLYFLOW_FAULT), parsed here and only here.

Each fault fires once per pipeline and leaves a marker file under $TALLYFLOW_HOME/faults/, so a
restarted process does not fire it again and a test can tell that it really fired:

* drawdown-after:N: the credit drawdown fails once after N usage rows (Flink restarts the job);
* loader-after-insert:N: the process dies once after the loader's N-th insert, before its commit;
* clickhouse-down:S: every insert fails for S seconds from the first one (embedded chdb cannot be
  cut from outside).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tallyflow.errors import UserError

KINDS = ("drawdown-after", "loader-after-insert", "clickhouse-down")


class InjectedCrash(BaseException):  # noqa: N818 (not an error: a simulated death)
    """loader-after-insert fired: the process is to die now, between an insert and its offset
    commit. The command line exits 137 on it (as a SIGKILL would), with no cleanup on the way."""


@dataclass(frozen=True)
class Fault:
    kind: str
    n: int

    def marker(self, home: Path, topic_prefix: str) -> Path:
        """The file that records this fault fired for the pipeline of `topic_prefix`."""
        return home / "faults" / f"{topic_prefix}{self.kind}-{self.n}"

    def fire_once(self, home: Path, topic_prefix: str) -> bool:
        """True the first time it is asked (and records it); False ever after."""
        marker = self.marker(home, topic_prefix)
        if marker.exists():
            return False
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        return True


def parse(text: str) -> Fault | None:
    """TALLYFLOW_FAULT's value; an unknown or malformed fault is an error at start."""
    if not text.strip():
        return None
    kind, _, n = text.strip().partition(":")
    if kind not in KINDS or not n.isdigit():
        raise UserError(
            f"TALLYFLOW_FAULT '{text}' is not one of drawdown-after:N, loader-after-insert:N, clickhouse-down:S"
        )
    return Fault(kind, int(n))
