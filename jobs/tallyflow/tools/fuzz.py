"""`make fuzz`: hostile inputs against what a user or a customer can reach, counting tracebacks,
500s and hangs (each must be zero).

- `produce --file`: one file of generated lines through the real CLI and broker; every line is
  either sent or reported by its number, and the CLI exits without a traceback.
- `catalog validate`: generated catalogs through the loader (and a sample through the real CLI);
  every one loads or is refused with a UserError within HANG_SECONDS.
- The API's parameters: generated paths and query strings against `tallyflow serve` on a store
  with the demo catalog; every answer is below 500, within HANG_SECONDS.

Cases are mutations of valid inputs (a seed makes them repeatable): digits of other scripts,
control, bidi and zero-width characters, lone surrogates, huge and deep values, repeated keys,
bytes that are not UTF-8. `python -m tallyflow.tools.fuzz --cases N` prints the report as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tallyflow.settings import REPO_ROOT

HANG_SECONDS = 10.0
TALLYFLOW = [sys.executable, "-m", "tallyflow.cli"]
DEMO_CATALOG = REPO_ROOT / "deploy" / "demo" / "catalog.yaml"

# What a hostile user writes where a value goes.
HOSTILE = [
    "",
    " ",
    "\x00",
    "\x1b[31m",
    "\n",
    "\u202e",
    "\u200b",
    "\ufeff",
    "\ud800",
    "\u0662\u0660\u0662\u0666",
    "\uff11",
    "-1",
    "0",
    "1e100000",
    "1e-999999999",
    "NaN",
    "Infinity",
    "9" * 5000,
    "0." + "0" * 40 + "1",
    "x" * 70_000,
    "[" * 2000,
    "{",
    '"',
    "%00",
    "%ff",
    "../../etc/passwd",
    "' OR 1=1 --",
    "{customer:String}",
    "2026-13",
    "0001-01",
    "9999-12",
    "2026-02-30",
    "20261101",
    "*",
]


class Report:
    def __init__(self) -> None:
        self.cases: dict[str, int] = {}
        self.tracebacks: list[str] = []
        self.server_errors: list[str] = []
        self.hangs: list[str] = []

    def count(self, target: str, n: int = 1) -> None:
        self.cases[target] = self.cases.get(target, 0) + n

    def as_dict(self) -> dict:
        return {
            "cases": sum(self.cases.values()),
            "by_target": self.cases,
            "tracebacks": len(self.tracebacks),
            "server_errors": len(self.server_errors),
            "hangs": len(self.hangs),
            "examples": (self.tracebacks + self.server_errors + self.hangs)[:5],
        }


def _mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """A value with one hostile change somewhere inside it."""
    if isinstance(value, dict) and value and depth < 4 and rng.random() < 0.7:
        key = rng.choice(list(value))
        out = dict(value)
        if rng.random() < 0.2:
            out[rng.choice(HOSTILE)[:300]] = out.pop(key)
        else:
            out[key] = _mutate(rng, out[key], depth + 1)
        return out
    if isinstance(value, list) and value and depth < 4 and rng.random() < 0.7:
        items = list(value)
        i = rng.randrange(len(items))
        items[i] = _mutate(rng, items[i], depth + 1)
        return items
    choice = rng.random()
    if choice < 0.5:
        return rng.choice(HOSTILE)
    if choice < 0.7 and isinstance(value, str):
        cut = rng.randrange(len(value) + 1)
        return value[:cut] + rng.choice(HOSTILE) + value[cut:]
    if choice < 0.8:
        return rng.choice([None, True, 1.5, 10**30, -(10**30), [], {}, [value], {"x": value}])
    return value


def _event(rng: random.Random, n: int) -> dict:
    return {
        "event_id": f"fz-{n}",
        "customer_id": f"cust_{rng.randint(1, 10):03d}",
        "event_type": rng.choice(["api_call", "tokens", "storage"]),
        "event_time": "2026-10-05T10:00:00Z",
        "values": {"tokens": str(rng.randint(0, 10**6)), "calls": "1"},
        "dimensions": {"model": "m-large", "region": "eu"},
    }


def _line(rng: random.Random, n: int) -> bytes:
    event = _mutate(rng, _event(rng, n))
    text = json.dumps(event, ensure_ascii=rng.random() < 0.5)
    kind = rng.random()
    if kind < 0.05:
        text = text[:-1] + ', "values": {"calls": "1"}}'  # a repeated key
    elif kind < 0.08:
        text = "[" * rng.choice([100, 10_000, 100_000]) + "]" * 10
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.03:
        data = data[: rng.randrange(len(data))] + bytes([rng.randrange(128, 256)]) + data[rng.randrange(len(data)) :]
    return data.replace(b"\n", b" ")


def fuzz_produce(report: Report, env: dict, rng: random.Random, cases: int, work: Path) -> None:
    lines = [_line(rng, n) for n in range(cases)]
    path = work / "hostile.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    started = time.monotonic()
    try:
        done = subprocess.run(
            [*TALLYFLOW, "produce", "--file", str(path), "--format", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=max(120.0, cases / 50),
            cwd=REPO_ROOT,
        )
    except subprocess.TimeoutExpired:
        report.hangs.append(f"produce --file of {cases} lines ran over {time.monotonic() - started:.0f} s")
        return
    report.count("produce", cases)
    if "Traceback" in done.stderr or done.returncode not in (0, 1):
        report.tracebacks.append(f"produce: exit {done.returncode}: {done.stderr[-300:]}")
        return
    try:
        sent = json.loads(done.stdout)
    except ValueError:
        report.tracebacks.append(f"produce printed no report: {done.stdout[-200:]}")
        return
    named = sum(1 for line in done.stderr.splitlines() if line.startswith("line "))
    blank = sum(1 for raw in lines if not raw.strip())
    if sent["sent"] + named + blank != cases:
        report.tracebacks.append(f"produce: {sent} and {named} lines named do not add up to {cases}")


def _catalog_doc(rng: random.Random) -> Any:
    import yaml

    return _mutate(rng, yaml.safe_load(DEMO_CATALOG.read_text()))


def fuzz_catalogs(report: Report, env: dict, rng: random.Random, cases: int, work: Path) -> None:
    import yaml

    from tallyflow.core import catalog
    from tallyflow.errors import UserError

    for i in range(cases):
        doc = _catalog_doc(rng)
        as_json = rng.random() < 0.3
        path = work / f"c{i % 8}.{'json' if as_json else 'yaml'}"
        try:
            text = json.dumps(doc) if as_json else yaml.safe_dump(doc, allow_unicode=rng.random() < 0.5)
        except ValueError:
            continue
        path.write_text(text, errors="surrogatepass")
        started = time.monotonic()
        try:
            catalog.load(path)
        except UserError:
            pass
        except Exception as e:  # a traceback the user would see
            report.tracebacks.append(f"catalog {i}: {type(e).__name__}: {str(e)[:200]}")
        if time.monotonic() - started > HANG_SECONDS:
            report.hangs.append(f"catalog {i} took {time.monotonic() - started:.1f} s")
        report.count("catalog validate")
    # A sample through the real CLI: one line, exit 0 or 1, never a traceback.
    for i in range(min(20, cases)):
        path = work / "cli.yaml"
        path.write_text(yaml.safe_dump(_catalog_doc(rng)), errors="surrogatepass")
        done = subprocess.run(
            [*TALLYFLOW, "catalog", "validate", str(path)], env=env, capture_output=True, text=True, timeout=60
        )
        if "Traceback" in done.stderr or done.returncode not in (0, 1):
            report.tracebacks.append(f"catalog validate (CLI) {i}: {done.stderr[-300:]}")


def _api_paths(rng: random.Random) -> str:
    routes = [
        "/api/customers/{c}/usage?period={p}",
        "/api/customers/{c}/usage/daily?from={d}&to={d2}",
        "/api/customers/{c}/invoices/{p}",
        "/api/customers/{c}/invoices",
        "/api/customers/{c}/balance",
        "/api/customers/{c}/alerts",
        "/api/customers/{c}",
        "/api/customers?{q}={v}",
        "/api/pipeline?{q}={v}",
        "/customers/{c}",
        "/{p}",
    ]
    values = {"c": "cust_001", "p": "2026-10", "d": "2026-10-01", "d2": "2026-10-31", "q": "limit", "v": "10"}
    key = rng.choice(list(values))
    values[key] = str(_mutate(rng, values[key]))[:3000]
    safe = {k: quote(v.encode("utf-8", "surrogatepass"), safe="") for k, v in values.items()}
    return rng.choice(routes).format(**safe)


def fuzz_api(report: Report, env: dict, rng: random.Random, cases: int, admin: str) -> None:
    import httpx

    port = _free_port()
    server = subprocess.Popen(
        [*TALLYFLOW, "serve", "--address", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, server)
        with httpx.Client(base_url=url, timeout=HANG_SECONDS) as client:
            for _ in range(cases):
                path = _api_paths(rng)
                headers = {"Authorization": f"Bearer {admin}"} if rng.random() < 0.9 else {}
                try:
                    answer = client.get(path, headers=headers)
                except httpx.TimeoutException:
                    report.hangs.append(f"GET {path[:200]}")
                    continue
                except httpx.HTTPError as e:
                    report.server_errors.append(f"GET {path[:200]}: {type(e).__name__}")
                    continue
                report.count("api")
                if answer.status_code >= 500:
                    report.server_errors.append(f"GET {path[:200]}: {answer.status_code} {answer.text[:200]}")
    finally:
        server.terminate()
        try:
            _, err = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            _, err = server.communicate()
        if "Traceback" in (err or "") or server.returncode not in (0, -15):
            report.tracebacks.append(f"serve: exit {server.returncode}: {(err or '')[-3000:]}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, server: subprocess.Popen) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"tallyflow serve exited: {server.stderr.read() if server.stderr else ''}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)  # the server binds and opens its store; bounded by the deadline
    raise RuntimeError(f"{url} did not answer")


def run(cases: int, seed: int, base_env: dict[str, str] | None = None) -> dict:
    """Splits `cases` over the three targets: 40% produce lines, 30% catalogs, 30% API requests.
    `base_env`: the environment the CLI runs in (default this process's)."""
    rng = random.Random(seed)
    report = Report()
    admin = secrets.token_urlsafe(24)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tallyflow-fuzz-") as tmp:
        work = Path(tmp)
        env = {
            **(base_env if base_env is not None else os.environ),
            "TALLYFLOW_CLICKHOUSE_URL": f"chdb://{work / 'store'}",
            "TALLYFLOW_TOPIC_PREFIX": f"fuzz{seed}.",
            "TALLYFLOW_ADMIN_TOKEN": admin,
            "TALLYFLOW_SERVE_RATE": "0",  # the fuzzer is one client asking fast: no 429s
        }
        for step in (["stack", "up"], ["catalog", "apply", str(DEMO_CATALOG)]):
            subprocess.run([*TALLYFLOW, *step], env=env, check=True, capture_output=True, timeout=300, cwd=REPO_ROOT)
        fuzz_produce(report, env, rng, cases * 4 // 10, work)
        fuzz_catalogs(report, env, rng, cases * 3 // 10, work)
        fuzz_api(report, env, rng, cases - cases * 4 // 10 - cases * 3 // 10, admin)
    return {**report.as_dict(), "seed": seed, "seconds": round(time.monotonic() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=12_000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    result = run(args.cases, args.seed)
    print(json.dumps(result, indent=2))
    return 0 if not (result["tracebacks"] or result["server_errors"] or result["hangs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
