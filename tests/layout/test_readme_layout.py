"""The README's Layout table against the tree: every package and root module named, on its floor.

A row names paths in backticks in its `where` cell (`prodgan/ops/`, `prodgan/settings.py`);
its `floor` cell must be the floor tests/layout/test_architecture.py gives that path.
"""

from __future__ import annotations

import re

from tests.layout.test_architecture import ROOT, _floors

README = ROOT / "README.md"
PACKAGE = ROOT / "prodgan"


def _layout_rows() -> list[tuple[str, list[str]]]:
    """(floor, paths named) for each row of the table under `## Layout`."""
    section = README.read_text().split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert len(rows) > 2, "README's Layout section has no table"
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert header[:2] == ["floor", "where"], header
    table = []
    for row in rows[2:]:
        floor, where = (cell.strip() for cell in row.strip("|").split("|")[:2])
        table.append((floor, re.findall(r"`([^`]+)`", where)))
    return table


def _dotted(path: str) -> str:
    return path.removesuffix("/").removesuffix(".py").replace("/", ".")


def _on_disk() -> set[str]:
    """What the table must name: flows/, and every package and root module directly in prodgan/."""
    packages = {f"prodgan/{p.parent.name}/" for p in PACKAGE.glob("*/__init__.py")}
    modules = {f"prodgan/{p.name}" for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    return {"flows/"} | packages | modules


def _named() -> set[str]:
    return {path for _, paths in _layout_rows() for path in paths}


def test_every_package_and_root_module_is_in_the_layout_table() -> None:
    unnamed = sorted(_on_disk() - _named())
    assert unnamed == [], f"README layout table: add a row for each of {unnamed}"


def test_nothing_in_the_layout_table_is_missing_on_disk() -> None:
    missing = sorted(p for p in _named() if not (ROOT / p).exists())
    assert missing == [], f"README layout table names paths that do not exist: {missing}"


def test_each_row_sits_on_the_floor_the_architecture_test_gives_it() -> None:
    wrong = [
        (path, floor, _floors(_dotted(path)))
        for floor, paths in _layout_rows()
        for path in paths
        if _floors(_dotted(path)) != [floor]
    ]
    assert wrong == [], f"(path, README floor, architecture floor): {wrong}"
