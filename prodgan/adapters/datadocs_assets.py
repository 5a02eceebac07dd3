"""Great Expectations Data Docs that render styled offline: their CDN assets, local.

GX's page templates load bootstrap, jQuery, popper, font-awesome, bootstrap-table, the datepicker
and vega from public CDNs; offline the pages render as bare HTML. Set-up (`prodgan setup`) fetches
the very same versions once from the npm registry (`npm pack`, whose tarballs npm checks against
the registry's integrity hashes), keeps the needed files under `<cache>/datadocs-assets/` with a
sha256 manifest, and every Data Docs build copies them beside the site and rewrites the links.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from functools import partial
from pathlib import Path

from prodgan.errors import ProdganError
from prodgan.fsutil import atomic_dir, file_hashes, write_bytes_atomic, write_json_atomic

# CDN URL in GX's templates -> (npm package@version, file inside the package). A data table: the
# URLs stay whole (they must match the templates byte for byte), hence the noqa on the long ones.
ASSETS: dict[str, tuple[str, str]] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": (
        "bootstrap@4.3.1",
        "dist/css/bootstrap.min.css",
    ),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": (
        "bootstrap@4.3.1",
        "dist/js/bootstrap.min.js",
    ),
    "https://code.jquery.com/jquery-3.7.1.min.js": ("jquery@3.7.1", "dist/jquery.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": (
        "popper.js@1.12.9",
        "dist/umd/popper.min.js",
    ),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (  # noqa: E501
        "@forevolve/bootstrap-dark@1.1.0",
        "dist/css/bootstrap-prefers-dark.css",
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (  # noqa: E501
        "bootstrap-datepicker@1.9.0",
        "dist/css/bootstrap-datepicker.min.css",
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (  # noqa: E501
        "bootstrap-datepicker@1.9.0",
        "dist/js/bootstrap-datepicker.min.js",
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "@fortawesome/fontawesome-free@6.6.0",
        "css/all.min.css",
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        "bootstrap-table@1.19.1",
        "dist/bootstrap-table.min.css",
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        "bootstrap-table@1.19.1",
        "dist/bootstrap-table.min.js",
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (  # noqa: E501
        "bootstrap-table@1.19.1",
        "dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": (  # noqa: E501
        "bootstrap-table@1.19.0",
        "dist/extensions/filter-control/bootstrap-table-filter-control.css",
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (  # noqa: E501
        "bootstrap-table@1.19.0",
        "dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
    ),
    # jsdelivr serves a package's `jsdelivr` file for a bare name;
    # these are the 5.x/6.x releases pinned
    "https://cdn.jsdelivr.net/npm/vega@5": ("vega@5.33.0", "build/vega.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-lite@5": ("vega-lite@5.23.0", "build/vega-lite.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-embed@6": ("vega-embed@6.29.0", "build/vega-embed.min.js"),
}
# folders a stylesheet reaches by relative URL (font-awesome's ../webfonts/)
FOLDERS: dict[str, str] = {"@fortawesome/fontawesome-free@6.6.0": "webfonts"}
MANIFEST = "manifest.json"
VENDOR = "static/vendor"  # under the Data Docs site


def assets_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / "datadocs-assets"


def _local_name(package: str, member: str) -> str:
    return f"{package.lstrip('@').replace('/', '__')}/{member}"


def _wanted(package: str, member: str) -> bool:
    inside = member.removeprefix("package/")
    folder = FOLDERS.get(package)
    return (package, inside) in set(ASSETS.values()) or bool(
        folder and inside.startswith(folder + "/")
    )


def fetch(cache_dir: Path) -> Path:
    """Set-up: `npm pack` each pinned package once and keep the needed files
    (with a sha256 manifest)."""
    target = assets_dir(cache_dir)
    if (target / MANIFEST).is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise ProdganError(
            "npm not found: the Data Docs styling comes from the npm registry at set-up; "
            "install Node.js (apt-get install npm) and run `prodgan setup` again"
        )
    packages = sorted({p for p, _ in ASSETS.values()})
    with (
        tempfile.TemporaryDirectory() as tarballs,
        atomic_dir(target, keep_existing=True) as staged,
    ):
        proc = subprocess.run(
            [npm, "pack", "--json", "--pack-destination", tarballs, *packages],
            capture_output=True,
            text=True,
            cwd=tarballs,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise ProdganError(
                f"npm pack of the Data Docs assets failed ({last}); "
                "check access to the npm registry and rerun `prodgan setup`"
            )
        for packed in json.loads(proc.stdout):
            package = f"{packed['name']}@{packed['version']}"
            with tarfile.open(Path(tarballs) / packed["filename"]) as tar:
                for member in tar.getmembers():
                    if member.isfile() and _wanted(package, member.name):
                        dest = staged / _local_name(package, member.name.removeprefix("package/"))
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        dest.write_bytes(tar.extractfile(member).read())
        write_json_atomic(staged / MANIFEST, file_hashes(staged))
    return target


def local_assets(cache_dir: Path) -> Path:
    """The fetched assets; a one-line error naming the set-up step when they are missing."""
    target = assets_dir(cache_dir)
    if not (target / MANIFEST).is_file():
        raise ProdganError(
            f"the Data Docs styling is not fetched ({target} is missing): "
            "run `prodgan setup` (or `make setup`) once with access to the npm registry"
        )
    return target


def localize(site: Path, assets: Path) -> list[Path]:
    """Copy the assets beside the Data Docs site and point every page's CDN links at them;
    the pages rewritten."""
    vendor = Path(site) / VENDOR
    if (
        not (vendor / MANIFEST).is_file()
        or (vendor / MANIFEST).read_bytes() != (assets / MANIFEST).read_bytes()
    ):
        shutil.rmtree(vendor, ignore_errors=True)
        shutil.copytree(assets, vendor)
    rewritten = []
    for page in Path(site).rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        new = _LINK.sub(partial(_local_link, vendor=vendor, page_dir=page.parent), html)
        # GX ships it; the remote one also reports the page view
        logo = os.path.relpath(Path(site) / LOGO, page.parent)
        new = _GX_LOGO.sub(logo, new)
        if new != html:
            write_bytes_atomic(page, new.encode("utf-8"))
            rewritten.append(page)
    return rewritten


# GX's logo (an <img> and a CSS background) from its own S3 bucket,
# with the data context id in the query
_GX_LOGO = re.compile(
    r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/[A-Za-z_-]+\.png(\?[^\"')\s]*)?"
)
LOGO = "static/images/logo-long.png"
# a quoted CDN URL, with the subresource-integrity attributes GX puts after some of them
_LINK = re.compile(r'"(https://[^"]+)"(\s+integrity="(sha\d+)-([^"]+)")?(\s+crossorigin="[^"]*")?')


def _local_link(match: re.Match, vendor: Path, page_dir: Path) -> str:
    """One link, pointed at the local copy. Its integrity hash is checked here, then dropped:
    browsers refuse `crossorigin` fetches of file:// URLs,
    and the copy is pinned by the manifest's sha256."""
    url, _, algorithm, expected = match.group(1, 2, 3, 4)
    if url not in ASSETS:
        return match.group(0)
    local = vendor / _local_name(*ASSETS[url])
    if (
        algorithm
        and base64.b64encode(hashlib.new(algorithm, local.read_bytes()).digest()).decode()
        != expected
    ):
        raise ProdganError(
            f"{local} does not match the integrity hash GX expects for {url}; "
            f"delete {vendor.parent} and the cache's datadocs-assets folder, "
            "then run `prodgan setup`"
        )
    return f'"{os.path.relpath(local, page_dir)}"'
