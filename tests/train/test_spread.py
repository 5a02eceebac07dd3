"""Training spread over processes and hosts (gloo, CPU): a retrain with `nproc=2` on one host and
`prodgan train` on two "hosts" meeting at a c10d rendezvous on loopback are one MLflow run each,
train the same weights and log the quick FID one process computes for those weights; the retrain
evaluates with as many processes as it trained with."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prodgan.errors import ProdganError
from prodgan.settings import Settings
from tests.conftest import two_loopback_hosts
from tests.train.helpers import SMOKE

STEPS, EVAL_EVERY, EVAL_N = 6, 3, 12
# eval_samples 12 at two ranks: batches of 6, one per rank (each rank generates its own share)
OVERRIDES = [
    f"steps={STEPS}",
    "checkpoint_every=3",
    "grid_every=3",
    "log_every=2",
    "batch_size=16",
    f"eval_every={EVAL_EVERY}",
    f"eval_samples={EVAL_N}",
]
FID = f"fid_{EVAL_N}"


def _final_ema(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / f"checkpoints/ckpt_{STEPS:08d}.pt", weights_only=True)["G_ema"]


def _one_process_fid(settings: Settings, data_hash: str, ema: dict, *, share=None) -> float:
    """The quick FID one process computes for the EMA weights `ema` on the run's held-out images
    (`share`: a wrong sample set instead of the generator's, for the bad case)."""
    from prodgan.data.tensors import hold_out, load_split
    from prodgan.metrics import evaluate_samples, quick_fid
    from prodgan.metrics.calibration import untrained_reference
    from prodgan.metrics.defaults import DEFAULTS
    from prodgan.models import build_generator, generate_uint8
    from prodgan.models.sampling import labels_like
    from prodgan.training.config import load_config
    from prodgan.training.plan import make_spec

    cfg = load_config(SMOKE, OVERRIDES)
    root = settings.data_dir / cfg.dataset
    data = load_split(settings.tensor_cache_dir, root, "train", data_hash)
    data, validation = hold_out(data, EVAL_N, cfg.seed)
    spec = make_spec(cfg, data)
    G = build_generator(spec)
    G.load_state_dict(ema)
    if share is None:
        return quick_fid(G, spec, validation, EVAL_N, cache_dir=settings.cache_dir)
    seed = DEFAULTS["seed"]  # quick_fid's: the generator's own samples, as it draws them
    labels = labels_like(validation.labels, EVAL_N, spec.num_classes, seed)
    images = generate_uint8(G, spec, EVAL_N, seed, labels=labels).numpy()
    result = evaluate_samples(
        share(images),
        validation,
        noise=untrained_reference(spec),
        labels=labels,
        metrics=("fid",),
        bootstrap=0,
        calibrate=False,
        cache_dir=settings.cache_dir,
    )
    return result.metrics[FID]


@pytest.mark.slow  # four torchrun launches (2 ranks in all each), a quick FID in each training
def test_two_hosts_train_what_two_processes_do_and_log_the_fid_of_one(small_project: Settings):
    from mlflow import MlflowClient

    from prodgan.names import TRAIN_EXPERIMENT, TRAIN_RUN, WORLD_SIZE
    from prodgan.ops.retrain import retrain

    # One host, two processes: the retrain's training, then its evaluation, each over both.
    outcome = retrain(small_project, str(SMOKE), OVERRIDES, nproc=2)
    two = outcome.train
    evaluation = MlflowClient(small_project.tracking_uri).get_run(outcome.evaluation.run_id)
    assert evaluation.data.tags[WORLD_SIZE] == "2"
    assert evaluation.data.tags[TRAIN_RUN] == two.run_id

    printed = two_loopback_hosts(
        [
            *("train", "--config", str(SMOKE), "--quiet", "--force"),
            *(a for o in OVERRIDES for a in ("--set", o)),
        ],
        small_project.root,
    )
    assert sum("mlflow run" in stdout for stdout in printed) == 1  # only rank 0's host logs

    # One MLflow run per training, whichever way it spread; the host without rank 0 kept no folder.
    client = MlflowClient(small_project.tracking_uri)
    experiment = client.get_experiment_by_name(TRAIN_EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    hosts_run = next(r for r in runs if r.info.run_id != two.run_id)
    folders = sorted(p for p in small_project.train_runs_dir.iterdir() if p.is_dir())
    assert len(folders) == 2 and two.run_dir in folders
    hosts_dir = next(p for p in folders if p != two.run_dir)
    assert hosts_dir.name == hosts_run.info.run_name
    for run in runs:
        assert run.data.tags["prodgan.world_size"] == "2"
        assert run.data.params["lineage.selection_split"].startswith(f"validation: {EVAL_N}")

    # The same training: the same losses, the same final weights, bit for bit.
    def history(run_id: str, key: str) -> dict[int, float]:
        return {m.step: m.value for m in client.get_metric_history(run_id, key)}

    assert history(hosts_run.info.run_id, "loss_d") == history(two.run_id, "loss_d")
    assert sorted(history(two.run_id, "loss_d")) == [2, 3, 4, 6]
    ema = _final_ema(two.run_dir)
    assert all(torch.equal(v, _final_ema(hosts_dir)[k]) for k, v in ema.items())

    # Each rank's share of the quick FID adds up to what one process computes for those weights.
    fids = {run_id: history(run_id, FID) for run_id in (two.run_id, hosts_run.info.run_id)}
    assert all(sorted(f) == [EVAL_EVERY, STEPS] for f in fids.values())
    one = _one_process_fid(small_project, two.data_hash, ema)
    for logged in fids.values():
        assert logged[STEPS] == pytest.approx(one, rel=1e-6)
    # Bad case: a rank that evaluated the other's share (rank 1's six images replaced by rank
    # 0's) logs another value, far outside that tolerance.
    twice = _one_process_fid(
        small_project,
        two.data_hash,
        ema,
        share=lambda images: np.concatenate([images[: EVAL_N // 2]] * 2),
    )
    assert twice != pytest.approx(one, rel=1e-3)
    for run in runs:  # the quick FID picked the logged bundle, as in one process
        fid = fids[run.info.run_id]
        best = min(fid, key=fid.get)
        assert run.data.metrics["best_step"] == best
        assert run.data.metrics[f"best_{FID}"] == fid[best]
    bundles = [torch.load(d / "bundle/generator.pt", weights_only=True) for d in folders]
    assert all(torch.equal(v, bundles[1][k]) for k, v in bundles[0].items())  # the same best


def test_hosts_refuse_a_resume_and_a_missing_rendezvous(project: Settings):
    from prodgan.ops.train import train as run_training
    from tests.conftest import prodgan

    proc = prodgan("retrain", "--all", "--nproc", "2", cwd=project.root, check=False)
    assert proc.returncode == 2, proc.stderr  # the work pool spreads --all, not torchrun
    assert "--nproc goes with one retrain" in proc.stderr and "Traceback" not in proc.stderr

    with pytest.raises(ProdganError, match="needs --rdzv-endpoint HOST:PORT"):
        run_training(project, SMOKE, nnodes=2)
    with pytest.raises(ProdganError, match="continue there alone with `prodgan train --resume"):
        run_training(project, SMOKE, nnodes=2, rdzv_endpoint="127.0.0.1:29400", resume=True)
