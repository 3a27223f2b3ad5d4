"""`tallyflow cluster up | down | status`: a standalone Flink session cluster on loopback, from the
Flink distribution inside the PyFlink wheel (its bin/, lib/, opt/ and plugins/).

A JobManager and TALLYFLOW_FLINK_TASKMANAGERS TaskManagers (default 2, so a job whose TaskManager
is killed restarts on the other) run as their own processes, each recorded in a pid file under
$TALLYFLOW_HOME/flink/pids. `up` starts only what is missing (twice is fine, and it brings a killed
TaskManager back), `down` stops only processes `up` started. The configuration is generated
(flink/conf/config.yaml): RocksDB with the project's options, checkpoint and savepoint
directories, restart strategy, heartbeats short enough to notice a lost TaskManager in seconds,
and the Prometheus reporter.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tallyflow.errors import UserError
from tallyflow.settings import REPO_ROOT, Settings
from tallyflow.stream import environment

JOBMANAGER = "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint"
TASKMANAGER = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"


def distribution() -> Path:
    """The Flink distribution PyFlink ships (bin/, lib/, opt/, plugins/)."""
    import pyflink

    return Path(pyflink.__file__).parent


@dataclass(frozen=True)
class ClusterPaths:
    root: Path

    conf = property(lambda self: self.root / "conf")
    lib = property(lambda self: self.root / "lib")  # the wheel's lib/ plus opt/flink-python (Python jobs)
    log = property(lambda self: self.root / "log")
    pids = property(lambda self: self.root / "pids")
    tmp = property(lambda self: self.root / "tmp")  # RocksDB's working directories (and its LOG files)
    checkpoints = property(lambda self: self.root / "checkpoints")
    savepoints = property(lambda self: self.root / "savepoints")

    def pid(self, name: str) -> Path:
        return self.pids / f"{name}.pid"


def paths(settings: Settings) -> ClusterPaths:
    return ClusterPaths(settings.home / "flink")


def local_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.flink_port}"


def configuration(settings: Settings, cp: ClusterPaths) -> dict[str, str]:
    """The cluster's config.yaml (flat keys). Job-level settings (checkpoint interval, parallelism,
    state TTL) come with each job; what the cluster's processes read themselves is here."""
    dist_conf = (distribution() / "conf" / "config.yaml").read_text()
    java_opts = next(
        (line.split("all:", 1)[1].strip() for line in dist_conf.splitlines() if line.strip().startswith("all:")), ""
    )
    return {
        "env.java.opts.all": java_opts,  # the --add-opens Flink needs on Java 17
        "jobmanager.rpc.address": "127.0.0.1",
        "jobmanager.bind-host": "127.0.0.1",
        "jobmanager.rpc.port": str(settings.flink_port + 1),
        "jobmanager.memory.process.size": "1024m",
        "jobmanager.execution.failover-strategy": "region",
        "taskmanager.host": "127.0.0.1",
        "taskmanager.bind-host": "127.0.0.1",
        "taskmanager.numberOfTaskSlots": str(settings.parallelism),
        "taskmanager.memory.process.size": "2048m",
        "rest.address": "127.0.0.1",
        "rest.bind-address": "127.0.0.1",
        "rest.port": str(settings.flink_port),
        "blob.server.port": "0",
        "parallelism.default": str(settings.parallelism),
        "state.backend.type": "rocksdb",
        "state.backend.incremental": "true",
        **environment.ENVIRONMENT_OPTIONS,  # the RocksDB options, in force for every job here
        "execution.checkpointing.dir": cp.checkpoints.resolve().as_uri(),
        "execution.checkpointing.savepoint-dir": cp.savepoints.resolve().as_uri(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": str(max(settings.restart_attempts, 10)),
        "restart-strategy.fixed-delay.delay": "2 s",
        # A killed TaskManager is noticed by its lost heartbeat: seconds, not the default 50 s.
        "heartbeat.interval": "1000",
        "heartbeat.timeout": "8000",
        "io.tmp.dirs": str(cp.tmp),
        "state.backend.rocksdb.localdir": str(cp.tmp / "rocksdb"),
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        **environment.metrics_options(settings),
    }


def _write_conf(settings: Settings, cp: ClusterPaths) -> None:
    for d in (cp.conf, cp.log, cp.pids, cp.tmp, cp.checkpoints, cp.savepoints, cp.lib):
        d.mkdir(parents=True, exist_ok=True)
    conf = configuration(settings, cp)
    (cp.conf / "config.yaml").write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in conf.items()))
    for name in ("log4j-console.properties", "logback-console.xml"):
        shutil.copyfile(distribution() / "conf" / name, cp.conf / name)
    # Python jobs need flink-python on the cluster's classpath (the wheel keeps it in opt/).
    for jar in [*(distribution() / "lib").glob("*.jar"), *(distribution() / "opt").glob("flink-python-*.jar")]:
        link = cp.lib / jar.name
        if not link.exists():
            link.symlink_to(jar)


