"""The interface a text-to-video model offers the fine-tuning objectives.

An adapter hides a model family's differences: how prompts become conditioning (with the negative
conditioning for classifier-free guidance), the latent shape, what the denoiser predicts (epsilon, v,
flow velocity), the sampler's timesteps and one sampler step, and decoding ONLY chosen frames. The
objectives are written against this interface alone, so a flow-matching model (Wan 2.1: timesteps are
sigmas, ``add_noise`` is ``(1 - s) x + s n``, ``step`` an Euler step on the velocity) plugs in by
implementing the same methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["Conditioning", "VideoDiffusionAdapter"]


@dataclass
class Conditioning:
    """Prompt conditioning of a batch; ``negative`` is None when guidance is off."""

    positive: torch.Tensor
    negative: torch.Tensor | None


class VideoDiffusionAdapter(ABC):
    """A text-to-video diffusion model seen by the trainer; ``denoiser`` is the module LoRA adapts."""

    denoiser: torch.nn.Module
    num_frames: int
    height: int
    width: int

    @abstractmethod
    def encode_prompts(self, prompts: Sequence[str], negative_prompt: str = "", guidance: bool = True) -> Conditioning:
        """Frozen text conditioning for ``prompts`` (and the negative prompt when ``guidance``)."""

    @abstractmethod
    def latent_shape(self, batch: int) -> tuple[int, ...]:
        """Shape of the latents of ``batch`` videos."""

    @abstractmethod
    def timesteps(self, num_steps: int) -> list[int]:
        """The sampler's timesteps of a ``num_steps`` chain, noisiest first."""

    @abstractmethod
    def add_noise(self, latents: torch.Tensor, noise: torch.Tensor, timestep: int) -> torch.Tensor:
        """The forward process: clean ``latents`` noised to ``timestep``."""

    @abstractmethod
    def step(
        self, latents: torch.Tensor, timestep: int, num_steps: int, conditioning: Conditioning, guidance_scale: float
    ) -> torch.Tensor:
        """One deterministic sampler step from ``timestep`` to the next one of a ``num_steps`` chain."""

    @abstractmethod
    def encode_videos(self, videos: torch.Tensor) -> torch.Tensor:
        """Latents of videos ``[B, F, 3, H, W]`` in [0, 1]."""

    @abstractmethod
    def decode_frames(self, latents: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Frames ``[B, K, 3, H, W]`` in [0, 1] at ``indices`` ``[B, K]``; only those frames are decoded."""

    def decode_all(self, latents: torch.Tensor) -> torch.Tensor:
        """Every frame (for sample videos)."""
        batch = latents.shape[0]
        indices = torch.arange(self.num_frames).expand(batch, -1)
        return self.decode_frames(latents, indices)
