"""Image rewards as video rewards, by composition (InstructVideo, arXiv:2312.12490,
https://github.com/ali-vilab/VGen, utils/reward/reward.py).

``VideoReward(image_reward, sampler, weighting)``: the sampler picks frame indices from the frame count
alone, so a decoder (file reader or VAE) produces only those frames; the image reward scores each picked
frame against the video's prompt; the weighting combines the frame scores. With ``Segmental(S, "random")``
and ``TemporalAttenuation(1.0)`` this is InstructVideo's segmental, temporally attenuated reward
``R = (1/S) * sum_i exp(-|g(i) - F//2|) * r(x_g(i), c)``; its training loss is ``mean(1 - R)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rewardkit.rewards.base import ImageReward
from rewardkit.transforms import as_float_videos, check_prompts
from rewardkit.video.sampling import FrameSampler, Segmental
from rewardkit.video.weighting import FrameWeighting, TemporalAttenuation

__all__ = ["VideoReward"]


class VideoReward(torch.nn.Module):
    """Score videos ``[B, T, 3, H, W]`` with an image reward on sampled, weighted frames."""

    modality = "video"

    def __init__(
        self,
        image_reward: ImageReward,
        sampler: FrameSampler | None = None,
        weighting: FrameWeighting | None = None,
    ) -> None:
        super().__init__()
        if getattr(image_reward, "modality", "image") != "image":
            raise ValueError(f"VideoReward wraps image rewards; {image_reward.name!r} already scores videos")
        self.image_reward = image_reward
        self.sampler = sampler if sampler is not None else Segmental(4, "random")
        self.weighting = weighting if weighting is not None else TemporalAttenuation(1.0)

    @property
    def needs_prompt(self) -> bool:
        return self.image_reward.needs_prompt

    def frame_indices(self, num_frames: int, batch: int = 1, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Indices ``[batch, S]`` to decode, drawn independently per video (random modes use ``rng``)."""
        return torch.tensor([self.sampler.indices(num_frames, rng) for _ in range(batch)], dtype=torch.long)

    def score_sampled(
        self,
        frames: torch.Tensor,
        indices: torch.Tensor,
        num_frames: int,
        prompts: Sequence[str] | str | None = None,
    ) -> torch.Tensor:
        """Score already-decoded sampled frames ``[B, S, 3, H, W]`` taken at ``indices`` ``[B, S]``."""
        frames = as_float_videos(frames, keep_uint8=True)
        batch, segments = frames.shape[:2]
        prompts = check_prompts(prompts, batch, self.image_reward.name, self.needs_prompt)
        frame_prompts = None if prompts is None else [prompt for prompt in prompts for _ in range(segments)]
        scores = self.image_reward(frames.flatten(0, 1), frame_prompts).view(batch, segments)
        return self.weighting(scores, indices.to(scores.device), num_frames)

    def forward(
        self,
        videos: torch.Tensor,
        prompts: Sequence[str] | str | None = None,
        rng: np.random.Generator | None = None,
    ) -> torch.Tensor:
        videos = as_float_videos(videos, keep_uint8=True)
        batch, num_frames = videos.shape[:2]
        indices = self.frame_indices(num_frames, batch, rng)
        frames = torch.stack([video[index] for video, index in zip(videos, indices.to(videos.device), strict=True)])
        return self.score_sampled(frames, indices, num_frames, prompts)
