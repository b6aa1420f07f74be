"""Reading what users type: "did you mean" hints, option values converted to their declared types, and a
natural sort order for file names.

At the bottom of the import graph (it imports only rewardkit.errors), so every room can use it.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterable
from typing import Any, Literal

from rewardkit.errors import UserInputError

__all__ = ["convert", "did_you_mean", "natural_key"]


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``" Did you mean 'a' or 'b'?"`` for the candidates close to ``word``; empty when none is."""
    matches = difflib.get_close_matches(str(word), [str(candidate) for candidate in candidates], n=3, cutoff=0.5)
    return (" Did you mean " + " or ".join(repr(match) for match in matches) + "?") if matches else ""


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders digit runs by value (``frame2`` before ``frame10``), case-insensitively."""
    return tuple((0, int(part)) if part.isdigit() else (1, part.lower()) for part in re.split(r"(\d+)", text) if part)


def convert(what: str, value: Any, annotation: Any, default: Any = None) -> Any:
    """Check ``value`` against a declared type and convert strings (as typed on a command line) to it.

    Handles ``Literal[...]`` choices, ``list[T]`` (a string is split at commas), ``bool``, ``int``, ``float``
    and ``str``; for any other annotation a string takes the type of ``default`` when that is a bool or a
    number, and other values pass unchanged. ``what`` names the value in the error (``train.lr``).
    """
    if typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise UserInputError(
                f"{what}={value!r} is not one of {', '.join(map(repr, choices))}."
                f"{did_you_mean(value, choices)}"
            )
        return value
    if typing.get_origin(annotation) is list:
        (item_type,) = typing.get_args(annotation)
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list):
            raise UserInputError(f"{what} must be a list of {item_type.__name__}, got {value!r}")
        return [convert(f"{what}[{index}]", item, item_type) for index, item in enumerate(value)]
    if annotation not in (bool, int, float, str):
        if not isinstance(value, str) or type(default) not in (bool, int, float):
            return value
        annotation = type(default)
    if annotation is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if not isinstance(value, bool):
            raise UserInputError(f"{what} must be true or false, got {value!r}")
        return value
    if annotation in (int, float):
        kind = "an integer" if annotation is int else "a number"
        if isinstance(value, str):
            try:
                value = annotation(value)
            except ValueError:
                raise UserInputError(f"{what} must be {kind}, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (annotation is int and not float(value).is_integer()):
            raise UserInputError(f"{what} must be {kind}, got {value!r}")
        return annotation(value)
    if not isinstance(value, str):
        raise UserInputError(f"{what} must be a string, got {value!r}")
    return value
