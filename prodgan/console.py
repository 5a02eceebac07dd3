"""The shared consoles (results to stdout, errors and progress to stderr) and one progress-bar shape.

Every live display on stderr goes through `err`, so a progress bar started deep inside a step
(e.g. the evaluator's first training) nests under the CLI's spinner instead of fighting it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@contextmanager
def progress_bar(description: str, console: Console = err) -> Iterator[Callable[[int, int], None]]:
    """Yield a `progress(done, total)` callback drawing a transient rich bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
