"""Model adapters: each hides one family of text-to-video models behind ``VideoDiffusionAdapter``."""

from __future__ import annotations

import torch

from rewardkit.finetune.models.base import Conditioning, VideoDiffusionAdapter
from rewardkit.finetune.models.unet3d import UNet3DAdapter, ddim_timestep, ddim_timesteps, load_unet3d

__all__ = ["Conditioning", "VideoDiffusionAdapter", "UNet3DAdapter", "ddim_timestep", "ddim_timesteps", "load_model"]


def load_model(config, device: torch.device | str = "cpu") -> VideoDiffusionAdapter:
    """The adapter named by a recipe's ``[model]`` section (``family``)."""
    from rewardkit.registry import parse_dtype

    if config.family == "unet3d":
        return load_unet3d(
            config.path, num_frames=config.num_frames, height=config.height, width=config.width,
            dtype=parse_dtype(config.dtype), revision=config.revision, variant=config.variant, device=device,
        )
    raise ValueError(f"unknown model family {config.family!r}; available: unet3d")
