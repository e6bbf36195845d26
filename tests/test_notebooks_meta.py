"""The book's scaffolding: notebook hygiene (tests/check_notebooks.py), _config.yml, _toc.yml, bibliography.

The checker is tested on synthetic notebooks with one defect injected each, so that every rule is known to
fire; then it runs on the real notebooks, and a real notebook with an injected error output must fail it.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _load_checker():
    spec = importlib.util.spec_from_file_location("check_notebooks", ROOT / "tests" / "check_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checker = _load_checker()

WIDGET_ID = "0123456789abcdef0123456789abcdef"


def good_notebook() -> nbformat.NotebookNode:
    """A minimal notebook that passes every rule: title, set-up cell, one more cell, run in order."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    setup = nbformat.v4.new_code_cell(checker.SETUP_CELL, execution_count=1)
    setup.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                            text="resnet_lab 0.1.0 | torch 2 | device: cpu | normal mode\n")]
    work = nbformat.v4.new_code_cell("print(1 + 1)", execution_count=2)
    work.outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# Chapter 1. Demo\n\nIntro."), setup, work]
    return nb


def add_widget(nb: nbformat.NotebookNode, keep_state: bool) -> None:
    """Display a widget in the last cell, as tqdm.auto does; optionally save its state as nbconvert does."""
    view = {"model_id": WIDGET_ID, "version_major": 2, "version_minor": 0}
    nb.cells[-1].outputs.append(nbformat.v4.new_output(
        "display_data", data={checker.WIDGET_VIEW: view, "text/plain": "  0%|  | 0/3"}))
    if keep_state:
        nb.metadata["widgets"] = {checker.WIDGET_STATE: {
            "state": {WIDGET_ID: {"model_name": "HBoxModel", "model_module": "@jupyter-widgets/controls",
                                  "model_module_version": "2.0.0", "state": {}}},
            "version_major": 2, "version_minor": 0}}


def error_output() -> nbformat.NotebookNode:
    return nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=["ValueError: boom"])


def run_checker(tmp_path: Path, nb: nbformat.NotebookNode, name: str = "01_demo.ipynb",
                toc: list[str] | None = None) -> list[str]:
    """Write `nb` into a scratch book whose _toc.yml lists `toc` (default: the notebook) and check it."""
    (tmp_path / "notebooks").mkdir(exist_ok=True)
    path = tmp_path / "notebooks" / name
    nbformat.write(nb, path)
    entries = [f"notebooks/{Path(name).stem}"] if toc is None else toc
    (tmp_path / "intro.md").write_text("# Intro\n")
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump(
        {"format": "jb-book", "root": "intro", "chapters": [{"file": e} for e in entries]}))
    report = checker.check_all(root=tmp_path)
    return [p for problems in report.values() for p in problems]


def test_good_notebook_passes(tmp_path):
    assert run_checker(tmp_path, good_notebook()) == []


def test_cli_exit_status(tmp_path, capsys):
    run_checker(tmp_path, good_notebook())
    assert checker.main(["--root", str(tmp_path)]) == 0
    nb = good_notebook()
    nb.cells[2].outputs = [error_output()]
    nbformat.write(nb, tmp_path / "notebooks" / "01_demo.ipynb")
    assert checker.main(["--root", str(tmp_path)]) == 1
    assert "error output" in capsys.readouterr().err


def test_error_output_fails(tmp_path):
    nb = good_notebook()
    nb.cells[2].outputs = [error_output()]
    problems = run_checker(tmp_path, nb)
    assert len(problems) == 1 and "committed error output (ValueError: boom)" in problems[0]


def test_error_output_allowed_when_tagged_raises_exception(tmp_path):
    nb = good_notebook()
    nb.cells[2].outputs = [error_output()]
    nb.cells[2].metadata["tags"] = ["raises-exception"]
    assert run_checker(tmp_path, nb) == []


def test_notebook_missing_from_toc_fails(tmp_path):
    problems = run_checker(tmp_path, good_notebook(), toc=["notebooks/other"])
    assert any("not listed in _toc.yml" in p for p in problems)
    assert any("lists notebooks/other, which does not exist" in p for p in problems)


