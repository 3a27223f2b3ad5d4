"""A class-data-sharing archive for the JVM PyFlink starts (its gateway, which also hosts the local
MiniCluster): the ~15,000 classes of the planner, the runtime, the Kafka connector and our
operators, already parsed and verified, mapped from one file instead of loaded from jars on every
run. Measured here: an empty bounded run 2 to 3 s shorter (docs/performance.md).

The archive is built once, by a run of the real job (`python -m tallyflow.tools.jvm_archive`, part
of `make setup`), and is named after everything the JVM checks it against (the java binary and
every jar of the gateway's classpath, with sizes and times): after an upgrade no archive matches,
and runs go on without one until setup builds the new one."""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path


def gateway_classpath() -> tuple[str, list[str]]:
    """The java binary and classpath PyFlink's gateway starts with, from PyFlink's own functions
    (0.2 s of globbing and checks: kept for the environment variables they read)."""
    return _gateway_classpath(tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(_CLASSPATH_ENV))))


_CLASSPATH_ENV = ("FLINK_", "HADOOP_", "JAVA_")  # what PyFlink's functions read


@cache
def _gateway_classpath(_env: tuple[tuple[str, str], ...]) -> tuple[str, list[str]]:
    from pyflink import pyflink_gateway_server as server

    env = dict(os.environ)
    server.prepare_environment_variables(env)
    classpath = os.pathsep.join([server.construct_flink_classpath(env), server.construct_hadoop_classpath(env)])
    return server.find_java_executable(), [p for p in classpath.split(os.pathsep) if p]


def stamp(path: str) -> str:
    """A file's resolved path, size and modification time (missing: said so)."""
    try:
        st = Path(path).resolve().stat()
    except OSError:
        return f"{path}:missing"
    return f"{Path(path).resolve()}:{st.st_size}:{st.st_mtime_ns}"


def archive_path(directory: Path) -> Path:
    import shutil

    java, classpath = gateway_classpath()
    stamps = [stamp(shutil.which(java) or java), *(stamp(p) for p in classpath)]
    key = hashlib.sha256("\n".join(stamps).encode()).hexdigest()[:16]
    return directory / f"gateway-{key}.jsa"


def use(archive: Path) -> None:
    """Start the gateway with `archive` when it exists (call before the gateway starts)."""
    current = os.environ.get("JVM_ARGS", "")
    if "SharedArchiveFile" in current or "ArchiveClassesAtExit" in current:
        return  # chosen by the caller (the archive's own build run)
    # PyFlink splits JVM_ARGS on whitespace: a path with a space cannot be passed.
    if archive.is_file() and not any(c.isspace() for c in str(archive)):
        os.environ["JVM_ARGS"] = f"{current} -XX:SharedArchiveFile={archive}".strip()