def _process_env(settings: Settings, cp: ClusterPaths) -> dict[str, str]:
    import site

    env = dict(os.environ)
    # Thread mode runs the job's Python inside the TaskManager (pemja), which sees PYTHONPATH only.
    python_path = [*site.getsitepackages(), str(REPO_ROOT / "jobs")]
    env.update(
        FLINK_CONF_DIR=str(cp.conf),
        FLINK_LIB_DIR=str(cp.lib),
        FLINK_LOG_DIR=str(cp.log),
        FLINK_PID_DIR=str(cp.pids / "scripts"),
        PYTHONPATH=os.pathsep.join(python_path + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])),
    )
    return env


def _recorded(cp: ClusterPaths, name: str) -> int | None:
    try:
        pid = int(cp.pid(name).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
        return None
    # A recycled pid belongs to someone else: only a Flink process (or its start script, which
    # execs the JVM) started with this cluster's conf directory is ours.
    # flink-console.sh: the script between the two, as it execs the JVM.
    kind: tuple[str, ...] = ("jobmanager.sh", JOBMANAGER) if name == "jobmanager" else ("taskmanager.sh", TASKMANAGER)
    kind += ("flink-console.sh",)
    ours = f"FLINK_CONF_DIR={cp.conf}\0" in environ
    return pid if ours and any(k in cmdline for k in kind) else None


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def command(name: str) -> list[str]:
    """How a process of the cluster starts: the distribution's own scripts in the foreground,
    which is also what the Flink image's entrypoint runs for `jobmanager` and `taskmanager`."""
    script = "jobmanager.sh" if name == "jobmanager" else "taskmanager.sh"
    # A TaskManager's resource id is its name, so the REST API's taskmanager ids say which process runs what.
    extra = [] if name == "jobmanager" else ["-D", f"taskmanager.resource-id={name}"]
    return ["bash", str(distribution() / "bin" / script), "start-foreground", *extra]


def _start(settings: Settings, cp: ClusterPaths, name: str) -> int:
    with open(cp.log / f"{name}.out", "ab") as out:
        proc = subprocess.Popen(
            command(name),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_process_env(settings, cp),
            start_new_session=True,  # outlives the CLI; `cluster down` stops it
            cwd=cp.root,
        )
    cp.pid(name).write_text(str(proc.pid))  # the script execs java: the pid is the JVM's
    return proc.pid


def taskmanagers_of(url: str, job_id: str) -> set[str]:
    """The TaskManagers (by resource id: taskmanager-N here) running the job's tasks."""
    found = set()
    for vertex in rest(url, f"/jobs/{job_id}").get("vertices", []):
        for tm in rest(url, f"/jobs/{job_id}/vertices/{vertex['id']}/taskmanagers").get("taskmanagers", []):
            if tm.get("status") in ("RUNNING", "DEPLOYING", "INITIALIZING"):
                found.add(tm["taskmanager-id"])
    return found


def kill(settings: Settings, name: str) -> int | None:
    """SIGKILL of one of this cluster's processes (chaos and the TaskManager-loss test)."""
    pid = _recorded(paths(settings), name)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
    return pid


def running_jobs(url: str, name: str) -> list[str]:
    """The ids of the cluster's jobs named `name` that are not over."""
    jobs = rest(url, "/jobs/overview").get("jobs", [])
    return [j["jid"] for j in jobs if j.get("name") == name and j.get("state") not in _ENDED]


_ENDED = ("FINISHED", "CANCELED", "FAILED")


def names(settings: Settings) -> list[str]:
    return ["jobmanager", *(f"taskmanager-{i}" for i in range(1, settings.flink_taskmanagers + 1))]


def overview(url: str, timeout: float = 3.0) -> dict | None:
    """The cluster's /overview (TaskManagers, slots, jobs), or None when its REST API does not answer."""
    try:
        return rest(url, "/overview", timeout=timeout)
    except UserError:
        return None


def rest(url: str, path: str, *, method: str = "GET", body: dict | None = None, timeout: float = 10.0) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as e:
        raise UserError(f"the Flink cluster at {url} answered {e.code} to {method} {path}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise UserError(f"the Flink cluster at {url} does not answer ({reason})") from None
    return json.loads(text) if text else {}


def up(settings: Settings, wait_seconds: float = 90.0) -> dict:
    cp = paths(settings)
    url = local_url(settings)
    if _recorded(cp, "jobmanager") is None and overview(url, timeout=1.0) is not None:
        raise UserError(
            f"port {settings.flink_port} already has a Flink cluster `cluster up` did not start; "
            "set TALLYFLOW_FLINK_CLUSTER to use it or TALLYFLOW_FLINK_PORT to pick another port"
        )
    _write_conf(settings, cp)
    started = [name for name in names(settings) if _recorded(cp, name) is None]
    children = {name: _start(settings, cp, name) for name in started}
    deadline = time.monotonic() + wait_seconds
    while True:
        info = overview(url)
        slots = settings.flink_taskmanagers * settings.parallelism
        # Up once every TaskManager has registered and offered its slots.
        registered = info is not None and info.get("taskmanagers", 0) >= settings.flink_taskmanagers
        if registered and info.get("slots-total", 0) >= slots:  # type: ignore[union-attr]
            break
        # Our own children by pid (their /proc entries flicker while the scripts exec the JVM).
        dead = [n for n, pid in children.items() if not _alive(pid)]
        if dead:
            raise UserError(f"the Flink {dead[0]} exited during start-up; see {cp.log}")
        if time.monotonic() > deadline:
            raise UserError(f"the Flink cluster did not come up within {wait_seconds:.0f} s; see {cp.log}")
        time.sleep(0.5)
    return {"url": url, "started": started, **status(settings)}


def down(settings: Settings, wait_seconds: float = 30.0) -> dict:
    cp = paths(settings)
    stopped = []
    running = {name: pid for name in _all_recorded(cp) if (pid := _recorded(cp, name)) is not None}
    for pid in running.values():
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_seconds
    for name, pid in running.items():
        while _recorded(cp, name) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if _recorded(cp, name) is not None:
            os.kill(pid, signal.SIGKILL)
        stopped.append(name)
    for pid_file in cp.pids.glob("*.pid") if cp.pids.is_dir() else []:
        pid_file.unlink(missing_ok=True)
    return {"url": local_url(settings), "stopped": stopped}


def _all_recorded(cp: ClusterPaths) -> list[str]:
    # TaskManagers first: the JobManager would otherwise restart their jobs on the way down.
    found = sorted(p.stem for p in cp.pids.glob("*.pid")) if cp.pids.is_dir() else []
    return sorted(found, key=lambda n: n == "jobmanager")


def status(settings: Settings) -> dict:
    cp = paths(settings)
    url = local_url(settings)
    info = overview(url)
    return {
        "url": url,
        "answers": info is not None,
        "processes": {name: _recorded(cp, name) for name in _all_recorded(cp) or names(settings)},
        "taskmanagers": None if info is None else info.get("taskmanagers"),
        "slots_total": None if info is None else info.get("slots-total"),
        "slots_available": None if info is None else info.get("slots-available"),
        "jobs_running": None if info is None else info.get("jobs-running"),
        "home": str(cp.root),
    }
