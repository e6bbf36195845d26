"""The one integer validator of resnet_lab, so every option says "must be an int" and "at least N" the same way."""

from __future__ import annotations

from typing import Any


def check_int(
    name: str,
    value: Any,
    *,
    minimum: int = 1,
    allow_none: bool = False,
    error: type[Exception] = ValueError,
) -> None:
    """Raise `error` with a clear message unless `value` is an int >= `minimum` (or None, when `allow_none`)."""
    if value is None and allow_none:
        return
    default = " (or None for the default)" if allow_none else ""
    # bool is a subclass of int, but True as a batch size is a mistake, not a 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{name} must be an int of at least {minimum}{default}, got {type(value).__name__} {value!r}.")
    if value < minimum:
        raise error(f"{name} must be at least {minimum}{default}, got {value}.")
