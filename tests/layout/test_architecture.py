"""The rules of the house (../shared/ARCHITECTURE.md), checked on the source: imports point down only.

Imports are read with `ast`, function-level ones included, so a lazy import cannot hide a
layer violation.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "prodgan"
STACK = ("mlflow", "prefect", "dvc", "great_expectations")
CORE = (
    "prodgan.models",
    "prodgan.train",
    "prodgan.train_config",
    "prodgan.metrics",
    "prodgan.edit",
    "prodgan.generate",
    "prodgan.data",
    "prodgan.imaging",
)
BOTTOM = {
    "prodgan.settings",
    "prodgan.errors",
    "prodgan.console",
    "prodgan.names",
    "prodgan.fsutil",
}
MAX_LINES = 300


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _sources(*folders: str) -> dict[str, set[str]]:
    files = [p for folder in folders for p in sorted((ROOT / folder).rglob("*.py"))]
    return {_module(p): _imports(p) for p in files}


def _prodgan_modules(imports: set[str]) -> set[str]:
    """The prodgan modules (not names inside them) an import set reaches."""
    modules = {_module(p) for p in PACKAGE.rglob("*.py")} | {
        "flows." + p.stem for p in (ROOT / "flows").glob("*.py")
    }
    return {name for name in imports if name in modules}


SOURCES = _sources("prodgan", "flows")


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_core_compute_imports_no_stack_package_and_no_upper_floor() -> None:
    bad = {
        m: sorted(
            i
            for i in imports
            if i.split(".")[0] in STACK
            or _within(i, ("prodgan.adapters", "prodgan.ops", "prodgan.cli", "flows"))
        )
        for m, imports in SOURCES.items()
        if _within(m, CORE)
    }
    assert not {m: i for m, i in bad.items() if i}


def test_adapters_never_import_ops_or_faces() -> None:
    bad = {
        m: sorted(i for i in imports if _within(i, ("prodgan.ops", "prodgan.cli", "flows")))
        for m, imports in SOURCES.items()
        if _within(m, ("prodgan.adapters",))
    }
    assert not {m: i for m, i in bad.items() if i}


def test_faces_reach_prodgan_only_through_ops_and_the_bottom_floor() -> None:
    allowed = ("prodgan.ops", "prodgan.cli") + tuple(BOTTOM)
    bad = {}
    for module, imports in SOURCES.items():
        if _within(module, ("prodgan.cli", "flows")):
            reached = {i for i in _prodgan_modules(imports) if i.startswith("prodgan")}
            bad[module] = sorted(i for i in reached if not _within(i, allowed))
    assert not {m: i for m, i in bad.items() if i}


def test_no_module_but_ops_and_settings_errors_console_is_shared_by_cli_and_flows() -> None:
    def reached(prefix: str) -> set[str]:
        return {
            i
            for m, imports in SOURCES.items()
            if _within(m, (prefix,))
            for i in _prodgan_modules(imports)
        }

    shared = {m for m in reached("prodgan.cli") & reached("flows") if m.startswith("prodgan")}
    assert {
        m
        for m in shared
        if not _within(m, ("prodgan.ops", "prodgan.settings", "prodgan.errors", "prodgan.console"))
    } == set()


def test_only_settings_reads_the_environment() -> None:
    readers = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
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


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_no_module_does_two_jobs(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES, (
        f"{path.name} is over {MAX_LINES} lines: split it by job"
    )
