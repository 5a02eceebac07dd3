"""Categories too small to train on or to evaluate, and the one fix that works for each.

Validation refuses a category with fewer train or test images than its suite asks for
(`category_train_count`, `category_test_count`). Removing files only makes that worse; what
works depends on how the split was made and on how many photos the category has:
- enough photos, split chosen by the importer: re-import with `--min-test` set to the test minimum
  (the importer's own default may send half of a small category to test);
- enough photos, split kept from the source's `train/`/`test/` folders: move photos across;
- too few photos: add photos, merge the category into a similar one, or drop its folder.
The importer warns with this advice (or refuses, when asked) and validation prints the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from prodgan.data.folder import test_share


@dataclass(frozen=True)
class CategoryMinimums:
    """What the expectation suite asks of every category (None: not checked)."""

    train: int | None
    test: int | None


@dataclass(frozen=True)
class SmallCategory:
    category: str  # as the user wrote it
    train: int
    test: int
    fix: str

    def describe(self, minimums: CategoryMinimums) -> str:
        return (
            f"category {self.category!r} has {self.train} train and {self.test} test images; "
            f"validation needs at least {minimums.train or 0} train and {minimums.test or 0} "
            f"test: {self.fix}"
        )


def _fix(
    category: str,
    train: int,
    test: int,
    minimums: CategoryMinimums,
    test_fraction: float | None,
) -> str:
    need_train, need_test = minimums.train or 0, minimums.test or 0
    total = train + test
    if total < need_train + need_test:
        return (
            f"add at least {need_train + need_test - total} photos of {category!r} to the source "
            "folder, merge it into a similar category, or drop its folder; then re-import"
        )
    if test_fraction is None:  # the source's own train/ and test/ folders were kept
        if test < need_test:
            return (
                f"move {need_test - test} of its photos from train/ to test/ in the source "
                "folder, then re-import"
            )
        return (
            f"move {need_train - train} of its photos from test/ to train/ in the source "
            "folder, then re-import"
        )
    fixed_test = test_share(total, test_fraction, need_test)
    return (
        f"re-import with --min-test {need_test} (then {total - fixed_test} train / "
        f"{fixed_test} test)"
    )


def small_categories(
    counts: dict[str, dict[str, int]],
    display: dict[str, str],
    minimums: CategoryMinimums,
    test_fraction: float | None,
) -> list[SmallCategory]:
    """Every category below a minimum, with its fix.

    `counts` is split -> category key -> images; `test_fraction` is the importer's when it chose
    the split, None when the source's split was kept.
    """
    found = []
    keys = sorted(set(counts.get("train", {})) | set(counts.get("test", {})))
    for key in keys:
        train, test = counts.get("train", {}).get(key, 0), counts.get("test", {}).get(key, 0)
        if train >= (minimums.train or 0) and test >= (minimums.test or 0):
            continue
        shown = display.get(key, key)
        found.append(
            SmallCategory(shown, train, test, _fix(shown, train, test, minimums, test_fraction))
        )
    return found
