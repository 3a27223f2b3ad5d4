"""API tokens (stored hashed, scoped, revocable) and the CLI's conveniences."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

from tallyflow.serve import tokens
from tallyflow.settings import REPO_ROOT, Settings

CLI = [sys.executable, "-m", "tallyflow.cli"]


def test_tokens_are_hashed_scoped_and_revocable(tmp_path, monkeypatch):
    monkeypatch.setenv("TALLYFLOW_HOME", str(tmp_path))
    settings = replace(Settings.from_env(), admin_token="root-token")
    made = tokens.create(settings, "c1")
    stored = (tmp_path / "tokens.json").read_text()
    assert made["token"] not in stored and (tmp_path / "tokens.json").stat().st_mode & 0o777 == 0o600
    assert tokens.resolve(settings, made["token"]).scope == "c1"
    assert tokens.resolve(settings, "root-token").scope == tokens.ADMIN
    assert tokens.resolve(settings, "tf_guess") is None
    tokens.revoke(settings, made["id"])
    assert tokens.resolve(settings, made["token"]).scope is None
    assert "root-token" not in repr(settings)


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=REPO_ROOT, env=env)


def test_version_and_format_before_the_subcommand(tmp_path):
    v = run("--version")
    assert v.returncode == 0 and v.stdout.startswith("tallyflow ")
    quote = ("quote", "--catalog", "deploy/demo/catalog.yaml", "--plan", "starter", "--meter", "api_calls")
    quote += ("--quantity", "1000", "--at", "2026-11-15T00:00:00Z")
    before = run("--format", "json", *quote)
    after = run(*quote, "--format", "json")
    assert before.returncode == 0 and json.loads(before.stdout) == json.loads(after.stdout)


def test_stdout_holds_only_the_commands_output():
    """A child that prints (the JVM's stack trace at a job's shutdown) lands on stderr."""
    code = (
        "import subprocess, sys; from tallyflow.cli import _reserve_stdout; _reserve_stdout(); "
        "subprocess.run(['echo', 'from a child']); print('{\"own\": 1}')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert json.loads(proc.stdout) == {"own": 1}
    assert "from a child" in proc.stderr


def test_shell_completion_is_offered(tmp_path):
    import os

    env = {
        **os.environ,
        "_ARGCOMPLETE": "1",
        "COMP_LINE": "tallyflow to",
        "COMP_POINT": "12",
        "_ARGCOMPLETE_STDOUT_FILENAME": str(tmp_path / "out"),
    }
    subprocess.run([*CLI], capture_output=True, text=True, cwd=REPO_ROOT, env=env)
    assert "token" in (tmp_path / "out").read_text()


def test_token_cli_without_customer_is_one_line(tmp_path):
    import os

    p = run("token", "create", env={**os.environ, "TALLYFLOW_HOME": str(tmp_path)})
    assert p.returncode == 1 and p.stderr.strip() == "tallyflow: token create needs --customer C"
