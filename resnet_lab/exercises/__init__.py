"""Checkers for the book's exercises, one module per chapter.

Every checker takes the reader's attempt, prints a verdict (with a specific hint when it fails) and returns
True or False. It never raises on a wrong answer, so that "Run all" in Colab or Jupyter goes on past an
unfinished exercise. In the notebooks, the stub cell is tagged `exercise:<checker>` and the hidden reference
solution `solution:<checker>`; `tests/test_exercises.py` runs each stub and solution through its checker.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable


class Verdict:
    """The outcome of one check: `ok`, and the message printed to the reader."""

    def __init__(self, ok: bool, message: str):
        self.ok = ok
        self.message = message

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return ("PASS: " if self.ok else "NOT YET: ") + self.message

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
    print(("\u2705 " if verdict.ok else "\u274c ") + verdict.message)
    return verdict
