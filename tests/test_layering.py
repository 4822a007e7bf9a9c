"""The package's layers: every module imports only from its own layer or below, never a ``_private``
name of another module, and no two modules import each other (directly or round a loop) at the top.

The allowed order is :data:`LAYERS`, and only there. ``python tests/test_layering.py`` prints every
violation grouped by importing module, to track a restructure in progress.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

# Bottom to top: a module may import from its own layer and those listed before it. A prefix covers
# the module of that name and everything under it; the package root "fieldtune" covers only itself.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("utils", ("fieldtune.errors", "fieldtune.version", "fieldtune.utils")),  # 0
    ("config", ("fieldtune.config",)),  # 1
    ("data", ("fieldtune.data",)),  # 2
    ("models", ("fieldtune.zoo", "fieldtune.models")),  # 3
    ("artifacts", ("fieldtune.artifacts",)),  # 4
    ("evaluation", ("fieldtune.evaluation",)),  # 5
    ("tasks", ("fieldtune.tasks",)),  # 6
    ("methods", ("fieldtune.methods",)),  # 7
    ("training", ("fieldtune.training", "fieldtune.inference")),  # 8
    ("runs", ("fieldtune.runs",)),  # 9
    ("components", ("fieldtune.llm", "fieldtune.fewshot")),  # 10
    ("predict", ("fieldtune.predict",)),  # 11
    ("recipes", ("fieldtune.recipes", "fieldtune.run")),  # 12
    (  # 13: what runs on a loaded predictor
        "export",
        ("fieldtune.export", "fieldtune.evaluate", "fieldtune.batch", "fieldtune.compare", "fieldtune.explain"),
    ),
    ("store", ("fieldtune.store",)),  # 14
    ("monitoring", ("fieldtune.monitoring", "fieldtune.active")),  # 15
    ("serving", ("fieldtune.serving",)),  # 16
    ("apps", ("fieldtune.apps", "fieldtune.demo")),  # 17
    ("cli", ("fieldtune.cli", "fieldtune.__main__", "fieldtune")),  # 18
)

ROOT = "fieldtune"
SRC = Path(__file__).resolve().parents[1] / "src"


@dataclass(frozen=True)
class Import:
    """One import of a fieldtune module (or of a name from one) by another."""

    importer: str
    target: str  # the module imported, or the module the names come from
    names: tuple[str, ...]  # names taken from ``target`` (``from target import names``)
    file: str
    line: int
    top_level: bool  # runs when the importer is imported (not in a function, not under TYPE_CHECKING)


def layer_of(module: str) -> int | None:
    """The layer number of ``module`` (longest matching prefix), or None when LAYERS lacks it."""
    best: tuple[int, int] | None = None
    for number, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            covers = module == prefix or (prefix != ROOT and module.startswith(prefix + "."))
            if covers and (best is None or len(prefix) > best[1]):
                best = (number, len(prefix))
    return None if best is None else best[0]


def describe(layer: int | None) -> str:
    return "unlisted" if layer is None else f"{layer} {LAYERS[layer][0]}"


def source_modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__.py``)."""
    modules = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, top_level: bool):
    """(import node, top_level) for every import under ``node``; functions' bodies are not top level."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, top_level
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _walk(child, False)
        elif isinstance(child, ast.If) and _is_type_checking(child):
            yield from _walk(child, False)
        else:
            yield from _walk(child, top_level)


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names (relative levels resolved)."""
    if not node.level:
        return node.module or ""
    package = module if is_package else module.rpartition(".")[0]
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """The fieldtune imports in ``path``. ``from pkg import sub`` where ``pkg.sub`` is a module counts
    as importing ``pkg.sub``; any other name counts as taken from ``pkg``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(SRC.parent).as_posix()
    is_package = path.name == "__init__.py"
    found = []
    for node, top in _walk(tree, True):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == ROOT or alias.name.startswith(ROOT + "."):
                    found.append(Import(module, alias.name, (), rel, node.lineno, top))
            continue
        source = _resolve_from(module, is_package, node)
        if source != ROOT and not source.startswith(ROOT + "."):
            continue
        names = []
        for alias in node.names:
            sub = f"{source}.{alias.name}"
            if sub in modules:
                found.append(Import(module, sub, (), rel, node.lineno, top))
            else:
                names.append(alias.name)
        if names:
            found.append(Import(module, source, tuple(names), rel, node.lineno, top))
    return found


def all_imports() -> list[Import]:
    modules = source_modules()
    return [imp for name, path in modules.items() for imp in imports_of(name, path, modules)]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def upward(imports: list[Import]) -> list[tuple[Import, str]]:
    """Imports of a higher layer or between modules LAYERS doesn't place, each with what's wrong."""
    found = []
    for imp in imports:
        have, want = layer_of(imp.importer), layer_of(imp.target)
        if have is None or want is None or want > have:
            found.append((imp, f"({describe(have)}) -> {imp.target} ({describe(want)})"))
    return found


def private(imports: list[Import]) -> list[tuple[Import, str]]:
    """Imports of ``_private`` names from another module, each with the names."""
    return [
        (imp, f"-> {imp.target}: {', '.join(n for n in imp.names if _private(n))}")
        for imp in imports
        if imp.target != imp.importer and any(_private(n) for n in imp.names)
    ]


def _lines(found: list[tuple[Import, str]]) -> list[str]:
    return [f"{imp.file}:{imp.line}: {imp.importer} {what}" for imp, what in found]


def layer_violations(imports: list[Import]) -> list[str]:
    return _lines(upward(imports))


def private_violations(imports: list[Import]) -> list[str]:
    return _lines(private(imports))


def import_cycles(imports: list[Import]) -> list[list[str]]:
    """Groups of modules that import each other at the top level (strongly connected, size > 1)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for imp in imports:
        if imp.top_level and imp.target != imp.importer:
            graph[imp.importer].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graph is a few hundred edges deep at most
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def cycle_violations(imports: list[Import]) -> list[str]:
    """Each cycle with the top-level imports that close it."""
    problems = []
    for group in import_cycles(imports):
        members = set(group)
        edges = [
            f"    {imp.file}:{imp.line}: {imp.importer} -> {imp.target}"
            for imp in imports
            if imp.top_level and imp.importer in members and imp.target in members and imp.importer != imp.target
        ]
        problems.append(f"cycle between {', '.join(group)}:\n" + "\n".join(edges))
    return problems


