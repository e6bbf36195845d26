"""One version everywhere (tests/version_check.py): a release cannot forget a notebook, CITATION.cff or the
changelog, and the package reports the version its metadata declares."""

import json
import shutil
from importlib.metadata import version as installed_version
from pathlib import Path

import pytest
from version_check import ROOT, notebook_version, package_version, version_problems

import resnet_lab


def test_the_repository_names_one_version():
    assert version_problems() == []


def test_package_metadata_reads_the_version_from_the_package():
    assert package_version() == resnet_lab.__version__ == installed_version("resnet_lab")


@pytest.fixture
def copy_of_repo(tmp_path: Path) -> Path:
    """The files version_problems reads, copied so that a test can change them."""
    for name in ("resnet_lab/__init__.py", "CITATION.cff", "CHANGELOG.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns(".*"))
    return tmp_path


def _set_install_line(path: Path, new_line: str) -> None:
    notebook = json.loads(path.read_text())
    setup = next(cell for cell in notebook["cells"] if cell["cell_type"] == "code")
    setup["source"] = [
        new_line + "\n" if "%pip install" in line else line for line in setup["source"]
    ]
    path.write_text(json.dumps(notebook))


def test_a_notebook_that_installs_another_version_fails(copy_of_repo):
    chapter = copy_of_repo / "notebooks" / "03_blocks.ipynb"
    _set_install_line(chapter, '    %pip install -q "resnet_lab @ git+https://github.com/resnet-lab/resnet-lab@v0.0.9"')
    assert notebook_version(chapter) == "0.0.9"
    problems = version_problems(copy_of_repo)
    assert len(problems) == 1
    assert "notebooks/03_blocks.ipynb installs v0.0.9" in problems[0]
    assert f"@v{package_version()}" in problems[0]


def test_a_notebook_that_installs_main_fails(copy_of_repo):
    chapter = copy_of_repo / "notebooks" / "01_degradation.ipynb"
    _set_install_line(chapter, '    %pip install -q "resnet_lab @ git+https://github.com/resnet-lab/resnet-lab@main"')
    assert notebook_version(chapter) is None
    assert any("01_degradation.ipynb names no release tag" in problem for problem in version_problems(copy_of_repo))


def test_citation_and_changelog_must_follow_the_package(copy_of_repo):
    init = copy_of_repo / "resnet_lab" / "__init__.py"
    init.write_text(init.read_text().replace(f'__version__ = "{package_version()}"', '__version__ = "9.9.9"'))
    problems = version_problems(copy_of_repo)
    assert any(problem.startswith("CITATION.cff names") for problem in problems)
    assert any(problem.startswith("CHANGELOG.md has no section `## [9.9.9]`") for problem in problems)
    # every notebook now names another version than the package
    assert sum("notebooks/" in problem for problem in problems) == len(list((ROOT / "notebooks").glob("*.ipynb")))
