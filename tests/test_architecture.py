"""The dependency rule of docs/architecture.md, read from the source.

Every `import` in `src/lmforge` becomes an edge between two modules: at module level, inside a
function (a lazy import is still a dependency) or under `if TYPE_CHECKING:` (a type annotation
names the module it comes from). Rooms stand on floors; a room may import its own modules and
rooms on lower floors, never a higher one, and no chain of imports may come back to where it
started. Same-floor imports between rooms are allowed while the room graph stays acyclic.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "lmforge"

# Floor of each room, bottom to top (docs/architecture.md, "The dependency rule").
FLOORS: dict[str, int] = {
    "lmforge": 0,  # the package root: version and LmforgeError only
    "assets": 0,
    "errors": 0,
    "hardware": 0,
    "lazy": 0,
    "tokenizer": 1,
    "model": 1,
    "kernels": 1,
    "checkpoint": 2,
    "data": 2,
    "train": 3,
    "generate": 3,
    "rag": 4,
    "eval": 4,
    "serve": 5,
    "cli": 5,
    "demo": 5,
    "__main__": 5,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The lmforge modules `path` imports.

    `from pkg import name` depends on `pkg.name` when that is a module, else on `pkg` itself
    (its `__init__`). Parent packages imported implicitly on the way are not counted.
    """
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else base)
    return {m for m in found if m in modules and m != here}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imported_modules(p, modules) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of nodes (first == last), or None; iterative DFS."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for start in graph:
        if state.get(start):
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return [*path[path.index(child) :], child]
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph.get(child, ())))))
    return None


def test_every_room_has_a_floor() -> None:
    rooms = {room_of(m) for m in import_graph()}
    assert rooms <= set(FLOORS), f"rooms without a floor: {sorted(rooms - set(FLOORS))}"


def test_no_import_goes_upward() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in sorted(import_graph().items())
        for target in sorted(targets)
        if FLOORS[room_of(target)] > FLOORS[room_of(module)]
    ]
    assert not upward, "imports from a lower room to a higher one:\n" + "\n".join(upward)


def test_no_module_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_room_import_cycle() -> None:
    rooms: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        edges = rooms.setdefault(room_of(module), set())
        edges.update(room_of(t) for t in targets if room_of(t) != room_of(module))
    cycle = find_cycle(rooms)
    assert cycle is None, "rooms import each other: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("graph", "has_cycle"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, False),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
        ({"a": {"a2"}, "a2": set(), "b": {"a", "b2"}, "b2": {"b"}}, True),
    ],
)
def test_find_cycle_finds_cycles(graph: dict[str, set[str]], has_cycle: bool) -> None:
    assert (find_cycle(graph) is not None) == has_cycle


def test_lazy_imports_count(tmp_path: Path) -> None:
    """An import inside a function is an edge too: the rule is about dependencies, not timing."""
    source = tmp_path / "lmforge" / "model" / "x.py"
    source.parent.mkdir(parents=True)
    source.write_text("def f():\n    from lmforge.rag.answer import A\n", encoding="utf-8")
    global SRC
    saved, SRC = SRC, tmp_path
    try:
        assert imported_modules(source, {"lmforge.rag.answer", "lmforge.model.x"}) == {
            "lmforge.rag.answer"
        }
    finally:
        SRC = saved
