"""The shared consoles (results to stdout, errors and progress to stderr)
and one progress-bar shape.

Every live display on stderr goes through `err`, so a progress bar started deep inside a step
(e.g. the evaluator's first training) nests under the CLI's spinner instead of fighting it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

from rich.console import Console

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _transient(text: str, *columns: Any, console: Console) -> Any:
    """The one bar shape: label, bar, done/total, then `columns`; gone when it finishes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn(text),
        BarColumn(),
        MofNCompleteColumn(),
        *columns,
        console=console,
        transient=True,
    )


@contextmanager
def progress_bar(description: str, console: Console = err) -> Iterator[Callable[[int, int], None]]:
    """Yield a `progress(done, total)` callback drawing a transient rich bar."""
    from rich.progress import TimeElapsedColumn, TimeRemainingColumn

    columns = (TimeElapsedColumn(), TimeRemainingColumn())
    with _transient("{task.description}", *columns, console=console) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@contextmanager
def sides_progress(title: str, console: Console = err) -> Iterator[Callable[[str, int, int], None]]:
    """Yield `progress(side, done, total)`: one transient bar per side (generated, real:test...)
    with images/s."""
    from rich.progress import ProgressColumn, TimeElapsedColumn
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{task.speed:,.1f} images/s" if task.speed else "")

    label = f"{title} [bold]{{task.description}}"
    with _transient(label, Rate(), TimeElapsedColumn(), console=console) as bar:
        tasks: dict[str, Any] = {}

        def report(side: str, done: int, total: int) -> None:
            # every extraction starts at 0: a side seen again gets a new bar
            if side not in tasks or done == 0:
                tasks[side] = bar.add_task(side, total=total)
            bar.update(tasks[side], completed=done, total=total)

        yield report


class StepProgress:
    """A rich progress bar with images/s and losses; a no-op when disabled (other ranks,
    quiet runs)."""

    def __init__(self, enabled: bool, start: int, total: int) -> None:
        self.enabled, self.start, self.total = enabled, start, total

    def __enter__(self) -> "StepProgress":
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("train"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                transient=False,
            )
            self.progress.__enter__()
            self.task = self.progress.add_task(
                "train", total=self.total, completed=self.start, info=""
            )
        return self

    def update(self, step: int, metrics: dict[str, float]) -> None:
        if self.enabled:
            info = (
                f"{metrics['images_per_s']:,.0f} img/s  "
                f"D {metrics['loss_d']:.3f}  G {metrics['loss_g']:.3f}"
            )
            self.progress.update(self.task, completed=step, info=info)

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.progress.__exit__(*exc)
