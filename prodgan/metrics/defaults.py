"""The evaluation protocol's defaults, as data (torch-fidelity style): one place to read them."""

from __future__ import annotations

DEFAULTS = {
    "samples": 2000,  # generated images per evaluation (`fid_2k`)
    "real_samples": None,  # real images on the other side; None = as many as `samples` (capped by the split)
    "seed": 0,  # latents/categories of the generated side, subset of the real side, bootstrap
    "extractor": "inception-v3-prodgan",  # torch-fidelity registry name (see extractors.py)
    "resize": "tf1x-bilinear",  # torch-fidelity's interpolate_bilinear_2d_like_tensorflow1x, 299x299
    "precision": "fp32-no-tf32",
    "batch_size": 64,
    "kid_subsets": 100,
    "kid_subset_size": 1000,  # capped at half the smaller side, so subsets differ; an explicit larger value is an error
    "prc_neighborhood": 3,
    "isc_splits": 10,
    "bootstrap": 200,  # resamples of the generated side for the FID interval (the tails of a 95 % interval need ~200)
    "confidence": 0.95,
    "memorization_quantile": 0.05,  # a test image's NN distance to train below this quantile counts as "copy-close"
    "min_samples": 2,
    "max_samples": 100_000,  # over this the features alone need > 800 MB; ask for several runs instead
}
