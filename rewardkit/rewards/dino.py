"""DINO ViT (Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021,
https://github.com/facebookresearch/dino) and VBench's ``subject_consistency`` on it.

VBench (Huang et al., CVPR 2024, arXiv:2311.17982, https://github.com/Vchitect/VBench,
vbench/subject_consistency.py): DINO ViT-B/16 (torch.hub ``dino_vitb16``, ``dino_vitbase16_pretrain.pth``)
CLS features of every frame; frames as float 0..255 resized so the short side is 224 (bilinear,
``antialias=False``, no crop), /255, ImageNet mean/std; DINO interpolates its position embeddings to the
frame's patch grid (bicubic, its ``+0.1`` scale trick). Per video
``mean_{i>=1} (max(0, cos(f_{i-1}, f_i)) + max(0, cos(f_0, f_i))) / 2`` (rewardkit.rewards.consistency).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F

from rewardkit.registry import WeightFile, register_reward
from rewardkit.rewards.consistency import FeatureConsistency
from rewardkit.weights import (
    WeightsArgument,
    WeightsMismatchError,
    build_with_weights,
    load_state_dict,
    load_strict,
)

__all__ = ["DINO_WEIGHTS", "DinoVisionTransformer"]

# Size: ViT-B/16's 85,798,656 parameters in fp32, counted from the architecture (DINO's README: 85 M).
DINO_WEIGHTS = WeightFile(
    "facebookresearch/dino",
    "dino_vitbase16_pretrain.pth",
    343_194_624,
    "Apache-2.0",
    url="https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth",
)


class _DinoBlock(torch.nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.attn = torch.nn.Module()
        self.attn.qkv = torch.nn.Linear(dim, 3 * dim)
        self.attn.proj = torch.nn.Linear(dim, dim)
        self.norm2 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.mlp = torch.nn.Module()
        self.mlp.fc1 = torch.nn.Linear(dim, 4 * dim)
        self.mlp.fc2 = torch.nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q, k, v = self.attn.qkv(self.norm1(x)).view(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, tokens, dim)
        x = x + self.attn.proj(attended)
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


class DinoVisionTransformer(torch.nn.Module):
    """DINO's ViT (vision_transformer.py) with its parameter names; ``forward`` returns the normed CLS token
    (``num_classes=0``), position embeddings interpolated to the input's patch grid as DINO does."""

    def __init__(self, dim: int = 768, depth: int = 12, heads: int = 12, patch: int = 16, grid: int = 14) -> None:
        super().__init__()
        self.patch = patch
        self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = torch.nn.Parameter(torch.zeros(1, grid * grid + 1, dim))
        self.patch_embed = torch.nn.Module()
        self.patch_embed.proj = torch.nn.Conv2d(3, dim, patch, patch)
        self.blocks = torch.nn.ModuleList(_DinoBlock(dim, heads) for _ in range(depth))
        self.norm = torch.nn.LayerNorm(dim, eps=1e-6)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor], source: str) -> DinoVisionTransformer:
        """Shapes read from a DINO checkpoint (heads = width / 64, DINO's ViT-S/B convention); loaded strictly."""
        if "cls_token" not in state_dict or "patch_embed.proj.weight" not in state_dict:
            raise WeightsMismatchError(
                f"{source} is not a DINO ViT checkpoint (expected a flat state dict with cls_token, pos_embed, "
                f"patch_embed.proj.*, blocks.N.*, norm.*, as dino_vitbase16_pretrain.pth)"
            )
        dim = state_dict["cls_token"].shape[-1]
        depth = len({key.split(".")[1] for key in state_dict if key.startswith("blocks.")})
        grid = math.isqrt(state_dict["pos_embed"].shape[1] - 1)
        model = cls(dim, depth, max(1, dim // 64), state_dict["patch_embed.proj.weight"].shape[-1], grid)
        load_strict(model, state_dict, source)
        return model

    def position_embedding(self, tokens: int, height: int, width: int) -> torch.Tensor:
        trained = self.pos_embed.shape[1] - 1
        if tokens - 1 == trained and height == width:
            return self.pos_embed
        grid = math.isqrt(trained)
        rows, columns = height // self.patch + 0.1, width // self.patch + 0.1
        patches = self.pos_embed[:, 1:].reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, scale_factor=(rows / grid, columns / grid), mode="bicubic")
        return torch.cat([self.pos_embed[:, :1], patches.permute(0, 2, 3, 1).flatten(1, 2)], dim=1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed.proj(pixels).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1)
        x = x + self.position_embedding(x.shape[1], *pixels.shape[-2:])
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]



@register_reward(
    "subject_consistency",
    modality="video",
    needs_prompt=False,
    differentiable=True,
    score_range=(0.0, 1.0),
    weights={"model": DINO_WEIGHTS},
    description="VBench subject consistency: DINO ViT-B/16 feature similarity to the previous and first frame",
    paper="arXiv:2311.17982",
    repository="https://github.com/Vchitect/VBench",
)
def create_subject_consistency(*, device: torch.device, dtype: torch.dtype, weights: WeightsArgument) -> FeatureConsistency:
    """VBench's subject consistency; ``weights`` is DINO's ``dino_vitbase16_pretrain.pth`` (downloaded from
    dl.fbaipublicfiles.com when absent)."""

    def build(paths: Mapping[str, Path]) -> FeatureConsistency:
        path = paths["model"]
        encoder = DinoVisionTransformer.from_state_dict(load_state_dict(path), str(path)).to(device=device, dtype=dtype)
        return FeatureConsistency(encoder, "dino", dtype=dtype)

    return build_with_weights("subject_consistency", weights, {}, build)
