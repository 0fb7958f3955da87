"""The dependency rule of ``docs/contributing.md``: each folder of ``sim/`` is one
layer, imports point down only, siblings of one layer do not import each other, and
no module takes part in an import circle. Imports inside functions and under
``TYPE_CHECKING`` count too: they are arrows a reader follows all the same."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SIM = Path(__file__).resolve().parent.parent / "sim"

#: package -> layer, lowest first; a module may import its own package and lower layers
LAYERS: dict[str, int] = {
    "sim._version": 0,
    "sim.core": 0,
    "sim.scenario": 1,
    "sim.workload": 2,
    "sim.components": 2,
    "sim.model": 3,
    "sim.studies": 4,
    "sim.validation": 5,
    "sim.output": 5,
    "sim.cli": 6,
    "sim": 7,  # the public facade, sim/__init__.py, and sim/__main__.py
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SIM.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(module: str) -> str:
    """The layer a module belongs to: the longest key of LAYERS it starts with."""
    if module in ("sim", "sim.__main__"):
        return "sim"
    best = max((k for k in LAYERS if k != "sim" and (module + ".").startswith(k + ".")), key=len)
    return best


def _imports(path: Path) -> set[str]:
    """Every ``sim`` module a file imports (``from sim.x import y`` names ``sim.x.y``
    when that is a module, else ``sim.x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "sim")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "sim":
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


MODULES = {_module_name(p) for p in SIM.rglob("*.py")}
GRAPH = {_module_name(p): _imports(p) for p in SIM.rglob("*.py")}


def test_every_module_belongs_to_a_layer() -> None:
    assert all(_package(m) in LAYERS for m in MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    mine = _package(module)
    wrong = []
    for target in sorted(GRAPH[module]):
        theirs = _package(target)
        if theirs == mine:
            continue
        if LAYERS[theirs] > LAYERS[mine]:
            wrong.append(f"{target} (layer {theirs}, above {mine})")
        elif LAYERS[theirs] == LAYERS[mine]:
            wrong.append(f"{target} (sibling layer {theirs})")
    assert not wrong, f"{module} imports upward or sideways: {', '.join(wrong)}"


def test_no_import_circles() -> None:
    """Depth-first search for a back edge over the module graph."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for target in sorted(GRAPH.get(module, ())):
            if target not in GRAPH:
                continue
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (circle := visit(target)):
                return circle
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(GRAPH):
        if module not in state and (circle := visit(module)):
            pytest.fail("import circle: " + " -> ".join(circle))


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    """The parser sees an import inside a function as an arrow (the check can fail)."""
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from sim.cli.main import main\n    return main\n")
    assert _imports(source) == {"sim.cli.main"}


def test_every_layer_folder_is_in_the_rule_and_in_the_contributing_guide() -> None:
    """A new folder of ``sim/`` must be given a layer here and a row in the guide."""
    guide = (SIM.parent / "docs" / "contributing.md").read_text()
    folders = sorted(p.name for p in SIM.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert [f for f in folders if f"sim.{f}" not in LAYERS] == []
    assert [f for f in folders if f"`sim/{f}/`" not in guide] == []


def test_time_is_read_through_the_kernel() -> None:
    """Components read ``kernel.now``; SimPy's private clock stays inside the kernel."""
    readers = [
        str(p.relative_to(SIM.parent))
        for p in SIM.rglob("*.py")
        if "._now" in p.read_text() and p.name != "kernel.py"
    ]
    assert readers == []


def test_every_module_has_a_row_in_the_architecture_page() -> None:
    """docs/architecture.md names every module of ``sim/`` (a new module gets its row)."""
    page = (SIM.parent / "docs" / "architecture.md").read_text()
    missing = [
        str(p.relative_to(SIM.parent))
        for p in sorted(SIM.rglob("*.py"))
        if p.name != "__init__.py"
        and str(p.relative_to(SIM.parent)) not in page
        and f"`{p.name}`" not in page
    ]
    assert missing == []


def test_the_client_and_server_sides_meet_only_through_the_protocol() -> None:
    """``sim/model/client/`` and ``sim/model/server/`` never import each other: they
    share the typed interface of ``sim/model/protocol.py``."""
    crossing = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        for mine, theirs in (("client", "server"), ("server", "client"))
        if module.startswith(f"sim.model.{mine}.") and target.startswith(f"sim.model.{theirs}")
    ]
    assert crossing == []
