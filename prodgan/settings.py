"""The only place that reads environment variables and builds state paths.

Resolution order (architecture rule 9): CLI flag > environment > config file > embedded
default under the project (`.prodgan/`). CLI flags reach here as explicit arguments to
`Settings.load`. Shipped defaults (`configs/`, `evaluation/`, `prefect.yaml`) are found by
`shipped`: the project's own copy first, then the one installed with prodgan.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from prodgan.names import DEFAULT_DATASET, PRODUCTION_SUFFIX

# Variables that stop the stack from calling outside hosts or writing outside the project.
_QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # no per-file bars in CLI output
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # Prefect reads its settings once, at import; a loaded 2-core machine needs far longer
    # than the default 20 s to start the embedded API.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "GIT_PYTHON_REFRESH": "quiet",
}
# A source checkout (or editable install) holds the shipped files beside the package; a wheel
# installs them under <prefix>/share/prodgan (pyproject's data-files).
_SOURCE_ROOT = Path(__file__).resolve().parent.parent
_INSTALLED_SHARE = Path(sys.prefix) / "share" / "prodgan"


def find_root(start: Path | None = None) -> Path:
    """The project root: `PRODGAN_ROOT`, else the nearest parent holding `.dvc/` or `data.dvc`."""
    env = os.environ.get("PRODGAN_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".dvc").is_dir() or (candidate / "data.dvc").is_file():
            return candidate
    return here


def shipped_root() -> Path:
    """Where prodgan's own `configs/`, `evaluation/` and `prefect.yaml` are."""
    return _SOURCE_ROOT if (_SOURCE_ROOT / "configs").is_dir() else _INSTALLED_SHARE


def shipped(relative: str | Path, project: Path | None = None) -> Path:
    """`relative` in the project if it has its own copy, else the one shipped with prodgan."""
    if project is not None and (project / relative).exists():
        return project / relative
    return shipped_root() / relative


def env(name: str) -> str | None:
    """One environment variable, empty meaning unset (for the few read outside `Settings`)."""
    return os.environ.get(name) or None


def shared_dataset(name: str) -> Path:
    """A dataset shared by tests and benchmarks, never copied into the project:
    `PRODGAN_SHARED_DATA/<name>`, else `shared/datasets/<name>` beside this checkout, else beside
    the checkout it was cloned from (a clean clone made elsewhere, e.g. by CI,
    still finds the workspace's copy)."""
    base = os.environ.get("PRODGAN_SHARED_DATA")
    if base:
        return Path(base).expanduser() / name
    candidates = [_SOURCE_ROOT.parent / "shared" / "datasets" / name]
    origin = _clone_origin(_SOURCE_ROOT)
    if origin is not None:
        candidates.append(origin.parent / "shared" / "datasets" / name)
    return next((c for c in candidates if c.is_dir()), candidates[0])


