"""One version everywhere: the package, CITATION.cff, CHANGELOG.md and the set-up cell of every notebook.

`resnet_lab/__init__.py` sets the version; everything else must name the same one, so that a notebook opened in
Colab installs the release the book was built with. Used by tests/test_version.py and tools/release.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The install line of the notebooks' set-up cell: the package at a release tag, never at a branch.
INSTALL_TAG = re.compile(r"git\+https://github\.com/resnet-lab/resnet-lab@v(?P<version>[0-9][^\"'\s]*)")


def package_version(root: Path = ROOT) -> str:
    """The version set in resnet_lab/__init__.py, read without importing the package."""
    text = (root / "resnet_lab" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"$', text, flags=re.MULTILINE)
    if match is None:
        raise ValueError("resnet_lab/__init__.py has no line __version__ = \"X.Y.Z\"")
    return match.group(1)


def notebook_version(path: Path) -> str | None:
    """The release tag that a notebook's set-up cell installs on Colab, or None if it names none."""
    cells = json.loads(path.read_text())["cells"]
    code = next((cell for cell in cells if cell["cell_type"] == "code"), None)
    if code is None:
        return None
    match = INSTALL_TAG.search("".join(code["source"]))
    return match.group("version") if match else None


def version_problems(root: Path = ROOT) -> list[str]:
    """Every place whose version differs from the package's, as one message each (empty when all agree)."""
    version = package_version(root)
    problems = []
    citation = re.search(r'^version: "?([^"\n]+)"?$', (root / "CITATION.cff").read_text(), flags=re.MULTILINE)
    if citation is None or citation.group(1) != version:
        found = citation.group(1) if citation else "no version line"
        problems.append(f"CITATION.cff names {found}, the package {version}: set `version: \"{version}\"`")
    if not re.search(rf"^## \[{re.escape(version)}\]", (root / "CHANGELOG.md").read_text(), flags=re.MULTILINE):
        problems.append(f"CHANGELOG.md has no section `## [{version}]`: say what this version changes")
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        named = notebook_version(path)
        if named != version:
            what = f"installs v{named}" if named else "names no release tag in its set-up cell"
            problems.append(f"{path.relative_to(root)} {what}, the package is {version}: "
                            f"its set-up cell must install @v{version}")
    return problems
