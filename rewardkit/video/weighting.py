"""Frame weightings: combine per-frame rewards ``[B, S]`` into one video reward ``[B]``.

``TemporalAttenuation`` is InstructVideo's temporally attenuated reward: frame ``g(i)`` of an F-frame video
gets weight ``f_i = exp(-lambda * |g(i) - F // 2|)`` and the video reward is ``(1 / S) * sum_i f_i r_i``
(the paper's form) or, with ``normalized=True``, ``sum_i f_i r_i / sum_i f_i``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from rewardkit.errors import UserInputError

__all__ = ["FrameWeighting", "TemporalAttenuation", "Mean", "parse_weighting"]


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


@dataclass(frozen=True)
class TemporalAttenuation:
    """``f_i = exp(-lam * |g(i) - F // 2|)``; lam = 1.0 in the paper (0.5 was unstable, 2 too weak)."""

    lam: float = 1.0
    normalized: bool = False

    @property
    def spec(self) -> str:
        return f"tar:{self.lam}" + (":normalized" if self.normalized else "")

    def weights(self, indices: torch.Tensor, num_frames: int) -> torch.Tensor:
        distance = (indices.to(torch.float64) - num_frames // 2).abs()
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
    try:
        if name == "mean" and not arguments:
            return Mean()
        if name == "tar" and len(arguments) <= 2 and arguments[1:] in ([], ["normalized"]):
            return TemporalAttenuation(
                float(arguments[0]) if arguments else 1.0, normalized=len(arguments) == 2
            )
    except ValueError:
        pass
    raise UserInputError(
        f"cannot read frame weighting {spec!r}; write mean, tar:LAMBDA (InstructVideo's temporally attenuated "
        f"reward, e.g. tar:1.0) or tar:LAMBDA:normalized"
    )
