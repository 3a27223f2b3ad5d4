"""Progress lines on a terminal (tqdm on stderr). Nothing is printed when stderr is not a
terminal or the output is `--format json`: scripts see only the result."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def bar(fmt: str, desc: str, total: int | None = None, unit: str = "events") -> Any:
    return tqdm(
        total=total,
        desc=desc,
        unit=f" {unit}",
        unit_scale=True,
        dynamic_ncols=True,
        leave=False,
        file=sys.stderr,
        disable=fmt == "json" or not sys.stderr.isatty(),
    )


def counter(fmt: str, desc: str, unit: str = "events", total: int | None = None):
    """A callback that sets the bar to a running count; call .close() on the returned bar."""
    b = bar(fmt, desc, total, unit)

    def update(count: int, postfix: str = "") -> None:
        if count > b.n:
            b.update(count - b.n)
        if postfix:
            b.set_postfix_str(postfix, refresh=False)

    return b, update
