"""The gateway JVM's class archive: named after what the JVM checks it against, used only when it
exists, never over a flag the caller chose."""

from __future__ import annotations

import os

from tallyflow.stream import class_sharing


def test_the_archive_name_follows_the_gateway_classpath(tmp_path, monkeypatch):
    jar = tmp_path / "reporter.jar"
    jar.write_bytes(b"one")
    monkeypatch.setenv("HADOOP_CLASSPATH", str(jar))
    first = class_sharing.archive_path(tmp_path)
    assert class_sharing.archive_path(tmp_path) == first  # stable while nothing changes
    jar.write_bytes(b"two!")  # an upgraded jar: the JVM would refuse the old archive
    assert class_sharing.archive_path(tmp_path) != first
    assert str(jar) in class_sharing.gateway_classpath()[1]


def test_an_existing_archive_is_used_and_an_explicit_choice_kept(tmp_path, monkeypatch):
    archive = tmp_path / "gateway-x.jsa"
    monkeypatch.setenv("JVM_ARGS", "-XX:TieredStopAtLevel=1")
    class_sharing.use(archive)
    assert os.environ["JVM_ARGS"] == "-XX:TieredStopAtLevel=1"  # none built: runs go on without
    archive.write_bytes(b"")
    class_sharing.use(archive)
    assert os.environ["JVM_ARGS"] == f"-XX:TieredStopAtLevel=1 -XX:SharedArchiveFile={archive}"
    monkeypatch.setenv("JVM_ARGS", "-XX:ArchiveClassesAtExit=/tmp/new.jsa")
    class_sharing.use(archive)
    assert os.environ["JVM_ARGS"] == "-XX:ArchiveClassesAtExit=/tmp/new.jsa"
