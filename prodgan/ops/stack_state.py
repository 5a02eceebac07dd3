"""What `prodgan stack` remembers between commands: ports, secrets, process ids (`stack.json`),
and the env file it writes.

Both files hold credentials and are written owner-only. Ports and secrets are chosen once and
kept, so a restarted service comes back where the env file (already copied to other machines)
says it is.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from prodgan.adapters.processes import free_port
from prodgan.adapters.stack_services import ADMIN, WEED_PORTS, write_secret_file
from prodgan.errors import ProdganError

SERVICES = ("postgres", "seaweedfs", "mlflow", "prefect", "worker")
# the ports a user may choose (`--mlflow-port` ...)
PUBLIC_PORTS = ("postgres", "mlflow", "prefect", "s3")


STATE_FILE = "stack.json"  # ports, secrets and pids of the running stack


@dataclass
class StackState:
    directory: Path
    ports: dict[str, int] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    postgres_url: str | None = None  # an existing database instead of the throwaway cluster
    bucket: str = "prodgan"
    pool: str = "prodgan"

    @property
    def file(self) -> Path:
        return self.directory / STATE_FILE

    @property
    def env_file(self) -> Path:
        return self.directory / "stack.env"

    def log(self, service: str) -> Path:
        return self.directory / "logs" / f"{service}.log"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['mlflow']}"

    @property
    def prefect_api(self) -> str:
        return f"http://127.0.0.1:{self.ports['prefect']}/api"

    def save(self) -> None:
        data = {
            "ports": self.ports,
            "secrets": self.secrets,
            "pids": self.pids,
            "postgres_url": self.postgres_url,
            "bucket": self.bucket,
            "pool": self.pool,
        }
        write_secret_file(self.file, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def client_env(self) -> dict[str, str]:
        """What every prodgan process (and MLflow, DVC, boto3, Prefect inside it)
        needs to use the stack."""
        return {
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "MLFLOW_TRACKING_USERNAME": ADMIN,
            "MLFLOW_TRACKING_PASSWORD": self.secrets["admin_password"],
            "PREFECT_API_URL": self.prefect_api,
            "PRODGAN_DVC_REMOTE": f"s3://{self.bucket}/dvc",
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": self.secrets["s3_access_key"],
            "AWS_SECRET_ACCESS_KEY": self.secrets["s3_secret_key"],
        }

    def write_env_file(self) -> None:
        lines = [
            "# written by `prodgan stack up`: prodgan reads it "
            "(PRODGAN_STACK_ENV points to a copy elsewhere);",
            "# the environment wins over it. "
            "It holds the MLflow admin's and the S3 credentials: keep it private.",
            *(f"{k}={v}" for k, v in self.client_env().items()),
        ]
        write_secret_file(self.env_file, "\n".join(lines) + "\n")


def load(directory: Path) -> StackState | None:
    """The recorded stack in `directory`, None when there is none."""
    path = directory / STATE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return StackState(
            directory,
            {k: int(v) for k, v in data["ports"].items()},
            dict(data["secrets"]),
            {k: int(v) for k, v in data.get("pids", {}).items()},
            data.get("postgres_url"),
            data.get("bucket", "prodgan"),
            data.get("pool", "prodgan"),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProdganError(
            f"{path} is not a stack record ({exc}); stop what it started by hand and delete it"
        ) from None


def prepare(directory: Path, ports: dict[str, int | None], postgres_url: str | None) -> StackState:
    """The recorded stack with the ports asked for now, or a new one: free ports, fresh secrets."""
    state = load(directory) or StackState(directory)
    for name, port in ports.items():
        if port:
            state.ports[name] = port
    for name in (*PUBLIC_PORTS, *WEED_PORTS):
        state.ports.setdefault(name, free_port())
    if postgres_url:
        state.postgres_url = postgres_url
    for name, make in (
        ("admin_password", lambda: secrets.token_urlsafe(18)),
        ("flask_secret", lambda: secrets.token_hex(32)),
        ("s3_access_key", lambda: "prodgan" + secrets.token_hex(8)),
        ("s3_secret_key", lambda: secrets.token_hex(20)),
    ):
        state.secrets.setdefault(name, make())
    return state
