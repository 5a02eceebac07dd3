"""Sharded evaluation: `--nproc 2` (gloo, CPU) and two "hosts" meeting at a c10d rendezvous on
loopback give exactly the metrics, samples and protocol of one process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prodgan.metrics import stats_cache
from prodgan.metrics.inception_weights import inception_dir
from prodgan.models import read_bundle_record
from prodgan.settings import Settings
from tests.conftest import two_loopback_hosts
from tests.metrics.helpers import tiny_generator

# Three batches of 8: rank 0 takes one, rank 1 two (an uneven split, one partial batch).
N, BATCH = 20, 8
# Every metric the issue names, and the calibration references computed beside them.
NAMED = [f"{m}_{N}" for m in ("fid", "kid", "precision", "recall", "cond_acc", "memorization")]
NAMED += [f"fid_{N}_noise", f"fid_{N}_floor", f"cond_acc_{N}_floor"]


def _fresh_cache(root: Path, monkeypatch: pytest.MonkeyPatch, weights) -> Path:
    """An empty stats cache holding only the Inception weights: every side is computed."""
    cache = root / "cache"
    inception_dir(cache).mkdir(parents=True)
    (inception_dir(cache) / weights.path.name).symlink_to(weights.path)
    monkeypatch.setenv("PRODGAN_CACHE_DIR", str(cache))
    return cache


def _same(metrics: dict[str, float], one: dict[str, float]) -> None:
    """FID to 1e-6 relative; the rest to float rounding. The samples are the same images, but a
    rank runs InceptionV3 on fewer threads than one process, and oneDNN sums in another order:
    features agree to ~1e-7, KID (a difference of near-equal kernel means) to ~1e-7 absolute."""
    assert set(metrics) == set(one)
    for name, value in one.items():
        tolerance = {"rel": 1e-6} if name.startswith("fid") else {"rel": 1e-5, "abs": 1e-6}
        assert metrics[name] == pytest.approx(value, **tolerance), name


@pytest.mark.slow  # ~90 s of CPU: three evaluations of 20 images
def test_two_ranks_and_two_hosts_give_the_metrics_of_one_process(
    small_project: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inception_weights
):
    from mlflow import MlflowClient

    from prodgan.models import save_bundle
    from prodgan.ops.evaluate import evaluate, train_evaluator

    G, spec = tiny_generator(seed=24)
    bundle = save_bundle(small_project.root / "bundle", G, spec, {"dataset": "fashion-mnist"})
    train_evaluator(small_project, limit=100)  # the category judge, fitted on 100 photos a split

    runs = {}
    for nproc in (1, 2):
        cache = _fresh_cache(tmp_path / f"nproc{nproc}", monkeypatch, inception_weights)
        runs[nproc] = evaluate(
            Settings.load(), bundle=bundle, samples=N, batch_size=BATCH, nproc=nproc
        )
        assert not runs[nproc].result.real_cached
        assert len(list((cache / "features").glob("*.npz"))) == 4  # real, floor, noise, generated
    one, two = runs[1], runs[2]
    for name in NAMED:
        assert name in one.metrics, name
    assert two.protocol == one.protocol
    _same(two.metrics, one.metrics)
    np.testing.assert_array_equal(two.result.images, one.result.images)
    np.testing.assert_allclose(two.result.features, one.result.features, rtol=1e-4, atol=1e-5)

    # The hosts reuse the real side, floor and noise the two ranks cached (found where every rank
    # looks), and share out the generated side again.
    generated = stats_cache.cache_file(
        cache, stats_cache.generated_key(one.protocol, read_bundle_record(bundle)["weights_sha256"])
    )
    generated.unlink()
    stdouts = two_loopback_hosts(
        ["evaluate", "--bundle", str(bundle), "--samples", str(N), "--batch-size", str(BATCH)],
        small_project.root,
    )
    printed = [stdout for stdout in stdouts if f"fid_{N}" in stdout]
    assert len(printed) == 1  # only the host that ran rank 0 reports and logs

    client = MlflowClient(small_project.tracking_uri)
    experiment = client.get_experiment_by_name("prodgan-eval")
    logged = client.search_runs(
        [experiment.experiment_id], "tags.`prodgan.kind` = 'generator'", order_by=["start_time"]
    )
    assert len(logged) == 3
    hosts_run = logged[-1]
    assert hosts_run.data.tags["prodgan.protocol"] == one.protocol
    assert hosts_run.data.tags["prodgan.real_cached"] == "true"
    _same({k: v for k, v in hosts_run.data.metrics.items() if k in one.metrics}, one.metrics)
    assert generated.is_file()  # stored again by the rank 0 of the two hosts


def test_two_hosts_without_a_rendezvous_is_one_line(project: Settings):
    from tests.conftest import prodgan

    proc = prodgan("evaluate", "--bundle", ".", "--nnodes", "2", cwd=project.root, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "needs --rdzv-endpoint HOST:PORT" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("n,batch,world", [(20, 8, 2), (5, 8, 3), (64, 8, 4), (1000, 64, 3)])
def test_shares_are_whole_batches_covering_every_sample_once(n, batch, world):
    from prodgan.metrics.shards import Shards

    spans = [Shards(rank, world).span(n, batch) for rank in range(world)]
    assert [i for span in spans for i in range(n)[span]] == list(range(n))
    assert all(span.start % batch == 0 for span in spans)
    sizes = [len(range(n)[span]) for span in spans]
    assert max(sizes) - min(sizes) <= batch  # balanced to within one batch
