"""One place for paths and URIs.

Resolution order (rule 6 of the architecture): CLI flag > environment > config file >
embedded default under the project (`.prodgan/`). CLI flags reach here as explicit
arguments to `Settings.load`; everything else is read from the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Variables that stop the stack from calling outside hosts or writing outside the project.
_QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "GIT_PYTHON_REFRESH": "quiet",
}


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


@dataclass(frozen=True)
class Settings:
    root: Path
    home: Path
    data_dir: Path
    cache_dir: Path
    tracking_uri: str
    artifact_dir: Path
    model_name: str
    dvc_remote: Path

    @classmethod
    def load(cls, root: Path | None = None, tracking_uri: str | None = None) -> "Settings":
        root = Path(root).resolve() if root else find_root()
        env = os.environ
        home = Path(env.get("PRODGAN_HOME", root / ".prodgan")).expanduser().resolve()
        cache = env.get("PRODGAN_CACHE_DIR") or Path(env.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "prodgan"
        return cls(
            root=root,
            home=home,
            data_dir=Path(env.get("PRODGAN_DATA_DIR", root / "data")).expanduser().resolve(),
            cache_dir=Path(cache).expanduser().resolve(),
            tracking_uri=tracking_uri or env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}",
            artifact_dir=home / "mlartifacts",
            model_name=env.get("PRODGAN_MODEL_NAME", "prodgan-generator"),
            dvc_remote=Path(env.get("PRODGAN_DVC_REMOTE", root.parent / "prodgan-dvc-remote")).expanduser().resolve(),
        )

    @property
    def tensor_cache_dir(self) -> Path:
        return self.home / "cache" / "tensors"

    @property
    def tmp_dir(self) -> Path:
        return self.home / "tmp"


def configure_environment(settings: Settings | None = None) -> Settings:
    """Set the quiet/offline switches before any stack package is imported; never overrides the user."""
    settings = settings or Settings.load()
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_HOME", str(settings.home / "prefect"))
    os.environ.setdefault("DVC_SITE_CACHE_DIR", str(settings.home / "dvc-site"))
    os.environ.setdefault("TORCH_HOME", str(settings.cache_dir / "torch"))
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TMPDIR", str(settings.tmp_dir))
    return settings
