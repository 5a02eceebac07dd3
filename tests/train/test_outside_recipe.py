"""A recipe's outside trainer (`trainer:`): the recipe checks, the placeholders, and the code
identity that freshness compares (git revision + uncommitted changes, or the named files' hash).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from prodgan.adapters.trainer_code import trainer_code
from prodgan.errors import ProdganError
from prodgan.training.config import load_config
from tests.conftest import run

RECIPE = """dataset: fashion-mnist
trainer:
  command: [python, train.py, --data, "{data_dir}", --out, "{out_dir}", --seed, "{seed}"]
  model: generator.pt2
  spec: spec.yaml
"""


def _recipe(folder: Path, text: str = RECIPE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text("print('training')\n")
    (folder / "recipe.yaml").write_text(text)
    return folder / "recipe.yaml"


def test_recipe_fills_placeholders_and_refuses_what_it_cannot_honour(tmp_path: Path) -> None:
    path = _recipe(tmp_path / "trainer")
    cfg = load_config(path)
    values = {"data_dir": "/d", "out_dir": "/o", "dataset": "x", "size": "28", "channels": "1"}
    assert cfg.trainer.command_for({**values, "seed": "7"}) == [
        "python",
        "train.py",
        "--data",
        "/d",
        "--out",
        "/o",
        "--seed",
        "7",
    ]
    assert cfg.trainer.workdir(path) == (tmp_path / "trainer").resolve()
    assert cfg.trainer.code_files(path) == [(tmp_path / "trainer" / "train.py").resolve()]

    with pytest.raises(ProdganError, match="steps configure prodgan's own training loop"):
        load_config(path, ["steps=10"])
    for bad, reason in (
        (RECIPE.replace("generator.pt2", "../generator.pt2"), "trainer.model"),
        (RECIPE.replace("  spec: spec.yaml\n", ""), "trainer.spec: missing"),
        (RECIPE.replace("command: [", "command: [], #["), "trainer.command"),
    ):
        with pytest.raises(ProdganError, match=reason):
            load_config(_recipe(tmp_path / reason.replace(" ", "-"), bad))
    unknown = load_config(_recipe(tmp_path / "unknown", RECIPE.replace("{seed}", "{gpu}")))
    with pytest.raises(ProdganError, match=r"uses \{gpu\}, which prodgan does not fill"):
        unknown.trainer.command_for({**values, "seed": "0"})


def test_code_identity_follows_commits_uncommitted_changes_and_named_files(
    tmp_path: Path,
) -> None:
    # outside git: the hash of the files the recipe names
    loose = _recipe(tmp_path / "loose").parent
    first = trainer_code(loose, [loose / "train.py"]).identity
    assert first.startswith("files-")
    assert trainer_code(loose, [loose / "train.py"]).identity == first
    (loose / "train.py").write_text("print('training harder')\n")
    assert trainer_code(loose, [loose / "train.py"]).identity != first
    with pytest.raises(ProdganError, match="not in a git repository"):
        trainer_code(loose, [])

    # in git: the revision, plus a hash of uncommitted changes under the trainer's folder
    repo = tmp_path / "repo"
    folder = _recipe(repo / "trainer").parent
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], repo)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "trainer"], repo)
    clean = trainer_code(folder, []).identity
    assert len(clean) == 40 and "+" not in clean
    (repo / "elsewhere.txt").write_text("not the trainer's code\n")
    assert trainer_code(folder, []).identity == clean, "changes outside its folder do not count"
    (folder / "train.py").write_text("print('edited')\n")
    edited = trainer_code(folder, []).identity
    assert edited.startswith(clean + "+changes-")
    (folder / "helper.py").write_text("X = 1\n")
    assert trainer_code(folder, []).identity not in (clean, edited), "untracked files count"
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], repo)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "edit"], repo)
    committed = trainer_code(folder, []).identity
    assert len(committed) == 40 and committed != clean
