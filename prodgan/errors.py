"""Errors a user can act on: the CLI prints them as one line and exits non-zero, no traceback."""

from __future__ import annotations


class ProdganError(Exception):
    """Bad input or a refused action. `str(err)` says what is wrong and how to fix it."""

    exit_code = 2


class GateFailed(ProdganError):
    """A check ran and said no (validation failed, promotion rejected): exit 1, not a usage error."""

    exit_code = 1


class TrackingUnreachable(ProdganError):
    """The MLflow tracking server did not answer: worth retrying, unlike other user-facing errors."""


class ChampionMoved(ProdganError):
    """Another promotion or rollback moved `champion` after this decision was computed."""

    exit_code = 1
