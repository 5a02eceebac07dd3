"""Every command's --help renders:
help text is rich markup, where a stray `[/X]` is a crash, not text.
"""

from __future__ import annotations

from typer.main import get_command
from typer.testing import CliRunner

from prodgan.cli import app


def _paths(command, prefix: tuple[str, ...] = ()):
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from _paths(sub, (*prefix, name))


def test_every_help_renders():
    root = get_command(app)
    runner = CliRunner()
    paths = list(_paths(root))
    assert len(paths) > 20 and ("evaluate",) in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output, result.exception)
        assert "Usage" in result.output
