"""Background server processes on 127.0.0.1: start in their own process group,
wait until they answer, stop by pid.

Used by `prodgan stack` (which stops what an earlier command started, so everything works from
a recorded pid, not a `Popen` object) and by the server-mode tests.

Each server runs in its own session (`start_new_session=True`), so its process id is also its
process-group id and one signal reaches its workers (gunicorn, uvicorn, huey) too. Background
processes started from a non-interactive shell inherit an ignored SIGINT; it is reset, because
the Prefect worker turns SIGTERM into SIGINT.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable


def free_port() -> int:
    """A port free right now on 127.0.0.1 (the OS picks it; the tiny race is retried by callers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(args: list[str], log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """Start `args` in a new session (pid == process group), output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as sink:
        return subprocess.Popen(
            args,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_default_sigint,
        )


def alive(pid: int | None) -> bool:
    """The process exists and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def running(pid: int | None, marker: str) -> bool:
    """`pid` is alive and its command line mentions `marker`:
    a recorded pid may belong to another program by now."""
    if not alive(pid):
        return False
    try:
        cmdline = (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return True
    return marker in cmdline


def group_alive(pgid: int) -> bool:
    """Any process of the group is still there (a server's workers can outlive their parent)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(alive(int(p)) for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == pgid)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def wait_until(
    ready: Callable[[], bool],
    proc: subprocess.Popen,
    log: Path,
    timeout: float,
    name: str,
    not_ready: str,
    every: float = 0.3,
) -> None:
    """Poll `ready()` until it is true; RuntimeError (with the log's tail) if `proc` exits first or
    time runs out (`not_ready` says what was still missing then, e.g. "sent no heartbeat")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log_tail(log)}")
        if ready():
            return
        time.sleep(every)
    raise RuntimeError(f"{name} {not_ready} after {timeout:.0f} s:\n{log_tail(log)}")


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float, name: str) -> None:
    """Poll `url` until it answers 200 (`wait_until` with an HTTP health check)."""
    wait_until(lambda: http_ok(url), proc, log, timeout, name, f"not healthy at {url}")


def _reap(pid: int) -> None:
    """Collect the exit status if `pid` is our child (else it stays a zombie until we exit)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop_group(pid: int, grace: float = 15.0) -> bool:
    """SIGTERM the process group led by `pid`, SIGKILL what is left after `grace`;
    True if it is gone."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pid)
            if not group_alive(pid):
                return True
            time.sleep(0.1)
    return not group_alive(pid)


def stop(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """Stop a server this process started (its whole group) and collect its exit status."""
    if proc.poll() is None:
        stop_group(proc.pid, grace)
    proc.wait(timeout=grace)


def run_watched(
    args: list[str], cwd: Path, healthy: Callable[[], bool], every: float = 1.0, misses: int = 2
) -> subprocess.CompletedProcess[str] | None:
    """Run `args` to the end (output captured), or stop it once `healthy()` said no `misses` times
    in a row: None then.

    For clients that retry a dead server for minutes (DVC retries each file against an S3 endpoint
    that is gone) when the answer is already known.
    """
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ),
        start_new_session=True,
    )
    missed = 0
    while True:
        try:
            out, err = proc.communicate(timeout=every)
            return subprocess.CompletedProcess(args, proc.returncode, out, err)
        except subprocess.TimeoutExpired:
            missed = 0 if healthy() else missed + 1
            if missed >= misses:
                stop(proc, grace=5.0)
                proc.communicate()
                return None
