"""`prodgan data ...`: import, version (DVC), and restore product-image datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prodgan.console import out, progress_bar
from prodgan.settings import Settings

app = typer.Typer(help="Import, version and restore datasets (DVC).", no_args_is_help=True)
import_app = typer.Typer(help="Import a dataset into data/<name>.", no_args_is_help=True)
app.add_typer(import_app, name="import")


@import_app.command("fashion-mnist")
def import_fashion_mnist(
    source: Optional[Path] = typer.Option(
        None,
        help="Folder with the four idx(.gz) files "
        "[default: Debian's /usr/share/datasets/fashion-mnist]",
    ),
    limit: Optional[int] = typer.Option(
        None, min=1, help="Keep only the first N images of each split (tests, smoke runs)."
    ),
    force: bool = typer.Option(
        False, help="Replace data/fashion-mnist even if it holds another dataset."
    ),
) -> None:
    """Decode Fashion-MNIST into data/fashion-mnist/{train,test}/<category>/<index>.png
    (deterministic bytes).

    Example: prodgan data import fashion-mnist
    """
    from prodgan.ops import data

    settings = Settings.load()
    with progress_bar("importing fashion-mnist", out) as progress:
        meta = data.import_fashion_mnist(
            settings, source, limit=limit, force=force, progress=progress
        )
    out.print(
        f"imported [bold]fashion-mnist[/]: {meta.total('train')} train + "
        f"{meta.total('test')} test images -> {settings.data_dir / 'fashion-mnist'}"
    )


@import_app.command("folder")
def import_folder(
    src: Path = typer.Argument(
        ..., help="Folder with one subfolder of JPEG/PNG/WebP images per category."
    ),
    name: str = typer.Option(..., help="Dataset name: it lands in data/<name>."),
    size: int = typer.Option(
        64, help="Output side in pixels (images are made square by --fit, then resized)."
    ),
    mode: str = typer.Option("RGB", help="RGB or L (grayscale)."),
    fit: str = typer.Option(
        "pad",
        help="pad: centre on a square of the photo's border colour; crop: keep the centred square.",
    ),
    test_fraction: float = typer.Option(
        0.1, help="Share of each category sent to test (when the folder has no train/ test/ split)."
    ),
    min_test: int = typer.Option(
        10, min=1, help="At least this many test images per category (at most half of it)."
    ),
    min_side: Optional[int] = typer.Option(
        None, min=1, help="Skip photos whose short side is below this [default: half of --size]."
    ),
    ambiguous: str = typer.Option(
        "skip", help="A photo under two categories: skip (drop every copy) or first (keep one)."
    ),
    product_pattern: Optional[str] = typer.Option(
        None,
        help="Regular expression on each photo's path below its category folder whose first "
        "group names the product (e.g. '^([^_]+)_' for SKU123_red.jpg, '^([^/]+)/' for a "
        "folder per product): a product's photos (its colour variants) stay in one split.",
    ),
    strict: bool = typer.Option(
        False, help="Refuse the import when a category is too small for validation."
    ),
    force: bool = typer.Option(False, help="Replace data/<name> even if it holds another dataset."),
) -> None:
    """Import your own product photos; unreadable files are listed, not fatal.

    Categories too small to train or evaluate are named with the fix that works (--strict refuses).

    Example: prodgan data import folder ~/shoots/2026-11 --name shoes --size 64 --fit pad
    """
    from rich.markup import escape

    from prodgan.ops import data

    settings = Settings.load()
    with progress_bar(f"importing {name}", out) as progress:
        meta, skipped = data.import_folder(
            settings,
            src,
            name,
            size=size,
            mode=mode,
            force=force,
            progress=progress,
            fit=fit,
            test_fraction=test_fraction,
            min_test=min_test,
            min_side=min_side,
            ambiguous=ambiguous,
            product_pattern=product_pattern,
            strict=strict,
        )
    for rel, reason in skipped:
        out.print(f"[yellow]skipped[/] {escape(rel)}: {escape(reason)}", highlight=False)
    renamed = [f"{shown!r} -> {key}" for key, shown in meta.display.items() if shown != key]
    if renamed:
        out.print(f"category keys: {', '.join(renamed)}", highlight=False, markup=False)
    out.print(
        f"imported [bold]{name}[/]: {meta.total('train')} train + "
        f"{meta.total('test')} test images, {len(skipped)} skipped -> {settings.data_dir / name}"
    )
    minimums = data.category_minimums(settings, meta.kind)
    for small in data.too_small(settings, meta):
        out.print(
            f"[yellow]warning:[/] {escape(small.describe(minimums))}",
            highlight=False,
            soft_wrap=True,
        )
    if not data.in_git_repository(settings):
        out.print(
            f"[yellow]note:[/] {settings.root} is not a git repository, so `prodgan data add` "
            "cannot version this data yet: run `git init` there first",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def add() -> None:
    """Version data/ with DVC (writes data.dvc; commit it with git)."""
    from prodgan.ops import data

    v = data.add(Settings.load())
    out.print(
        f"data.dvc pins [bold]{v.data_hash}[/] ({v.files} files); "
        "commit it: git add data.dvc && git commit"
    )


@app.command()
def version(
    dataset: Optional[str] = typer.Option(
        None, help="One dataset under data/ (its own hash); default: all of data/."
    ),
) -> None:
    """Print the DVC hash of data/ (or of one dataset in it) and the git revision.

    Example: prodgan data version --dataset clothing
    """
    from prodgan.ops import data

    v = data.version(Settings.load(), dataset)
    lines = [f"dataset   {v.dataset}"] if v.dataset else []
    lines += [
        f"data_hash {v.data_hash}",
        f"git_rev   {v.git_rev}{' (dirty)' if v.git_dirty else ''}",
        f"files     {v.files}",
        f"bytes     {v.size}",
    ]
    out.print("\n".join(lines), highlight=False)


@app.command()
def status() -> None:
    """Name the files under data/ that differ from what data.dvc pins (exit 1 if any)."""
    from prodgan.ops import data

    changes = data.changed_files(Settings.load())
    for line in changes:
        out.print(line, highlight=False)
    if changes:
        raise typer.Exit(1)
    out.print("data/ matches data.dvc")


@app.command()
def push() -> None:
    """Upload the pinned data to the DVC remote."""
    from prodgan.ops import data

    out.print(f"pushed {data.push(Settings.load()).data_hash}")


@app.command()
def pull() -> None:
    """Restore data/ to what data.dvc pins, from the DVC cache or remote."""
    from prodgan.ops import data

    out.print(f"data/ restored to {data.pull(Settings.load()).data_hash}")


@app.command()
def setup(
    source: Optional[Path] = typer.Option(None, help="Folder with the Fashion-MNIST idx files."),
) -> None:
    """Fresh clone: get data/ to the version data.dvc pins (pull, else rebuild from the Debian
    files), then push.

    Example: prodgan data setup
    """
    from prodgan.ops import data

    out.print(data.setup(Settings.load(), source))


from prodgan.cli.validate import validate as _validate  # noqa: E402  (lives in its own module)

app.command("validate")(_validate)