def _report(kind: str, problems: list[str]) -> str:
    return f"{len(problems)} {kind}:\n" + "\n".join(problems)


def test_imports_go_downward():
    problems = layer_violations(all_imports())
    assert not problems, _report("imports of a higher layer or of a module LAYERS doesn't place", problems)


def test_no_private_names_across_modules():
    problems = private_violations(all_imports())
    assert not problems, _report("imports of another module's _private names", problems)


def test_no_import_cycles():
    problems = cycle_violations(all_imports())
    assert not problems, _report("import cycles at module top level", problems)


def test_the_checker_sees_each_kind_of_import(tmp_path, monkeypatch):
    """Relative, absolute, in-function and private imports are all found (a checker that sees nothing passes)."""
    pkg = tmp_path / "src" / ROOT
    (pkg / "utils").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "utils" / "__init__.py").write_text("")
    (pkg / "config.py").write_text("from .utils import helper\n")
    (pkg / "utils" / "helper.py").write_text(
        "import fieldtune.config\n\ndef f():\n    from ..serving import app\n    from ..config import _x\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path / "src")
    imports = all_imports()
    assert layer_violations(imports) == [
        "src/fieldtune/utils/helper.py:1: fieldtune.utils.helper (0 utils) -> fieldtune.config (1 config)",
        "src/fieldtune/utils/helper.py:4: fieldtune.utils.helper (0 utils) -> fieldtune.serving (16 serving)",
        "src/fieldtune/utils/helper.py:5: fieldtune.utils.helper (0 utils) -> fieldtune.config (1 config)",
    ]
    assert private_violations(imports) == [
        "src/fieldtune/utils/helper.py:5: fieldtune.utils.helper -> fieldtune.config: _x"
    ]
    assert import_cycles(imports) == [["fieldtune.config", "fieldtune.utils.helper"]]


def main() -> int:
    """Print every violation grouped by importer; exit 1 if there are any."""
    imports = all_imports()
    by_importer: dict[str, list[str]] = defaultdict(list)
    counts = {}
    for kind, found in (("layer", upward(imports)), ("private", private(imports))):
        counts[kind] = len(found)
        for imp, what in found:
            by_importer[imp.importer].append(f"  [{kind}] {imp.file}:{imp.line}: {what}")
    for importer in sorted(by_importer, key=lambda m: (-len(by_importer[m]), m)):
        print(f"{importer} ({describe(layer_of(importer))}): {len(by_importer[importer])}")
        print("\n".join(by_importer[importer]))
    cycles = cycle_violations(imports)
    counts["cycle"] = len(cycles)
    if cycles:
        print("\n" + "\n".join(cycles))
    print(f"\n{counts['layer']} layer, {counts['private']} private, {counts['cycle']} cycle violations")
    return 1 if any(counts.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
