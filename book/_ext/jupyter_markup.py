"""Sphinx extension: give the notebooks' portable markup its book form.

The chapter notebooks are written in Markdown that Jupyter and Colab render as it is (README, "Writing a
chapter"). This extension turns four of its forms into what a printed book would show:

- a citation link `[[HZRS16a]](https://arxiv.org/abs/1512.03385)` becomes a `{cite}` reference to the entry of
  `book/references.bib` whose link that is (so the bibliography lists it); its bracketed label is checked
  against the one the bibliography prints;
- a block quote that opens with a bold "Note", "Warning", "Tip", "Common mistake" or "Exercise C.N" becomes an
  admonition box;
- a code cell tagged `solution` (it calls `show_solution(chapter, answer)`) becomes a collapsed dropdown that
  holds the reference solution, read through `resnet_lab.exercises.solution_source`;
- a paragraph that opens with a bold "Figure C.N." is marked as a figure caption;
- a display equation with a `\tag{C.N}` is passed to MathJax as written, as Jupyter does (Sphinx would wrap a
  multi-line one in a `split` environment, where MathJax does not allow a tag).

Nothing else changes: what the book shows is what the notebook says.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform
from sphinx.util import logging

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
CITATION = re.compile(r"\[\[([^\[\]]+)\]\]\((https?://[^)\s]+)\)")
BOX = re.compile(r"^(Note|Warning|Tip|Common mistake|Exercise ([A-Z0-9]+\.\d+))(?::\s*(.*?))?\.?$", re.DOTALL)
# The box style of each kind; a "Common mistake" is a warning.
BOX_STYLE = {"Note": "note", "Warning": "warning", "Tip": "tip", "Common mistake": "warning"}
CAPTION = re.compile(r"^Figure ([A-Z0-9]+\.\d+)\.$")
SOLUTION_CALL = re.compile(r"""show_solution\(\s*["']([a-z0-9_]+)["']\s*,\s*["']([A-Za-z0-9_]+)["']\s*\)""")


# ------------------------------------------------------------------------------------------------------------
# Citations
# ------------------------------------------------------------------------------------------------------------

def entry_link(fields: dict[str, str]) -> str | None:
    """The link a citation of this entry points to: arXiv, else DOI, else the entry's url."""
    if fields.get("eprint"):
        return f"https://arxiv.org/abs/{fields['eprint']}"
    if fields.get("doi"):
        return f"https://doi.org/{fields['doi']}"
    return fields.get("url")


def bibliography_links(bib_files: list[Path]) -> dict[str, str]:
    """Map each entry's link (see `entry_link`) to its key."""
    from pybtex.database import parse_file

    links: dict[str, str] = {}
    for path in bib_files:
        for key, entry in parse_file(str(path)).entries.items():
            link = entry_link({name.lower(): value for name, value in entry.fields.items()})
            if link:
                links[link] = key
    return links


def rewrite_citations(markdown: str, links: dict[str, str], found: list[tuple[str, str]]) -> str:
    """Replace each `[[LABEL]](link)` whose link is a bibliography entry's by a MyST `{cite}` role."""

    def replace(match: re.Match) -> str:
        label, link = match.groups()
        key = links.get(link)
        if key is None:
            found.append((label, link))  # reported by the caller: not an entry of the bibliography
            return match.group(0)
        found.append((label, key))
        return f"{{cite}}`{key}`"

    return CITATION.sub(replace, markdown)


def on_source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    """Rewrite the citation links of a notebook's Markdown cells before myst-nb parses it."""
    if not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    notebook = json.loads(source[0])
    links = app.env.jupyter_markup_links
    cited: list[tuple[str, str]] = []
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cell["source"] = rewrite_citations(text, links, cited)
    for label, key in cited:
        if key.startswith("http"):
            logger.warning(f"[[{label}]]({key}) looks like a citation, but no entry of the bibliography has "
                           "this link (arXiv abs URL, else https://doi.org/DOI, else url)",
                           location=docname, type="jupyter_markup", subtype="citation")
    app.env.jupyter_markup_cited[docname] = [(label, key) for label, key in cited if not key.startswith("http")]
    source[0] = json.dumps(notebook)


def on_builder_inited(app: Sphinx) -> None:
    root = Path(app.srcdir)
    app.env.jupyter_markup_links = bibliography_links([root / name for name in app.config.bibtex_bibfiles])
    if not hasattr(app.env, "jupyter_markup_cited"):
        app.env.jupyter_markup_cited = {}


def on_env_purge_doc(app: Sphinx, env, docname: str) -> None:  # noqa: ANN001
    getattr(env, "jupyter_markup_cited", {}).pop(docname, None)


def on_check_consistency(app: Sphinx, env) -> None:  # noqa: ANN001
    """Each notebook's bracketed label must be the label the bibliography prints for that entry."""
    labels = {citation.key: citation.formatted_entry.label for citation in env.get_domain("cite").citations}
    for docname, cited in sorted(env.jupyter_markup_cited.items()):
        for written, key in cited:
            printed = labels.get(key)
            if printed is not None and printed != written:
                logger.warning(f"the citation of {key!r} reads [{written}] in the notebook but the book labels it "
                               f"[{printed}]: write [[{printed}]](...)", location=docname,
                               type="jupyter_markup", subtype="citation")


# ------------------------------------------------------------------------------------------------------------
# Boxes, solutions and captions
# ------------------------------------------------------------------------------------------------------------

def _opening_strong(paragraph: nodes.Node) -> nodes.strong | None:
    """The bold words a paragraph opens with (MyST may put an empty text node before them)."""
    if not isinstance(paragraph, nodes.paragraph):
        return None
    for child in paragraph.children:
        if isinstance(child, nodes.Text) and not child.astext().strip():
            continue
        return child if isinstance(child, nodes.strong) else None
    return None


def _strip_opening(paragraph: nodes.paragraph) -> None:
    """Remove the bold opening words of a paragraph, and the space after them."""
    paragraph.remove(_opening_strong(paragraph))
    while paragraph.children and isinstance(paragraph.children[0], nodes.Text):
        rest = paragraph.children[0].astext().lstrip()
        if rest:
            paragraph.replace(paragraph.children[0], nodes.Text(rest))
            break
        paragraph.remove(paragraph.children[0])


def box_from_quote(quote: nodes.block_quote) -> nodes.admonition | None:
    """An admonition for a block quote opening with a bold Note, Warning, Tip, Common mistake or Exercise C.N."""
    if not quote.children:
        return None
    strong = _opening_strong(quote.children[0])
    match = strong and BOX.match(strong.astext().strip())
    if not match:
        return None
    kind, exercise, _ = match.groups()
    title = strong.astext().strip().rstrip(".")
    _strip_opening(quote.children[0])
    if not quote.children[0].children:
        quote.remove(quote.children[0])
    css = "exercise" if exercise else BOX_STYLE[kind]
    box = nodes.admonition("", nodes.title(title, title), *quote.children, classes=["admonition", css])
    if exercise:
        box["ids"].append("exercise-" + exercise.replace(".", "-").lower())
        box["exercise_number"] = exercise
    return box


def solution_box(cell: nodes.container, exercise: str | None) -> tuple[nodes.admonition, str]:
    """A collapsed dropdown holding the reference solution that a `show_solution(...)` cell loads, and its file."""
    from resnet_lab.exercises import solution_path, solution_source

    code = cell.astext()
    match = SOLUTION_CALL.search(code)
    if not match:
        raise ValueError(f"a cell tagged 'solution' must call show_solution(chapter, answer); it reads {code!r}")
    text = solution_source(*match.groups())  # ValueError, naming the solutions, if there is no such file
    title = f"Solution to exercise {exercise}" if exercise else "Solution"
    block = nodes.literal_block(text, text, language="python")
    box = nodes.admonition("", nodes.title(title, title), block, classes=["admonition", "dropdown", "solution"])
    return box, str(solution_path(*match.groups()))


def tagged_equation(node: nodes.math_block) -> None:
    """Hand a display equation that carries its own `\\tag` to MathJax unchanged, between `\\[` and `\\]`."""
    text = node.astext()
    node.clear()
    node += nodes.Text(f"\\[{text}\\]")
    node["nowrap"] = True


class PortableMarkup(SphinxTransform):
    """Boxes from block quotes, solution dropdowns from solution cells, captions from "Figure C.N." paragraphs."""

    default_priority = 400

    def apply(self, **kwargs) -> None:  # noqa: ANN003
        if not str(self.env.doc2path(self.env.docname)).endswith(".ipynb"):
            return
        exercise = None
        kinds = (nodes.block_quote, nodes.container, nodes.paragraph, nodes.math_block)
        for node in list(self.document.findall(lambda n: isinstance(n, kinds))):
            if isinstance(node, nodes.math_block):
                if "\\tag{" in node.astext() and not node.get("nowrap"):
                    tagged_equation(node)
            elif isinstance(node, nodes.block_quote):
                box = box_from_quote(node)
                if box is not None:
                    exercise = box.get("exercise_number", exercise)
                    node.replace_self(box)
            elif isinstance(node, nodes.container) and "tag_solution" in node["classes"]:
                try:
                    box, path = solution_box(node, exercise)
                except ValueError as error:
                    logger.warning(str(error), location=node, type="jupyter_markup", subtype="solution")
                else:
                    node.replace_self(box)
                    self.env.note_dependency(path)
            elif isinstance(node, nodes.paragraph):
                strong = _opening_strong(node)
                match = strong and CAPTION.match(strong.astext().strip())
                if match:
                    node["classes"].append("figure-caption")
                    node["ids"].append("figure-" + match.group(1).replace(".", "-").lower())


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", on_builder_inited)
    app.connect("source-read", on_source_read)
    app.connect("env-purge-doc", on_env_purge_doc)
    app.connect("env-check-consistency", on_check_consistency)
    app.add_transform(PortableMarkup)
    app.connect("builder-inited", lambda app: app.config.html_static_path.append(str(HERE / "static")))
    app.add_css_file("jupyter_markup.css")
    return {"version": "1", "parallel_read_safe": False, "parallel_write_safe": True, "env_version": 1}
