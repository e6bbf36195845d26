"""The notebooks' portable markup: Markdown that Jupyter, Colab and the book all render (README, "Writing a chapter").

`markup_problems(nb, chapter)` lists every place where a notebook leaves that subset (a MyST directive or role
would show as raw text in Jupyter and Colab) or where its hand-typed numbers do not add up: equation tags,
exercises and figures are numbered C.1, C.2, ... in order within a chapter (C is the chapter's number, or an
appendix's letter), every "(C.N)", "exercise C.N" and
"figure C.N" in the prose points at one that exists, every figure has a caption cell and alt text, and every
citation link is an entry of book/references.bib. Used by tests/check_notebooks.py.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
MAX_CODE_LINE = 88  # characters: what the book's code column shows at 800 px without scrolling

MYST_ONLY = [
    (re.compile(r"^\s*(```|~~~)\s*\{[\w:-]+\}", re.MULTILINE), "a MyST directive block (```{...})"),
    (re.compile(r"^\s*:::", re.MULTILINE), "a MyST colon fence (:::)"),
    (re.compile(r"\{[a-z]+(:[a-z]+)?\}`"), "a MyST role such as {cite}`...`"),
    (re.compile(r"^\([\w:-]+\)=\s*$", re.MULTILINE), "a MyST target line (label)="),
]
HOW_TO = ("Jupyter and Colab show it as raw text; use the portable form (README, 'Writing a chapter': "
          "$$ ... \\tag{C.N} $$, [[LABEL]](link), > **Note: title.**, [chapter N](file.ipynb))")
CODE_SPAN = re.compile(r"`[^`\n]*`")
MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]*\$", re.DOTALL)
CITATION = re.compile(r"\[\[([^\[\]]+)\]\]\(([^)\s]+)\)")
TAG = re.compile(r"\\tag\{([^}]*)\}")
EXERCISE = re.compile(r"^>\s*\*\*Exercise ([A-Z0-9]+\.\d+): [^*]+[.?!]\*\*", re.MULTILINE)
ANY_EXERCISE = re.compile(r"^>\s*\*\*Exercise\b", re.MULTILINE)
CAPTION = re.compile(r"^\*\*Figure ([A-Z0-9]+\.\d+)\.\*\*\s+\S")


APPENDIX_TITLE = re.compile(r"#\s+Appendix ([A-Z])\.\s")


def chapter_id(path: Path, title: str | None = None) -> str | None:
    """What the chapter's numbers start with: '2' for notebooks/02_residual_math.ipynb; for an appendix
    (notebooks/appendix_*.ipynb) the letter of its title, 'B' for "# Appendix B. Batch normalization"; else None.

    `title` is the first line of the notebook; when it is not given, it is read from the file.
    """
    number = re.match(r"(\d+)_", path.name)
    if number:
        return str(int(number.group(1)))
    if not path.name.startswith("appendix_"):
        return None
    if title is None:
        title = notebook_title(path)
    letter = APPENDIX_TITLE.match(title)
    return letter.group(1) if letter else None


def notebook_title(path: Path) -> str:
    """The first line of a notebook's first cell, if that is a markdown cell; else ''."""
    try:
        cells = nbformat.read(path, as_version=nbformat.NO_CONVERT).cells
    except (OSError, ValueError):  # a missing or unreadable file: check_notebooks reports it
        return ""
    if not cells or cells[0].cell_type != "markdown":
        return ""
    lines = cells[0].source.strip().splitlines()
    return lines[0] if lines else ""


@cache
def bibliography_links(bib: Path = ROOT / "book" / "references.bib") -> frozenset[str]:
    """The link of every entry (arXiv, else DOI, else url), as book/_ext/jupyter_markup.py computes it."""
    from pybtex.database import parse_file

    links = set()
    for entry in parse_file(str(bib)).entries.values():
        fields = {name.lower(): value for name, value in entry.fields.items()}
        if fields.get("eprint"):
            links.add(f"https://arxiv.org/abs/{fields['eprint']}")
        elif fields.get("doi"):
            links.add(f"https://doi.org/{fields['doi']}")
        elif fields.get("url"):
            links.add(fields["url"])
    return frozenset(links)


