"""The Data Docs styling fetched at set-up:
links rewritten to the local copies, tampered copies refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from prodgan.adapters import datadocs_assets
from prodgan.errors import ProdganError
from prodgan.settings import Settings

POPPER = (
    '<script src="https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js" '
    'integrity="sha384-ApNbgh9B+Y1QKtv3Rn7W3mgPxhU9K/ScQsAP7hUibX39j7fakFPskvXusvfa0b4Q" '
    'crossorigin="anonymous"></script>'
)


@pytest.fixture
def assets(tmp_path: Path) -> Path:
    """A copy of the set-up's assets (`prodgan setup` ran before the tests, as `make test` does)."""
    return Path(
        shutil.copytree(
            datadocs_assets.local_assets(Settings.load().cache_dir), tmp_path / "assets"
        )
    )


def test_links_point_at_local_copies_whose_integrity_hash_matches(
    assets: Path, tmp_path: Path
) -> None:
    page = tmp_path / "site" / "validations" / "x.html"
    page.parent.mkdir(parents=True)
    page.write_text(
        f'<html>{POPPER}<a href="https://greatexpectations.io">GX</a>'
        '<img src="https://great-expectations-web-assets.'
        's3.us-east-2.amazonaws.com/logo-long.png?d=20261201&dataContextId=67386a98"></html>'
    )
    assert datadocs_assets.localize(tmp_path / "site", assets) == [page]
    html = page.read_text()
    assert (
        '<script src="../static/vendor/popper.js@1.12.9/dist/umd/popper.min.js"></script>' in html
    )
    assert 'href="https://greatexpectations.io"' in html  # a plain link is not an asset
    assert (
        '<img src="../static/images/logo-long.png">' in html
    )  # GX's logo: its own copy, no page-view report
    assert (page.parent / "../static/vendor/popper.js@1.12.9/dist/umd/popper.min.js").is_file()


def test_a_tampered_copy_is_refused(assets: Path, tmp_path: Path) -> None:
    (assets / "popper.js@1.12.9/dist/umd/popper.min.js").write_text("alert('owned')")
    page = tmp_path / "site" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text(POPPER)
    with pytest.raises(ProdganError, match="does not match the integrity hash"):
        datadocs_assets.localize(tmp_path / "site", assets)
    assert "https://cdnjs" in page.read_text()


def test_missing_assets_name_the_setup_step(tmp_path: Path) -> None:
    with pytest.raises(
        ProdganError, match=r"Data Docs styling is not fetched .* run `prodgan setup`"
    ):
        datadocs_assets.local_assets(tmp_path)
