"""Use case: import a generator prodgan did not train as a model version of a dataset's model.

The file is sniffed before anything in it loads (`models.file_kinds`), run against every claim of
its spec (`models.contract`), copied with its hash into an imported bundle, and logged as a run in
`prodgan-train` with the lineage a trained run has (the validated dataset version, the file's
sha256, the spec, the declared training code, who imported it). `promote.register` then makes it
a version exactly as it does a training run's bundle, so evaluate, promote, audit, generate, serve
and edit treat both alike.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from prodgan.adapters import tracking
from prodgan.errors import ProdganError
from prodgan.names import (
    CODE_URL,
    DATA_HASH,
    DATASET,
    GENERATOR_ARTIFACT,
    GIT_REV,
    IMPORTED_FILE,
    MODEL_KIND,
    SPEC_SHA,
    TRAIN_EXPERIMENT,
    VALIDATION,
    WEIGHTS,
)
from prodgan.settings import Settings


@dataclass(frozen=True)
class ImportedVersion:
    """The model version an import made (or found: importing the same run twice is one version)."""

    name: str
    version: str
    run_id: str
    kind: str
    sha256: str


def _dataset_shape(settings: Settings, dataset: str) -> tuple[int, int, tuple[str, ...]]:
    """(channels, size, categories) of the dataset's images, as `dataset.json` declares them."""
    from prodgan.data.layout import dataset_dir, read_meta

    meta = read_meta(dataset_dir(settings.data_dir, dataset))
    return meta.channels, meta.size, tuple(meta.categories)


def _noise_file(spec_file: Path, contract, kind: str) -> Path | None:
    """The untrained export the spec names (beside the spec, the same kind), if any."""
    from prodgan.models.file_kinds import sniff

    if not contract.noise_reference:
        return None
    path = Path(spec_file).parent / contract.noise_reference
    if not path.is_file():
        raise ProdganError(
            f"noise_reference {contract.noise_reference!r} not found beside {Path(spec_file).name}"
            "; export the untrained network there, or drop the key to use prodgan's reference"
        )
    found = sniff(path)
    if found != kind:
        raise ProdganError(
            f"noise_reference {path.name} is a {found} file but the model is {kind}; "
            "export both the same way"
        )
    return path


def checked_bundle(
    settings: Settings,
    directory: Path,
    *,
    model_file: Path,
    spec_file: Path,
    dataset: str,
    extra: dict[str, str],
) -> Path:
    """Sniff, check every claim of the spec against the model (and its noise export) and the
    dataset, and write the imported bundle at `directory`. Refuses with one line otherwise."""
    from prodgan.models import GeneratorSpec, load_bundle
    from prodgan.models.bundle import save_imported_bundle
    from prodgan.models.contract import check_contract, label_map, read_contract
    from prodgan.models.file_kinds import sniff
    from prodgan.models.formats import IMPORTED, load_raw, raw_call
    from prodgan.models.nets import LEVELS

    kind = sniff(model_file)
    contract = read_contract(spec_file)
    noise_file = _noise_file(spec_file, contract, kind)
    for path in (model_file, noise_file):
        if path is not None:
            check_contract(raw_call(load_raw(kind, path), contract.conditional), contract)
    channels, size, categories = _dataset_shape(settings, dataset)
    if (contract.channels, contract.resolution) != (channels, size):
        raise ProdganError(
            f"the spec declares {contract.channels}-channel {contract.resolution}x"
            f"{contract.resolution} images but dataset {dataset} holds {channels}-channel "
            f"{size}x{size} images: evaluate against a dataset of the model's own size"
        )
    if contract.conditional:
        label_map(contract, categories)
    if noise_file is None and size not in LEVELS:
        raise ProdganError(
            f"prodgan has no untrained reference generator at {size}x{size} (it has "
            f"{', '.join(map(str, LEVELS))}); name an untrained export of your network as "
            "noise_reference in the spec"
        )
    spec = GeneratorSpec(
        arch=IMPORTED,
        z_dim=contract.z_dim,
        num_classes=len(categories) if contract.conditional else 0,
        channels=channels,
        size=size,
        width=0,
        categories=categories,
    ).check()
    save_imported_bundle(directory, kind, model_file, spec, contract, noise_file, extra)
    load_bundle(directory)  # the bundle as every later reader will load it
    return directory


def import_generator(
    settings: Settings,
    *,
    model_file: Path,
    spec_file: Path,
    dataset: str,
    code_url: str | None = None,
    code_rev: str | None = None,
    run_id: str | None = None,
) -> ImportedVersion:
    """Import `model_file` (declared by `spec_file`) as a version of `dataset`'s model.

    Refuses, before anything is registered: a dataset whose pinned DVC version has no successful
    validation, a pickle, a file that breaks any claim of its spec. With `run_id`, the import logs
    into that existing training run (an outside trainer's run prodgan started) and finishes it;
    otherwise it starts its own run. Registering the same run again returns the same version.
    """
    from prodgan.models import read_bundle_record
    from prodgan.ops.promote import register
    from prodgan.ops.validate import log_training_data, require_validated

    model_file, spec_file = Path(model_file), Path(spec_file)
    record = require_validated(settings, dataset)
    extra = {
        "dataset": dataset,
        "data_hash": record.data_hash,
        "validation": record.reference,
        "imported_file": model_file.name,
        "code_url": code_url or "",
        "git_rev": code_rev or "",
    }
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.tmp_dir) as tmp:
        bundle = checked_bundle(
            settings,
            Path(tmp) / GENERATOR_ARTIFACT,
            model_file=model_file,
            spec_file=spec_file,
            dataset=dataset,
            extra=extra,
        )
        bundle_record = read_bundle_record(bundle)
        tags = {
            DATA_HASH: record.data_hash,
            VALIDATION: record.reference,
            DATASET: dataset,
            MODEL_KIND: bundle_record["kind"],
            IMPORTED_FILE: model_file.name,
            SPEC_SHA: hashlib.sha256(spec_file.read_bytes()).hexdigest(),
            WEIGHTS: bundle_record["weights_sha256"],
            **({CODE_URL: code_url} if code_url else {}),
            **({GIT_REV: code_rev} if code_rev else {}),
        }
        with tracking.reachable(settings, f"importing {model_file.name}"):
            logger = _run_logger(settings, run_id, model_file, tags)
            logger.log_artifacts(bundle, GENERATOR_ARTIFACT)
            logger.log_artifact(spec_file, "spec")
            log_training_data(settings, logger, dataset, record)
            logger.finish()
    version = register(settings, logger.run_id)
    return ImportedVersion(
        name=version.name,
        version=str(version.version),
        run_id=logger.run_id,
        kind=bundle_record["kind"],
        sha256=bundle_record["weights_sha256"],
    )


def _run_logger(
    settings: Settings, run_id: str | None, model_file: Path, tags: dict[str, str]
) -> tracking.RunLogger:
    """The trainer's run when one is named (tags added), else a new import run."""
    if run_id:
        logger = tracking.RunLogger(tracking.setup_mlflow(settings), run_id)
        tracking.get_run(logger.client, run_id, "training run")
        logger.set_tags(tags)
        return logger
    return tracking.RunLogger.start(
        settings, TRAIN_EXPERIMENT, f"import-{model_file.stem}", tags=tags
    )
