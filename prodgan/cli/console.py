"""The CLI's shared console: results go to stdout, errors as one red line to stderr."""

from __future__ import annotations

from rich.console import Console

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
