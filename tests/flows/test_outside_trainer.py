"""Bring your own trainer: a tiny outside training script (tests/trainers/tiny_gan.py, plain torch,
no prodgan) run by the retrain flow on the embedded Prefect API, with real MLflow, DVC and GX.

It trains on the materialised train split inside prodgan's MLflow run, its export is imported,
evaluated and judged; an unchanged trainer skips, an edited one retrains; a failing one is one
line that names the command and its exit code, and registers nothing.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from flows.retrain import retrain
from prodgan import names
from prodgan.adapters import registry
from prodgan.errors import ProdganError
from prodgan.ops import train as train_ops
from prodgan.settings import Settings
from tests.conftest import run
from tests.flows.helpers import versions

SCRIPT = Path(__file__).resolve().parents[1] / "trainers" / "tiny_gan.py"


def _trainer_folder(settings: Settings) -> Path:
    """The script in its own folder of the project's git repository, committed, with its recipe."""
    folder = settings.root / "trainer"
    folder.mkdir()
    shutil.copy(SCRIPT, folder / "tiny_gan.py")
    command = [sys.executable, "tiny_gan.py", "--data", "{data_dir}", "--out", "{out_dir}"]
    (folder / "recipe.yaml").write_text(
        "dataset: fashion-mnist\n"
        "trainer:\n"
        f"  command: [{', '.join(repr(arg) for arg in command)}]\n"
        "  model: generator.pt2\n"
        "  spec: spec.yaml\n"
    )
    run(["git", "add", "trainer"], settings.root)
    run(["git", "commit", "-qm", "our own GAN trainer"], settings.root)
    return folder


# ~2 min of CPU on a quiet machine: the script trains three times (torch, a few steps, export),
# three imports, two evaluations of 50 images (references cached after the first)
@pytest.mark.slow
def test_retrain_runs_an_outside_trainer_skips_unchanged_and_retrains_edited(
    flow_project: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # passed through to the command as it is
    folder = _trainer_folder(flow_project)
    recipe = str(folder / "recipe.yaml")

    first = retrain(config=recipe)
    assert first["decision"] in ("promote", "reject"), first["reason"]
    client = registry.client_for(flow_project)
    train_run = client.get_run(first["mlflow"]["train_run_id"])
    tags = train_run.data.tags
    # prodgan's run, with the usual lineage, and the script's own metrics and tags landed in it
    assert train_run.info.status == "FINISHED"
    assert tags[names.DATA_HASH] == first["data_hash"] and tags[names.FLOW_RUN]
    assert tags[names.CONFIG_SHA] == first["config_sha256"]
    assert "tiny_gan_loss_g" in train_run.data.metrics
    [version] = versions(flow_project)
    assert version.tags[names.TRAIN_RUN] == train_run.info.run_id
    code = version.tags[names.GIT_REV]
    assert len(code) == 40, "a committed trainer is named by its revision"
    log = Path(
        client.download_artifacts(train_run.info.run_id, "trainer/trainer.log", str(tmp_path))
    )
    assert "tiny_gan: step 19" in log.read_text(), "its output streams to the run's log"
    assert "CUDA_VISIBLE_DEVICES=-1" in log.read_text(), "the GPUs it may use are passed through"

    unchanged = retrain(config=recipe)
    assert unchanged["decision"] == "skipped", unchanged["reason"]
    assert "nothing changed" in unchanged["reason"] and code in unchanged["reason"]
    assert len(versions(flow_project)) == 1

    (folder / "tiny_gan.py").write_text(
        (folder / "tiny_gan.py").read_text() + "\n# tuned: a comment is a code change\n"
    )
    edited = retrain(config=recipe)
    assert edited["decision"] in ("promote", "reject"), edited["reason"]
    assert (
        "trainer code changed" in edited["freshness"]
        if first["decision"] == "promote"
        else "no champion" in edited["freshness"]
    )
    newest = max(versions(flow_project), key=lambda mv: int(mv.version))
    assert str(newest.version) == "2" and newest.tags[names.GIT_REV].startswith(code + "+changes-")

    # a trainer that fails: one line naming the command and its exit code, nothing registered
    (folder / "tiny_gan.py").write_text("import sys\nprint('out of memory')\nsys.exit(3)\n")
    with pytest.raises(ProdganError) as failed:
        train_ops.train(flow_project, recipe)
    message = str(failed.value)
    assert "tiny_gan.py" in message and "exited with code 3" in message
    assert "out of memory" in message and "\n" not in message
    assert len(versions(flow_project)) == 2
