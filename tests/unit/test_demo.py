"""`make demo`'s last step honours TALLYFLOW_HOME: the operator token goes under that home, 0600,
and the printed URLs carry it."""

from __future__ import annotations

import os
import stat
import subprocess

from tallyflow.settings import REPO_ROOT


def test_demo_access_writes_the_operator_token_under_tallyflow_home(tmp_path):
    home = tmp_path / "elsewhere"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLYFLOW_")} | {"TALLYFLOW_HOME": str(home)}
    # The demo's run leaves its catalog in the store; the customer token is checked against it.
    tallyflow = str(REPO_ROOT / ".venv" / "bin" / "tallyflow")
    applied = subprocess.run(
        [tallyflow, "catalog", "apply", "deploy/demo/catalog.yaml"], cwd=REPO_ROOT, env=env, capture_output=True
    )
    assert applied.returncode == 0, applied.stderr
    done = subprocess.run(
        ["make", "-s", "demo-access"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    token_file = home / "admin-token"
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert f"#token={token}" in done.stdout
    assert stat.S_IMODE((home / "tokens.json").stat().st_mode) == 0o600
    assert (
        not (REPO_ROOT / ".tallyflow" / "admin-token").exists()
        or token not in (REPO_ROOT / ".tallyflow" / "admin-token").read_text()
    )


def test_an_existing_token_file_is_kept_and_made_private(tmp_path):
    from tallyflow import private_files

    path = tmp_path / "admin-token"
    path.write_text("kept\n")
    path.chmod(0o644)
    assert private_files.ensure_token(path) == "kept"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
