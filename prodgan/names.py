"""The project's vocabulary: MLflow tag, experiment and alias names, and two small grammars.

A name used by two modules lives here (architecture rule 4), so a tag written by training
is the tag read by freshness, lineage and the gates. The two grammars:

- metric names carry the protocol's sample count: `fid_2k`, `kid_50_std`, `fid_2k/bag`;
- model references, the same forms for every command: `models:/NAME@ALIAS`,
  `models:/NAME/VERSION`, `NAME@ALIAS`, `NAME/VERSION`, `@ALIAS`, `VERSION` (the last two
  for the default model) and `runs:/RUN_ID[/PATH]`; a local bundle folder is `--bundle DIR`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from prodgan.errors import ProdganError

# ---------------------------------------------------------------- experiments, aliases, artifacts
TRAIN_EXPERIMENT = "prodgan-train"
EVAL_EXPERIMENT = "prodgan-eval"
AUDIT_EXPERIMENT = "prodgan-audit"
PRODUCTION_EXPERIMENT = (
    "prodgan-production"  # promoter-only: the files of production versions live here
)
EVALUATOR_MODEL = "prodgan-evaluator"
CHAMPION, PREVIOUS = "champion", "previous"
GENERATOR_ARTIFACT = "generator"  # the EMA generator bundle in a training run
CHECKPOINT_ARTIFACT = "checkpoint"
LOGGED_MODEL_NAME = "generator"  # the pyfunc logged model of a training run
AUDIT_FILE = "decision.json"
AUDIT_SHEET = "champion_vs_challenger.png"
AUDIT_CLAIM_PREFIX = (
    "prodgan-audit-claim"  # + /MODEL/N: experiment names, unique server-side, order the audit chain
)
DEFAULT_DATASET = "fashion-mnist"  # the dataset whose model keeps the bare PRODGAN_MODEL_NAME
PRODUCTION_SUFFIX = (
    "-production"  # + to the model name: the registered model only promoters may write
)

# ---------------------------------------------------------------- tags (runs and model versions)
TRAIN_RUN = "prodgan.train_run_id"
DATA_HASH = "prodgan.data_hash"
DATASET = "prodgan.dataset"
GIT_REV = "prodgan.git_rev"
GIT_DIRTY = "prodgan.git_dirty"
VALIDATION = "prodgan.validation"
CONFIG = "prodgan.config"  # the config file's name
CONFIG_SHA = "prodgan.config_sha256"  # the resolved config as it ran (file + overrides)
WEIGHTS = "prodgan.weights_sha256"
# an imported generator's lineage (prodgan.ops.imports)
MODEL_KIND = "prodgan.model_kind"  # native | pt2 | torchscript | onnx
IMPORTED_FILE = "prodgan.imported_file"  # the file name it was imported from
SPEC_SHA = "prodgan.spec_sha256"  # the generator spec file it was checked against
CODE_URL = "prodgan.code_url"  # the declared training code (its revision goes in GIT_REV)
NOISE_REFERENCE = "prodgan.noise_reference"  # evaluations: which untrained reference was used
MODEL_FILES = "prodgan.model_files"  # JSON {path: sha256} of every file of the logged model
# version tag: sha256 of the file map, which lives in the training run's MODEL_FILES_ARTIFACT
# (trained versions) or in the signed audit record (production versions)
MODEL_FILES_SHA = "prodgan.model_files_sha256"
MODEL_FILES_ARTIFACT = "registration/model_files.json"
AUDIT_RUN = "prodgan.audit_run_id"  # production version tag: the audit record that made it
# trained version tags, for people: when it held `champion`, and as which production version
CHAMPION_SINCE = "prodgan.champion_since"
CHAMPION_UNTIL = "prodgan.champion_until"
PRODUCTION_VERSION = "prodgan.production_version"
PROTOCOL = "prodgan.protocol"
KIND = "prodgan.kind"  # generator | evaluator | samples (evaluation runs)
SAMPLES_KIND = "samples"  # an evaluation of samples handed in, not of a model: never promotable
SAMPLES_SHA = "prodgan.samples_sha256"  # of a samples evaluation's decoded pixels
EVAL_RUN = "prodgan.eval_run_id"  # a version's headline evaluation
EVAL_BY_PROTOCOL = (
    "prodgan.eval."  # + protocol fingerprint[:16] -> evaluation run under that protocol
)
EVALUATOR_RUN = "prodgan.evaluator_run_id"
EVALUATOR_SHA = "prodgan.evaluator_sha256"
REAL_CACHED = "prodgan.real_cached"
DEVICE, PRECISION, WORLD_SIZE = "prodgan.device", "prodgan.precision", "prodgan.world_size"
RESUMED = "prodgan.resumed"
STOPPED_BY = "prodgan.stopped_by"  # training runs: `steps` (the plan ran out) or `max_seconds`
SOURCE_VERSION = "prodgan.source_version"  # production version tag: the trained version it copies
FENCE = "prodgan.fence"  # production version tag `lost`: a transition that lost the compare-and-set
# production model tag `N:sha256`: the newest audit record (truncation shows)
AUDIT_HEAD = "prodgan.audit_head"
AUDIT_TAG = "prodgan.audit."  # + record field, on audit runs
METRIC_TAG = "metric."  # + metric name: a version's headline metrics, as version tags
FLOW_RUN = "prefect.flow_run_id"
FLOW_RUN_NAME = "prefect.flow_run_name"
FLOW_API = "prefect.api_url"
# The work pool's fan-out: each dataset's retrain is a flow run of this deployment (prefect.yaml),
# on the pool's GPU queue, whose concurrency limit is the GPU slots; it reports under this key.
RETRAIN_DEPLOYMENT, GPU_QUEUE, RETRAIN_REPORT = "retrain/retrain", "gpu", "retrain-outcome"
# The pool's queue for flow runs that only coordinate (the nightly run waiting on its retrains,
# promotion): served by CPU workers, so they never hold a GPU slot.
CPU_QUEUE = "cpu"
# A flow run whose machine died sends no more heartbeats: every HEARTBEAT_SECONDS while alive
# (the workers' PREFECT_FLOWS_HEARTBEAT_FREQUENCY), and the automation `prodgan deploy` creates
# marks it CRASHED when none came for ZOMBIE_SECONDS (three missed), so the fan-out re-runs it.
HEARTBEAT_SECONDS, ZOMBIE_SECONDS = 30, 90
HEARTBEAT_ENV = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"  # a worker's flow runs read it
ZOMBIE_AUTOMATION = "prodgan: crash flow runs whose heartbeat stopped"

# ---------------------------------------------------------------- metric names
HEADLINE = ("fid", "kid", "is", "precision", "recall", "cond_acc", "memorization")
_HEADLINE_NAME = re.compile(rf"^({'|'.join(HEADLINE)})_\d+k?$")
# what may follow the sample count: a spread, an interval end, a calibration reference (floor,
# noise; for cond_acc also chance and how many real photos the floor was measured on), or /category
METRIC_SUFFIXES = ("_std", "_ci_low", "_ci_high", "_floor_count", "_floor", "_noise", "_chance")
METRIC_NAME = re.compile(
    rf"^(?P<base>[a-z]+(?:_[a-z]+)*?)_(?P<n>\d+k?)(?P<rest>{'|'.join(METRIC_SUFFIXES)}|/.+)?$"
)


def production_model(model: str) -> str:
    """The registered model that holds `model`'s promoted copies and its `champion`/`previous`
    aliases."""
    return model if model.endswith(PRODUCTION_SUFFIX) else f"{model}{PRODUCTION_SUFFIX}"


def sample_suffix(samples: int) -> str:
    """2000 -> `2k`, 10000 -> `10k`, 50 -> `50`, 2500 -> `2500`
    (the sample count in metric names)."""
    return f"{samples // 1000}k" if samples >= 1000 and samples % 1000 == 0 else str(samples)


def parse_samples(token: str) -> int:
    """`2k` -> 2000, `50` -> 50 (the sample-count part of a metric name)."""
    return int(token[:-1]) * 1000 if token.endswith("k") else int(token)


def metric_name(metric: str, samples: int) -> str:
    """`fid` -> `fid_2k`, `kid_std` -> `kid_2k_std`, `cond_acc_floor` -> `cond_acc_2k_floor`."""
    rest = next((s for s in METRIC_SUFFIXES if metric.endswith(s)), "")
    return f"{metric[: len(metric) - len(rest)]}_{sample_suffix(samples)}{rest}"


def category_key(display: str) -> str:
    """A shop's category name -> a stable key safe as a folder name and in an MLflow metric name.

    `Men's T-Shirt` -> `men-s-t-shirt`, `dining table` -> `dining-table`. Names with no ASCII
    letters or digits (`Ä`, `靴`) get `category-` + 8 hex digits of their UTF-8 sha256, so the key
    is still stable; a key two names share is told apart the same way (see `category_keys`).
    """
    ascii_name = unicodedata.normalize("NFKD", display).encode("ascii", "ignore").decode()
    key = "-".join(re.findall(r"[a-z0-9]+", ascii_name.lower()))[:48].strip("-")
    return key or f"category-{hashlib.sha256(display.encode()).hexdigest()[:8]}"


def category_keys(displays: list[str]) -> dict[str, str]:
    """display name -> key for a dataset's categories;
    names whose keys collide get a hash suffix each."""
    keys = {d: category_key(d) for d in displays}
    taken: dict[str, int] = {}
    for key in keys.values():
        taken[key] = taken.get(key, 0) + 1
    return {
        d: k if taken[k] == 1 else f"{k}-{hashlib.sha256(d.encode()).hexdigest()[:8]}"
        for d, k in keys.items()
    }


def is_headline(name: str) -> bool:
    """A protocol-named headline value (`fid_2k`), not a std,
    an interval end or a per-category value."""
    return bool(_HEADLINE_NAME.match(name))


# ---------------------------------------------------------------- model references
_REF = re.compile(
    r"^(?:models:/)?(?P<name>[^/@:\s]+)?(?:@(?P<alias>[A-Za-z0-9_-]+)|/(?P<version>\d+))$"
)
_RUN = re.compile(r"^runs:/(?P<run>[0-9a-f]{32})(?:/(?P<path>.+))?$")
REF_FORMS = (
    "models:/NAME@ALIAS, models:/NAME/VERSION, NAME@ALIAS, NAME/VERSION, @ALIAS, VERSION or "
    "runs:/RUN_ID[/PATH]"
)


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference: a registered version (by alias or number), a run artifact,
    or a local bundle."""

    name: str | None = None
    alias: str | None = None
    version: str | None = None
    run_id: str | None = None
    path: str | None = None  # artifact path inside the run
    bundle: Path | None = None

    @property
    def registered(self) -> bool:
        return self.name is not None

    @property
    def uri(self) -> str:
        if self.bundle is not None:
            return str(self.bundle)
        if self.run_id:
            return f"runs:/{self.run_id}/{self.path or GENERATOR_ARTIFACT}"
        return (
            f"models:/{self.name}@{self.alias}"
            if self.alias
            else f"models:/{self.name}/{self.version}"
        )


