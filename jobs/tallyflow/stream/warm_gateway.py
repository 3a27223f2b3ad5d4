"""A warm JVM: the gateway PyFlink talks to (and the local MiniCluster it hosts) kept between local
runs, so a run pays the JVM's start, class loading, the planner's first plan and the embedded
interpreter's imports once, not every time (an empty bounded run: docs/performance.md).

The JVM is jobs/gateway's WarmGateway, started detached with the command PyFlink's own launcher
builds. A client finds it under the home's warm-gateway/ folder by a key of everything the JVM
fixed at its start (java, JVM options, classpath, PYTHONPATH, the working directory, the
environment's TALLYFLOW_, FLINK_, PYFLINK_ and JAVA_ variables, the tallyflow sources and the
jars): a client whose key differs starts its own, and the other ends after its idle time. One
client at a time holds the JVM (a file lock); a second one at the same moment starts a cold JVM
of its own, as before. A client that ends without `release` (killed, interrupted, failed) may
leave a job running, so the JVM ends with it (WarmGateway). TALLYFLOW_WARM_JVM=off turns it all
off; TALLYFLOW_WARM_JVM_IDLE says how long an unused JVM waits (default 10 minutes)."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

from tallyflow import private_files
from tallyflow.settings import REPO_ROOT, Settings
from tallyflow.stream import class_sharing

MAIN_CLASS = "org.apache.flink.client.python.WarmGateway"
KEYED_ENV_PREFIXES = ("TALLYFLOW_", "FLINK_", "PYFLINK_", "JAVA_")
START_TIMEOUT_S = 60.0
TOKEN_FILE = "auth-token"  # py4j's auth token of the JVM (0600), read by each client

_held: IO[str] | None = None  # the lock of the warm JVM this process holds
_how = "cold"  # what connect found: "reused", "started" or "cold"
# The working directory the JVM gets and is kept for, as the process started: embedded chdb
# changes it for a moment while it opens a store, which a launch thread can meet.
_CWD = os.getcwd()


def jar(settings: Settings) -> Path:
    """The WarmGateway jar `make setup` builds beside the other jars."""
    return settings.jars_dir / "gateway" / "tallyflow-warm-gateway.jar"


def connect(settings: Settings) -> str | None:
    """Point this process's PyFlink at a warm JVM: "reused" (one an earlier run left), "started"
    (none matched), or None (a cold JVM as before: warm JVMs are off, the jar is missing, or the
    matching one is in use). Call where PyFlink would launch its gateway, after the environment
    the JVM needs is set."""
    global _held, _how
    if not settings.warm_jvm or settings.flink_cluster or not jar(settings).is_file():
        return None
    from pyflink import java_gateway

    if java_gateway._gateway is not None:
        # This process already talks to a JVM (the bench's baseline ran on one): PyFlink keeps
        # that one, so a warm JVM started now would never get a client and idle for nothing.
        return None
    from pyflink.java_gateway import _find_flink_home

    _find_flink_home()  # sets FLINK_HOME, part of the key, as PyFlink's launch would
    parts = _key_parts(settings)
    folder = settings.home / "warm-gateway" / hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "key.txt").write_text("\n".join(parts) + "\n")  # what a JVM is kept for: which run may reuse it
    lock = (folder / "lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    try:
        port = _running_port(folder)
        how = "reused" if port else "started"
        os.environ["PYFLINK_GATEWAY_PORT"] = str(port or _start(folder, settings))
        from pyflink.java_gateway import get_gateway

        with _proxy_ids_of_this_client(), _authenticated((folder / TOKEN_FILE).read_text().strip()):
            get_gateway()
    except BaseException:
        lock.close()
        raise
    finally:
        # Read once, by the call above; a child process (the API server, a bench's reader) must
        # not find it and take over this process's JVM.
        os.environ.pop("PYFLINK_GATEWAY_PORT", None)
    _held, _how = lock, how
    return how


@contextlib.contextmanager
def _authenticated(token: str):
    """PyFlink's get_gateway, for a running JVM, connects with GatewayParameters(port, ...) and no
    auth token; the warm JVM requires one (WarmGateway.authenticatedServer). For this one call,
    the parameters carry it."""
    from pyflink import java_gateway

    plain = java_gateway.GatewayParameters
    java_gateway.GatewayParameters = functools.partial(plain, auth_token=token)
    try:
        yield
    finally:
        java_gateway.GatewayParameters = plain


@contextlib.contextmanager
def _proxy_ids_of_this_client():
    """py4j names the Python objects it hands to Java p0, p1, ... in every client, and Java tells
    the client to drop one when its proxy is collected. An earlier client's proxies (its Watchdog,
    its PythonFunctionFactory), collected while this client is connected, then named this client's
    objects: its Watchdog vanished mid-run ("Object ID unknown") and the JVM took it for gone.
    Numbered from this moment in nanoseconds, no two clients share a name."""
    from py4j import java_gateway as py4j

    original = py4j.PythonProxyPool

    class Pool(original):
        def __init__(self) -> None:
            super().__init__()
            self.next_id = time.time_ns()

    py4j.PythonProxyPool = Pool
    try:
        yield
    finally:
        py4j.PythonProxyPool = original


def release() -> None:
    """Leave the warm JVM to the next run: this process's job has ended (call only then)."""
    global _held
    if _held is None:
        return
    from pyflink.java_gateway import get_gateway

    with contextlib.suppress(Exception):  # a JVM already gone leaves nothing to release
        get_gateway().entry_point.put("Released", True)
    _held.close()
    _held = None


