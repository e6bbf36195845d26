"""The strict book build (`make book-strict`) fails on broken references, and gives the notebooks' portable
markup its book form: checked on a small scratch book built with the project's _config.yml, local extensions,
bibliography and the exact flags of the Makefile."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"

pytestmark = pytest.mark.slow

TOC = """format: jb-book
root: intro
chapters:
  - file: page
  - file: chapter
"""
INTRO = """(intro-label)=
# Intro

Math $x^2$, a citation {cite}`he2016deep`, and a link to {doc}`page`.

```{bibliography}
```
"""
PAGE = """# Page

Back to {ref}`intro-label`; see {numref}`fig-ok`.

```{figure} img.png
:name: fig-ok

A caption.
```
"""
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==")
BROKEN = ("\n\nBroken: {ref}`no-such-label`, {doc}`no_such_page`, {cite}`nosuchkey2020`, "
          "{numref}`no-such-fig`.\n")


# A chapter in the portable markup (README, "Writing a chapter"): what Jupyter and Colab render as it is.
CHAPTER_CELLS = [
    # Both 2016 papers of He et al. are cited, so that their labels take the suffixes a and b.
    ("markdown", "# Chapter 9. Scratch\n\nCitations [[HZRS16a]](https://arxiv.org/abs/1512.03385), "
                 "[[HZRS16b]](https://arxiv.org/abs/1603.05027), and a link to [the page](page.md)."
                 "\n\n$$\n\\begin{aligned}a &= b, \\\\\nc &= d.\n\\end{aligned}\n\\tag{9.1}\n$$"),
    ("markdown", "> **Common mistake: a title.**\n> The box text, citing (9.1)."),
    ("markdown", "> **Exercise 9.1: Fold a batch norm.**\n> Write `fold_bn`."),
    ("code", "x = 1"),
    ("solution", '# The reference solution: run this cell to show it and check it.\n'
                 'from resnet_lab.exercises import show_solution\n\nshow_solution("batch_norm", "fold_bn")'),
    ("markdown", "**Figure 9.1.** A caption."),
]


def chapter_notebook(cells: list[tuple[str, str]] = CHAPTER_CELLS) -> str:
    """The scratch chapter as .ipynb text."""
    def cell(index: int, kind: str, source: str) -> dict:
        if kind == "markdown":
            return {"cell_type": "markdown", "id": f"c{index}", "metadata": {}, "source": source}
        tags = ["solution"] if kind == "solution" else []
        return {"cell_type": "code", "id": f"c{index}", "metadata": {"tags": tags}, "source": source,
                "outputs": [], "execution_count": None}

    return json.dumps({"cells": [cell(i, *c) for i, c in enumerate(cells)], "nbformat": 4, "nbformat_minor": 5,
                       "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                   "language": "python"}}})


def book_flags() -> list[str]:
    """The flags `make book-strict` passes to jupyter-book, read from the Makefile itself."""
    match = re.search(r"^BOOK_FLAGS\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
    return match.group(1).split()


def build(tmp_path: Path, page: str, chapter: str | None = None) -> subprocess.CompletedProcess:
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "book").mkdir()
    shutil.copy(ROOT / "book" / "references.bib", tmp_path / "book" / "references.bib")
    shutil.copytree(ROOT / "book" / "_ext", tmp_path / "book" / "_ext",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "chapter.ipynb").write_text(chapter or chapter_notebook())
    (tmp_path / "img.png").write_bytes(PNG_1X1)
    (tmp_path / "_toc.yml").write_text(TOC)
    (tmp_path / "intro.md").write_text(INTRO)
    (tmp_path / "page.md").write_text(page)
    return subprocess.run([str(JUPYTER_BOOK), "build", str(tmp_path), *book_flags()],
                          capture_output=True, text=True, timeout=300)


def test_book_flags_are_strict():
    assert {"--warningiserror", "--keep-going", "--all"} <= set(book_flags())


def test_clean_scratch_book_builds(tmp_path):
    result = build(tmp_path, PAGE)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "_build" / "html" / "intro.html").exists()


def test_broken_references_fail_the_build(tmp_path):
    result = build(tmp_path, PAGE + BROKEN)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    for needle in ("undefined label: 'no-such-label'", "unknown document: 'no_such_page'",
                   'could not find bibtex key "nosuchkey2020"', "undefined label: 'no-such-fig'"):
        assert needle in log, needle


def test_portable_markup_gets_its_book_form(tmp_path):
    result = build(tmp_path, PAGE)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    html = (tmp_path / "_build" / "html" / "chapter.html").read_text()
    assert re.search(r'<a class="reference internal" href="[^"]*intro\.html#id\d+"[^>]*>HZRS16a</a>', html)
    assert '<div class="admonition warning"' in html and "Common mistake: a title</p>" in html
    assert '<div class="admonition exercise" id="exercise-9-1"' in html
    assert "Solution to exercise 9.1</p>" in html and "dropdown solution" in html
    assert "fold_bn" in html.split("Solution to exercise 9.1")[1]  # the solution file itself, in the dropdown
    assert "show_solution(" not in html  # the loader cell is replaced by the dropdown
    assert '<p class="figure-caption" id="figure-9-1">' in html
    # A multi-line equation with its tag goes to MathJax as written: in a split environment the tag is an error.
    assert "\\[\n\\begin{aligned}a &amp;= b, \\\\\nc &amp;= d.\n\\end{aligned}\n\\tag{9.1}\n\\]" in html
    assert "begin{split}" not in html


@pytest.mark.parametrize("cells, needle", [
    ([("markdown", "# Chapter 9. X\n\n[[HZRS16a]](https://arxiv.org/abs/1512.03385)")],  # cited alone: HZRS16
     "reads [HZRS16a] in the notebook but the book labels it [HZRS16]"),
    ([("markdown", "# Chapter 9. X\n\n[[HZRS16a]](https://arxiv.org/abs/0000.00000)")],
     "no entry of the bibliography has this link"),
    ([("markdown", "# Chapter 9. X\n\nSee [a chapter](no_such_chapter.ipynb).")], "no_such_chapter"),
    ([("markdown", "# Chapter 9. X"), ("solution", 'show_solution("ch2", "no_such_answer")')],
     "there is no reference solution ch2_no_such_answer"),
])
def test_broken_portable_markup_fails_the_build(tmp_path, cells, needle):
    result = build(tmp_path, PAGE, chapter_notebook(cells))
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert needle in log, log[-3000:]
