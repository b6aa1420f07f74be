"""Tiny DOVER checkpoints in the official layout, for offline tests and benchmarks (nothing downloads).

``write_dover_checkpoint`` saves ``torch.save(state_dict)``: a flat dict with exactly the key names and
nesting of the official ``DOVER`` model's ``state_dict()`` (``technical_backbone.*``, ``aesthetic_backbone.*``,
``technical_head.*``, ``aesthetic_head.*``; Swin's ``relative_position_index`` buffers included), as
``DOVER.pth`` and ``DOVER-Mobile.pth`` are. A ConvNeXt-V2 backbone (DOVER-Mobile) also gets the ImageNet
classifier ``head.{weight,bias}`` (1000 classes) that the official ``ConvNeXtV23D`` always builds and saves.
The tiny configurations keep the official geometry (patch (2, 4, 4), window (8, 7, 7), 7x7 fragments of
32 pixels, 3 clips of 32 frames, 224-pixel views) and shrink only widths and depths.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from rewardkit.rewards.dover import FUSE_CENTRES, ConvNeXtConfig, DoverConfig, DoverModel, SwinConfig

__all__ = ["TINY_DOVER", "TINY_DOVER_MOBILE", "random_dover_state_dict", "write_dover_checkpoint", "pattern_video"]

TINY_DOVER = DoverConfig(
    technical=SwinConfig(embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 1, 2, 2)),
    aesthetic=ConvNeXtConfig(dims=(8, 16, 32, 64), depths=(2, 2, 3, 2)),
    head_hidden=4,
)
_TINY_V2 = ConvNeXtConfig(dims=(8, 16, 32, 64), depths=(2, 2, 3, 2), version=2)
TINY_DOVER_MOBILE = DoverConfig(technical=_TINY_V2, aesthetic=_TINY_V2, head_hidden=4)
IMAGENET_CLASSES = 1000


def random_dover_state_dict(config: DoverConfig, *, seed: int = 0, centred_heads: bool = False) -> dict[str, torch.Tensor]:
    """A state dict in the official layout with every parameter random, so that every weight matters:
    matrices and kernels with standard deviation 1/sqrt(fan_in), LayerNorm scales 1 + 0.1 z, position
    bias tables 0.5 z, biases, layer scales and GRN parameters 0.1 z (z standard normal; ConvNeXt's 1e-6
    layer scale would silence the blocks).

    ``centred_heads`` (the real sizes pass True; every other tensor is drawn the same): each head's last
    layer (``fc_last``) at a tenth of that scale, its bias at the branch score that the published fusion
    centres on (``FUSE_CENTRES``), so that the raw branch scores fall in the range trained DOVER gives
    (about -0.2..0.4) and the fused score is not saturated. Without it the real-size heads give about
    0.5 (technical) and 1.0 (aesthetic) on any clip, 5 and 29 of the fusion's scales from its centres,
    and the fused score is 1 - 1e-6."""
    generator = torch.Generator().manual_seed(seed)
    model = DoverModel(config)
    state_dict: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        if not value.is_floating_point():  # relative_position_index: a fixed function of the window
            state_dict[key] = value.clone()
            continue
        noise = torch.randn(value.shape, generator=generator)
        if key.endswith("_table"):
            state_dict[key] = noise * 0.5
        elif value.ndim >= 2 and not key.endswith(("grn.gamma", "grn.beta")):
            state_dict[key] = noise / (value[0].numel() ** 0.5)
        elif value.ndim == 1 and key.endswith(".weight"):  # every 1-D weight is a LayerNorm scale
            state_dict[key] = 1 + 0.1 * noise
        else:
            state_dict[key] = 0.1 * noise
    for branch in ("technical", "aesthetic"):
        backbone = getattr(config, branch)
        if isinstance(backbone, ConvNeXtConfig) and backbone.version == 2:
            width = backbone.out_channels
            state_dict[f"{branch}_backbone.head.weight"] = torch.randn(IMAGENET_CLASSES, width, generator=generator) * 0.02
            state_dict[f"{branch}_backbone.head.bias"] = torch.zeros(IMAGENET_CLASSES)
    if centred_heads:
        for branch, centre in FUSE_CENTRES.items():
            state_dict[f"{branch}_head.fc_last.weight"] *= 0.1
            state_dict[f"{branch}_head.fc_last.bias"] = torch.full((1,), centre)
    return state_dict


def write_dover_checkpoint(
    path: str | os.PathLike[str], config: DoverConfig = TINY_DOVER, *, seed: int = 0, centred_heads: bool = False
) -> Path:
    """``torch.save`` a random state dict of ``config`` in the official flat layout (see module docstring;
    ``centred_heads``: see ``random_dover_state_dict``, the real sizes pass True)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(random_dover_state_dict(config, seed=seed, centred_heads=centred_heads), path)
    return path


def pattern_video(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 ``[T, H, W, 3]``: a textured scene drifting right with a moving disk and noise, so that every
    fragment and frame differs (the views and scores then depend on where they are cut)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (height // 8 + 1, (width + 2 * frames) // 8 + 1, 3)).astype(np.float64)
    texture = np.kron(blocks, np.ones((8, 8, 1)))
    yy, xx = np.mgrid[:height, :width]
    video = np.empty((frames, height, width, 3), dtype=np.uint8)
    for t in range(frames):
        frame = texture[:height, 2 * t : 2 * t + width].copy()
        frame[..., 0] = 0.5 * frame[..., 0] + 127 * xx / max(width - 1, 1)
        disk = (yy - height / 2) ** 2 + (xx - (t * 5) % width) ** 2 < (min(height, width) / 5) ** 2
        frame[disk] = (230, 40, 40)
        frame += rng.normal(0, 8, frame.shape)
        video[t] = np.clip(np.round(frame), 0, 255).astype(np.uint8)
    return video


def tiny_dover(folder: str | os.PathLike[str]) -> dict[str, str]:
    """``create_reward("dover", **options)`` on the tiny DOVER."""
    return {"weights": str(write_dover_checkpoint(Path(folder) / "DOVER.pth"))}
