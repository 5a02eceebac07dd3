"""Near-duplicate check (issue 25): recall on copies made with standard transforms, false alarms on
distinct products and on colour variants, the previous greyscale check beside it.

A shop is built from clothing-small (read in place, written to a temp folder, never into the repo):
train = 400 photos of its train split; test = 200 photos of its test split (distinct products) plus
copies of train photos, 25 per transform (resized to 3/4 and saved as JPEG q60, JPEG q90 and q60,
a 4% crop, brightness x1.15 and x0.85) and 40 colour variants (a colourful train photo with its
chroma turned by 120 degrees: the same product in another colour, same greyscale). It is imported
with the real importer and described by the real manifest; a test photo counts as flagged when the
folder suite's leakage rules would name it (thresholds read from
evaluation/expectations/folder.json).

Previous check, for comparison: 16x16 greyscale thumbnails, brightness-centred, distance < 2
between images whose dHash is within 6 bits (the suite before this change), computed here on the
same imported files.

    .venv/bin/python bench/near_duplicates.py
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prodgan.data.folder import write_folder  # noqa: E402
from prodgan.data.layout import META_FILE  # noqa: E402
from prodgan.data.manifest import build_manifest  # noqa: E402
from prodgan.settings import shared_dataset  # noqa: E402
from tests.products.helpers import colour_variant  # noqa: E402

TRAIN, DISTINCT, PER_TRANSFORM, COLOUR_VARIANTS = 400, 200, 25, 40


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _crop(img: Image.Image, share: float) -> Image.Image:
    dx, dy = int(img.width * share), int(img.height * share)
    return img.crop((dx, dy, img.width - dx, img.height - dy))


TRANSFORMS = {
    "resize 3/4 + JPEG q60": lambda im: _jpeg(
        im.resize((im.width * 3 // 4, im.height * 3 // 4)), 60
    ),
    "JPEG q90": lambda im: _jpeg(im, 90),
    "JPEG q60": lambda im: _jpeg(im, 60),
    "crop 4% + JPEG q85": lambda im: _jpeg(_crop(im, 0.04), 85),
    "brightness x1.15": lambda im: _jpeg(ImageEnhance.Brightness(im).enhance(1.15), 85),
    "brightness x0.85": lambda im: _jpeg(ImageEnhance.Brightness(im).enhance(0.85), 85),
}


def _chroma(img: Image.Image) -> np.ndarray:
    planes = np.asarray(img.convert("YCbCr"), dtype=np.float64)
    return planes[..., 1:] - 128.0


def _colourful(img: Image.Image) -> bool:
    """A fifth of the photo clearly coloured: turning its hue makes another colourway."""
    return float((np.hypot(*np.moveaxis(_chroma(img), -1, 0)) > 20).mean()) > 0.2


def _open(path: Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def build_shop(clothing: Path, src: Path) -> None:
    train = sorted(clothing.glob("train/*/*.jpg"))[:: max(1, 3068 // TRAIN)][:TRAIN]
    distinct = sorted(clothing.glob("test/*/*.jpg"))[:: max(1, 372 // DISTINCT)][:DISTINCT]
    for photo in train + distinct:
        split = "train" if photo in train else "test"
        target = src / split / photo.parent.name / photo.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(photo.read_bytes())
    originals = iter(train)
    for name, transform in TRANSFORMS.items():
        for _ in range(PER_TRANSFORM):
            photo = next(originals)
            target = src / "test" / photo.parent.name / f"copy-{_tag(name)}-{photo.name}"
            transform(_open(photo)).save(target.with_suffix(".png"))
    made = 0
    for photo in originals:
        img = _open(photo)
        if made < COLOUR_VARIANTS and _colourful(img):
            colour_variant(img).save(src / "test" / photo.parent.name / f"colour-{photo.stem}.png")
            made += 1


def _thresholds() -> dict[str, float]:
    suite = json.loads((ROOT / "evaluation" / "expectations" / "folder.json").read_text())
    return {
        e["kwargs"]["column"]: e["kwargs"]["min_value"]
        for e in suite["expectations"]
        if e["kwargs"].get("column") in ("near_dup_distance", "perceptual_dup_distance")
    }


def _previous_check(out: Path, manifest, test_rows, train_rows) -> np.ndarray:
    """The greyscale check this change replaced, per test row: flagged or not."""

    def grey_thumbs(rows) -> np.ndarray:
        thumbs = []
        for rel in manifest.loc[rows, "path"]:
            with Image.open(out / rel) as img:
                small = img.convert("L").resize((16, 16), Image.Resampling.BOX)
            flat = np.asarray(small, dtype=np.float32).ravel()
            thumbs.append(flat - flat.mean())
        return np.stack(thumbs)

    bits = np.array([int(h, 16) for h in manifest["dhash"]], dtype=np.uint64)
    hamming = np.bitwise_count(bits[test_rows, None] ^ bits[None, train_rows])
    distance = np.abs(grey_thumbs(test_rows)[:, None] - grey_thumbs(train_rows)[None]).mean(-1)
    return ((hamming <= 6) & (distance < 2.0)).any(axis=1)


def main() -> None:
    clothing = shared_dataset("clothing-small")
    if not clothing.is_dir():
        raise SystemExit(f"{clothing} not found: set PRODGAN_SHARED_DATA")
    with tempfile.TemporaryDirectory(prefix="bench-near-dups-") as work:
        src, out = Path(work) / "shop", Path(work) / "out"
        build_shop(clothing, src)
        report = write_folder(src, out, "shop", size=64)
        (out / META_FILE).write_bytes(report.meta.to_json())
        manifest = build_manifest(out)
        limits = _thresholds()
        flagged = np.zeros(len(manifest), dtype=bool)
        for column, limit in limits.items():
            flagged |= (manifest[column] < limit).fillna(False).to_numpy()
        test_rows = np.flatnonzero((manifest["split"] == "test").to_numpy())
        train_rows = np.flatnonzero((manifest["split"] == "train").to_numpy())
        flags_before = _previous_check(out, manifest, test_rows, train_rows)
        previous = dict(zip(test_rows, flags_before, strict=True))
        kinds: dict[str, list[int]] = defaultdict(list)
        for row in test_rows:
            name = Path(manifest.at[row, "source"]).name
            kind = (
                "distinct product"
                if not name.startswith(("copy-", "colour-"))
                else "colour variant (not a copy)"
                if name.startswith("colour-")
                else next(t for t in TRANSFORMS if name.startswith("copy-" + _tag(t)))
            )
            kinds[kind].append(row)
        print(
            f"imported {report.meta.total('train')} train + {report.meta.total('test')} test "
            f"({len(report.skipped)} skipped); thresholds {limits}"
        )
        print(f"{'test photos':<30} {'n':>4} {'flagged now':>12} {'previous check':>15}")
        for kind in [*TRANSFORMS, "colour variant (not a copy)", "distinct product"]:
            rows = kinds[kind]
            now = np.mean([flagged[r] for r in rows])
            before = np.mean([previous[r] for r in rows])
            print(f"{kind:<30} {len(rows):>4} {now:>12.2f} {before:>15.2f}")
        copies = [r for t in TRANSFORMS for r in kinds[t]]
        distances = manifest.loc[copies, "perceptual_dup_distance"]
        nearest_distinct = manifest.loc[kinds["distinct product"], "perceptual_dup_distance"].min()
        print(
            f"copies: recall {np.mean(flagged[copies]):.2f} (previous "
            f"{np.mean([previous[r] for r in copies]):.2f}), distance median "
            f"{distances.median():.2f}, max {distances.max():.2f}; distinct products: nearest "
            f"distance min {nearest_distinct:.2f}"
        )
        for row in kinds["distinct product"]:
            if flagged[row]:
                print(
                    f"  flagged distinct: {manifest.at[row, 'source']} ~ "
                    f"{report.meta.sources.get(manifest.at[row, 'perceptual_dup_of'])}"
                )


def _tag(name: str) -> str:
    return name.replace(" ", "").replace("/", "of").replace("%", "pc").replace("+", "_")


if __name__ == "__main__":
    main()
