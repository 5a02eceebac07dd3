"""An outside training command as a child process: run in its folder with the environment it is
given, its output streamed line by line (to the caller and a log file), its exit status returned.

A child process, never an import: the trainer's code runs in its own interpreter, so nothing it
does reaches prodgan's process but its output and its exit status. Stopping prodgan (Ctrl-C, a
cancelled flow run) stops the command too.
"""

from __future__ import annotations

import subprocess
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from prodgan.errors import ProdganError

TAIL_LINES = 20


@dataclass(frozen=True)
class Finished:
    returncode: int
    tail: list[str]  # its last output lines (a failure's report)


def run_streamed(
    command: list[str], cwd: Path, env: dict[str, str], log: Path, echo: Callable[[str], None]
) -> Finished:
    """Run `command` in `cwd` until it exits; every output line goes to `echo` and `log`."""
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        child = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
    except OSError as exc:  # not found, not executable, cwd missing
        raise ProdganError(
            f"trainer command `{' '.join(command)}` could not start in {cwd}: {exc.strerror}; "
            "fix trainer.command (or trainer.cwd) in the recipe"
        ) from None
    try:
        with open(log, "a", encoding="utf-8") as sink:
            for line in child.stdout:
                sink.write(line)
                tail.append(line.rstrip())
                echo(line.rstrip())
        return Finished(child.wait(), list(tail))
    finally:
        if child.poll() is None:  # prodgan was stopped: the command stops with it
            child.kill()
            child.wait()
