"""Tiny random-weight MUSIQ checkpoints in pyiqa's layout, for offline tests of ``imaging_quality``.

The key names and shapes are written out here from pyiqa's modules (``pyiqa/archs/musiq_arch.py``:
``MUSIQ.conv_root``/``gn_root``/``block1`` (``Bottleneck``)/``embedding``/``transformer_encoder``
(``TransformerEncoder``: ``posembed_input.position_emb``, ``scaleembed_input.scale_emb``, ``cls``,
``encoder_norm``, ``transformer.encoderblock_{i}`` with ``norm1``, ``attention.{query,key,value,out}``,
``norm2``, ``mlp.fc1``/``fc2``)/``head``), independently of rewardkit's model, so a test that loads them
checks rewardkit's names against pyiqa's. The official file is a flat state dict saved with ``torch.save``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

__all__ = ["official_musiq_shapes", "write_musiq_checkpoint"]


def official_musiq_shapes(
    *, hidden_size: int = 384, mlp_dim: int = 1152, num_layers: int = 14, num_scales: int = 3, grid_size: int = 10, patch_size: int = 32
) -> dict[str, tuple[int, ...]]:
    """Every key of pyiqa's ``MUSIQ(num_class=1, ...)`` state dict with its shape (defaults: the SPAQ model)."""
    stem, wide = 64, 256
    shapes: dict[str, tuple[int, ...]] = {
        "conv_root.weight": (stem, 3, 7, 7),
        "gn_root.weight": (stem,),
        "gn_root.bias": (stem,),
    }
    for name, out_channels, in_channels, kernel in (
        ("1", stem, stem, 1), ("2", stem, stem, 3), ("3", wide, stem, 1), ("_proj", wide, stem, 1),
    ):
        shapes[f"block1.conv{name}.weight"] = (out_channels, in_channels, kernel, kernel)
        shapes[f"block1.gn{name}.weight"] = (out_channels,)
        shapes[f"block1.gn{name}.bias"] = (out_channels,)
    shapes["embedding.weight"] = (hidden_size, wide * (patch_size // 4) ** 2)
    shapes["embedding.bias"] = (hidden_size,)
    encoder = "transformer_encoder"
    shapes[f"{encoder}.posembed_input.position_emb"] = (1, grid_size * grid_size, hidden_size)
    shapes[f"{encoder}.scaleembed_input.scale_emb"] = (num_scales, hidden_size)
    shapes[f"{encoder}.cls"] = (1, 1, hidden_size)
    for layer in range(num_layers):
        block = f"{encoder}.transformer.encoderblock_{layer}"
        for norm in ("norm1", "norm2"):
            shapes[f"{block}.{norm}.weight"] = (hidden_size,)
            shapes[f"{block}.{norm}.bias"] = (hidden_size,)
        for projection in ("query", "key", "value", "out"):
            shapes[f"{block}.attention.{projection}.weight"] = (hidden_size, hidden_size)
            shapes[f"{block}.attention.{projection}.bias"] = (hidden_size,)
        shapes[f"{block}.mlp.fc1.weight"] = (mlp_dim, hidden_size)
        shapes[f"{block}.mlp.fc1.bias"] = (mlp_dim,)
        shapes[f"{block}.mlp.fc2.weight"] = (hidden_size, mlp_dim)
        shapes[f"{block}.mlp.fc2.bias"] = (hidden_size,)
    shapes[f"{encoder}.encoder_norm.weight"] = (hidden_size,)
    shapes[f"{encoder}.encoder_norm.bias"] = (hidden_size,)
    shapes["head.weight"] = (1, hidden_size)
    shapes["head.bias"] = (1,)
    return shapes


def write_musiq_checkpoint(
    path: str | os.PathLike[str],
    *,
    hidden_size: int = 48,
    mlp_dim: int = 64,
    num_layers: int = 2,
    seed: int = 0,
    prefix: str = "",
) -> Path:
    """A tiny MUSIQ (6 heads, as every MUSIQ checkpoint) with random weights as ``torch.save`` of a flat
    state dict, like ``musiq_spaq_ckpt-358bb6af.pth``; ``prefix="module."`` mimics a DataParallel save.
    Norm scales are near 1 and the head's bias is 50 so scores land around the SPAQ range."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in official_musiq_shapes(hidden_size=hidden_size, mlp_dim=mlp_dim, num_layers=num_layers).items():
        noise = torch.randn(shape, generator=generator)
        is_norm = ".gn" in key or key.startswith("gn_") or "norm" in key
        if is_norm and key.endswith(".weight"):
            value = 1 + 0.1 * noise
        elif key == "head.bias":
            value = torch.full(shape, 50.0)
        elif key == "head.weight":
            value = 10 * noise / hidden_size**0.5
        elif key.endswith("bias"):
            value = 0.1 * noise
        elif key.endswith(".weight"):
            value = noise / math.prod(shape[1:]) ** 0.5  # conv and linear weights: unit-variance outputs
        else:
            value = 0.5 * noise  # position, scale and CLS embeddings
        state[prefix + key] = value
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def tiny_imaging_quality(folder: str | os.PathLike[str]) -> dict[str, str]:
    """``create_reward("imaging_quality", **options)`` on the tiny MUSIQ."""
    return {"weights": str(write_musiq_checkpoint(Path(folder) / "musiq_spaq_ckpt-358bb6af.pth"))}
