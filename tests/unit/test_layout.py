"""The package shows the pipeline and keeps its layers: no module imports a higher layer, the
import graph has no cycle, and no module is over 400 lines."""

from __future__ import annotations

import ast

from tallyflow.settings import REPO_ROOT

PACKAGE = REPO_ROOT / "jobs" / "tallyflow"
# Lower numbers are lower layers. Pure logic at the bottom, I/O adapters above it, what reads
# the landed data above them, running the pipeline above that, tools and the CLI on top.
LAYERS = {
    "errors": 0,
    "settings": 0,
    "faults": 0,
    "progress": 0,
    "private_files": 0,
    "core": 1,
    "wire": 2,
    "ingest": 3,
    "stream": 3,
    "land": 3,
    "billing": 4,
    "serve": 5,
    "ops": 6,
    "tools": 7,
    "cli": 8,
}


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(), str(path))
    return out


def imports(tree: ast.Module) -> set[str]:
    """Every tallyflow module a module imports (at the top or inside a function)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("tallyflow")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tallyflow"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_package_has_a_layer():
    assert {m.split(".")[1] for m in modules() if m != "tallyflow"} == set(LAYERS)


def test_no_module_imports_a_higher_layer():
    known = modules()
    wrong = []
    for name, tree in known.items():
        own = layer(name)
        for target in imports(tree):
            if target in known and own is not None and (layer(target) or 0) > own:
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_the_import_graph_has_no_cycle():
    known = modules()
    graph = {name: {t for t in imports(tree) if t in known and t != name} for name, tree in known.items()}
    # A package's __init__ is what importing it runs; an import of tallyflow.x.y also runs tallyflow.x.
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle.extend([*path, node, nxt])
                return
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state and not cycle:
            visit(name, [])
    assert cycle == []


def test_no_module_is_over_400_lines():
    long = {p.name: n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_the_pure_core_reads_no_settings_and_does_no_io():
    """core/ is the rules alone: no settings, no Flink, Kafka or ClickHouse client."""
    io = ("tallyflow.settings", "pyflink", "confluent_kafka", "clickhouse_connect", "chdb")
    wrong = []
    for name, tree in modules().items():
        if name.startswith("tallyflow.core"):
            for node in ast.walk(tree):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                wrong += [f"{name} imports {n}" for n in names if n.startswith(io)]
    assert wrong == []