def _clone_origin(checkout: Path) -> Path | None:
    """The local folder this checkout was cloned from, if it was cloned from one."""
    import subprocess

    try:
        url = subprocess.run(
            ["git", "-C", str(checkout), "config", "--get", "remote.origin.url"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    path = (
        Path(url.removeprefix("file://"))
        if url and "://" not in url.removeprefix("file://")
        else None
    )
    return path.resolve() if path is not None and path.is_dir() else None


def environment() -> dict[str, str]:
    """A copy of the whole environment, for child processes that must inherit it."""
    return dict(os.environ)


def postgres_bin() -> Path:
    """PostgreSQL's server programs (initdb, pg_ctl): `PRODGAN_PG_BIN`,
    else Debian's PostgreSQL 15."""
    return Path(os.environ.get("PRODGAN_PG_BIN") or "/usr/lib/postgresql/15/bin")


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=VALUE` lines (blank lines and `#` comments skipped); {} when the file is missing."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return {}
    pairs = (
        line.split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


def _stack_paths(home: Path) -> tuple[Path, Path]:
    """(stack state folder, stack env file): `PRODGAN_STACK_DIR`, `PRODGAN_STACK_ENV`,
    else under home."""
    stack_dir = Path(os.environ.get("PRODGAN_STACK_DIR") or home / "stack").expanduser().resolve()
    env_file = (
        Path(os.environ.get("PRODGAN_STACK_ENV") or stack_dir / "stack.env").expanduser().resolve()
    )
    return stack_dir, env_file


# The DVC remote a new project commits: a folder beside it (PRODGAN_DVC_REMOTE overrides, locally).
DEFAULT_DVC_REMOTE = "prodgan-dvc-remote"


def _remote(value: str) -> Path | str:
    """A DVC remote: URLs (`s3://bucket/dvc`) as they are, folders as absolute paths."""
    return value if "://" in value else Path(value).expanduser().resolve()


@dataclass(frozen=True)
class Settings:
    root: Path
    home: Path
    data_dir: Path
    cache_dir: Path
    tracking_uri: str
    # the registered model commands act on; `for_dataset` / `for_model` pick another of the family
    model_name: str
    dvc_remote: Path | str  # a folder, or a URL such as s3://prodgan/dvc
    dvc_remote_overridden: bool = False
    eval_samples: str | None = None  # PRODGAN_EVAL_SAMPLES, checked where it is used
    prefect_api_url: str | None = None
    stack_dir: Path | None = None  # where `prodgan stack` keeps its state, logs and data
    stack_env_file: Path | None = (
        None  # the team stack's URIs and credentials, read below the environment
    )
    s3_endpoint_url: str | None = (
        None  # AWS_ENDPOINT_URL: S3-compatible storage that is not Amazon's
    )
    model_family: str = (
        ""  # PRODGAN_MODEL_NAME as configured: the default dataset's model, prefix of the others
    )

    @classmethod
    def load(cls, root: Path | None = None, tracking_uri: str | None = None) -> "Settings":
        root = Path(root).resolve() if root else find_root()
        home = Path(os.environ.get("PRODGAN_HOME", root / ".prodgan")).expanduser().resolve()
        stack_dir, stack_env = _stack_paths(home)
        e = {
            **read_env_file(stack_env),
            **os.environ,
        }  # the environment wins over the stack's file (rule 9)
        cache = (
            e.get("PRODGAN_CACHE_DIR")
            or Path(e.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "prodgan"
        )
        remote = e.get("PRODGAN_DVC_REMOTE")
        return cls(
            root=root,
            home=home,
            data_dir=Path(e.get("PRODGAN_DATA_DIR", root / "data")).expanduser().resolve(),
            cache_dir=Path(cache).expanduser().resolve(),
            tracking_uri=tracking_uri
            or e.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{home / 'mlflow.db'}",
            model_name=e.get("PRODGAN_MODEL_NAME", "prodgan-generator"),
            model_family=e.get("PRODGAN_MODEL_NAME", "prodgan-generator"),
            dvc_remote=_remote(remote or str(root.parent / DEFAULT_DVC_REMOTE)),
            dvc_remote_overridden=bool(remote),
            eval_samples=e.get("PRODGAN_EVAL_SAMPLES") or None,
            prefect_api_url=e.get("PREFECT_API_URL") or None,
            stack_dir=stack_dir,
            stack_env_file=stack_env,
            s3_endpoint_url=e.get("AWS_ENDPOINT_URL") or None,
        )

    def model_for(self, dataset: str) -> str:
        """The registered model trained on `dataset`: one per dataset, so a champion is only ever
        judged against and replaced by a generator of the same data. The default dataset's keeps the
        bare name."""
        family = self.model_family or self.model_name
        return family if dataset == DEFAULT_DATASET else f"{family}-{dataset}"

    def for_dataset(self, dataset: str) -> "Settings":
        return replace(self, model_name=self.model_for(dataset))

    def for_model(self, name: str | None) -> "Settings":
        """These settings acting on registered model `name` (its production twin's name picks the
        trained one): a reference's own model decides whose audit chain and production copy are
        checked. `None`: unchanged."""
        return replace(self, model_name=name.removesuffix(PRODUCTION_SUFFIX)) if name else self

    @property
    def tracking_user(self) -> str | None:
        """MLFLOW_TRACKING_USERNAME as MLflow will send it now (read per call,
        like MLflow's client does)."""
        return os.environ.get("MLFLOW_TRACKING_USERNAME") or None

    @property
    def audit_key_path(self) -> Path:
        """The promoter's Ed25519 private key (PEM, 0600), written by `prodgan admin keygen`."""
        return Path(
            os.environ.get("PRODGAN_AUDIT_KEY") or self.home / "keys" / "audit-ed25519.pem"
        ).expanduser()

    @property
    def audit_public_key_path(self) -> Path:
        """The public key audit records are verified with: configured here,
        never fetched from MLflow."""
        return Path(
            os.environ.get("PRODGAN_AUDIT_PUBLIC_KEY") or self.home / "keys" / "audit-ed25519.pub"
        ).expanduser()

    # ------------------------------------------------------------ state paths (all under home)
    @property
    def artifact_dir(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def tensor_cache_dir(self) -> Path:
        return self.home / "cache" / "tensors"

    @property
    def manifest_cache_dir(self) -> Path:
        return self.home / "cache" / "manifest"

    @property
    def tmp_dir(self) -> Path:
        return self.home / "tmp"

    @property
    def model_cache_dir(self) -> Path:
        return self.home / "models"

    def evaluator_dir(self, dataset: str) -> Path:
        """The evaluator classifier of one dataset: each dataset side by side has its own."""
        return self.home / "evaluator" / dataset

    @property
    def train_runs_dir(self) -> Path:
        return self.home / "train"

    @property
    def data_state_file(self) -> Path:
        return self.home / "data-state.json"

    @property
    def prefect_home(self) -> Path:
        return Path(os.environ.get("PREFECT_HOME") or self.home / "prefect")

    def validation_dir(self, dataset: str) -> Path:
        return self.home / "validation" / dataset

    # ------------------------------------------------------------ shipped defaults
    @property
    def gates_path(self) -> Path:
        """`PRODGAN_GATES` (read per call), else the project's evaluation/gates.yaml,
        else the one shipped with prodgan."""
        chosen = os.environ.get("PRODGAN_GATES")
        return Path(chosen).expanduser() if chosen else shipped("evaluation/gates.yaml", self.root)

    def suite_path(self, kind: str) -> Path:
        return shipped(f"evaluation/expectations/{kind}.json", self.root)

    def config_path(self, config: str | Path) -> Path:
        """`--config` as given (absolute or from the working directory), else in the project,
        else shipped."""
        path = Path(config).expanduser()
        if path.is_absolute():
            return path
        for base in (Path.cwd(), self.root, shipped_root()):
            if (base / path).is_file():
                return (base / path).resolve()
        return path  # load_config reports it as missing


def configure_environment(settings: Settings | None = None) -> Settings:
    """Set the quiet/offline switches before any stack package is imported;
    never overrides the user."""
    settings = settings or Settings.load()
    # The team stack's URIs and credentials reach MLflow, boto3, DVC and Prefect,
    # which read the environment.
    for key, value in (
        read_env_file(settings.stack_env_file).items() if settings.stack_env_file else ()
    ):
        os.environ.setdefault(key, value)
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_HOME", str(settings.home / "prefect"))
    os.environ.setdefault("DVC_SITE_CACHE_DIR", str(settings.home / "dvc-site"))
    os.environ.setdefault("TORCH_HOME", str(settings.cache_dir / "torch"))
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TMPDIR", str(settings.tmp_dir))
    return settings