def stop_idle(settings: Settings) -> int:
    """End this home's warm JVMs that no run holds (`tallyflow stack down`); how many ended."""
    stopped = 0
    for info in sorted((settings.home / "warm-gateway").glob("*/gateway.json")):
        with (info.parent / "lock").open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a run holds it: it ends after that run's idle time
            if _running_port(info.parent) is not None:
                os.kill(json.loads(info.read_text())["pid"], signal.SIGTERM)
                stopped += 1
            info.unlink()
    return stopped


def connected() -> bool:
    return _held is not None


def how() -> str:
    """This process's JVM: "reused" (warm, left by an earlier run), "started" (warm, started by
    this run) or "cold" (PyFlink's own)."""
    return _how


def _key_parts(settings: Settings) -> list[str]:
    """Everything a warm JVM fixed at its start, one line each (key.txt)."""
    java, classpath = class_sharing.gateway_classpath()
    sources = sorted((REPO_ROOT / "jobs" / "tallyflow").rglob("*.py"))
    return [
        sys.executable,
        _CWD,
        os.environ.get("JVM_ARGS", ""),
        os.environ.get("PYTHONPATH", ""),
        *(key_line(k, v) for k, v in sorted(os.environ.items()) if k.startswith(KEYED_ENV_PREFIXES)),
        class_sharing.stamp(java),
        *(class_sharing.stamp(p) for p in classpath),
        class_sharing.stamp(str(jar(settings))),
        *(class_sharing.stamp(str(p)) for p in sorted((settings.jars_dir / "flink").glob("*.jar"))),
        *(class_sharing.stamp(str(p)) for p in sources),
    ]


def key_line(name: str, value: str) -> str:
    """One variable's line in key.txt: a digest, not the value, so key.txt never shows a token or a
    password (a ClickHouse URL's)."""
    return f"{name}=sha256:{hashlib.sha256(value.encode()).hexdigest()[:16]}"


def _running_port(folder: Path) -> int | None:
    """The port of this key's JVM when it still runs and answers."""
    try:
        info = json.loads((folder / "gateway.json").read_text())
        os.kill(info["pid"], 0)
        with socket.create_connection(("127.0.0.1", info["port"]), timeout=1.0):
            return int(info["port"])
    except (OSError, ValueError, KeyError):
        return None


def _start(folder: Path, settings: Settings) -> int:
    """Start WarmGateway detached (its own session: a terminal's Ctrl-C or hang-up reaches the
    client, which then leaves without releasing it), logging to the folder."""
    from pyflink import pyflink_gateway_server as server

    env = dict(os.environ)
    # WarmGateway after every other jar: the class archive (class_sharing) is checked against the
    # classpath's beginning, so it still maps.
    env["HADOOP_CLASSPATH"] = os.pathsep.join([p for p in (env.get("HADOOP_CLASSPATH"), str(jar(settings))) if p])
    server.prepare_environment_variables(env)
    with tempfile.TemporaryDirectory() as tmp:
        info_path = Path(tmp) / "connection.info"
        env["_PYFLINK_CONN_INFO_PATH"] = str(info_path)
        # A new token per JVM, in a file only this user reads: py4j's auth for the gateway port.
        private_files.write(folder / TOKEN_FILE, secrets.token_urlsafe(32))
        env["TALLYFLOW_GATEWAY_TOKEN_FILE"] = str(folder / TOKEN_FILE)
        idle_ms = int(settings.warm_jvm_idle.total_seconds() * 1000)
        # The command PyFlink's launch_gateway_server_process builds, with this main class.
        command = [
            server.find_java_executable(),
            *env.get("JVM_ARGS", "").split(),
            "-XX:+IgnoreUnrecognizedVMOptions",
            "--add-opens=jdk.proxy2/jdk.proxy2=ALL-UNNAMED",
            *server.get_jvm_opts(env),
            *server.construct_log_settings(env),
            "-cp",
            os.pathsep.join([server.construct_flink_classpath(env), server.construct_hadoop_classpath(env)]),
            MAIN_CLASS,
            str(idle_ms),
        ]
        with (folder / "gateway.log").open("ab") as log:
            process = subprocess.Popen(
                [c for c in command if c],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                cwd=_CWD,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not info_path.is_file():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the warm JVM did not start; see {folder / 'gateway.log'}")
            time.sleep(0.05)  # the JVM writes its port as soon as the gateway listens
        port = struct.unpack("!I", info_path.read_bytes()[:4])[0]
    private_files.write(folder / "gateway.json", json.dumps({"pid": process.pid, "port": port}))
    return int(port)
