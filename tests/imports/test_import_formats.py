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
                external_data=False,
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
    files["spec with noise"] = write_spec(out / "noise-spec.yaml", noise_reference="untrained.pt2")
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
    from prodgan.imaging import save_png
    from prodgan.ops import audit, edit, evaluate, promote, serve
    from prodgan.ops.imports import import_generator

    settings = validated
    spec = exports["spec with noise" if kind == "pt2" else "spec"]  # pt2 names its untrained twin
    imported = import_generator(
        settings,
        model_file=exports[kind],
        spec_file=spec,
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
    noise = registry.client_for(settings).get_run(run.run_id).data.tags["prodgan.noise_reference"]
    assert noise.startswith("untrained export noise.pt2" if kind == "pt2" else "prodgan cdcgan")
    decision = promote.promote(settings, imported.version, actor="tester")
    assert decision.approved, decision.reasons
    assert decision.challenger["noise_reference"] == noise  # recorded with the decision

    grid = serve.generate(
        settings, "@champion", seed=3, category="sneaker", n=4, out_file=tmp_path / "grid.png"
    )
    assert (tmp_path / "grid.png").is_file(), grid

    photo = tmp_path / "photo.png"
    save_png(photo, real_split("test", 1).images[0, 0])
    if kind == "onnx":  # no gradients through ONNX Runtime: a documented one-line refusal
        with pytest.raises(ProdganError, match="ONNX"):
            edit.invert(settings, photo, tmp_path / "edit", [], "@champion", restarts=1, steps=8)
    else:
        inverted = edit.invert(
            settings, photo, tmp_path / "edit", [], "@champion", restarts=1, steps=8
        )
        assert inverted["category"] in CATEGORIES and inverted["psnr_db"] > 0

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    uri = f"models:/{imported.name}@champion"
    with prodgan_serve(uri, tmp_path / "serve.log", env, max_body_bytes=1 << 16) as url:
        status, body = post(url, records({"seed": 5, "category": "sneaker", "n": 2}))
    assert status == 200, body
    pixels = [decode(row["png_base64"]) for row in body["predictions"]]
    assert pixels[0].shape == (28, 28) and (pixels[0] != pixels[1]).any()

    report = audit.verify(settings)
    assert report.ok, report


# ---------------------------------------------------------------- refusals at import


class Scaled(nn.Module):
    """The outside network's images times 255: declares [-1, 1], outputs [0, 255]."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.inner(z, labels) * 255


class IgnoresLabel(nn.Module):
    """Takes a label and never reads it."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.inner(z, torch.zeros_like(labels))


class NaNs(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(self.inner(z, labels) - 2)


def _pickle_that_writes(marker: Path) -> bytes:
    """A pickle stream that creates `marker` when unpickled (as a network pickle runs code)."""
    import pickle

    class WritesMarker:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    return pickle.dumps(WritesMarker(), protocol=2)


def _replace_member(archive: bytes, suffix: str, body: bytes) -> bytes:
    import io
    import zipfile

    source, out = zipfile.ZipFile(io.BytesIO(archive)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = body if info.filename.endswith(suffix) else source.read(info.filename)
            target.writestr(info, data)
    return out.getvalue()


def _pt2_with_code(good: Path, marker: Path, out: Path) -> Path:
    """A valid .pt2 whose sample inputs (which torch.export.load unpickles with
    weights_only=False after a failed safe try) hold a pickle that writes `marker`."""
    import io
    import zipfile

    archive = good.read_bytes()
    inputs = next(
        n for n in zipfile.ZipFile(io.BytesIO(archive)).namelist() if n.endswith("model.pt")
    )
    nested = _replace_member(
        zipfile.ZipFile(io.BytesIO(archive)).read(inputs), "data.pkl", _pickle_that_writes(marker)
    )
    out.write_bytes(_replace_member(archive, "sample_inputs/model.pt", nested))
    return out


@pytest.fixture(scope="module")
def trained_net(exports) -> nn.Module:
    from prodgan.models.formats import load_raw

    return load_raw("torchscript", exports["torchscript"])


def test_lying_specs_and_broken_models_are_refused_with_one_line(
    validated, exports, trained_net, tmp_path
):
    spec = exports["spec"]
    scripted = {
        name: export(wrapper(trained_net), "torchscript", tmp_path / f"{name}.pt")
        for name, wrapper in (("scaled", Scaled), ("ignores", IgnoresLabel), ("nans", NaNs))
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(OutsideGenerator(), tmp_path / "pickled.pt")  # torch.save(model)
    cases = [
        (
            exports["pt2"],
            write_spec(
                tmp_path / "64.yaml", output={"channels": 1, "resolution": 64, "range": [0, 1]}
            ),
            "output.resolution: 64",
        ),
        (
            scripted["scaled"],
            write_spec(
                tmp_path / "m11.yaml", output={"channels": 1, "resolution": 28, "range": [-1, 1]}
            ),
            "output.range: [-1, 1]",
        ),
        (scripted["ignores"], spec, "ignores it"),
        (scripted["nans"], spec, "NaN"),
        (tmp_path / "pickled.pt", spec, "refused unloaded"),
        (
            export(OutsideGenerator().eval(), "pt2", tmp_path / "fixed.pt2", dynamic=False),
            spec,
            "raised",
        ),
        (
            export(OutsideGenerator().eval(), "onnx", tmp_path / "fixed.onnx", dynamic=False),
            spec,
            "raised",
        ),
    ]
    for model, spec_file, words in cases:
        message = refuse(validated, model, spec_file)
        assert words in message, (model.name, message)


def test_a_file_that_runs_code_when_unpickled_is_refused_before_it_can(
    validated, exports, tmp_path
):
    import pickle

    probe = tmp_path / "probe-marker"
    pickle.loads(_pickle_that_writes(probe))  # the construction really runs code...
    assert probe.exists()

    marker = tmp_path / "marker"
    raw = tmp_path / "network.pkl"
    raw.write_bytes(_pickle_that_writes(marker))
    crafted = _pt2_with_code(exports["pt2"], marker, tmp_path / "crafted.pt2")
    assert "Python pickle" in refuse(validated, raw, exports["spec"])
    assert "would import" in refuse(validated, crafted, exports["spec"])
    assert not marker.exists()  # ...and neither refusal let it


# ---------------------------------------------------------------- the shipped gates on imports


class Constant(nn.Module):
    """A constant grey image whatever the latent; the label only lights one pixel."""

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        mark = nn.functional.one_hot(labels, 28).float()
        pixel = mark[:, None, :, None] * mark[:, None, None, :]
        return 0.2 + 0 * z[:, :1] + 0.7 * pixel


class Copier(nn.Module):
    """Returns training images of the requested category, picked by the latent."""

    def __init__(self) -> None:
        super().__init__()
        data = real_split("train", 300)
        per = min(int((data.labels == c).sum()) for c in range(len(CATEGORIES)))
        pools = [
            torch.from_numpy(data.images[data.labels == CATEGORIES.index(name)][:per]).float() / 255
            for name in MODEL_ORDER
        ]
        self.register_buffer("pools", torch.stack(pools))  # (categories, per, 1, 28, 28)
        self.per = per

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        pick = (z[:, 0, 0, 0].abs() * 1e6).long() % self.per
        return self.pools[labels, pick]


@pytest.mark.parametrize(
    "case, gate",
    [
        ("untrained", "absolute.fid"),
        ("constant colour", "absolute.fid"),
        ("training-set copier", "absolute.memorization"),
    ],
)
def test_the_shipped_gates_reject_an_untrained_a_constant_and_a_copier_import(
    case, gate, validated, exports, tmp_path
):
    from prodgan.ops.evaluate import evaluate
    from prodgan.ops.imports import checked_bundle
    from prodgan.policy.gate_file import load_policy
    from prodgan.policy.gates import Evaluation, judge

    model = {
        "untrained": lambda: exports["untrained"],
        "constant colour": lambda: export(Constant(), "pt2", tmp_path / "constant.pt2"),
        "training-set copier": lambda: export(Copier().eval(), "pt2", tmp_path / "copier.pt2"),
    }[case]()
    bundle = checked_bundle(
        validated,
        tmp_path / "bundle",
        model_file=model,
        spec_file=exports["spec"],
        dataset="fashion-mnist",
        extra={"dataset": "fashion-mnist"},
    )
    run = evaluate(validated, bundle=bundle)
    verdict = judge(
        load_policy(SHIPPED_GATES), Evaluation.from_metrics(run.protocol, run.metrics, case), None
    )
    assert not verdict.approved, verdict.reasons
    failed = {c.gate for c in verdict.checks if not c.passed}
    assert gate in failed, verdict.reasons
    tags = registry.client_for(validated).get_run(run.run_id).data.tags
    assert tags["prodgan.noise_reference"].startswith("prodgan cdcgan width 64")
