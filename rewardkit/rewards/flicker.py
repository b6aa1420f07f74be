"""Temporal flickering, VBench's weight-free formula.

Huang et al., "VBench: Comprehensive Benchmark Suite for Video Generative Models" (CVPR 2024,
arXiv:2311.17982), https://github.com/Vchitect/VBench (vbench/temporal_flickering.py).

Score = ``(255 - mean_i MAE(F_i, F_{i+1})) / 255`` where MAE is the mean absolute difference of two
consecutive 8-bit frames over all pixels and channels, computed in float32. Higher is steadier.

Not applied here: VBench's static filter, which first keeps only videos that RAFT optical flow finds
(nearly) static, so that flicker is not confused with motion. Scores from this metric on moving videos
therefore also measure motion; compare them only across videos of similar motion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from rewardkit.registry import register_reward
from rewardkit.transforms import as_float_videos
from rewardkit.video.sampling import All

__all__ = ["TemporalFlickering"]


class TemporalFlickering(torch.nn.Module):
    """VBench temporal_flickering on ``[B, T, 3, H, W]`` videos (T >= 2); differentiable in the pixels."""

    modality = "video"
    needs_prompt = False
    max_prompt_tokens = None

    def __init__(self) -> None:
        super().__init__()
        self.sampler = All()
        self.weights_sha256: str | None = None

    def forward(
        self, videos: torch.Tensor, prompts: Sequence[str] | None = None, rng: np.random.Generator | None = None
    ) -> torch.Tensor:
        """Scores ``[B]`` of videos ``[B, T, 3, H, W]``; ``prompts`` and ``rng`` are unused (no prompt, no
        randomness)."""
        return self.score_sampled(videos, None, videos.shape[1])

    def score_sampled(
        self,
        frames: torch.Tensor,
        indices: torch.Tensor | None,
        num_frames: int,
        prompts: Sequence[str] | None = None,
        rng: np.random.Generator | None = None,
    ) -> torch.Tensor:
        """Score frames decoded by ``self.sampler``: every frame in order, so ``indices`` is not needed."""
        videos = as_float_videos(frames, keep_uint8=True)
        # uint8 frames are used exactly as VBench reads them; float frames are scaled back to 0..255.
        pixels = videos.to(torch.float32) if videos.dtype == torch.uint8 else videos * 255.0
        if pixels.shape[1] < 2:
            raise ValueError(
                f"temporal_flickering compares consecutive frames and needs at least 2, got {pixels.shape[1]}"
            )
        pair_mae = (pixels[:, 1:] - pixels[:, :-1]).abs().mean(dim=(2, 3, 4))
        return (255.0 - pair_mae.mean(dim=1)) / 255.0


@register_reward(
    "temporal_flickering",
    modality="video",
    needs_prompt=False,
    differentiable=True,
    score_range=(0.0, 1.0),
    description="VBench temporal flickering, weight-free (without VBench's RAFT static filter)",
    paper="arXiv:2311.17982",
    repository="https://github.com/Vchitect/VBench",
)
def create_temporal_flickering(
    *,
    mode: Literal["reference", "differentiable"] = "reference",
    device: torch.device,
    dtype: torch.dtype,
    weights: str | None,
) -> TemporalFlickering:
    """VBench's temporal flickering score; ``mode`` is accepted for uniformity (both modes are identical)."""
    if weights is not None:
        raise ValueError("temporal_flickering has no weights; drop --weights")
    return TemporalFlickering().to(device)
