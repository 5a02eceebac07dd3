"""Errors a user can act on: the CLI prints them as one line and exits non-zero, no traceback."""

from __future__ import annotations

from typing import Callable


class ProdganError(Exception):
    """Bad input or a refused action. `str(err)` says what is wrong and how to fix it."""

    exit_code = 2


class GateFailed(ProdganError):
    """A check ran and said no (validation failed, promotion rejected): exit 1,
    not a usage error."""

    exit_code = 1


class TrackingUnreachable(ProdganError):
    """The MLflow tracking server did not answer: worth retrying,
    unlike other user-facing errors."""


class ChampionMoved(ProdganError):
    """Another promotion or rollback moved `champion` after this decision was computed."""

    exit_code = 1


def invalid_fields(
    source: str, problems: list[dict], valid_keys: Callable[[tuple], list[str]] | list[str]
) -> str:
    """pydantic's `ValidationError.errors()` as one line: the file, each key,
    its value and what is allowed.

    Takes the plain error dicts so this bottom module needs no pydantic import. `valid_keys` is the
    list of top-level keys, or a function from an unknown key's location to the keys valid there.
    """
    parts = []
    for problem in problems:
        key = ".".join(str(p) for p in problem["loc"] if p != "[key]") or "(top level)"
        if problem["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            keys = valid_keys(tuple(problem["loc"])) if callable(valid_keys) else valid_keys
            allowed = f"valid keys: {', '.join(keys)}"
            parts.append(f"unknown key {key!r} ({allowed})")
        elif problem["type"] == "missing":
            parts.append(f"{key}: missing, add it")
        else:
            message = problem["msg"].removeprefix("Value error, ")
            parts.append(f"{key}={problem['input']!r}: {message[0].lower()}{message[1:]}")
    return f"invalid {source}: " + "; ".join(parts)
