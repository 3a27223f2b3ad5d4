"""The docs stay true to the code: every relative link resolves, every command of the command-line
reference exists in `tallyflow --help`, the aggregation table is the registry's, the README stays
short, and no document reads as a work diary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tallyflow.cli import build_parser
from tallyflow.core import aggregations
from tallyflow.settings import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    out = set()
    for title in re.findall(r"^#+ (.+)$", path.read_text(), re.M):
        out.add(re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-"))
    return out


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_relative_link_resolves(doc):
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto: not ours to check here
        path, _, anchor = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        if not resolved.exists() or anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(target)
    assert broken == []


def test_every_command_of_the_reference_exists():
    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    documented = set(re.findall(r"^\| `tallyflow (\w[\w-]*)", (REPO_ROOT / "docs" / "cli.md").read_text(), re.M))
    assert documented, "docs/cli.md lists no command"
    assert documented <= commands
    assert commands <= documented  # and none is left undocumented


def test_the_aggregation_table_is_the_registry():
    text = (REPO_ROOT / "docs" / "catalog.md").read_text()
    rows = re.findall(r"^\| (`[^|]+`) \| [^|]+ \| (yes|no) \|$", text, re.M)
    table = {name: additive == "yes" for names, additive in rows for name in re.findall(r"`(\w+)`", names)}
    assert table == {name: a.additive for name, a in aggregations.REGISTRY.items()}


def test_the_readme_is_short():
    assert len((REPO_ROOT / "README.md").read_text().splitlines()) <= 250


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_no_document_reads_as_a_work_diary(doc):
    text = doc.read_text()
    assert not re.findall(r"(?i)\bsession\b(?! cluster)", text)
    assert not re.findall(r"\bissue #\d+|\(#\d+\)", text)
