"""resnet_lab.checks: the one integer validator."""

import pytest

from resnet_lab.checks import check_int


class OwnError(ValueError):
    pass


@pytest.mark.parametrize(("value", "minimum"), [(1, 1), (5, 1), (0, 0), (-3, -3), (10**12, 1)])
def test_accepts_ints_at_or_above_the_minimum(value, minimum):
    assert check_int("n", value, minimum=minimum) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, r"^epochs must be at least 1, got 0\.$"),
        (-2, r"^epochs must be at least 1, got -2\.$"),
        (2.0, r"^epochs must be an int of at least 1, got float 2\.0\.$"),
        ("3", r"^epochs must be an int of at least 1, got str '3'\.$"),
        (True, r"^epochs must be an int of at least 1, got bool True\.$"),
        (False, r"got bool False"),
        (None, r"got NoneType None"),
    ],
)
def test_refuses_with_a_message_naming_the_option(value, message):
    with pytest.raises(ValueError, match=message):
        check_int("epochs", value)


def test_minimum_zero():
    check_int("cutout", 0, minimum=0)
    with pytest.raises(ValueError, match=r"cutout must be at least 0, got -1\."):
        check_int("cutout", -1, minimum=0)


def test_allow_none():
    check_int("train_size", None, allow_none=True)
    check_int("train_size", 7, allow_none=True)
    with pytest.raises(ValueError, match=r"train_size must be at least 1 \(or None for the default\), got 0\."):
        check_int("train_size", 0, allow_none=True)
    with pytest.raises(ValueError, match=r"or None for the default"):
        check_int("train_size", 1.5, allow_none=True)


@pytest.mark.parametrize("value", [0, 1.5, True, None])
def test_error_class_is_chosen_by_the_caller(value):
    with pytest.raises(OwnError, match="size"):
        check_int("size", value, error=OwnError)
    with pytest.raises(TypeError):
        check_int("size", value, error=TypeError)


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        check_int("n", 1, 0)  # a positional minimum would be easy to misread