def _prose(markdown: str) -> str:
    """Markdown without math and code spans, where references and roles are looked for."""
    return CODE_SPAN.sub("", MATH.sub("", markdown))


def _has_image(cell: nbformat.NotebookNode) -> bool:
    return any(key.startswith("image/") for o in cell.get("outputs", []) for key in o.get("data", {}))


def _sequence_problems(kind: str, found: list[str], chapter: str) -> list[str]:
    expected = [f"{chapter}.{n}" for n in range(1, len(found) + 1)]
    if found != expected:
        return [f"{kind} numbers must run {', '.join(expected[:4])}... in order; found {', '.join(found)}"]
    return []


def _markdown_problems(cells: list, chapter: str) -> tuple[list[str], list[str], list[str], list[str], str]:
    problems: list[str] = []
    tags: list[str] = []
    exercises: list[str] = []
    captions: list[str] = []
    prose = ""
    for index, cell in enumerate(cells):
        if cell.cell_type != "markdown":
            continue
        for pattern, what in MYST_ONLY:
            match = pattern.search(cell.source)
            if match:
                problems.append(f"cell {index} holds {what}: {match.group(0).strip()!r}; {HOW_TO}")
        tags += TAG.findall(cell.source)
        numbered = EXERCISE.findall(cell.source)
        if len(numbered) != len(ANY_EXERCISE.findall(cell.source)):
            problems.append(f"cell {index} opens an exercise without the form `> **Exercise C.N: Title.**`")
        exercises += numbered
        caption = CAPTION.match(cell.source)
        if caption:
            captions.append(caption.group(1))
        for label, link in CITATION.findall(cell.source):
            if link not in bibliography_links():
                problems.append(f"cell {index} cites [{label}] with {link}, which is no entry's link in "
                                "book/references.bib (arXiv abs URL, else https://doi.org/DOI, else url)")
        prose += _prose(cell.source) + "\n"
    return problems, tags, exercises, captions, prose


def _figure_problems(cells: list) -> list[str]:
    problems = []
    for index, cell in enumerate(cells):
        if cell.cell_type != "code" or not _has_image(cell):
            continue
        alt = cell.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt", "")
        if len(alt.split()) < 5:
            problems.append(f"cell {index} draws a figure without alt text: set its metadata "
                            '"mystnb": {"image": {"alt": "<what the figure shows>"}}')
        following = cells[index + 1] if index + 1 < len(cells) else None
        if following is None or following.cell_type != "markdown" or not CAPTION.match(following.source):
            problems.append(f"cell {index} draws a figure that no caption follows: add a markdown cell "
                            "`**Figure C.N.** ...` right after it")
    return problems


def markup_problems(nb: nbformat.NotebookNode, chapter: str | None) -> list[str]:
    """Every departure from the portable markup in one notebook; an empty list when there is none."""
    cells = nb.cells
    problems, tags, exercises, captions, prose = _markdown_problems(cells, chapter or "?")
    problems += _figure_problems(cells)
    for index, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            if len(line) > MAX_CODE_LINE:
                problems.append(f"cell {index} has a code line of {len(line)} characters (at most "
                                f"{MAX_CODE_LINE}, or the book cuts it off): {line[:60]!r}...")
    if chapter is None:
        return problems
    problems += _sequence_problems("equation tag", tags, chapter)
    problems += _sequence_problems("exercise", exercises, chapter)
    problems += _sequence_problems("figure", captions, chapter)
    number = re.escape(chapter) + r"\.\d+"
    checks = [(rf"\(({number})\)", tags, "equation"), (rf"\b[Ee]xercises? ({number})", exercises, "exercise"),
              (rf"\b[Ff]igures? ({number})", captions, "figure")]
    for pattern, existing, kind in checks:
        for reference in sorted(set(re.findall(pattern, prose)) - set(existing)):
            problems.append(f"the prose refers to {kind} {reference}, which the chapter does not have")
    return problems
