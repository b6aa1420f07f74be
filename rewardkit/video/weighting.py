"""Frame weightings: combine per-frame rewards ``[B, S]`` into one video reward ``[B]``.

``TemporalAttenuation`` is InstructVideo's temporally attenuated reward: frame ``g(i)`` of an F-frame video
gets weight ``f_i = exp(-lambda * |g(i) - F // 2|)`` and the video reward is ``(1 / S) * sum_i f_i r_i``
(the paper's form) or, with ``normalized=True``, ``sum_i f_i r_i / sum_i f_i``.

The paper's distances are in frames of its 16-frame clips. For any other length F, frame ``g`` is placed at
the same relative position of a 16-frame clip, ``16 * g / F``, so ``f_i = exp(-lambda * |16 * g(i) / F - 8|)``:
exactly the paper's formula when F = 16, and the same weights for the same relative positions at any
length (read unscaled on a 600-frame video, every sampled frame would weigh about ``exp(-150)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from rewardkit.errors import UserInputError

__all__ = ["PAPER_FRAMES", "FrameWeighting", "TemporalAttenuation", "Mean", "parse_weighting"]


class FrameWeighting(Protocol):
    def weights(self, indices: torch.Tensor, num_frames: int) -> torch.Tensor: ...

    def __call__(self, scores: torch.Tensor, indices: torch.Tensor, num_frames: int) -> torch.Tensor: ...

    @property
    def spec(self) -> str:
        """The ``--weighting`` text that reads back as this weighting (recorded in results rows)."""


def _check(scores: torch.Tensor, indices: torch.Tensor) -> None:
    if scores.ndim != 2 or scores.shape != indices.shape:
        raise UserInputError(
            f"frame scores and frame indices must both be [B, S] with the same shape, "
            f"got {tuple(scores.shape)} and {tuple(indices.shape)}"
        )


PAPER_FRAMES = 16  # InstructVideo's clips: TAR's distances are in frames of a 16-frame clip


@dataclass(frozen=True)
class TemporalAttenuation:
    """``f_i = exp(-lam * |16 * g(i) / F - 8|)`` (the paper's ``|g(i) - F // 2|`` at F = 16, relative positions
    scaled to a 16-frame clip otherwise); lam = 1.0 in the paper (0.5 was unstable, 2 too weak)."""

    lam: float = 1.0
    normalized: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.lam, bool) or not isinstance(self.lam, (int, float)) or not math.isfinite(self.lam) or self.lam < 0:
            raise UserInputError(
                f"TAR's lambda must be a finite number >= 0 (the paper uses 1.0; 0 weighs every frame alike), got {self.lam!r}"
            )

    @property
    def spec(self) -> str:
        return f"tar:{self.lam}" + (":normalized" if self.normalized else "")

    def weights(self, indices: torch.Tensor, num_frames: int) -> torch.Tensor:
        # At F = 16 the scale is exactly 1.0, so this is the paper's |g - F // 2| to the bit.
        distance = (indices.to(torch.float64) * (PAPER_FRAMES / num_frames) - PAPER_FRAMES / 2).abs()
        return torch.exp(-self.lam * distance)

    def __call__(self, scores: torch.Tensor, indices: torch.Tensor, num_frames: int) -> torch.Tensor:
        indices = torch.as_tensor(indices, device=scores.device).expand_as(scores)
        _check(scores, indices)
        weights = self.weights(indices, num_frames).to(scores.dtype)
        weighted = (weights * scores).sum(dim=1)
        if self.normalized:
            return weighted / weights.sum(dim=1)
        return weighted / scores.shape[1]


@dataclass(frozen=True)
class Mean:
    """Plain average over the sampled frames."""

    spec = "mean"

    def weights(self, indices: torch.Tensor, num_frames: int) -> torch.Tensor:
        return torch.ones_like(indices, dtype=torch.float64)

    def __call__(self, scores: torch.Tensor, indices: torch.Tensor, num_frames: int) -> torch.Tensor:
        indices = torch.as_tensor(indices, device=scores.device).expand_as(scores)
        _check(scores, indices)
        return scores.mean(dim=1)


def parse_weighting(spec: str) -> FrameWeighting:
    """Read ``mean``, ``tar:LAMBDA`` or ``tar:LAMBDA:normalized`` (the CLI's ``--weighting``)."""
    name, *arguments = spec.strip().lower().split(":")
    if name == "mean" and not arguments:
        return Mean()
    if name == "tar" and len(arguments) <= 2 and arguments[1:] in ([], ["normalized"]):
        try:
            lam = float(arguments[0]) if arguments else 1.0
        except ValueError:
            lam = None
        if lam is not None:
            return TemporalAttenuation(lam, normalized=len(arguments) == 2)
    raise UserInputError(
        f"cannot read frame weighting {spec!r}; write mean, tar:LAMBDA (InstructVideo's temporally attenuated "
        f"reward, e.g. tar:1.0) or tar:LAMBDA:normalized"
    )
