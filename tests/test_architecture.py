"""The core's shape: no import circles, and the entry types a plugin needs importable from a
leaf. Checked on the source (``ast``), so an import hidden inside a function counts too."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import indexbench

PACKAGE = Path(indexbench.__file__).parent


def module_files() -> dict[str, Path]:
    """Every module of the core package by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_base(name: str, path: Path, node: ast.ImportFrom) -> str:
    """The module a ``from ... import`` in module ``name`` (file ``path``) reads from, resolved."""
    if not node.level:
        return node.module or ""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    return ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The core modules ``name`` imports anywhere in its source (top level, in functions, under
    TYPE_CHECKING): ``from . import x`` counts as importing ``x`` when ``x`` is a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = import_base(name, path, node)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for target in targets:
            while target and target not in modules:  # a name inside a module: the module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def core_import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def test_the_cycle_finder_sees_a_circle_and_a_clean_chain():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_relative_lazy_and_package_imports():
    graph = core_import_graph()
    assert "indexbench.entries" in graph["indexbench.registry"]  # from .entries import ...
    assert "indexbench.ray_executor" in graph["indexbench.executors"]  # inside a function
    assert "indexbench.generative.backbones" in graph["indexbench.generative.engine"]  # from .backbones


def test_the_core_has_no_import_circles():
    assert import_cycles(core_import_graph()) == []


def test_the_entry_types_live_in_a_leaf_module():
    assert core_import_graph()["indexbench.entries"] == set()
    assert indexbench.IndexerEntry is __import__("indexbench.entries").entries.IndexerEntry


def test_every_core_module_imports_alone_in_a_fresh_interpreter():
    # A circle that the source hides (an import by name at run time) fails here: each module is
    # the first of the package to load in its interpreter. Cheap, since no core module imports
    # torch at import time.
    names = sorted(module_files())
    code = ("import importlib, sys\n"
            "name = sys.argv[1]\n"
            "importlib.import_module(name)\n")
    failures = []
    for name in names:
        if name.endswith("__main__"):
            continue
        done = subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            failures.append(f"{name}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    assert failures == []


def hookspec_names() -> list[str]:
    from indexbench import hookspecs

    return sorted(name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "indexbench_spec"))


def test_every_hook_is_documented_in_the_readme_with_its_signature():
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Hooks", 1)[1].split("\n## ", 1)[0]
    assert len(hookspec_names()) == 5
    for name in hookspec_names():
        assert f"`{name}(register)`" in section, f"hook {name} is not in README's Hooks table"


def test_the_example_plugin_implements_every_hook():
    sys.path.insert(0, str(Path(__file__).parent / "example_plugin"))
    try:
        import indexbench_example
    finally:
        sys.path.pop(0)
    implemented = sorted(name for name in dir(indexbench_example)
                         if hasattr(getattr(indexbench_example, name), "indexbench_impl"))
    assert implemented == hookspec_names()


def test_every_relative_import_names_a_module_that_exists():
    # An import inside a function runs only when called; one left pointing at a module that
    # moved fails here instead of in the middle of a user's grid.
    modules = module_files()
    missing = []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = import_base(name, path, node)
                if base not in modules and not all(f"{base}.{alias.name}" in modules for alias in node.names):
                    missing.append(f"{name}:{node.lineno}: from {'.' * node.level}{node.module or ''}")
    assert missing == []


LONG_MODULE = 400
"""Lines a core module may have before its docstring must say why it is one module."""


def test_no_core_module_is_long_without_a_reason_at_its_top():
    long = []
    for name, path in module_files().items():
        text = path.read_text(encoding="utf-8")
        doc = ast.get_docstring(ast.parse(text)) or ""
        if text.count("\n") > LONG_MODULE and "Why one module:" not in doc:
            long.append(f"{name} ({text.count(chr(10))} lines)")
    assert long == []


PLUGIN_API = (
    "indexbench", "indexbench.data", "indexbench.protocols", "indexbench.options", "indexbench.errors",
    "indexbench.id_indexers", "indexbench.generative", "indexbench.generative.builtin_backbones",
    "indexbench.encoders", "indexbench.kmeans", "indexbench.metrics", "indexbench.optim", "indexbench.tokenization",
    "indexbench.ngram_index", "indexbench.distributed", "indexbench.registry",
)
"""What a plugin may import (README, "What a plugin may import"): the names in these modules' __all__."""


def test_the_plugins_import_only_the_documented_plugin_api():
    import importlib

    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### What a plugin may import", 1)[1].split("\n## ", 1)[0]
    for module in PLUGIN_API:
        assert f"`{module}`" in section, f"{module} is not documented in README's plugin API"
    sources = sorted((PACKAGE.parent / "plugins").rglob("*.py")) + sorted(
        (Path(__file__).parent / "example_plugin").rglob("*.py"))
    outside = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("indexbench"):
                if not node.module.startswith("indexbench_"):
                    public = getattr(importlib.import_module(node.module), "__all__", ())
                    for alias in node.names:
                        name = f"{node.module}.{alias.name}"
                        if name not in PLUGIN_API and (node.module not in PLUGIN_API or alias.name not in public):
                            outside.append(f"{path.name}:{node.lineno}: {name}")
            elif isinstance(node, ast.Import):
                outside += [f"{path.name}:{node.lineno}: import {a.name}" for a in node.names
                            if a.name.startswith("indexbench.") and a.name not in PLUGIN_API]
    assert outside == []
