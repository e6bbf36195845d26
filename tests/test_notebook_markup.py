"""The portable-markup check (tests/notebook_markup.py) accepts the forms of README's "Writing a chapter" and
rejects each thing that Jupyter or Colab would show as raw text, or whose hand-typed number does not add up."""

from __future__ import annotations

import base64

import nbformat
import pytest
from check_notebooks import LOCAL_PATH, appendix_lettering_problems, check_notebook, clear_solutions
from notebook_markup import chapter_id, markup_problems

PNG = base64.b64encode(base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==")).decode()
ALT = {"mystnb": {"image": {"alt": "A single grey pixel, standing in for a plot."}}}


def figure_cell(metadata: dict | None = None) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("plot()", metadata=metadata if metadata is not None else ALT)
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})]
    return cell


def chapter(*extra: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A small chapter 3 in the portable markup, with `extra` cells appended."""
    md = nbformat.v4.new_markdown_cell
    cells = [
        md("# Chapter 3. Blocks\n\nAs [[HZRS16a]](https://arxiv.org/abs/1512.03385) showed, see "
           "[chapter 2](02_residual_math.ipynb).\n\n$$\ny = x + F(x)\n\\tag{3.1}\n$$\n\nand\n\n"
           "$$\nz = y\n\\tag{3.2}\n$$"),
        md("> **Note: a box.**\n> Equation (3.1) and (3.2), figure 3.1, exercise 3.1; a ratio $(3.7)$ in math "
           "and `(3.9)` in code are not references."),
        figure_cell(),
        md("**Figure 3.1.** A caption."),
        md("> **Exercise 3.1: Do it.**\n> Text."),
        nbformat.v4.new_code_cell("x = 1  # a short line"),
    ]
    return nbformat.v4.new_notebook(cells=cells + list(extra))


def test_portable_chapter_passes():
    assert markup_problems(chapter(), "3") == []


@pytest.mark.parametrize("source, needle", [
    ("```{math}\n:label: eq\nx\n```", "MyST directive"),
    (":::{note}\ntext\n:::", "colon fence"),
    ("See {cite}`he2016deep`.", "MyST role"),
    ("See {eq}`eq-1`.", "MyST role"),
    ("(my-label)=\n## Heading", "target line"),
    ("[[HZRS16a]](https://arxiv.org/abs/0000.00000)", "no entry's link"),
    ("See equation (3.5).", "equation 3.5"),
    ("As figure 3.4 shows.", "figure 3.4"),
    ("Solve exercise 3.2.", "exercise 3.2"),
    ("$$\nw\n\\tag{3.4}\n$$", "equation tag numbers must run"),
    ("> **Exercise 3.3: Skipped a number.**\n> Text.", "exercise numbers must run"),
    ("> **Exercise 3.2 without a title**\n> Text.", "without the form"),
])
def test_each_departure_is_reported(source, needle):
    problems = markup_problems(chapter(nbformat.v4.new_markdown_cell(source)), "3")
    assert any(needle in p for p in problems), problems


def test_figure_without_caption_or_alt_is_reported():
    problems = markup_problems(chapter(figure_cell(metadata={})), "3")
    assert any("without alt text" in p for p in problems), problems
    assert any("no caption follows" in p for p in problems), problems


def test_over_long_code_line_is_reported():
    problems = markup_problems(chapter(nbformat.v4.new_code_cell("x = " + "1 + " * 30 + "1")), "3")
    assert any("code line of 125 characters" in p for p in problems), problems


@pytest.mark.parametrize("name, title, expected", [
    ("03_blocks.ipynb", None, "3"), ("12_x.ipynb", None, "12"), ("scratch.ipynb", None, None),
    ("appendix_reading_code.ipynb", "# Appendix A. Reading ResNet code critically", "A"),
    ("appendix_batch_norm.ipynb", "# Appendix B. Batch normalization", "B"),
    ("appendix_batch_norm.ipynb", "# Batch normalization", None),  # no letter: check_notebooks reports the title
])
def test_chapter_id(tmp_path, name, title, expected):
    assert chapter_id(tmp_path / name, title) == expected


def appendix(path, letter: str) -> None:
    """Write a one-cell appendix notebook titled `# Appendix <letter>. ...` at path."""
    title = nbformat.v4.new_markdown_cell(f"# Appendix {letter}. Something\n\nText.")
    nbformat.write(nbformat.v4.new_notebook(cells=[title]), path)


def test_appendix_letter_is_read_from_its_title(tmp_path):
    appendix(tmp_path / "appendix_batch_norm.ipynb", "B")
    assert chapter_id(tmp_path / "appendix_batch_norm.ipynb") == "B"


def test_an_appendix_numbers_everything_with_its_letter():
    """Appendix B's equations, figures and exercises run B.1, B.2, ...; a chapter's numbers are wrong there."""
    lettered = chapter()
    for cell in lettered.cells:
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace("3.", "B.")
    assert markup_problems(lettered, "B") == []
    assert any("equation tag numbers must run B.1" in p for p in markup_problems(chapter(), "B"))
    lettered.cells.append(nbformat.v4.new_markdown_cell("See (B.3) and exercise B.2."))
    problems = markup_problems(lettered, "B")
    assert any("equation B.3" in p for p in problems) and any("exercise B.2" in p for p in problems), problems


def test_appendix_title_must_carry_its_letter(tmp_path):
    path = tmp_path / "appendix_x.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Batch norm")]), path)
    assert any("should read `# Appendix X. ...`" in p for p in check_notebook(path, set(), tmp_path))


@pytest.mark.parametrize("letters, ok", [("AB", True), ("BA", False), ("AC", False), ("A", True)])
def test_appendices_are_lettered_in_the_order_of_the_toc(tmp_path, letters, ok):
    entries = []
    for k, letter in enumerate(letters):
        appendix(tmp_path / f"appendix_{k}.ipynb", letter)
        entries.append(f"appendix_{k}")
    problems = appendix_lettering_problems(tmp_path, ["intro", *entries])
    assert (problems == []) is ok, problems


def test_clear_solutions_removes_only_solution_outputs(tmp_path):
    solution = nbformat.v4.new_code_cell('show_solution("ch3", "x")', metadata={"tags": ["solution"]},
                                         execution_count=2)
    solution.outputs = [nbformat.v4.new_output("stream", text="def x(): ...")]
    other = nbformat.v4.new_code_cell("1", execution_count=1)
    other.outputs = [nbformat.v4.new_output("stream", text="1")]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[other, solution]), path)
    assert clear_solutions(path) == 1
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[1].outputs == [] and nb.cells[1].execution_count is None
    assert nb.cells[0].outputs and nb.cells[0].execution_count == 1


@pytest.mark.parametrize("text, local", [
    ("File /work/main/.venv/lib/python3.11/site-packages/torch/nn/modules/module.py", True),
    ("saved to /home/ana/runs/resnet20", True),
    ("data: .../cifar10-jpeg (fingerprint 5a64a0c1)", False),
    ("ratio 1/2 of the channels/pixels", False),
])
def test_local_paths_in_outputs_are_recognised(text, local):
    assert bool(LOCAL_PATH.search(text)) is local
