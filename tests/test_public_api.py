"""The flat public API (issue 14): every name resolves, importing it is light, notebooks use only it.

The notebooks are read as a learner reads them: their code cells may import only
``flexaudio_helpers``'s public names, and they show results rather than test them (no
``assert``, no button clicks, no widget internals).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import flexaudio_helpers

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
WIDGET_INTERNALS = ("selected_index", "generate_button", "sweep_values", "sweep_parameter", "children")


def code_cells(notebook: Path) -> list[str]:
    cells = json.loads(notebook.read_text())["cells"]
    return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]


@pytest.mark.parametrize("name", flexaudio_helpers.__all__)
def test_every_public_name_resolves(name):
    assert getattr(flexaudio_helpers, name) is not None
    assert name in dir(flexaudio_helpers)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'plot_everything'"):
        flexaudio_helpers.plot_everything  # noqa: B018


def test_importing_the_package_loads_nothing_heavy():
    """`import flexaudio_helpers` must not pull in torch, diffusers, matplotlib, librosa or httpx."""
    heavy = ["torch", "diffusers", "matplotlib", "librosa", "httpx", "pydantic"]
    script = f"import sys, flexaudio_helpers; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebooks_import_only_public_names(notebook):
    for source in code_cells(notebook):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("flexaudio_helpers"):
                assert node.module == "flexaudio_helpers", f"{notebook.name}: from {node.module} import ..."
                names = [alias.name for alias in node.names]
                assert set(names) <= set(flexaudio_helpers.__all__), f"{notebook.name}: {names}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("flexaudio_helpers.") for a in node.names), notebook.name


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebooks_show_results_instead_of_testing_them(notebook):
    for source in code_cells(notebook):
        tree = ast.parse(source)
        assert not any(isinstance(node, ast.Assert) for node in ast.walk(tree)), f"{notebook.name}: assert"
        calls = [getattr(node.func, "attr", None) for node in ast.walk(tree) if isinstance(node, ast.Call)]
        attributes = [node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)]
        assert "click" not in calls, f"{notebook.name}: .click()"
        assert not set(WIDGET_INTERNALS) & set(attributes), (
            f"{notebook.name}: {set(WIDGET_INTERNALS) & set(attributes)}"
        )


def module_imports(root: Path) -> dict[str, set[str]]:
    """Each module of the package -> the package modules it imports, lazy (in-function) ones included."""
    package = root.name
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = here
                for _ in range(max(node.level - 1, 0)):
                    base = base.rpartition(".")[0]
                if node.module is None:  # `from . import store`: the submodules themselves
                    candidates = [f"{base}.{alias.name}" for alias in node.names]
                else:
                    module = f"{base}.{node.module}" if node.level else node.module
                    candidates = [module] + [f"{module}.{alias.name}" for alias in node.names]
                targets.update(c for c in candidates if c.startswith(package))
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.startswith(package))
        graph[name] = targets
    return {name: {t for t in targets if t in graph and t != name} for name, targets in graph.items()}


def test_no_module_imports_one_that_imports_it_back():
    """The package's import graph has no cycle (the package's own lazy __init__ aside)."""
    graph = module_imports(Path(flexaudio_helpers.__file__).parent)
    graph.pop("flexaudio_helpers")  # its imports are for type checkers only
    for deps in graph.values():
        deps.discard("flexaudio_helpers")  # `from . import __version__` reads a constant
    cycles = []
    for start in graph:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycles.append(" -> ".join([*path, start]))
                elif nxt not in path and len(path) < 12:
                    stack.append((nxt, [*path, nxt]))
    assert not cycles, "\n".join(sorted(set(cycles))[:10])
