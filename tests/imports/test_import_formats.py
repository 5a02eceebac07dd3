"""A generator prodgan did not train, in three formats, through import -> evaluate -> promote ->
generate -> serve over HTTP -> audit verify, on one real project (sqlite MLflow, DVC, GX).

The network below is not a prodgan architecture: its own layers, latent (N, z, 1, 1), output in
[0, 1], its categories in its own (reversed) order. It trains a few steps on the tiny data, is
exported as `.pt2`, TorchScript and ONNX, and each export is imported as a version. The format
flow promotes through a gate file without the champion comparison (three exports of one network
tie by design); the shipped gates are read for the untrained export, which they must reject.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Iterator

import pytest
import torch
import yaml
from torch import nn

from prodgan.adapters import registry
from prodgan.errors import ProdganError
from prodgan.settings import Settings, configure_environment
from tests.metrics.helpers import CATEGORIES, real_split
from tests.serve.helpers import decode, post, prodgan_serve, records

pytestmark = pytest.mark.slow

Z = 16
SHIPPED_GATES = Path(__file__).resolve().parents[2] / "evaluation" / "gates.yaml"
FORMAT_GATES = "version: 2\nconfidence: 0.95\nabsolute:\n  fid: {max: 100000}\n"
MODEL_ORDER = tuple(reversed(CATEGORIES))  # the outside model's own label order


class OutsideGenerator(nn.Module):
    """Not a prodgan network: a 1x1 'dense' conv, nearest upsampling, a sigmoid output."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(len(MODEL_ORDER), 8)
        self.dense = nn.Conv2d(Z + 8, 32 * 7 * 7, 1)
        self.body = nn.Sequential(
            nn.Upsample(scale_factor=2.0),
            nn.Conv2d(32, 16, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2.0),
            nn.Conv2d(16, 1, 3, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = torch.cat([z, self.embed(labels)[:, :, None, None]], 1)
        return self.body(self.dense(h).reshape(-1, 32, 7, 7))


def train_a_few_steps(generator: nn.Module, steps: int = 40) -> nn.Module:
    """A tiny conditional GAN loop on 300 real images (quality is not the point)."""
    data = real_split("train", 300)
    images = torch.from_numpy(data.images).float() / 255
    # the model's own label for each real image (its order is the reverse of the dataset's)
    labels = torch.tensor([MODEL_ORDER.index(CATEGORIES[i]) for i in data.labels])
    critic = nn.Sequential(nn.Conv2d(1, 8, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten())
    head = nn.Linear(8 * 14 * 14 + len(MODEL_ORDER), 1)
    g_opt = torch.optim.Adam(generator.parameters(), 2e-3, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam([*critic.parameters(), *head.parameters()], 2e-3, betas=(0.5, 0.999))
    loss = nn.BCEWithLogitsLoss()
    torch.manual_seed(0)

    def score(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return head(torch.cat([critic(x), nn.functional.one_hot(y, len(MODEL_ORDER)).float()], 1))

    for _ in range(steps):
        pick = torch.randint(0, len(images), (32,))
        real, y = images[pick], labels[pick]
        fake = generator(torch.randn(32, Z, 1, 1), y)
        d_loss = loss(score(real, y), torch.ones(32, 1)) + loss(
            score(fake.detach(), y), torch.zeros(32, 1)
        )
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        g_loss = loss(score(fake, y), torch.ones(32, 1))
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
    return generator.eval()


def _example() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(2, Z, 1, 1), torch.tensor([0, 1])


def _dynamic() -> dict:
    n = torch.export.Dim("n", min=1, max=4096)
    return {"z": {0: n}, "labels": {0: n}}


def export(generator: nn.Module, kind: str, path: Path, dynamic: bool = True) -> Path:
    """The export recipes of docs/generators.md."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shapes = _dynamic() if dynamic else None
        if kind == "pt2":
            torch.export.save(
                torch.export.export(generator, _example(), dynamic_shapes=shapes), path
            )
        elif kind == "torchscript":
            torch.jit.save(torch.jit.script(generator), str(path))
        else:
            torch.onnx.export(
                generator,
                _example(),
                str(path),
                dynamo=True,
                dynamic_shapes=shapes,
                input_names=["z", "labels"],
            )
    return path


def write_spec(path: Path, **changes) -> Path:
    spec = {
        "z_dim": Z,
        "latent": {"distribution": "normal", "shape": ["N", "z", 1, 1]},
        "output": {"channels": 1, "resolution": 28, "range": [0, 1]},
        "categories": list(MODEL_ORDER),
        **changes,
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def project(_small_fmnist_template, migrated_store, tmp_path_factory) -> Iterator[Settings]:
    """One tiny Fashion-MNIST project for the module (its dataset not validated yet)."""
    root = tmp_path_factory.mktemp("imports") / "proj"
    shutil.copytree(_small_fmnist_template, root, symlinks=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRODGAN_ROOT", str(root))
        mp.setenv("PRODGAN_HOME", str(root / ".prodgan"))
        mp.setenv("PRODGAN_DVC_REMOTE", str(root.parent / "remote"))
        mp.setenv("PRODGAN_EVAL_SAMPLES", "50")
        gates = root / "format-gates.yaml"
        gates.write_text(FORMAT_GATES)
        mp.setenv("PRODGAN_GATES", str(gates))
        for key in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "PREFECT_HOME", "TMPDIR"):
            mp.delenv(key, raising=False)
        settings = configure_environment(Settings.load())
        mp.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)
        db = Path(settings.tracking_uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(migrated_store, db)
        mp.chdir(root)
        yield settings


@pytest.fixture(scope="module")
def validated(project: Settings) -> Settings:
    from prodgan.ops.validate import require_passed, validate

    require_passed(validate(project, "fashion-mnist"))
    return project


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """The trained network in three formats, its untrained twin as .pt2, and a spec for each."""
    out = tmp_path_factory.mktemp("exports")
    torch.manual_seed(1)
    untrained = OutsideGenerator().eval()
    trained = train_a_few_steps(OutsideGenerator())
    files = {
        kind: export(trained, kind, out / f"g{ext}")
        for kind, ext in (("pt2", ".pt2"), ("torchscript", ".pt"), ("onnx", ".onnx"))
    }
    files["untrained"] = export(untrained, "pt2", out / "untrained.pt2")
    files["spec"] = write_spec(out / "spec.yaml")
    return files


def versions(settings: Settings) -> int:
    client = registry.client_for(settings)
    return len(client.search_model_versions(f"name='{settings.model_name}'"))


def refuse(settings: Settings, model: Path, spec: Path, dataset: str = "fashion-mnist") -> str:
    """The one-line refusal of importing `model`; asserts nothing was registered."""
    from prodgan.ops.imports import import_generator

    before = versions(settings)
    with pytest.raises(ProdganError) as caught:
        import_generator(settings, model_file=model, spec_file=spec, dataset=dataset)
    message = str(caught.value)
    assert "\n" not in message, message
    assert versions(settings) == before
    return message


def test_refuses_a_dataset_never_validated(project, exports):
    message = refuse(project, exports["pt2"], exports["spec"])
    assert "has not been validated" in message and "prodgan data validate" in message


@pytest.mark.parametrize("kind", ["pt2", "torchscript", "onnx"])
def test_each_format_imports_evaluates_promotes_generates_serves_verifies(
    kind, validated, exports, tmp_path
):
    from prodgan.ops import audit, evaluate, promote, serve
    from prodgan.ops.imports import import_generator

    settings = validated
    imported = import_generator(
        settings,
        model_file=exports[kind],
        spec_file=exports["spec"],
        dataset="fashion-mnist",
        code_url="https://example.org/outside-gan.git",
        code_rev="abc123",
    )
    assert imported.kind == kind
    mv = registry.client_for(settings).get_model_version(imported.name, imported.version)
    assert mv.tags["prodgan.model_kind"] == kind
    assert mv.tags["prodgan.code_url"] == "https://example.org/outside-gan.git"
    assert mv.tags["prodgan.git_rev"] == "abc123"
    assert len(mv.tags["prodgan.data_hash"]) > 20 and mv.tags["prodgan.spec_sha256"]

    run = evaluate.evaluate(settings, f"models:/{imported.name}/{imported.version}")
    assert run.metrics["fid_50"] > run.metrics["fid_50_floor"] > 0
    decision = promote.promote(settings, imported.version, actor="tester")
    assert decision.approved, decision.reasons

    grid = serve.generate(
        settings, "@champion", seed=3, category="sneaker", n=4, out_file=tmp_path / "grid.png"
    )
    assert (tmp_path / "grid.png").is_file(), grid

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    uri = f"models:/{imported.name}@champion"
    with prodgan_serve(uri, tmp_path / "serve.log", env, max_body_bytes=1 << 16) as url:
        status, body = post(url, records({"seed": 5, "category": "sneaker", "n": 2}))
    assert status == 200, body
    pixels = [decode(row["png_base64"]) for row in body["predictions"]]
    assert pixels[0].shape == (28, 28) and (pixels[0] != pixels[1]).any()

    report = audit.verify(settings)
    assert report.ok, report
