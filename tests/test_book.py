"""The strict book build (`make book-strict`) fails on broken references: checked on a two-page scratch book
built with the project's _config.yml, bibliography and the exact flags of the Makefile."""

from __future__ import annotations

import base64
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

```{exercise}
:label: ex-ok

An exercise.
```
"""
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==")
BROKEN = ("\n\nBroken: {ref}`no-such-label`, {doc}`no_such_page`, {cite}`nosuchkey2020`, "
          "{numref}`no-such-fig`.\n")


def book_flags() -> list[str]:
    """The flags `make book-strict` passes to jupyter-book, read from the Makefile itself."""
    match = re.search(r"^BOOK_FLAGS\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
    return match.group(1).split()


def build(tmp_path: Path, page: str) -> subprocess.CompletedProcess:
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "book").mkdir()
    shutil.copy(ROOT / "book" / "references.bib", tmp_path / "book" / "references.bib")
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
