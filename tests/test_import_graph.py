"""The shape of the code: one definition of each shared list, and imports that only point down.

Read with the standard library's ``ast`` (nothing is imported), so a broken module is reported by name.
"""
from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("backend", "storage", "studio")


def _sources() -> dict[str, str]:
    out: dict[str, str] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    return out


NOT_YET: set[tuple[str, str]] = set()     # (file, literal) allowed for now; none left


def test_each_shared_list_is_defined_once_in_backend_choices():
    literals = ['"smollm2-135m-instruct"', '"tail", "head", "balanced"', '"masked", "causal", "seq2seq"']
    for literal in literals:
        where = [path for path, text in _sources().items()
                 if literal in text and (path, literal) not in NOT_YET]
        assert where == ["backend/choices.py"], f"{literal} is defined in {where}; import it from backend.choices"


# ------------------------------------------------------------------------------------------ import arrows

ENGINE = ("backend.prompts", "backend.models", "backend.data")
# Leaves the engine may use: no imports from the project (the standard library, and for backend.hub the
# hub client the engine's loaders use anyway).
ENGINE_LEAVES = ("backend", "backend.errors", "backend.choices", "backend.textcheck", "backend.hub")
# Cycles that stay for now, each with why; a cycle not listed here fails.
KNOWN_CYCLES: dict[frozenset[str], str] = {}   # none: heartbeats (backend/liveness.py) sit below jobs and pipeline
MAX_LINES = 400
# Modules over MAX_LINES for now, each with why.
LONG_ALLOWED: dict[str, str] = {}


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's __init__)."""
    out: dict[str, tuple[Path, bool]] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at module level or inside functions, except under ``if TYPE_CHECKING:``
    (annotations only: those never run)."""
    stack: list[ast.AST] = [tree]
    while stack:
        for child in ast.iter_child_nodes(stack.pop()):
            test = getattr(child, "test", None)
            if isinstance(child, ast.If) and (getattr(test, "id", None) == "TYPE_CHECKING"
                                              or getattr(test, "attr", None) == "TYPE_CHECKING"):
                stack.extend(child.orelse)
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child
            else:
                stack.append(child)


def _targets(node: ast.Import | ast.ImportFrom, package: str, mods: Iterable[str]) -> Iterator[str]:
    """The modules an import statement names (``from a import b`` is module ``a.b`` when that is one)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
    for alias in node.names:
        yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in mods else base


def _import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: first line}. Importing ``a.b.c`` also runs ``a.b``'s ``__init__`` (an
    arrow to it too), unless the importer is inside ``a.b`` already."""
    mods = _modules()
    graph: dict[str, dict[str, int]] = {}
    for name, (path, is_pkg) in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = name if is_pkg else name.rpartition(".")[0]
        arrows: dict[str, int] = {}
        for node in _import_nodes(tree):
            for target in _targets(node, package, mods):
                while target not in mods and "." in target:
                    target = target.rpartition(".")[0]
                while target in mods and not _under(name, target):
                    arrows.setdefault(target, node.lineno)
                    target = target.rpartition(".")[0]
        graph[name] = arrows
    return graph


def _wrong_way(src: str, dst: str) -> str | None:
    if _under(src, "storage") and (_under(dst, "backend") or _under(dst, "studio")):
        return "storage never imports the backend or the studio"
    if _under(src, "backend") and _under(dst, "studio"):
        return "the backend never imports the studio"
    if any(_under(src, e) for e in ENGINE) and _under(dst, "backend") \
            and not any(_under(dst, e) for e in ENGINE) and dst not in ENGINE_LEAVES:
        return "the engine (prompts, models, data) never imports what is built on it"
    return None


def test_imports_point_down():
    wrong = [f"{src} (line {line}) -> {dst}: {why}"
             for src, arrows in sorted(_import_graph().items()) for dst, line in sorted(arrows.items())
             if (why := _wrong_way(src, dst))]
    assert not wrong, "imports that point up:\n" + "\n".join(wrong)


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        on_stack.append(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    on_stack.append(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                at = on_stack.index(node)
                component, on_stack[at:] = on_stack[at:], []
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _cycle_path(graph: dict[str, dict[str, int]], component: list[str]) -> str:
    """One concrete loop inside the component, with the line of each arrow, for the failure message."""
    members, path, seen = set(component), [component[0]], {component[0]}
    while True:
        here = path[-1]
        nxt = next((m for m in sorted(graph[here]) if m in members and m not in seen), None) \
            or next(m for m in sorted(graph[here]) if m in members)
        path.append(nxt)
        if nxt in seen:
            loop = path[path.index(nxt):]
            return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(loop, loop[1:])) + f" -> {nxt}"
        seen.add(nxt)


def test_no_import_cycles():
    graph = _import_graph()
    cycles = [c for c in _cycles(graph) if frozenset(c) not in KNOWN_CYCLES]
    assert not cycles, "import cycles (move the shared piece down):\n" + "\n".join(
        f"{_cycle_path(graph, c)}   [all of: {', '.join(c)}]" for c in cycles)
    stale = [sorted(c) for c in KNOWN_CYCLES if list(sorted(c)) not in _cycles(graph)]
    assert not stale, f"KNOWN_CYCLES lists cycles that are gone; remove them: {stale}"


def test_the_cycle_finder_finds_a_cycle_and_its_path():
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}, "e": {"e": 5}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycle_path(graph, ["a", "b", "c"]) == "a (line 1) -> b (line 2) -> c (line 3) -> a"


def test_the_graph_sees_function_level_imports_and_skips_type_checking():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import x.hidden\n"
                     "def f():\n    from .sib import g\n    import y\n")
    names = [t for n in _import_nodes(tree) for t in _targets(n, "pkg", {"pkg.sib"})]
    assert sorted(names) == ["pkg.sib", "typing", "y"]


def test_the_layer_rule_names_each_wrong_way():
    assert _wrong_way("storage.store", "backend.errors")
    assert _wrong_way("backend.services.data", "studio.shared")
    assert _wrong_way("backend.prompts.wrap", "backend.pipeline")
    assert _wrong_way("backend.data.loader", "backend.services")
    assert not _wrong_way("backend.data.loader", "backend.prompts.example")
    assert not _wrong_way("backend.models.kind", "backend.choices")
    assert not _wrong_way("backend.pipeline", "backend.prompts.template")
    assert not _wrong_way("studio.tabs.data", "backend.services.data")


def test_no_module_is_over_400_lines():
    long = {path: n for path, text in _sources().items()
            if (n := text.count("\n")) > MAX_LINES and path not in LONG_ALLOWED}
    assert not long, f"modules over {MAX_LINES} lines (split each into parts that do one job): {long}"
    stale = [p for p in LONG_ALLOWED if _sources().get(p, "").count("\n") <= MAX_LINES]
    assert not stale, f"LONG_ALLOWED lists modules that are short now; remove them: {stale}"


def test_shipped_code_never_imports_pytest():
    """Test helpers live under tests/ (tests/storage_helpers.py, tests/job_helpers.py, ...): an installed
    backend, storage or studio must not need pytest."""
    found = [f"{path}:{node.lineno}" for path, text in _sources().items()
             for node in _import_nodes(ast.parse(text, filename=path))
             if any(name == "pytest" or name.startswith("pytest.") or name.startswith("_pytest")
                    for name in ([a.name for a in node.names] if isinstance(node, ast.Import)
                                 else [node.module or ""]))]
    assert not found, f"shipped code imports pytest (move it to a helper under tests/): {found}"
