"""Checkers for the book's exercises, one module per chapter.

Every checker takes the reader's attempt, prints a verdict (with a specific hint when it fails) and returns
True or False. It never raises on a wrong answer, so that "Run all" in Colab or Jupyter goes on past an
unfinished exercise.

In a notebook, an exercise is a stub cell (cell metadata `"exercise": {"role": "stub", ...}`) and, below it, a
cell that calls `show_solution`. The reference solutions are not in the notebooks, so that a student does not
see them by default: each is a self-contained file `solutions/<chapter>_<answer>.py`. `tests/test_exercises.py`
runs every stub and every solution file through its checker.
"""

from __future__ import annotations

import re
import textwrap
import traceback
from collections.abc import Callable
from pathlib import Path

# Plain words, not emoji: a check mark renders as an empty box where no emoji font is installed.
PASS, NOT_YET = "PASS", "NOT YET"
WIDTH = 88  # columns: a verdict fits the book's code column and a notebook's output without scrolling


class Verdict:
    """The outcome of one check: `ok`, and the message printed to the reader."""

    def __init__(self, ok: bool, message: str):
        self.ok = ok
        self.message = message

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"{PASS if self.ok else NOT_YET}: {self.message}"

    def _ipython_display_(self) -> None:
        """Show nothing when a checker call ends a cell: `run_check` has already printed the verdict."""


def run_check(name: str, test: Callable[[], str | None]) -> Verdict:
    """Run `test`; it returns None when the answer is right, or a hint string when it is not.

    An exception from the reader's code (including NotImplementedError from an untouched stub) is turned into
    a hint, not a crash.
    """
    try:
        hint = test()
    except NotImplementedError:
        hint = "the stub still raises NotImplementedError: replace it with your code."
    except Exception as exc:  # the reader's code failed: show where, briefly
        last = traceback.extract_tb(exc.__traceback__)[-1]
        hint = f"your code raised {type(exc).__name__}: {exc} (line {last.lineno}: {last.line!r})"
    verdict = Verdict(hint is None, f"{name}: correct." if hint is None else f"{name}: {hint}")
    print(wrap(repr(verdict)))
    return verdict


def wrap(text: str, width: int = WIDTH) -> str:
    """Wrap each line of `text` to `width` columns, indenting continuation lines."""
    return "\n".join(textwrap.fill(line, width, subsequent_indent="    ", break_on_hyphens=False)
                     if len(line) > width else line for line in text.splitlines())


_NAME = re.compile(r"[a-z][a-z0-9_]*")


def solution_path(chapter: str, answer: str) -> Path:
    """Where the reference solution of one exercise lives: `solutions/<chapter>_<answer>.py`."""
    if not (_NAME.fullmatch(chapter) and _NAME.fullmatch(answer.lower())):
        raise ValueError(f"chapter and answer must be plain names such as 'ch3' and 'zero_pad_shortcut'; "
                         f"got {chapter!r} and {answer!r}")
    folder = Path(__file__).resolve().parent / "solutions"
    path = folder / f"{chapter}_{answer}.py"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.py") if not p.name.startswith("_"))
        raise ValueError(f"there is no reference solution {chapter}_{answer}; the solutions are: "
                         + ", ".join(known))
    return path


def solution_source(chapter: str, answer: str) -> str:
    """The text of the reference solution of one exercise, e.g. ("ch3", "zero_pad_shortcut")."""
    return solution_path(chapter, answer).read_text(encoding="utf-8")


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def show_solution(chapter: str, answer: str) -> Verdict:
    """Show the reference solution of one exercise, then run it: its last line calls the checker.

    The solution runs in a namespace of its own, so it does not replace the reader's attempt.
    """
    source = solution_source(chapter, answer)
    if _in_notebook():
        from IPython.display import Markdown, display

        display(Markdown(f"```python\n{source}```"))  # syntax-highlighted, in Jupyter and Colab
    else:
        print(source)
    namespace: dict = {"__name__": f"solution_{chapter}_{answer}"}
    exec(compile(source, f"{chapter}_{answer}.py", "exec"), namespace)
    verdict = namespace.get("_")
    if not isinstance(verdict, Verdict):
        raise RuntimeError(f"the solution file {chapter}_{answer}.py must end with `_ = <checker>(...)`")
    return verdict
