"""The evaluation protocol's defaults, as data (torch-fidelity style): one place to read them."""

from __future__ import annotations

DEFAULTS = {
    "samples": 2000,  # generated images per evaluation (`fid_2k`)
    # Real images on the other side; None = as many as `samples` (capped by the split).
    "real_samples": None,
    "seed": 0,  # latents/categories of the generated side, subset of the real side, bootstrap
    "extractor": "inception-v3-prodgan",  # torch-fidelity registry name (see extractors.py)
    # torch-fidelity's interpolate_bilinear_2d_like_tensorflow1x, to 299x299.
    "resize": "tf1x-bilinear",
    "precision": "fp32-no-tf32",
    "batch_size": 64,
    "kid_subsets": 100,
    # Capped at half the smaller side, so subsets differ; an explicit larger value is an error.
    "kid_subset_size": 1000,
    "prc_neighborhood": 3,
    "isc_splits": 10,
    # Resamples of the generated side for the FID interval (a 95 % interval's tails need ~200).
    "bootstrap": 200,
    "confidence": 0.95,
    # A test image's NN distance to train below this quantile counts as "copy-close".
    "memorization_quantile": 0.05,
    "min_samples": 2,
    # Over this the features alone need > 800 MB; ask for several runs instead.
    "max_samples": 100_000,
}
