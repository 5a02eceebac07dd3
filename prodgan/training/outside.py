"""An outside trainer in a training recipe: the command prodgan runs instead of its own loop, the
files it leaves, and the placeholders prodgan fills in.

    trainer:
      command: [python, train.py, --data, "{data_dir}", --out, "{out_dir}"]
      model: generator.pt2      # what the command leaves in {out_dir}: the exported generator
      spec: spec.yaml           # ... and the spec file that declares its contract
      cwd: .                    # where it runs, relative to the recipe's folder (default: there)
      code: [train.py]          # its code, hashed when `cwd` is not in a git repository

Torch-free, like the rest of the config: a recipe is checked in milliseconds. The command is a
list (no shell), and only prodgan's placeholders are filled, so nothing in the recipe is evaluated.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Annotated

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

from prodgan.errors import ProdganError

# What `{name}` in the command becomes (see `command_for`).
PLACEHOLDERS = ("data_dir", "out_dir", "dataset", "size", "channels", "seed")
# The recipe keys that mean something beside `trainer:` (the rest drive prodgan's own loop).
RECIPE_KEYS = ("dataset", "seed", "trainer")
FileName = Annotated[str, Field(min_length=1, pattern=r"^[^/\\]+$")]


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class OutsideTrainer:
    command: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    model: FileName
    spec: FileName
    cwd: str = "."
    code: list[str] = Field(default_factory=list)

    def workdir(self, recipe: Path) -> Path:
        """Where the command runs: `cwd`, relative to the recipe's folder."""
        return (Path(recipe).resolve().parent / self.cwd).resolve()

    def code_files(self, recipe: Path) -> list[Path]:
        """The files that are the trainer's code when no git repository says which revision runs:
        `code`, else the command's arguments that name files in its folder (`train.py`)."""
        workdir = self.workdir(recipe)
        named = self.code or [arg for arg in self.command if "{" not in arg]
        return sorted({(workdir / name).resolve() for name in named if (workdir / name).is_file()})

    def command_for(self, values: dict[str, str]) -> list[str]:
        """The command with `{placeholder}`s filled from `values` (keys: PLACEHOLDERS)."""
        filled = []
        for arg in self.command:
            try:
                names = {field for _, field, _, _ in string.Formatter().parse(arg) if field}
            except ValueError as exc:
                raise ProdganError(
                    f"trainer.command argument {arg!r}: {exc} (write {{{{ }}}} for a literal brace)"
                ) from None
            unknown = names - set(PLACEHOLDERS)
            if unknown:
                raise ProdganError(
                    f"trainer.command uses {{{sorted(unknown)[0]}}}, which prodgan does not fill; "
                    f"use {', '.join('{' + p + '}' for p in PLACEHOLDERS)} (or {{{{ }}}} for a "
                    "literal brace)"
                )
            filled.append(arg.format_map(values))
        return filled


def check_recipe_keys(values: dict, source: str) -> None:
    """A recipe with `trainer:` sets nothing of prodgan's loop: such a key would be silently
    ignored, so it is refused."""
    if values.get("trainer") is None:
        return
    loop_keys = sorted(set(values) - set(RECIPE_KEYS))
    if loop_keys:
        raise ProdganError(
            f"invalid {source}: {', '.join(loop_keys)} configure prodgan's own training loop, "
            f"but trainer: runs an outside command; keep only {', '.join(RECIPE_KEYS)} "
            "(pass anything else to the command itself)"
        )
