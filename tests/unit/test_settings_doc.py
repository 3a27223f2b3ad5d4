"""docs/operations.md's Settings table lists exactly the variables settings.py reads, with the same defaults."""

from __future__ import annotations

import re

from tallyflow.settings import REPO_ROOT

CODE = (REPO_ROOT / "jobs" / "tallyflow" / "settings.py").read_text()
README = (REPO_ROOT / "docs" / "operations.md").read_text()


def documented() -> dict[str, str]:
    section = README.split("\n## Settings", 1)[1].split("\n## ", 1)[0]
    return {m.group(1): m.group(2) for m in re.finditer(r"^\| `(TALLYFLOW_\w+)` \| `?([^|`]*)`? \|", section, re.M)}


def read_by_code() -> dict[str, str | None]:
    """Each variable settings.py reads, with its default when the code gives it as a literal."""
    found: dict[str, str | None] = {name: None for name in re.findall(r'"(TALLYFLOW_\w+)"', CODE)}
    for name, default in re.findall(r'_env\("(TALLYFLOW_\w+)", "([^"]*)"\)', CODE):
        found[name] = default
    for name, default in re.findall(r'_int\("(TALLYFLOW_\w+)", (\d+)\)', CODE):
        found[name] = default
    for name, default in re.findall(r'_bool\("(TALLYFLOW_\w+)", (True|False)\)', CODE):
        found[name] = default.lower()
    return found


def test_every_setting_is_documented_and_nothing_else():
    assert set(documented()) == set(read_by_code())


def test_documented_defaults_are_the_code_defaults():
    docs = documented()
    for name, default in read_by_code().items():
        if default is not None:
            assert docs[name] == default, name
