"""The floors of docs/architecture.md, checked on the source: imports point down, never round.

Imports are read with `ast`, function-level ones included, so a lazy import cannot hide a
layer violation or a cycle. A module belongs to a floor by its package, so a new module inside
a package is placed automatically and a new root module must be placed here on purpose.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("prodgan", "flows")
STACK = ("mlflow", "prefect", "dvc", "great_expectations")

# Each floor claims packages (and everything under them) and root modules, by dotted name.
# `prodgan` itself (its __init__: the version string) is bottom; nothing else under it is.
FACES = {
    "cli": ("prodgan.cli", "prodgan.__main__"),
    "flows": ("flows",),
}
FLOORS: dict[str, tuple[str, ...]] = {
    "faces": FACES["cli"] + FACES["flows"],
    "ops": ("prodgan.ops",),
    "adapters": ("prodgan.adapters",),
    "policy": ("prodgan.policy",),
    "core": (
        "prodgan.models",
        "prodgan.training",
        "prodgan.metrics",
        "prodgan.data",
        "prodgan.edit",
        "prodgan.generate",
        "prodgan.imaging",
    ),
    "bottom": (
        "prodgan",
        "prodgan.settings",
        "prodgan.errors",
        "prodgan.console",
        "prodgan.names",
        "prodgan.fsutil",
    ),
}
# The floors a module may import from (its own included); a face also only its own face.
MAY_IMPORT = {
    "faces": ("faces", "ops", "bottom"),
    "ops": ("ops", "adapters", "policy", "core", "bottom"),
    "adapters": ("adapters", "policy", "core", "bottom"),
    "policy": ("policy", "core", "bottom"),
    "core": ("core", "bottom"),
    "bottom": ("bottom",),
}
NO_STACK = ("policy", "core", "bottom")
# The one deliberate face-to-face call: `prodgan retrain` (and `retrain --all`, the nightly flow)
# runs the Prefect flow itself, so a retrain started from the CLI is the same flow run (tasks,
# artifacts, events, fan-out) a schedule starts.
FACE_TO_FACE = {
    ("prodgan.cli.orchestrate", "flows.retrain"),
    ("prodgan.cli.orchestrate", "flows.nightly"),
}


def _claims(name: str, module: str) -> bool:
    return module == name or (name != "prodgan" and module.startswith(name + "."))


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


PATHS = {_module(p): p for folder in FOLDERS for p in sorted((ROOT / folder).rglob("*.py"))}


def _known(name: str) -> str | None:
    """The module an import of `name` loads: itself, or the nearest package or module above it."""
    while name and name not in PATHS:
        name = name.rpartition(".")[0]
    return name or None


@cache
def _tree(module: str) -> ast.Module:
    path = PATHS[module]
    return ast.parse(path.read_text(), filename=str(path))


@cache
def _imports(module: str) -> tuple[frozenset[str], frozenset[str]]:
    """(the prodgan/flows modules `module` imports, the top-level outside packages it imports).

    `from prodgan.x import name` is an edge to the module prodgan.x.name when that is a module,
    else to prodgan.x; a package's __init__ is a node of its own.
    """
    package = module if PATHS[module].name == "__init__.py" else module.rpartition(".")[0]
    inside: set[str] = set()
    outside: set[str] = set()

    def add(name: str) -> None:
        found = _known(name)
        if found:
            inside.add(found)
        elif name.split(".")[0] not in FOLDERS:
            outside.add(name.split(".")[0])

    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            for alias in node.names:
                add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in PATHS else base)
    inside.discard(module)
    return frozenset(inside), frozenset(outside)


def _floors(module: str) -> list[str]:
    return [f for f, names in FLOORS.items() if any(_claims(n, module) for n in names)]


def _face(module: str) -> str | None:
    return next((f for f, names in FACES.items() if any(_claims(n, module) for n in names)), None)


def _other_face(module: str, imported: str) -> bool:
    return _face(imported) is not None and _face(imported) != _face(module)


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(_claims(p, module) for p in prefixes)


def test_every_module_belongs_to_exactly_one_floor() -> None:
    unplaced = sorted(m for m in PATHS if m.startswith("prodgan") and len(_floors(m)) != 1)
    assert unplaced == [], (
        "modules no floor (or more than one) claims; place each in FLOORS and in the README "
        f"layout table: {[(m, _floors(m)) for m in unplaced]}"
    )


def _cycles() -> list[list[str]]:
    """Every elementary import cycle, each as a chain starting at its smallest module."""
    graph = {m: sorted(_imports(m)[0]) for m in PATHS}
    found: list[list[str]] = []

    def walk(start: str, path: list[str]) -> None:
        for nxt in graph[path[-1]]:
            if nxt == start:
                found.append([*path, start])
            elif nxt > start and nxt not in path and len(found) < 100:
                walk(start, [*path, nxt])

    for start in sorted(graph):
        walk(start, [start])
    return found


def test_no_import_cycles() -> None:
    chains = [" -> ".join(chain) for chain in _cycles()]
    assert chains == [], "import cycles:\n" + "\n".join(chains)


def _violations(floor: str) -> dict[str, list[str]]:
    bad: dict[str, list[str]] = {}
    for module in PATHS:
        if _floors(module) != [floor]:
            continue
        inside, outside = _imports(module)
        wrong = [
            f"{i} ({'/'.join(_floors(i)) or 'no floor'})"
            for i in sorted(inside)
            if not set(_floors(i)) & set(MAY_IMPORT[floor])
        ]
        if floor == "faces":
            wrong += [
                f"{i} (the {_face(i)} face)"
                for i in sorted(inside)
                if _other_face(module, i) and (module, i) not in FACE_TO_FACE
            ]
        if floor in NO_STACK:
            wrong += [f"{o} (stack)" for o in sorted(outside) if o in STACK]
        if wrong:
            bad[module] = wrong
    return bad


@pytest.mark.parametrize("floor", list(FLOORS))
def test_imports_point_down(floor: str) -> None:
    """faces -> ops + bottom; ops -> adapters/policy/core/bottom; adapters never up; policy and
    core and bottom never reach a stack package (mlflow, prefect, dvc, great_expectations)."""
    allowed = ", ".join(MAY_IMPORT[floor]) + (" (no stack package)" if floor in NO_STACK else "")
    bad = _violations(floor)
    assert bad == {}, f"{floor} may import only {allowed}:\n" + "\n".join(
        f"{module} -> {', '.join(wrong)}" for module, wrong in bad.items()
    )


def test_no_module_but_ops_and_settings_errors_console_is_shared_by_cli_and_flows() -> None:
    def reached(face: str) -> set[str]:
        return {i for m in PATHS if _face(m) == face for i in _imports(m)[0]}

    shared = {m for m in reached("cli") & reached("flows") if m.startswith("prodgan")}
    assert {
        m
        for m in shared
        if not _within(m, ("prodgan.ops", "prodgan.settings", "prodgan.errors", "prodgan.console"))
    } == set()


def test_only_settings_reads_the_environment() -> None:
    readers = []
    for module, path in PATHS.items():
        if not module.startswith("prodgan"):
            continue
        for node in ast.walk(_tree(module)):
            is_get = (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("get", "getenv")
                and "environ" in ast.unparse(node.func.value) + ast.unparse(node.func)
            )
            is_index = (
                isinstance(node, ast.Subscript)
                and ast.unparse(node.value).endswith("os.environ")
                and isinstance(node.ctx, ast.Load)
            )
            if (is_get or is_index) and path.name != "settings.py":
                readers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert readers == []


@pytest.mark.parametrize("module", sorted(PATHS))
def test_every_module_opens_by_saying_its_job(module: str) -> None:
    """A module's first docstring line is its job; one that needs two jobs is two modules."""
    doc = ast.get_docstring(_tree(module)) or ""
    first = doc.splitlines()[0].strip() if doc else ""
    assert len(first.split()) >= 4, (
        f"{PATHS[module].relative_to(ROOT)} must open with a docstring whose first line says "
        f"its job (found {first!r})"
    )
