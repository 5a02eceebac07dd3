"""Config and bad-input errors: every one is a ProdganError naming the fix, raised before training."""

from __future__ import annotations

import pytest

from prodgan.errors import ProdganError
from prodgan.train import train
from prodgan.train_config import load_config, parse_overrides, valid_keys
from tests.train.helpers import SMOKE, tiny_config, tiny_split


def test_smoke_config_loads_and_overrides_apply():
    cfg = load_config(SMOKE, ["steps=7", "lr_g=1e-3", "compile=false"])
    assert (cfg.steps, cfg.lr_g, cfg.compile) == (7, 1e-3, False)


def test_unknown_key_lists_valid_keys(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: 3\nlearning_rate: 0.1\n")
    with pytest.raises(ProdganError) as exc:
        load_config(bad)
    assert "learning_rate" in str(exc.value) and all(k in str(exc.value) for k in valid_keys())
    with pytest.raises(ProdganError, match="unknown key.*nope"):
        load_config(SMOKE, ["nope=1"])


@pytest.mark.parametrize("override, fragment", [
    ("steps=lots", "must be int"), ("steps", "key=value"), ("spectral_norm=3", "must be bool"),
])
def test_bad_override_values(override, fragment):
    with pytest.raises(ProdganError, match=fragment):
        load_config(SMOKE, [override])


def test_missing_config_file(tmp_path):
    with pytest.raises(ProdganError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize("overrides, fragment", [
    ({"arch": "stylegan9"}, "unknown architecture"),
    ({"loss": "wasserstein-ish"}, "unknown loss"),
    ({"batch_size": 100}, "larger than the dataset"),
    ({"device": "cuda:7"} , "not available"),
])
def test_bad_training_input_fails_before_training(tmp_path, overrides, fragment):
    import torch

    if "device" in overrides and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ProdganError, match=fragment):
        train(tiny_config(**overrides), tiny_split(), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_resume_refuses_checkpoint_of_another_architecture(tmp_path):
    train(tiny_config(steps=2), tiny_split(), tmp_path, progress=False)
    with pytest.raises(ProdganError, match="another architecture.*width=4"):
        train(tiny_config(steps=4, width=8), tiny_split(), tmp_path, resume=True, progress=False)


def test_parse_overrides_yaml_scalars():
    assert parse_overrides(["a=1", "b=true", "c=x", "d=0.5"]) == {"a": 1, "b": True, "c": "x", "d": 0.5}
