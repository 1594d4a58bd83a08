"""The rules of ARCHITECTURE.md that a machine can check, read from the code's own
imports: which floor may import which, no import circles, modules of a readable
size, and no silenced type errors in the package."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "maildir_jmap"
MAX_LINES = 420  # "no module over ~400 lines"

# room -> rooms (of ours) it must never import
FORBIDDEN = {
    "core": {"mime", "store", "mail", "sync", "delivery", "server", "http", "top"},
    "mime": {"store", "mail", "sync", "delivery", "server", "http", "top"},
    "store": {"mail", "sync", "delivery", "server", "http", "top"},
    "mail": {"sync", "delivery", "server", "http", "top"},
    "sync": {"delivery", "server", "http", "top"},
    "delivery": {"mail", "sync", "server", "http", "top"},
    "server": {"http", "top"},
}
TOP_LEVEL_COMMANDS = {
    "cli", "admin", "console", "runas", "serve", "__main__", "check", "demo",
    "embedded", "preflight", "reload",
}  # fmt: skip
HTTP_LIBRARIES = ("fastapi", "starlette", "uvicorn")


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def imports(path: Path) -> set[str]:
    """Every module an import in ``path`` names (function-level ones too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def room(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 2:  # maildir_jmap.config and the like
        return "cmd" if parts[1] in TOP_LEVEL_COMMANDS else "base"
    return parts[1] if len(parts) > 2 else "base"


ALL = dict(modules())


def ours(names: set[str]) -> set[str]:
    return {n for n in names if n in ALL}


@pytest.mark.parametrize("module", sorted(ALL))
def test_no_import_runs_against_the_floors(module: str) -> None:
    own = room(module)
    bad = {
        name
        for name in ours(imports(ALL[module]))
        if (room(name) == "cmd" and own != "cmd") or room(name) in FORBIDDEN.get(own, set())
    }
    assert not bad, f"{module} imports {sorted(bad)} (ARCHITECTURE.md: the floors)"


def test_the_server_room_has_no_http_in_it() -> None:
    for module, path in ALL.items():
        if room(module) in ("server", "core", "store", "mail", "sync", "delivery", "mime"):
            used = [n for n in imports(path) if n.split(".")[0] in HTTP_LIBRARIES]
            assert not used, f"{module} imports {used}"


def test_no_import_circles() -> None:
    graph = {m: ours(imports(p)) - {m} for m, p in ALL.items()}
    # A package's face imports its own modules; only module -> module edges count.
    graph = {m: {n for n in deps if not m.startswith(n + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = [*trail[trail.index(dep) :], dep] if dep in trail else [node, dep]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, [*trail, dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_modules_stay_readable() -> None:
    long = {m: n for m, p in ALL.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these (ARCHITECTURE.md): {long}"


def test_no_silenced_type_errors_in_the_package() -> None:
    silenced = [m for m, p in ALL.items() if "type: ignore" in p.read_text()]
    assert not silenced
