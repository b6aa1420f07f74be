"""Model adapters: each hides one family of text-to-video models behind ``VideoDiffusionAdapter``."""

from __future__ import annotations

import torch

from rewardkit.finetune.models.animatediff import AnimateDiffAdapter, load_animatediff
from rewardkit.finetune.models.base import (
    Conditioning,
    DDIMLatentAdapter,
    VideoDiffusionAdapter,
    ddim_timestep,
    ddim_timesteps,
)
from rewardkit.finetune.models.unet3d import UNet3DAdapter, load_unet3d

__all__ = [
    "Conditioning",
    "VideoDiffusionAdapter",
    "DDIMLatentAdapter",
    "UNet3DAdapter",
    "AnimateDiffAdapter",
    "ddim_timestep",
    "ddim_timesteps",
    "load_unet3d",
    "load_animatediff",
    "load_model",
    "MODEL_FAMILIES",
]

MODEL_FAMILIES = ("unet3d", "animatediff")


def load_model(config, device: torch.device | str = "cpu") -> VideoDiffusionAdapter:
    """The adapter named by a recipe's ``[model]`` section (``family``)."""
    from rewardkit.registry import parse_dtype

    common = {
        "num_frames": config.num_frames, "height": config.height, "width": config.width, "dtype": parse_dtype(config.dtype),
        "revision": config.revision, "variant": config.variant, "device": device,
    }
    if config.family == "unet3d":
        return load_unet3d(config.path, **common)
    if config.family == "animatediff":
        return load_animatediff(config.path, motion_adapter=config.motion_adapter, **common)
    raise ValueError(f"unknown model family {config.family!r}; available: {', '.join(MODEL_FAMILIES)}")
