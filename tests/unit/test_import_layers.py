"""glmkit's import structure, read from the source with ``ast`` (nothing is imported): no module imports
itself round a circle -- counting imports at module level, under ``if TYPE_CHECKING:`` and inside functions
alike, so a circle cannot hide in a lazy import --, the packages form layers, and ``settings`` sits at the
bottom (docs/architecture.md draws the layers)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def modules() -> dict[str, Path]:
    out = {}
    for f in sorted((SRC / "glmkit").rglob("*.py")):
        parts = list(f.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


MODULES = modules()


def known(name: str) -> str | None:
    """The glmkit module ``name`` refers to (``glmkit.a.b.func`` -> ``glmkit.a.b``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(mod: str) -> set[str]:
    """Every glmkit module ``mod`` imports, wherever the import statement is."""
    path = MODULES[mod]
    package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        names: Iterable[str] = ()
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            frm = ".".join(p for p in (base, node.module or "") if p)
            names = [f"{frm}.{a.name}" for a in node.names]
        for n in names:
            target = known(n)
            if target and target != mod and target.startswith("glmkit"):
                found.add(target)
    return found


GRAPH = {m: imports(m) for m in MODULES}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def package(mod: str) -> str:
    return ".".join(mod.split(".")[:2])


def test_the_graph_is_read() -> None:
    # negative control: the reader sees real edges, including lazy and type-only ones
    assert "glmkit.runtime.protocol" in GRAPH["glmkit.runtime.loaders"]
    assert "glmkit.runtime.backends.llamacpp" in GRAPH["glmkit.runtime.loaders"]  # inside a function
    assert "glmkit.apps.bot_config" in GRAPH["glmkit.apps.sessions"]  # under TYPE_CHECKING
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_round_a_circle() -> None:
    assert circles(GRAPH) == []


def test_packages_form_layers() -> None:
    packages: dict[str, set[str]] = {}
    for m, targets in GRAPH.items():
        packages.setdefault(package(m), set()).update(package(t) for t in targets if package(t) != package(m))
    assert circles(packages) == []


def test_settings_and_errors_import_nothing_above_them() -> None:
    assert GRAPH["glmkit.settings"] == set()
    assert GRAPH["glmkit.errors"] == set()
    assert GRAPH["glmkit.types"] <= {"glmkit.errors"}


def test_safety_uses_only_the_runtime_seam() -> None:
    # safety wraps any ChatModel; it never reaches for a backend (a model says ``remote = True`` itself)
    for m, targets in GRAPH.items():
        if package(m) == "glmkit.safety":
            runtime = {t for t in targets if package(t) == "glmkit.runtime"}
            assert runtime <= {"glmkit.runtime.protocol"}, (m, runtime)


CONSOLE_JS = SRC / "glmkit" / "server" / "console" / "js"
JS_IMPORT = re.compile(r'^import\s+(?:[\w*{}\s,$]+\s+from\s+)?"\./([\w.]+)";?$', re.M)


def test_console_modules_import_no_circle_and_every_import_exists() -> None:
    graph = {f.name: set(JS_IMPORT.findall(f.read_text("utf-8"))) for f in CONSOLE_JS.glob("*.js")}
    assert graph.get("main.js"), "the entry module imports the tabs"
    for name, targets in graph.items():
        assert targets <= graph.keys(), (name, targets - graph.keys())
    assert circles(graph) == []
    assert not any("main.js" in t for t in graph.values())  # nothing imports the entry module