def parse_model_ref(text: str, default_model: str) -> ModelRef:
    """Any accepted form -> ModelRef; a bare `@ALIAS` or `VERSION` means `default_model`."""
    ref = str(text).strip()
    if ref.isdigit():
        return ModelRef(name=default_model, version=ref)
    if m := _RUN.match(ref):
        return ModelRef(run_id=m["run"], path=(m["path"] or "").strip("/") or None)
    if m := _REF.match(ref):
        return ModelRef(name=m["name"] or default_model, alias=m["alias"], version=m["version"])
    raise ProdganError(f"cannot read model reference {ref!r}; use {REF_FORMS} (or --bundle DIR)")


def model_ref(
    text: str | None, bundle: Path | None, default_model: str, default_alias: str | None = CHAMPION
) -> ModelRef:
    """The model a command names: `text`, `--bundle DIR`, or the default model's `default_alias`."""
    if text and bundle:
        raise ProdganError("give either a model reference or --bundle DIR, not both")
    if bundle is not None:
        return ModelRef(bundle=Path(bundle))
    if text:
        return parse_model_ref(text, default_model)
    if default_alias is None:
        raise ProdganError(f"name a model: {REF_FORMS}, or --bundle DIR")
    return ModelRef(name=default_model, alias=default_alias)
