"""The package's import structure: no cycles, layers only look down.

The import graph is built from the source, not by importing it: every
``import`` statement of every module under ``src/genarch`` is an edge, at module
level *and* inside functions (a lazy import is still a dependency: it runs the
first time the function does, and a cycle through it breaks then).
Imports under ``if TYPE_CHECKING:`` are left out: they never run.

What an import statement is an edge *to*:

* ``import genarch.data.text`` and ``from genarch.data.text import X`` → the
  module ``genarch.data.text``;
* ``from genarch.data import text`` where ``text`` is a submodule →
  ``genarch.data.text``; where the name is an attribute (``from genarch.data
  import Chunker``) → the package ``genarch.data``, i.e. its ``__init__``,
  which re-exports (and so imports) the package's modules;
* relative imports are resolved against the importing module's package.

A design choice, written down here because it decides what the test can see:
Python runs every parent package's ``__init__`` before a submodule
(``from genarch.errors import X`` first runs ``genarch/__init__.py``, which
imports nearly everything). Counting those implicit edges would put every
module on one cycle through ``genarch/__init__`` and make the test fail for
any code at all, so it would say nothing. We count the module a statement
names, and nothing above it: importing ``genarch.errors`` depends on
``genarch.errors``. Importing a *package* (``from genarch.data import
Chunker``) does count its ``__init__`` and thereby the package's re-exports —
that dependency is real and is what turns a lazy ``from genarch import ...``
in a low module into a cycle. Keeping package ``__init__`` files re-export-only
(no logic of their own) is what makes this choice safe.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SOURCE_ROOT = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "genarch"

# --------------------------------------------------------------------- the rules
#
# Layers, lowest first: data -> features -> models -> orchestration. The
# training package (Trainer, ObjectiveOptimizer, schedules, checkpoints) stands
# beside the layers rather than in the chain: it trains *any* objective —
# "one trainer trains every model family genarch ships" (docs/concepts/training.md) —
# so the layers that learn (a contrastive feature encoder, the image models'
# ``fit``) use it, and it names none of them. The shared core (errors, schemas,
# protocols, config shell, persistence, pipeline, registry, validation and the
# private helpers) sits below everything and imports no layer.

LAYERS = ("data", "features", "models", "orchestration")
TRAINING = "training"

#: package -> the packages it may import (besides itself and the shared core).
ALLOWED: dict[str, frozenset[str]] = {
    "data": frozenset(),
    "training": frozenset(),
    "features": frozenset({"data", "training"}),
    "models": frozenset({"data", "features", "training"}),
    "orchestration": frozenset({"data", "features", "models", "training"}),
    # the kit checks protocols; it must work on components it has never heard of
    "testing": frozenset(),
    # the store stands on the core alone; preference optimisation and the reward model
    # train genarch models through genarch.training (never orchestration)
    "feedback": frozenset({"data", "features", "models", "training"}),
    # evaluators score what every layer produces, RAG answers included; nothing imports them
    "evaluation": frozenset({"data", "features", "models", "training", "orchestration"}),
    # deployment stands on the core and rebuilds components by registry name; it
    # reads the data layer's DataReport for model cards, nothing else
    "deploy": frozenset({"data"}),
    # private synthetic data stands on the Bayesian network (models) and DP-SGD on the trainer
    "privacy": frozenset({"data", "models", "training"}),
    # Ray runs the other layers' components on a cluster; nothing in them imports Ray
    "distributed": frozenset({*LAYERS, TRAINING, "deploy", "feedback", "evaluation", "privacy"}),
    # Flower trains genarch models across clients, optionally with the privacy layer
    "federated": frozenset({"data", "features", "models", "training", "privacy"}),
    # the command line and the package root sit on top
    "cli": frozenset({*LAYERS, TRAINING, "deploy", "feedback"}),
    "__main__": frozenset({"cli"}),
}
#: sub-packages and top-level modules that are not the shared core.
NOT_CORE = frozenset(
    {
        *LAYERS,
        TRAINING,
        "feedback",
        "evaluation",
        "deploy",
        "privacy",
        "distributed",
        "federated",
        "testing",
        "cli",
        "__main__",
    }
)
#: modules the registry may import: it is a leaf naming components by dotted path.
REGISTRY_MAY_IMPORT = frozenset({"genarch.errors"})


# ----------------------------------------------------------------- the graph


@dataclass(frozen=True)
class Edge:
    """``importer`` imports ``imported`` at ``line``; ``lazy`` when inside a function."""

    importer: str
    imported: str
    line: int
    lazy: bool

    def __str__(self) -> str:
        where = "lazily, " if self.lazy else ""
        return f"{self.importer} -> {self.imported}  ({where}{_path_of(self.importer)}:{self.line})"


def _path_of(module: str) -> str:
    return str(MODULE_FILES.get(module, module)).removeprefix(str(SOURCE_ROOT.parent) + "/")


def module_files(root: Path = SOURCE_ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of ``package`` under ``root``: dotted name -> file (a package is its __init__)."""
    files = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement that can run, with whether it sits inside a function."""

    def visit(node: ast.AST, lazy: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, lazy
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            children: Iterable[ast.AST] = node.orelse  # the body never runs
        else:
            children = ast.iter_child_nodes(node)
        inner = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in children:
            yield from visit(child, inner)

    yield from visit(tree, False)


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph(files: dict[str, Path]) -> list[Edge]:
    """The edges between the modules in ``files`` (the module docstring says what counts)."""
    edges = []
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        for node, lazy in _imports(ast.parse(path.read_text("utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _absolute(module, is_package, node)
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.append(submodule if submodule in files else base)
            for target in dict.fromkeys(targets):
                # a module that does not exist fails to import anyway: not an edge
                if target != module and target in files:
                    edges.append(Edge(module, target, node.lineno, lazy))
    return edges


def find_cycles(edges: Iterable[Edge]) -> list[list[Edge]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    successors: dict[str, dict[str, Edge]] = {}
    for edge in edges:
        successors.setdefault(edge.importer, {}).setdefault(edge.imported, edge)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:  # recursion depth is bounded by the module count
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in successors.get(node, {}):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(successors):
        if node not in index:
            connect(node)
    return [_a_cycle_in(sorted(c), successors) for c in components]


def _a_cycle_in(component: list[str], successors: dict[str, dict[str, Edge]]) -> list[Edge]:
    """The shortest cycle through the component's first module (breadth-first)."""
    start, members = component[0], set(component)
    came_from: dict[str, Edge] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor, edge in sorted(successors.get(node, {}).items()):
                if successor == start:
                    path = [edge]
                    while path[0].importer != start:
                        path.insert(0, came_from[path[0].importer])
                    return path
                if successor in members and successor not in came_from:
                    came_from[successor] = edge
                    following.append(successor)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a component of >1 has one


