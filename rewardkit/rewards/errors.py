"""Exceptions rewards raise for videos they do not apply to (as opposed to videos that failed)."""

from __future__ import annotations

import torch

__all__ = ["NotApplicable"]


class NotApplicable(ValueError):
    """The metric is not defined for (some of) these videos, e.g. VBench's temporal_flickering on a video
    that its static filter finds moving: VBench leaves such videos out of the dimension entirely.

    ``scores`` holds the batch's scores with NaN where the metric does not apply, so a caller scoring a
    batch can keep the rest; ``applicable`` is the matching boolean mask. A results table should record
    such a video as skipped, never as a score or a failure.
    """

    def __init__(self, message: str, scores: torch.Tensor | None = None) -> None:
        super().__init__(message)
        self.scores = scores

    @property
    def applicable(self) -> torch.Tensor | None:
        return None if self.scores is None else ~torch.isnan(self.scores)
