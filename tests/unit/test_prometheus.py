"""The shipped Prometheus rules parse and use only metrics tallyflow exports."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tallyflow.settings import REPO_ROOT

RULES = REPO_ROOT / "deploy" / "prometheus" / "rules.yml"


def test_promtool_accepts_the_rules():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is needed (make setup installs Debian's prometheus package)")
    proc = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 14 rules found" in proc.stdout


def test_rules_name_only_exported_metrics():
    from tallyflow.land import metrics as loader_metrics  # noqa: F401  (registers the loader's)
    from tallyflow.serve import metrics

    exported = {m.name for m in metrics.REGISTRY.collect()} | {
        "tallyflow_loader_lag_records",
        "tallyflow_store_up",
        "tallyflow_store_rows",
        "tallyflow_invoice_open_customers",
        "tallyflow_invoice_overdue_seconds",
    }
    used = set(re.findall(r"\b(tallyflow_[a-z_]+?)(?:_bucket|_total)?\b", RULES.read_text()))
    assert used <= exported, used - exported
