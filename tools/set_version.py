"""Set the version of resnet_lab everywhere it is named: the package, CITATION.cff and every notebook's set-up cell.

The changelog is left to a person: its new section says what changed, which no script can. Afterwards
`tests/test_version.py` (in `make test`) checks that all of them agree, CHANGELOG.md included.

Usage: python tools/set_version.py X.Y.Z
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from version_check import package_version, version_problems  # noqa: E402

# The set-up cell's install line, whatever it points at now (a tag, or a branch such as main).
INSTALL_AT = re.compile(r"(git\+https://github\.com/resnet-lab/resnet-lab@)[^\"'\s]+")
VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+(?:(?:a|b|rc)[0-9]+)?")


def set_notebook_version(path: Path, version: str) -> bool:
    """Point the set-up cell's install line at tag vVERSION; True if the file changed."""
    notebook = json.loads(path.read_text())
    setup = next(cell for cell in notebook["cells"] if cell["cell_type"] == "code")
    old = "".join(setup["source"])
    new = INSTALL_AT.sub(lambda match: f"{match.group(1)}v{version}", old)
    if new == old:
        return False
    setup["source"] = new.splitlines(keepends=True)
    # The layout nbformat writes (one-space indent, non-ASCII kept), so that the diff shows only this line.
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    return True


def main(argv: list[str] | None = None) -> None:
    """Rewrite the version in the package, CITATION.cff and the notebooks; report what is left to do."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", help="the new version, e.g. 0.2.0")
    version = parser.parse_args(argv).version
    if not VERSION.fullmatch(version):
        sys.exit(f"set_version: {version!r} is not a version like 0.2.0 (or 0.2.0rc1)")
    old = package_version()
    init = ROOT / "resnet_lab" / "__init__.py"
    init.write_text(init.read_text().replace(f'__version__ = "{old}"', f'__version__ = "{version}"'))
    citation = ROOT / "CITATION.cff"
    citation.write_text(re.sub(r'^version: .*$', f'version: "{version}"', citation.read_text(), flags=re.MULTILINE))
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    changed = [path.name for path in notebooks if set_notebook_version(path, version)]
    print(f"set_version: {old} -> {version} in resnet_lab/__init__.py, CITATION.cff and {len(changed)} notebook(s)")
    for problem in version_problems():
        print("  still to do:", problem)


if __name__ == "__main__":
    main()
