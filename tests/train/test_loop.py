"""The loop itself: reproducibility, checkpoints, fallback, divergence guard, bundles."""

from __future__ import annotations

import pytest
import torch

from prodgan.models import generate_uint8, load_bundle
from prodgan.training.checkpoints import list_checkpoints
from prodgan.training.loop import TrainingDiverged, train
from tests.train.helpers import tiny_config, tiny_split


@pytest.mark.parametrize(
    "loss, extra",
    [
        ("hinge", {}),
        ("ns", {"r1_gamma": 1.0, "r1_every": 2, "hflip": True, "precision": "bf16"}),
        ("wgan-gp", {"arch": "dcgan", "spectral_norm": False, "d_steps": 2, "precision": "bf16"}),
    ],
)
def test_trains_each_loss_and_writes_a_loadable_bundle(tmp_path, loss, extra):
    grids = []
    from prodgan.training.loop import TrainHooks

    class Recorder(TrainHooks):
        def on_grid(self, step, epoch, image):
            grids.append((step, image.shape))

    result = train(
        tiny_config(loss=loss, **extra), tiny_split(), tmp_path, hooks=Recorder(), progress=False
    )
    assert result.step == 6 and [s for s, _ in grids] == [3, 6]
    G, spec = load_bundle(result.bundle_dir)
    assert spec.num_classes == (0 if extra.get("arch") == "dcgan" else 3)
    images = generate_uint8(G, spec, 6, seed=1)
    assert images.shape == (6, 1, 28, 28) and images.dtype == torch.uint8
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt_00000006.pt", "ckpt_00000004.pt"]


def test_same_seed_same_weights_and_resume_is_exact(tmp_path):
    full = train(tiny_config(), tiny_split(), tmp_path / "a", progress=False)
    train(tiny_config(steps=4), tiny_split(), tmp_path / "b", progress=False)
    resumed = train(tiny_config(), tiny_split(), tmp_path / "b", resume=True, progress=False)
    assert resumed.step == full.step and resumed.weights_sha256 == full.weights_sha256
    other_seed = train(tiny_config(seed=1), tiny_split(), tmp_path / "c", progress=False)
    assert other_seed.weights_sha256 != full.weights_sha256


def test_corrupt_last_checkpoint_falls_back_to_previous(tmp_path):
    train(tiny_config(steps=4), tiny_split(), tmp_path, progress=False)
    newest = list_checkpoints(tmp_path)[0]
    newest.write_bytes(newest.read_bytes()[:100])
    messages = []

    from prodgan.training.loop import TrainHooks

    class Recorder(TrainHooks):
        def on_message(self, message):
            messages.append(message)

    result = train(
        tiny_config(), tiny_split(), tmp_path, resume=True, hooks=Recorder(), progress=False
    )
    assert result.step == 6
    assert any("unreadable" in m for m in messages) and any("step 2" in m for m in messages)


def _diverging(cfg):
    """Infinite learning rates, as a diverging run would behave.

    Config validation refuses them, so they are set past it.
    """
    for key in ("lr_g", "lr_d"):
        object.__setattr__(cfg, key, float("inf"))
    return cfg


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path):
    train(tiny_config(steps=4), tiny_split(), tmp_path, progress=False)
    good = list_checkpoints(tmp_path)
    with pytest.raises(TrainingDiverged, match="diverged at step .*ckpt_00000004.pt"):
        train(_diverging(tiny_config(steps=8)), tiny_split(), tmp_path, resume=True, progress=False)
    assert list_checkpoints(tmp_path) == good
    state = torch.load(good[0], weights_only=True)
    assert state["step"] == 4 and all(
        torch.isfinite(t).all() for t in state["G"].values() if t.is_floating_point()
    )


def test_eval_hook_picks_the_best_checkpoint(tmp_path):
    scores = {2: 5.0, 4: 1.0, 6: 3.0}
    result = train(
        tiny_config(eval_every=2, eval_metric="fid_50"),
        tiny_split(),
        tmp_path,
        on_eval=lambda G, step: {"fid_50": scores[step]},
        progress=False,
    )
    assert result.metrics["best_step"] == 4 and result.metrics["best_fid_50"] == 1.0
    from prodgan.models import read_bundle_record

    assert read_bundle_record(result.bundle_dir)["extra"]["step"] == 4
