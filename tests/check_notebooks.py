"""Check the committed notebooks before they reach the book.

Every notebook in notebooks/ must be listed in _toc.yml, open with the title cell (`# Chapter N. ...`, or
`# Appendix X. ...` for notebooks/appendix_*.ipynb, lettered A, B, ... in the order of _toc.yml) and the shared
set-up cell, carry outputs from one top-to-bottom run in normal (not smoke) mode (except the solution cells,
committed without outputs), contain no error outputs outside cells tagged `raises-exception`, keep the state of
every widget it displays, hold no per-cell timing metadata, and use only the portable markup
(tests/notebook_markup.py).

Usage: python tests/check_notebooks.py [--clear-solutions] [NOTEBOOK ...]   (default: every notebooks/*.ipynb)
--clear-solutions first removes the outputs of the cells tagged `solution` (`make notebooks` does it after
executing the notebooks), so that the committed files do not show the solutions.
Exit status 0 when all pass, 1 otherwise; each problem is printed with what to do about it.
Also imported by tests/test_notebooks_meta.py.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import nbformat
import yaml
from notebook_markup import APPENDIX_TITLE, chapter_id, markup_problems, notebook_title  # tests/ is on sys.path
from version_check import package_version  # tests/ is on sys.path

ROOT = Path(__file__).resolve().parent.parent

# The first code cell of every notebook. On Colab it installs the release this book was built with (a tag, never
# a branch, so that later commits cannot break a chapter); tests/test_version.py checks the version everywhere.
SETUP_CELL = f"""\
# Set-up: on Colab, install the companion package at the release this book was built
# with; elsewhere this only picks the device. setup() prints the version in use.
import sys
if "google.colab" in sys.modules:
    %pip install -q "resnet_lab @ git+https://github.com/resnet-lab/resnet-lab@v{package_version()}"
