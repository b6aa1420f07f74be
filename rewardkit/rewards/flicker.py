"""Temporal flickering, VBench's weight-free formula.

Huang et al., "VBench: Comprehensive Benchmark Suite for Video Generative Models" (CVPR 2024,
arXiv:2311.17982), https://github.com/Vchitect/VBench (vbench/temporal_flickering.py).

Score = ``(255 - mean_i MAE(F_i, F_{i+1})) / 255`` where MAE is the mean absolute difference of two
consecutive 8-bit frames over all pixels and channels, computed in float32. Higher is steadier.

VBench scores this dimension only on videos its static filter (vbench/cli/static_filter.py, RAFT flow)
finds static, so that flicker is not confused with motion; moving videos are left out of the dimension,
not scored. The option ``static_filter`` chooses: ``none`` (default) scores every video, so scores on
moving videos also measure motion; ``flow`` applies VBench's filter with OpenCV DIS flow instead of RAFT
(rewardkit.rewards.motion); ``raft`` applies it with RAFT raft-things as VBench does
(rewardkit.rewards.raft). With a filter, a batch holding a moving video raises
``rewardkit.rewards.errors.NotApplicable`` (its ``scores`` carry NaN for the moving videos), which the
scoring engine records as *skipped*, the way VBench drops the video. An exception rather than a NaN score:
a NaN next to status ``ok`` would silently enter or distort the dimension's mean and count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from rewardkit.registry import WeightFile, register_reward
from rewardkit.rewards.base import VideoScorer
from rewardkit.rewards.errors import NotApplicable
from rewardkit.rewards.motion import (
    FlowTopFraction,
    PairStatistic,
    PairStream,
    static_verdict,
    videos_to_uint8,
)
from rewardkit.transforms import as_float_videos
from rewardkit.video.sampling import All
from rewardkit.weights import WeightsArgument, build_with_weights

StaticFilter = Literal["none", "flow", "raft"]

__all__ = ["TemporalFlickering"]


class TemporalFlickering(VideoScorer):
    """VBench temporal_flickering on ``[B, T, 3, H, W]`` videos (T >= 2); differentiable in the pixels.

    ``static_filter`` is ``None`` (score every video), ``"flow"`` (OpenCV flow) or a ``PairStatistic``
    (per-pair top-2 % flow magnitudes, e.g. RAFT's ``RaftTopFraction``) for VBench's static filter.
    Files stream (``score_stream``): the score is a running mean of consecutive-frame differences, holding
    two frames (and, with a filter, the first one) whatever the length.
    """

    stream_chunk = 8

    def __init__(self, static_filter: PairStatistic | Literal["flow"] | None = None) -> None:
        super().__init__()
        self.sampler = All()
        self.weights_sha256: str | None = None
        self.static_filter = FlowTopFraction(0.02) if static_filter == "flow" else static_filter

    def _score_one(self, chunks: Iterable[torch.Tensor]) -> tuple[torch.Tensor, bool | None]:
        """The score (0-d) of one video arriving as chunks ``[k, 3, H, W]`` (uint8, or float in [0, 1]), and
        the static filter's verdict (None without a filter).

        uint8 frames (used exactly as VBench reads them) are compared in integers: the summed absolute
        differences are exact, so the score is VBench's formula without float32 rounding (it differs from a
        float32 computation by ~1e-8) and costs a quarter of it. Float frames are scaled back to 0..255 and
        keep their gradients."""
        pair_maes: list[torch.Tensor] = []  # float frames
        total, pairs, last, device = 0, 0, None, None  # uint8 frames: summed |differences|, pairs, last frame
        previous: torch.Tensor | None = None
        check = None if self.static_filter is None else PairStream(self.static_filter)
        count = 0
        for chunk in chunks:
            if chunk.dtype == torch.uint8:
                frames, device = chunk.cpu().numpy(), chunk.device
                if last is not None:
                    total += _absdiff_sum(last, frames[0])
                total += _absdiff_sum(frames[1:], frames[:-1])
                pairs += len(frames) - (last is None)
                last = frames[-1]
            else:
                for frame in chunk:
                    pixels = frame * 255.0
                    if previous is not None:
                        pair_maes.append((pixels - previous).abs().mean())
                    previous = pixels
            count += len(chunk)
            if check is not None:
                check.update(videos_to_uint8(chunk[None])[0])
        if count < 2:
            raise ValueError(f"temporal_flickering compares consecutive frames and needs at least 2, got {count}")
        if pair_maes:
            score = (255.0 - torch.stack(pair_maes).mean()) / 255.0
        else:
            score = torch.tensor((255.0 - total / (pairs * last.size)) / 255.0, dtype=torch.float32, device=device)
        return score, None if check is None else static_verdict(check)

    def score_sampled(
        self,
        frames: torch.Tensor,
        indices: torch.Tensor | None,
        num_frames: int,
        prompts: Sequence[str] | None = None,
        rng: np.random.Generator | None = None,
    ) -> torch.Tensor:
        """Score frames decoded by ``self.sampler``: every frame in order, so ``indices`` is not needed."""
        results = [self._score_one([video]) for video in as_float_videos(frames, keep_uint8=True)]
        scores = torch.stack([score for score, _ in results])
        if self.static_filter is not None:
            static = torch.tensor([bool(verdict) for _, verdict in results])
            if not static.all():
                moving = static.logical_not().nonzero().flatten().tolist()
                raise NotApplicable(_moving_message(moving), scores=torch.where(static.to(scores.device), scores.detach(), torch.nan))
        return scores

    def score_stream(
        self,
        chunks: Iterable[np.ndarray],
        indices: Sequence[int],
        num_frames: int,
        prompt: str | None = None,
        rng: np.random.Generator | None = None,
    ) -> dict[str, float]:
        score, static = self._score_one(torch.from_numpy(chunk).permute(0, 3, 1, 2) for chunk in chunks)
        if static is False:
            raise NotApplicable(_moving_message([0]), scores=torch.tensor([torch.nan]))
        return {"score": float(score)}


def _absdiff_sum(a: np.ndarray, b: np.ndarray) -> int:
    """The sum of ``|a - b|`` over every element of two uint8 arrays, exact (no widening copy; summed flat, in
    memory order, which numpy does several times faster than over the array's axes)."""
    difference = np.maximum(a, b)
    difference -= np.minimum(a, b)
    return int(difference.ravel(order="K").sum(dtype=np.uint64))


def _moving_message(moving: list[int]) -> str:
    return (
        f"temporal_flickering applies to static videos only (VBench's static filter) and video(s) {moving} of the "
        f"batch move; VBench leaves them out of the dimension (score with static_filter='none' to score them anyway)"
    )


def _raft_weights(options: Mapping[str, Any]) -> dict[str, WeightFile]:
    """RAFT's raft-things.pth (supplied by path) with ``static_filter=raft``; nothing otherwise."""
    if options["static_filter"] != "raft":
        return {}
    from rewardkit.rewards.raft import RAFT_WEIGHTS

    return {"model": RAFT_WEIGHTS}


@register_reward(
    "temporal_flickering",
    modality="video",
    needs_prompt=False,
    differentiable=True,
    score_range=(0.0, 1.0),
    description="VBench temporal flickering, optionally only on static videos (static_filter=flow|raft)",
    weights=_raft_weights,
    paper="arXiv:2311.17982",
    repository="https://github.com/Vchitect/VBench",
)
def create_temporal_flickering(
    *,
    mode: Literal["reference", "differentiable"] = "reference",
    static_filter: Literal["none", "flow", "raft"] = "none",
    device: torch.device,
    dtype: torch.dtype,
    weights: WeightsArgument,
) -> TemporalFlickering:
    """VBench's temporal flickering score; ``mode`` is accepted for uniformity (both modes are identical);
    ``static_filter`` keeps only static videos (VBench's filter with OpenCV flow or with RAFT, whose
    raft-things.pth ``weights`` it then takes)."""
    if static_filter not in ("none", "flow", "raft"):
        raise ValueError(f"static_filter must be 'none', 'flow' or 'raft', got {static_filter!r}")

    def build(paths: Mapping[str, Path]) -> TemporalFlickering:
        if static_filter == "raft":
            from rewardkit.rewards.raft import RaftTopFraction, load_raft

            return TemporalFlickering(RaftTopFraction(load_raft(paths["model"]), 0.02)).to(device)
        return TemporalFlickering("flow" if static_filter == "flow" else None).to(device)

    return build_with_weights("temporal_flickering", weights, {"static_filter": static_filter}, build)