def area(module: str) -> str:
    """The package-level area a module belongs to: ``data``, ``training``, ... or ``core``."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in NOT_CORE:
        return parts[1]
    return "core" if module != PACKAGE else "root"


def layer_violations(edges: Iterable[Edge]) -> list[Edge]:
    """Edges from an area to one it may not import (see :data:`ALLOWED`)."""
    bad = []
    for edge in edges:
        source, target = area(edge.importer), area(edge.imported)
        if source == "root" or target in ("core", source):
            continue  # the package root re-exports; everyone may use the core
        if target == "root" or target not in ALLOWED.get(source, frozenset()):
            bad.append(edge)  # core importing a layer lands here too
    return bad


def _fail_listing(title: str, found: Iterable[object]) -> None:
    """Fail with ``title`` and one line per item, when there is any."""
    lines = [f"  {item}" for item in found]
    if lines:
        pytest.fail("\n".join([title, *lines]), pytrace=False)


MODULE_FILES = module_files()
EDGES = import_graph(MODULE_FILES)


# ------------------------------------------------------------------ the tests


def test_the_graph_sees_the_package() -> None:
    assert {"genarch", "genarch.errors", "genarch.data", "genarch.registry"} <= set(MODULE_FILES)
    assert any(e.importer == "genarch" and e.imported == "genarch.errors" for e in EDGES)


def test_no_import_cycle() -> None:
    cycles = find_cycles(EDGES)
    lines: list[str] = []
    for cycle in cycles:
        lines.append(" -> ".join([cycle[0].importer, *(edge.imported for edge in cycle)]))
        lines += [f"    {edge}" for edge in cycle]
    _fail_listing(f"{len(cycles)} import cycle(s) (lazy imports count):", lines)


def test_layers_import_only_what_they_stand_on() -> None:
    violations = layer_violations(EDGES)
    _fail_listing(
        "imports against the layering (data -> features -> models -> orchestration; "
        "training beside them, importing none; the core imports no layer):",
        violations,
    )


def test_nothing_imports_the_cli() -> None:
    importers = [
        e for e in EDGES if e.imported == "genarch.cli" and e.importer != "genarch.__main__"
    ]
    _fail_listing("genarch.cli is imported by:", importers)


def test_the_registry_is_a_leaf() -> None:
    imports = [
        e
        for e in EDGES
        if e.importer == "genarch.registry"
        and e.imported not in REGISTRY_MAY_IMPORT
        and not e.imported.split(".")[-1].startswith("_")
    ]
    _fail_listing("genarch.registry must name components, not import:", imports)


def test_library_code_does_not_import_the_testing_kit() -> None:
    users = [
        e
        for e in EDGES
        if area(e.imported) == "testing" and area(e.importer) not in ("testing", "root")
    ]
    _fail_listing("library code importing genarch.testing:", users)


def test_the_package_root_does_not_import_the_kit() -> None:
    # ``import genarch`` must not drag in the kit (and with it pytest helpers)
    users = [e for e in EDGES if e.importer == "genarch" and area(e.imported) == "testing"]
    _fail_listing("genarch/__init__ imports the testing kit:", users)


# ------------------------------------------- the graph builder itself, on known code


def _graph_of(tmp_path: Path, sources: dict[str, str]) -> list[Edge]:
    for name, text in sources.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
    return import_graph(module_files(tmp_path, "pkg"))


def _pairs(edges: Iterable[Edge]) -> set[tuple[str, str]]:
    return {(e.importer, e.imported) for e in edges}


def test_lazy_imports_count_and_type_checking_imports_do_not(tmp_path: Path) -> None:
    edges = _graph_of(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from pkg.b import B\n"
            "def f():\n    from pkg.c import C\n",
            "b.py": "",
            "c.py": "",
        },
    )
    assert _pairs(edges) == {("pkg.a", "pkg.c")}
    assert all(e.lazy for e in edges)


def test_relative_imports_and_submodules_resolve(tmp_path: Path) -> None:
    edges = _graph_of(
        tmp_path,
        {
            "__init__.py": "from pkg.sub import thing\n",
            "sub/__init__.py": "from .impl import thing\n",
            "sub/impl.py": "from .. import other\nfrom ..sub import helpers\nimport pkg.sub.helpers\n",
            "sub/helpers.py": "",
            "other.py": "",
        },
    )
    assert _pairs(edges) == {
        ("pkg", "pkg.sub"),
        ("pkg.sub", "pkg.sub.impl"),
        ("pkg.sub.impl", "pkg.other"),
        ("pkg.sub.impl", "pkg.sub.helpers"),
    }


def test_a_cycle_through_a_lazy_import_is_found_and_printed(tmp_path: Path) -> None:
    edges = _graph_of(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "import pkg.b\n",
            "b.py": "def f():\n    from pkg import c\n",
            "c.py": "from pkg.a import x\n",
            "d.py": "import pkg.a\n",
        },
    )
    (cycle,) = find_cycles(edges)
    assert [e.importer for e in cycle] == ["pkg.a", "pkg.b", "pkg.c"]
    assert cycle[-1].imported == "pkg.a"
    assert cycle[1].lazy


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("genarch.models.gan", "genarch.data.images", True),
        ("genarch.models.gan", "genarch.training", True),
        ("genarch.data.report", "genarch.pipeline", True),
        ("genarch.data.text", "genarch.features.lexical", False),
        ("genarch.features.pooled", "genarch.models.transformer", False),
        ("genarch.training.objectives", "genarch.models.transformer", False),
        ("genarch.pipeline", "genarch.data", False),
        ("genarch.orchestration.rag", "genarch.cli", False),
    ],
)
def test_the_layer_rule(importer: str, imported: str, allowed: bool) -> None:
    assert (layer_violations([Edge(importer, imported, 1, False)]) == []) is allowed
