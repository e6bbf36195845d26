"""Fetch the web assets the built book serves itself: MathJax 3, require.js and the Jupyter widgets HTML manager.

Built pages would otherwise load them from CDNs, and offline the math would stay raw `\\(...\\)` and stored widgets
would stay blank. `make install` runs this script once; after that `make book` needs no network.

Each package is an npm tarball pinned in tools/web_assets.lock.json (version, URL on registry.npmjs.org and the
registry's sha512 `integrity`). A tarball whose hash differs from the lock is rejected before anything is
unpacked. Only the files the lock lists are kept, in PREFIX/share/resnet-lab-web/DEST/ (PREFIX: the virtual
environment running this script), next to a manifest.json that records what was installed; book/_ext/
offline_assets.py and the Jupyter view (`make jupyter-view`) read that manifest. A package's `patches` (regular
expression replacements, each of which must match exactly `count` times) are applied after unpacking: the widget
manager needs one to find its icon font on file:// pages.

Standard library only. Usage:
    python tools/fetch_web_assets.py                # install, or say that the assets are up to date
    python tools/fetch_web_assets.py --tarballs DIR # use tarballs already downloaded into DIR (still verified)
    python tools/fetch_web_assets.py --check        # exit 1 unless the installed assets match the lock
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

LOCK = Path(__file__).resolve().with_name("web_assets.lock.json")
ASSETS_DIRNAME = "resnet-lab-web"
MANIFEST = "manifest.json"
# Our own glue, installed next to the packages: it tells require.js where the widget manager's files are.
WIDGETS_CONFIG = Path(__file__).resolve().with_name("widgets-require-config.js")
WIDGETS_CONFIG_NAME = "widgets-config.js"
USER_AGENT = "resnet-lab-fetch-web-assets (+https://github.com/resnet-lab/resnet-lab)"


class AssetError(RuntimeError):
    """A tarball could not be fetched, failed its integrity check or lacks a file the lock asks for."""


def default_dest() -> Path:
    return Path(sys.prefix) / "share" / ASSETS_DIRNAME


def load_lock(path: Path = LOCK) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["packages"]


def check_integrity(data: bytes, integrity: str, what: str) -> None:
    """Compare `data` with an npm/SRI integrity string such as 'sha512-BASE64'."""
    algo, _, expected = integrity.partition("-")
    if algo not in {"sha512", "sha384", "sha256"}:
        raise AssetError(f"{what}: unsupported integrity algorithm {algo!r} in the lock")
    actual = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if actual != expected:
        raise AssetError(f"{what}: {algo} integrity mismatch (lock {expected[:16]}..., got {actual[:16]}...): "
                         "the download is corrupt or not the pinned release; nothing was installed")


def download(url: str, what: str, attempts: int = 3) -> bytes:
    last = None
    for attempt in range(attempts):
        try:
            request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.read()
        except OSError as error:  # URLError, timeouts, connection resets
            last = error
            time.sleep(2 * attempt)
    raise AssetError(f"{what}: could not download {url}: {last}. `make install` needs the npm registry once; "
                     "on a machine without it, download the tarballs elsewhere and pass --tarballs DIR")


def tarball_bytes(package: dict, tarballs: Path | None) -> bytes:
    what = f"{package['name']}@{package['version']}"
    name = package["tarball"].rsplit("/", 1)[-1]
    if tarballs is not None and (tarballs / name).is_file():
        data = (tarballs / name).read_bytes()
    else:
        data = download(package["tarball"], what)
    check_integrity(data, package["integrity"], what)
    return data


def unpack(data: bytes, package: dict, dest: Path) -> tuple[int, int]:
    """Unpack the listed regular files of an npm tarball (members under 'package/') into dest; (files, bytes)."""
    what = f"{package['name']}@{package['version']}"
    count = size = 0
    matched: set[str] = set()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            top, _, rel = member.name.partition("/")
            parts = Path(rel).parts
            if not member.isfile() or not rel or ".." in parts or Path(rel).is_absolute():
                continue
            hits = [p for p in package["files"] if fnmatch.fnmatchcase(rel, p)]
            if not hits:
                continue
            matched.update(hits)
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.extractfile(member).read())
            count, size = count + 1, size + member.size
    missing = [p for p in package["files"] if p not in matched]
    if missing or not (dest / package["entry"]).is_file():
        raise AssetError(f"{what}: the tarball has no file matching {missing or [package['entry']]}")
    for patch in package.get("patches", []):
        apply_patch(dest / patch["file"], patch, what)
    return count, size


def apply_patch(path: Path, patch: dict, what: str) -> None:
    text = path.read_text(encoding="utf-8")
    text, found = re.subn(patch["pattern"], patch["replace"], text)
    if found != patch["count"]:
        raise AssetError(f"{what}: patch of {patch['file']} matched {found} times, not {patch['count']}: "
                         "update the lock's patches for this release")
    path.write_text(text, encoding="utf-8")


def manifest_for(packages: list[dict]) -> dict:
    glue = hashlib.sha256(WIDGETS_CONFIG.read_bytes()).hexdigest()
    return {"packages": {p["dest"]: {"name": p["name"], "version": p["version"], "integrity": p["integrity"],
                                     "entry": p["entry"], "files": p["files"], "patches": p.get("patches", [])}
                         for p in packages},
            "widgets_config": {"file": WIDGETS_CONFIG_NAME, "sha256": glue}}


def up_to_date(dest: Path, packages: list[dict]) -> bool:
    try:
        installed = json.loads((dest / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return installed == manifest_for(packages) and all((dest / p["dest"] / p["entry"]).is_file() for p in packages)


def install(dest: Path, packages: list[dict], tarballs: Path | None = None, out=sys.stdout) -> None:
    """Fetch, verify and unpack every package into a fresh folder, then swap it in place of dest."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        total = 0
        for package in packages:
            data = tarball_bytes(package, tarballs)
            files, size = unpack(data, package, staging / package["dest"])
            total += size
            print(f"  {package['name']}@{package['version']}: tarball {len(data) / 1e6:.1f} MB, sha512 verified, "
                  f"{files} files kept ({size / 1e6:.1f} MB)", file=out)
        shutil.copyfile(WIDGETS_CONFIG, staging / WIDGETS_CONFIG_NAME)
        (staging / MANIFEST).write_text(json.dumps(manifest_for(packages), indent=2) + "\n", encoding="utf-8")
        old = dest.with_name(dest.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if dest.exists():
            os.replace(dest, old)
        os.replace(staging, dest)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"web assets: {total / 1e6:.1f} MB in {dest} ({time.monotonic() - start:.1f} s)", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=default_dest(), help="default: %(default)s")
    parser.add_argument("--lock", type=Path, default=LOCK)
    parser.add_argument("--tarballs", type=Path, help="folder of already downloaded tarballs (still verified)")
    parser.add_argument("--check", action="store_true", help="only say whether the installed assets match the lock")
    parser.add_argument("--force", action="store_true", help="reinstall even when up to date")
    args = parser.parse_args(argv)
    packages = load_lock(args.lock)
    if up_to_date(args.dest, packages) and not args.force:
        print(f"web assets: up to date in {args.dest}")
        return 0
    if args.check:
        print(f"web assets: {args.dest} does not match {args.lock}: run `make install`", file=sys.stderr)
        return 1
    try:
        install(args.dest, packages, args.tarballs)
    except AssetError as error:
        print(f"fetch_web_assets: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
