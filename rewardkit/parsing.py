"""Reading what users type: "did you mean" hints and a natural sort order for file names.

At the bottom of the import graph (it imports nothing from rewardkit), so every room can use it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

__all__ = ["did_you_mean", "natural_key"]


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``" Did you mean 'a' or 'b'?"`` for the candidates close to ``word``; empty when none is."""
    matches = difflib.get_close_matches(str(word), [str(candidate) for candidate in candidates], n=3, cutoff=0.5)
    return (" Did you mean " + " or ".join(repr(match) for match in matches) + "?") if matches else ""


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders digit runs by value (``frame2`` before ``frame10``), case-insensitively."""
    return tuple((0, int(part)) if part.isdigit() else (1, part.lower()) for part in re.split(r"(\d+)", text) if part)
