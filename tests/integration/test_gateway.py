"""The gateway JVM's embedded Python (thread mode): what start_gateway imports into it ahead of the
job is what every Python operator's task then finds imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tallyflow.settings import REPO_ROOT

pytestmark = pytest.mark.integration

# In a process of its own: this one's gateway may already have run Python operators.
SCRIPT = """
import json
from tallyflow.stream import gateway

def imported():
    interpreter = gateway.embedded_interpreter()
    try:
        interpreter.exec(f"import sys; found = [m for m in {gateway.EMBEDDED_IMPORTS!r} if m in sys.modules]")
        return list(interpreter.get("found"))
    finally:
        interpreter.close()

gateway._prepare_gateway(None)
before = imported()
from pyflink.java_gateway import get_gateway
pool = get_gateway()._gateway_client.deque
busy = pool.pop()  # the job's planning holds a connection while the warm-up runs
gateway._warm_embedded_python()
opened = len(pool)
pool.append(busy)
print(json.dumps({"before": before, "after": imported(), "opened": opened}))
"""


def test_the_warm_up_imports_what_the_python_operators_need_into_the_shared_interpreter():
    from tallyflow.stream import gateway

    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["before"] == []  # a fresh JVM's interpreter has none of them
    # A later interpreter in the same JVM (a task's) finds every one imported.
    assert seen["after"] == list(gateway.EMBEDDED_IMPORTS)
    # The warm-up opened no connection in the pool the job is planned through: a JVM thread of
    # such a connection lacks the job's jars in its context class loader.
    assert seen["opened"] == 0
