"""The installed layout: the top-level folders are subpackages of one name, `lookalike`;
no import cycles among its modules; `lookalike --help` loads no heavy dependency."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

from lookalike.commands import COMMANDS
from tests.support.data import REPO


def _setuptools() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_installs_under_lookalike():
    config = _setuptools()
    found = set()
    for name, folder in config["package-dir"].items():
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root).parts
            found.add(".".join((name, *relative)))
    data = {"lookalike.webapp.static", "lookalike.webapp.templates"}  # files, no code
    assert found | data == set(config["packages"])
    assert all(p == "lookalike" or p.startswith("lookalike.") for p in config["packages"])


def test_the_installed_modules_import_by_their_namespaced_names():
    import lookalike.classifier.clustering.review
    import lookalike.indexer.store.catalog
    import lookalike.search
    import lookalike.webapp

    assert Path(lookalike.indexer.store.catalog.__file__) == REPO / "indexer/store/catalog.py"
    assert Path(lookalike.webapp.__file__).parent == REPO / "webapp"
    assert hasattr(lookalike.search, "open_library")
    assert hasattr(lookalike.classifier.clustering.review, "accept")


def _first_party_modules() -> dict[str, Path]:
    """Installed module name -> source file, for every module of the package."""
    modules = {}
    for name, folder in _setuptools()["package-dir"].items():
        root = REPO / folder
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((name, *parts))] = path
    return modules


def _imported(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The first-party modules ``module`` imports anywhere in its file: at the top, in
    functions, under TYPE_CHECKING (``from package import submodule`` names the submodule)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names.extend(f"{base}.{alias.name}" for alias in node.names)
    found = set()
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        order[v] = low[v] = len(order)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in order:
            visit(v)
    return found


def test_no_import_cycles_among_first_party_modules():
    """Every import counts, including those inside functions: a cycle hidden in a
    function is still a cycle (move the shared piece into a module of its own)."""
    modules = _first_party_modules()
    graph = {m: _imported(m, p, modules) for m, p in modules.items()}
    graph["lookalike.cli"] |= {f"lookalike.commands.{name}" for name in COMMANDS}  # by name
    assert _cycles(graph) == []


def test_the_cycle_check_sees_imports_inside_functions(tmp_path):
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from lookalike.indexer import scan\n"
        "def f():\n    from lookalike.search.text import check_text\n"
        "    import lookalike.indexer.store.catalog\n"
    )
    modules = {**_first_party_modules(), "lookalike.probe": source}
    assert _imported("lookalike.probe", source, modules) == {
        "lookalike.indexer.scan",
        "lookalike.search.text",
        "lookalike.indexer.store.catalog",
    }


HEAVY = ("torch", "open_clip", "ray", "faiss", "cv2", "onnxruntime", "sklearn", "matplotlib")


def test_lookalike_help_imports_no_heavy_dependency():
    probe = (
        "import sys; from click.testing import CliRunner; from lookalike.cli import main; "
        "assert CliRunner().invoke(main, ['--help']).exit_code == 0; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