def test_empty_notebook_folder_fails(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (tmp_path / "intro.md").write_text("# Intro\n")
    assert "notebooks/" in checker.check_all(root=tmp_path)


def test_unexecuted_notebook_fails(tmp_path):
    nb = good_notebook()
    for cell in nb.cells[1:]:
        cell.execution_count, cell.outputs = None, []
    assert any("without committed outputs" in p for p in run_checker(tmp_path, nb))


def test_out_of_order_execution_fails(tmp_path):
    nb = good_notebook()
    nb.cells[2].execution_count = 7
    assert any("top to bottom" in p for p in run_checker(tmp_path, nb))


def test_smoke_mode_outputs_fail(tmp_path):
    nb = good_notebook()
    nb.cells[1].outputs[0].text = "resnet_lab 0.1.0 | device: cpu | smoke mode (tiny sizes, for CI)\n"
    assert any("smoke-mode run" in p for p in run_checker(tmp_path, nb))


def test_setup_cell_must_be_exact(tmp_path):
    nb = good_notebook()
    nb.cells[1].source = nb.cells[1].source.replace("resnet_lab.setup()", "resnet_lab.get_device()")
    assert any("set-up cell" in p for p in run_checker(tmp_path, nb))


def test_setup_cell_must_come_first(tmp_path):
    nb = good_notebook()
    nb.cells[1], nb.cells[2] = nb.cells[2], nb.cells[1]
    assert any("set-up cell" in p for p in run_checker(tmp_path, nb))


def test_title_cell_required(tmp_path):
    nb = good_notebook()
    nb.cells[0].source = "Some text without a title"
    assert any("title" in p for p in run_checker(tmp_path, nb))
    nb.cells[0].source = "# Chapter 2. Wrong number"
    assert any("Chapter 1." in p for p in run_checker(tmp_path, nb))


def test_widget_without_saved_state_fails(tmp_path):
    nb = good_notebook()
    add_widget(nb, keep_state=False)
    assert any("widget" in p and WIDGET_ID in p for p in run_checker(tmp_path, nb))


def test_widget_with_saved_state_passes(tmp_path):
    nb = good_notebook()
    add_widget(nb, keep_state=True)
    assert run_checker(tmp_path, nb) == []


def test_timing_metadata_fails(tmp_path):
    nb = good_notebook()
    nb.cells[2].metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00.000000Z"}
    assert any("timing metadata" in p for p in run_checker(tmp_path, nb))


def test_nbval_comment_fails(tmp_path):
    nb = good_notebook()
    nb.cells[2].source = "# NBVAL_IGNORE_OUTPUT\nprint(1 + 1)"
    assert any("NBVAL" in p for p in run_checker(tmp_path, nb))


def test_oversized_notebook_fails(tmp_path):
    nb = good_notebook()
    nb.cells[2].outputs[0].text = "x" * (checker.MAX_BYTES + 1)
    assert any("1 MB" in p for p in run_checker(tmp_path, nb))


# --- the real notebooks -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_real_notebook_passes_checker(path):
    assert checker.check_notebook(path, checker.toc_entries(ROOT / "_toc.yml")) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_real_notebook_with_injected_error_fails(tmp_path, path):
    """Turning any committed output into an error output must be caught."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if cell.cell_type == "code" and cell.outputs and "raises-exception" not in tags:
            cell.outputs[-1] = error_output()
            break
    broken = tmp_path / "notebooks" / path.name
    broken.parent.mkdir()
    nbformat.write(nb, broken)
    problems = checker.check_notebook(broken, {f"notebooks/{path.stem}"}, root=tmp_path)
    assert any("error output" in p for p in problems)


def test_every_notebook_and_page_in_toc_exists():
    toc = checker.toc_entries(ROOT / "_toc.yml")
    missing = [e for e in toc if not any((ROOT / f"{e}{s}").exists() for s in (".ipynb", ".md"))]
    assert missing == []
    listed = {e for e in toc if e.startswith("notebooks/")}
    assert listed == {f"notebooks/{p.stem}" for p in NOTEBOOKS}


# --- _config.yml and _toc.yml -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def test_config_never_executes_and_builds_toc_only(config):
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["only_build_toc_files"] is True
    excluded = set(config["exclude_patterns"])
    assert {".*", "**/.*", ".venv", "README.md", "resnet_lab"} <= excluded


def test_config_extensions(config):
    # The list replaces Jupyter Book's defaults: without dollarmath, $x$ silently stays literal text.
    assert {"dollarmath", "amsmath", "colon_fence"} <= set(config["parse"]["myst_enable_extensions"])
    # The notebooks' portable markup gets its book form from book/_ext/jupyter_markup.py (README, "Writing a
    # chapter"); no directive-based extension such as sphinx-exercise is needed.
    assert config["sphinx"]["local_extensions"]["jupyter_markup"] == "book/_ext"
    assert (ROOT / "book" / "_ext" / "jupyter_markup.py").is_file()
    assert config["bibtex_bibfiles"] == ["book/references.bib"]


def test_config_colab_launch(config):
    assert config["repository"] == {"url": "https://github.com/resnet-lab/resnet-lab", "branch": "main",
                                    "path_to_book": ""}
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"


def test_toc_root_and_bibliography_page():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert toc["format"] == "jb-book" and toc["root"] == "book/intro"
    assert "```{bibliography}" in (ROOT / "book" / "references.md").read_text()


# --- bibliography -------------------------------------------------------------------------------------------

BIB = ROOT / "book" / "references.bib"
CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")


def _bib_keys() -> list[str]:
    return re.findall(r"^@\w+\{([^,\s]+),", BIB.read_text(encoding="utf-8"), flags=re.MULTILINE)


def test_bib_keys_unique_and_entries_complete():
    from pybtex.database import parse_file

    keys = _bib_keys()
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    entries = parse_file(str(BIB)).entries
    assert set(entries) == set(keys)
    for key, entry in entries.items():
        assert entry.persons.get("author"), f"{key}: no author"
        assert {"title", "year"} <= set(entry.fields), f"{key}: needs title and year"
        venue = {"journal", "booktitle", "institution", "school", "howpublished"} & set(entry.fields)
        assert venue, f"{key}: says nowhere where it was published"


def test_every_cited_key_is_in_the_bib():
    sources = [*(ROOT / "book").glob("*.md"), *NOTEBOOKS]
    cited = {key.strip() for p in sources for group in CITE.findall(p.read_text("utf-8"))
             for key in group.split(",")}
    assert cited, "the book cites nothing: is the {cite} pattern still right?"
    assert sorted(cited - set(_bib_keys())) == []


def test_cite_pattern():
    text = "see {cite}`he2016deep` and {cite:p}`ioffe2015batch, he2016identity`; {cite:t}`veit2016residual`"
    groups = CITE.findall(text)
    assert [k.strip() for g in groups for k in g.split(",")] == [
        "he2016deep", "ioffe2015batch", "he2016identity", "veit2016residual"]


# --- CI wiring ----------------------------------------------------------------------------------------------


def test_ci_script_runs_make_test_only():
    """.ci/run installs Chromium (the browser test needs it) and then runs the README's `make test`, unchanged."""
    text = (ROOT / ".ci" / "run").read_text()
    lines = [line for line in text.strip().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert text.startswith("#!") and lines[-1] == "exec make test"
    assert sum("make" in line.split() for line in lines) == 1
    assert any("apt-get install" in line and "chromium" in line.split() for line in lines)
    assert "skip" not in text.lower() and "BROWSER" not in text  # CI never opts out of the browser test


def test_make_test_runs_every_check():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^test: (.*?)##", makefile, flags=re.MULTILINE).group(1).split()
    assert recipe == ["lint", "unit", "check-notebooks", "nbval", "book-strict", "browser"]
    assert "RESNET_LAB_SMOKE=1" in re.search(r"^nbval:.*\n\t(.*)", makefile, flags=re.MULTILINE).group(1)
    assert "--warningiserror" in makefile and "--nbval-lax" in makefile and "--nbval-current-env" in makefile