import resnet_lab
device = resnet_lab.setup()"""

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
MAX_BYTES = 1_000_000
# An absolute path of the machine that ran the notebook: committed files never name one (nor a site-packages).
LOCAL_PATH = re.compile(r"(?<![\w.])/(?:work|root|home|Users|tmp|opt|usr)/[\w.-]+|site-packages")
REFRESH_HINT = "re-run it with `make notebooks` (or the nbconvert command of its `notebooks` target)"


def toc_entries(toc_path: Path) -> set[str]:
    """Every `root` and `file` entry of a Jupyter Book _toc.yml, as a path without extension."""
    return set(toc_files(toc_path))


def toc_files(toc_path: Path) -> list[str]:
    """The `root` and `file` entries of a Jupyter Book _toc.yml in reading order, as paths without extension."""
    entries: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("root", "file") and isinstance(value, str):
                    entries.append(_strip_suffix(value))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load(toc_path.read_text(encoding="utf-8")))
    return entries


def _strip_suffix(entry: str) -> str:
    for suffix in (".ipynb", ".md"):
        if entry.endswith(suffix):
            return entry[: -len(suffix)]
    return entry


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _text(output: nbformat.NotebookNode) -> str:
    """The plain text a stream or display output shows."""
    if output.get("output_type") == "stream":
        text = output.get("text", "")
    else:
        text = output.get("data", {}).get("text/plain", "")
    return "".join(text) if isinstance(text, list) else text


def check_notebook(path: Path, toc: set[str], root: Path = ROOT) -> list[str]:
    """All problems found in one notebook; an empty list means it is fit to commit."""
    path = Path(path)
    if path.stat().st_size > MAX_BYTES:
        size = path.stat().st_size
        return [f"is {size:,} bytes; keep notebooks under 1 MB (smaller figures, fewer printed lines)"]
    try:
        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        nbformat.validate(nb)
    except Exception as exc:  # any parse or schema error means the file cannot be rendered
        return [f"is not a valid nbformat 4 notebook: {exc}"]
    if nb.nbformat != 4:
        return [f"is nbformat {nb.nbformat}; save it as nbformat 4"]

    problems: list[str] = []
    try:
        rel = path.resolve().relative_to(Path(root).resolve()).with_suffix("").as_posix()
    except ValueError:
        rel = path.with_suffix("").as_posix()
    if rel not in toc:
        problems.append(f"is not listed in _toc.yml; add `- file: {rel}` under the right part")

    cells = nb.cells
    if not cells or cells[0].cell_type != "markdown" or not cells[0].source.lstrip().startswith("# "):
        problems.append("must start with a markdown cell whose first line is the title, `# Chapter N. Title`")
    else:
        number = re.match(r"(\d+)_", path.name)
        title = cells[0].source.lstrip().splitlines()[0]
        if number and not re.match(rf"# Chapter {int(number.group(1))}\. \S", title):
            problems.append(f"title {title!r} should read `# Chapter {int(number.group(1))}. ...`")
        if path.name.startswith("appendix_") and not APPENDIX_TITLE.match(title):
            problems.append(f"title {title!r} should read `# Appendix X. ...`, X its letter (A, B, ...), which "
                            "numbers its sections, equations, figures and exercises (X.1, X.2, ...)")

    code_cells = [c for c in cells if c.cell_type == "code"]
    if not code_cells:
        return problems + ["has no code cell; the first code cell must be the shared set-up cell"]
    setup = code_cells[0]
    if setup.source.strip() != SETUP_CELL:
        problems.append("first code cell is not exactly the shared set-up cell (tests/check_notebooks.py: SETUP_CELL)")

    if nb.metadata.get("kernelspec", {}).get("name") != "python3":
        problems.append("metadata.kernelspec.name must be 'python3' (Colab and nbconvert start that kernel)")

    problems += _execution_problems(code_cells)

    setup_text = "".join(_text(o) for o in setup.get("outputs", []))
    if "smoke mode" in setup_text:
        problems.append(f"outputs come from a smoke-mode run; commit a normal run instead: {REFRESH_HINT}")
    elif "normal mode" not in setup_text and setup.get("execution_count") is not None:
        problems.append("set-up cell output does not say 'normal mode'; " + REFRESH_HINT)

    view_ids: set[str] = set()
    for index, cell in enumerate(cells):
        where = f"cell {index}"
        if "execution" in cell.get("metadata", {}):
            problems.append(f"{where} carries timing metadata; execute with "
                            "--ExecutePreprocessor.record_timing=False (`make notebooks` does)")
        if cell.cell_type != "code":
            continue
        if re.search(r"^\s*#\s*NBVAL", cell.source, flags=re.MULTILINE):
            problems.append(f"{where} uses a `# NBVAL` comment; use the cell tag instead (tags stay hidden)")
        for output in cell.get("outputs", []):
            shown = _text(output) + "\n".join(output.get("traceback", []))
            local = LOCAL_PATH.search(shown)
            if local:
                problems.append(f"{where} prints a path of the machine that ran it ({local.group(0)!r}); print "
                                "names relative to the data or the package instead (or only an error's message)")
            if output.get("output_type") == "error" and "raises-exception" not in _tags(cell):
                problems.append(f"{where} has a committed error output ({output.get('ename')}: "
                                f"{output.get('evalue')}); fix it, or tag the cell `raises-exception` if the "
                                "error is the point")
            view = output.get("data", {}).get(WIDGET_VIEW)
            if isinstance(view, dict) and "model_id" in view:
                view_ids.add(view["model_id"])

    if view_ids:
        state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
        lost = sorted(view_ids - set(state))
        if lost:
            problems.append(f"displays {len(lost)} widget(s) whose state was not saved (metadata.widgets "
                            f"lacks {lost[0]}...); the book would show them blank: {REFRESH_HINT}")
    title = cells[0].source.strip().splitlines()[0] if cells and cells[0].source.strip() else ""
    return problems + markup_problems(nb, chapter_id(path, title))


def _execution_problems(code_cells: list) -> list[str]:
    """One top-to-bottom run: cell k has execution count k, except solution cells, which have none."""
    problems = []
    solutions = [c for c in code_cells if "solution" in _tags(c)]
    if any(c.get("outputs") or c.get("execution_count") is not None for c in solutions):
        problems.append("a cell tagged 'solution' has committed outputs, which show the solution: clear them "
                        "(`make notebooks` does)")
    counts = [(k + 1, c.get("execution_count")) for k, c in enumerate(code_cells) if "solution" not in _tags(c)]
    missing = sum(count is None for _, count in counts)
    if missing:
        problems.append(f"has {missing} code cell(s) without committed outputs (never run); {REFRESH_HINT}")
    elif any(position != count for position, count in counts):
        problems.append(f"was not executed top to bottom in a fresh kernel (execution counts "
                        f"{[count for _, count in counts][:8]}...); {REFRESH_HINT}")
    return problems


def clear_solutions(path: Path) -> int:
    """Remove the outputs and execution counts of the `solution` cells of one notebook; return how many."""
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    cleared = 0
    for cell in nb.cells:
        if cell.cell_type == "code" and "solution" in _tags(cell):
            cleared += bool(cell.outputs) or cell.execution_count is not None
            cell.outputs, cell.execution_count = [], None
    if cleared:
        nbformat.write(nb, path)
    return cleared


def check_all(paths: Iterable[Path] | None = None, root: Path = ROOT) -> dict[str, list[str]]:
    """Problems per notebook (and for _toc.yml itself); only entries with problems are returned."""
    root = Path(root)
    toc_path = root / "_toc.yml"
    if not toc_path.exists():
        return {"_toc.yml": ["is missing"]}
    toc = toc_entries(toc_path)
    report: dict[str, list[str]] = {}

    dangling = sorted(e for e in toc if not any((root / f"{e}{s}").exists() for s in (".ipynb", ".md")))
    if dangling:
        report["_toc.yml"] = [f"lists {e}, which does not exist" for e in dangling]
    lettering = appendix_lettering_problems(root, toc_files(toc_path))
    if lettering:
        report.setdefault("_toc.yml", []).extend(lettering)

    paths = sorted((root / "notebooks").glob("*.ipynb")) if paths is None else [Path(p) for p in paths]
    if not paths:
        report["notebooks/"] = ["holds no notebook: nothing to check (is the path right?)"]
    for path in paths:
        problems = check_notebook(path, toc, root)
        if problems:
            report[str(path)] = problems
    return report


def appendix_lettering_problems(root: Path, files: list[str]) -> list[str]:
    """The appendix notebooks must be lettered A, B, C, ... in the order in which _toc.yml lists them."""
    appendices = [root / f"{entry}.ipynb" for entry in files if Path(entry).name.startswith("appendix_")]
    letters = [chapter_id(path, notebook_title(path)) for path in appendices if path.exists()]
    expected = [chr(ord("A") + k) for k in range(len(letters))]
    if None in letters or letters == expected:
        return []  # a title without a letter is reported with its notebook
    return [f"lists the appendices lettered {', '.join(letters)}; in the order of _toc.yml they must be "
            f"{', '.join(expected)}: fix their titles (`# Appendix X. ...`) or their order"]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: print every problem; exit status 1 if there is any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to check (default: all of them)")
    parser.add_argument("--root", type=Path, default=ROOT, help="book root holding _toc.yml (default: repo)")
    parser.add_argument("--clear-solutions", action="store_true",
                        help="first remove the outputs of the cells tagged `solution`")
    args = parser.parse_args(argv)
    if args.clear_solutions:
        for path in args.notebooks or sorted((args.root / "notebooks").glob("*.ipynb")):
            clear_solutions(path)

    report = check_all(args.notebooks or None, args.root)
    for name, problems in report.items():
        for problem in problems:
            print(f"{name}: {problem}", file=sys.stderr)
    if report:
        print(f"check_notebooks: {sum(map(len, report.values()))} problem(s)", file=sys.stderr)
        return 1
    count = len(args.notebooks) or len(list((args.root / "notebooks").glob("*.ipynb")))
    print(f"check_notebooks: {count} notebook(s) OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
