"""Files that hold a secret (tokens, keys, passwords): mode 0600 from the moment they exist,
whoever writes them, and replaced atomically so a reader never sees half of one."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path


def write(path: Path, text: str) -> None:
    """Write `text` to `path` (0600), through a temporary file renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)  # an existing temporary file keeps its mode through O_CREAT
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def ensure_token(path: Path) -> str:
    """The token in `path`, made (0600) when the file is missing or empty; an existing file is
    brought to 0600 too (an older version wrote it 0644)."""
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if not token:
        token = secrets.token_urlsafe(24)
        write(path, token + "\n")
    os.chmod(path, 0o600)
    return token


if __name__ == "__main__":  # make demo: python -m tallyflow.private_files PATH
    ensure_token(Path(sys.argv[1]))
