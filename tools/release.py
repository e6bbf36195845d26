"""Build the release files of resnet_lab and check them before anything is tagged (`make release`).

Steps, each of which stops the release with a message when it fails:

1. the version is the same everywhere: resnet_lab/__init__.py (the one place it is set), CITATION.cff, a
   CHANGELOG.md section for it, and every notebook's set-up cell (tests/test_version.py checks the same in
   `make test`);
2. the working tree is committed, so that the tag names exactly what was built (`--allow-dirty` to try anyway);
3. `python -m build` writes the sdist and the wheel into dist/;
4. `twine check` validates their metadata (what PyPI would render);
5. the wheel is installed into a fresh virtual environment, where `python -m resnet_lab --help` must run and
   `resnet_lab.__version__` must be the version being released.

It then prints the commands that tag the release. Pushing the tag is left to a person on purpose.

Usage: python tools/release.py [--allow-dirty] [--keep-venv]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from version_check import package_version, version_problems  # noqa: E402


def run(command: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run a command (from the repository root by default), echoing it; stop the release if it fails."""
    print("+", " ".join(command), flush=True)
    result = subprocess.run(command, cwd=cwd, text=True, capture_output=True)
    if result.returncode != 0:
        sys.exit(f"release: this step failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def main(argv: list[str] | None = None) -> None:
    """Check, build and test the release files; print how to tag them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allow-dirty", action="store_true", help="build even with uncommitted changes")
    parser.add_argument("--keep-venv", action="store_true", help="keep the test environment and print its path")
    args = parser.parse_args(argv)

    version = package_version()
    problems = version_problems()
    if problems:
        sys.exit("release: the version is not the same everywhere:\n  " + "\n  ".join(problems))
    print(f"release: version {version} is the same in the package, CITATION.cff, CHANGELOG.md and every notebook")

    status = run(["git", "status", "--porcelain"]).stdout.strip()
    if status and not args.allow_dirty:
        sys.exit(f"release: commit or stash these changes first, so that the tag names what was built:\n{status}")

    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    run([sys.executable, "-m", "build", "--outdir", str(dist), "."])
    files = sorted(dist.iterdir())
    wheels = [path for path in files if path.suffix == ".whl"]
    if len(wheels) != 1 or not any(path.name.endswith(".tar.gz") for path in files):
        sys.exit(f"release: expected one wheel and one sdist in dist/, found {[path.name for path in files]}")
    run([sys.executable, "-m", "twine", "check", "--strict", *map(str, files)])

    venv = Path(tempfile.mkdtemp(prefix="resnet-lab-release-"))
    try:
        run([sys.executable, "-m", "venv", str(venv)])
        python = str(venv / "bin" / "python")
        run([python, "-m", "pip", "install", "-q", str(wheels[0])])
        # Run from the temporary folder, so that the installed wheel is imported, not the source tree.
        installed = run([python, "-c", "import resnet_lab; print(resnet_lab.__version__)"], cwd=venv)
        if installed.stdout.strip() != version:
            sys.exit(f"release: the wheel installs version {installed.stdout.strip()!r}, not {version!r}")
        help_text = run([python, "-m", "resnet_lab", "--help"], cwd=venv).stdout
        print(help_text.splitlines()[0] if help_text else "(no help text)")
    finally:
        if args.keep_venv:
            print(f"release: test environment kept in {venv}")
        else:
            shutil.rmtree(venv, ignore_errors=True)

    print(f"\nrelease: {', '.join(path.name for path in files)} built and checked.")
    print("To publish, tag this commit and push the tag (the notebooks install this tag on Colab):")
    print(f"  git tag -a v{version} -m 'resnet_lab {version}'\n  git push origin v{version}")


if __name__ == "__main__":
    main()
