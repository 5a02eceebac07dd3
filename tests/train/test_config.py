"""Config and bad-input errors: each a ProdganError naming the fix, raised before training."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from prodgan.errors import ProdganError
from prodgan.training.config import load_config, make_config, parse_overrides, valid_keys
from prodgan.training.loop import train
from tests.conftest import prodgan
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


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("steps=lots", "steps='lots': input should be a valid integer"),
        ("steps", "key=value"),
        ("spectral_norm=3", "spectral_norm=3: input should be a valid boolean"),
        ("lr_g=-1", "lr_g=-1: input should be greater than 0"),
        ("ema_decay=1", "ema_decay=1: input should be less than 1"),
        ("batch_size=0", "batch_size=0: input should be greater than or equal to 1"),
    ],
)
def test_bad_override_values(override, fragment):
    with pytest.raises(ProdganError, match=fragment) as exc:
        load_config(SMOKE, [override])
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "key, value",
    [
        ("steps", 0),
        ("batch_size", 0),
        ("checkpoint_every", 0),
        ("log_every", 0),
        ("keep_checkpoints", 0),
        ("d_steps", 0),
        ("r1_every", 0),
        ("ema_decay", -0.1),
        ("ema_decay", 1.0),
        ("max_seconds", -1.0),
    ],
)
def test_config_ranges_live_in_train_config_alone(key, value):
    """The plan does not check these again: TrainConfig refuses them, built or replaced."""
    with pytest.raises(ProdganError, match=f"{key}="):
        make_config({key: value})
    with pytest.raises(ValidationError):
        dataclasses.replace(make_config({}), **{key: value})


def test_cli_reports_an_out_of_range_override_in_one_line(tmp_path):
    """`prodgan train --set lr_g=-1`: one line naming the file, key and range.

    No traceback, nothing created.
    """
    proc = prodgan("train", "--config", str(SMOKE), "--set", "lr_g=-1", cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert (
        len(lines) == 1
        and "lr_g=-1: input should be greater than 0" in lines[0]
        and "smoke.yaml" in lines[0]
    ), lines
    assert "Traceback" not in proc.stderr


def test_missing_config_file(tmp_path):
    with pytest.raises(ProdganError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"arch": "stylegan9"}, "unknown architecture"),
        ({"loss": "wasserstein-ish"}, "unknown loss"),
        ({"batch_size": 100}, "larger than the dataset"),
        ({"device": "cuda:7"}, "not available"),
    ],
)
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
    assert parse_overrides(["a=1", "b=true", "c=x", "d=0.5"]) == {
        "a": 1,
        "b": True,
        "c": "x",
        "d": 0.5,
    }
