"""Synthetic clips and tiny random-weight checkpoints for the VBench-style dimensions.

Clips are uint8 ``[T, H, W, 3]`` numpy arrays with known motion: a static textured scene, a textured square
sliding over it at a given speed (pixels per frame), and a static scene whose brightness flickers. They are
what the weight-free dimensions are tested and benchmarked on, and what their agreement with the
model-based versions is measured on.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "flicker_clip",
    "moving_square_clip",
    "official_raft_key",
    "static_clip",
    "textured_background",
    "to_video_tensor",
    "write_dino_checkpoint",
    "write_raft_checkpoint",
    "write_viclip_checkpoint",
]


def textured_background(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random texture (blurred noise, uint8 ``[H, W, 3]``) that optical flow can lock onto."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(height // 4 + 2, width // 4 + 2, 3)).astype(np.float32)
    fine = np.repeat(np.repeat(coarse, 4, axis=0), 4, axis=1)[:height, :width]
    kernel = np.ones(5, dtype=np.float32) / 5
    for axis in (0, 1):
        fine = np.apply_along_axis(lambda line: np.convolve(line, kernel, mode="same"), axis, fine)
    return np.clip(fine, 0, 255).astype(np.uint8)


def static_clip(frames: int = 16, height: int = 64, width: int = 64, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """The same textured frame repeated, plus optional Gaussian pixel noise of std ``noise``."""
    clip = np.repeat(textured_background(height, width, seed)[None], frames, axis=0).astype(np.float32)
    if noise > 0:
        clip += np.random.default_rng(seed + 1).normal(0, noise, size=clip.shape).astype(np.float32)
    return np.clip(clip, 0, 255).round().astype(np.uint8)


def moving_square_clip(
    frames: int = 16, height: int = 64, width: int = 64, speed: float = 2.0, size: int = 24, seed: int = 0
) -> np.ndarray:
    """A textured ``size``-pixel square moving right (wrapping around) at ``speed`` pixels per frame over a
    static textured background; sub-pixel positions are rendered by linear interpolation."""
    background = textured_background(height, width, seed).astype(np.float32)
    patch = textured_background(size, size, seed + 7).astype(np.float32)
    top = (height - size) // 2
    clip = np.empty((frames, height, width, 3), dtype=np.float32)
    for index in range(frames):
        position = index * speed
        whole, fraction = int(np.floor(position)), position - np.floor(position)
        layer = np.zeros((height, width + size + 1, 3), dtype=np.float32)
        mask = np.zeros((height, width + size + 1, 1), dtype=np.float32)
        layer[top : top + size, :size] = patch
        mask[top : top + size, :size] = 1
        # Shift by the fractional part (linear interpolation), then roll by the whole part.
        layer = (1 - fraction) * layer + fraction * np.roll(layer, 1, axis=1)
        mask = (1 - fraction) * mask + fraction * np.roll(mask, 1, axis=1)
        start = 4 + whole
        columns = (np.arange(layer.shape[1]) + start) % width
        frame = background.copy()
        alpha = np.zeros((height, width, 1), dtype=np.float32)
        colour = np.zeros((height, width, 3), dtype=np.float32)
        np.add.at(colour, (slice(None), columns), layer * mask)
        np.add.at(alpha, (slice(None), columns), mask)
        alpha = np.clip(alpha, 0, 1)
        frame = frame * (1 - alpha) + colour
        clip[index] = frame
    return np.clip(clip, 0, 255).round().astype(np.uint8)


def flicker_clip(
    frames: int = 16, height: int = 64, width: int = 64, amplitude: float = 20.0, seed: int = 0
) -> np.ndarray:
    """A static textured scene whose brightness alternates by ``+-amplitude / 2`` every frame."""
    base = textured_background(height, width, seed).astype(np.float32)
    offsets = np.where(np.arange(frames) % 2 == 0, amplitude / 2, -amplitude / 2).astype(np.float32)
    return np.clip(base[None] + offsets[:, None, None, None], 0, 255).round().astype(np.uint8)


def to_video_tensor(*clips: np.ndarray) -> torch.Tensor:
    """uint8 clips ``[T, H, W, 3]`` (same shape) as one uint8 batch ``[B, T, 3, H, W]``."""
    return torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).contiguous()


_RAFT_STEM = {"convnormrelu.0": "conv1", "convnormrelu.1": "norm1", "conv": "conv2"}
_RAFT_BLOCK = {"convnormrelu1.0": "conv1", "convnormrelu1.1": "norm1", "convnormrelu2.0": "conv2", "convnormrelu2.1": "norm2"}
_RAFT_UPDATE = {
    "motion_encoder.convcorr1.0": "encoder.convc1",
    "motion_encoder.convcorr2.0": "encoder.convc2",
    "motion_encoder.convflow1.0": "encoder.convf1",
    "motion_encoder.convflow2.0": "encoder.convf2",
    "motion_encoder.conv.0": "encoder.conv",
    **{f"recurrent_block.convgru{n}.conv{g}": f"gru.conv{g}{n}" for n in (1, 2) for g in "zrq"},
    "flow_head.conv1": "flow_head.conv1",
    "flow_head.conv2": "flow_head.conv2",
}


def official_raft_key(key: str) -> str:
    """torchvision ``raft_large`` key -> princeton-vl RAFT's (core/raft.py, extractor.py, update.py), written
    from the official module names independently of rewardkit.rewards.raft's forward map."""
    name, _, parameter = key.rpartition(".")
    if name.startswith(("feature_encoder.", "context_encoder.")):
        encoder, _, rest = name.partition(".")
        prefix = "fnet" if encoder == "feature_encoder" else "cnet"
        if rest in _RAFT_STEM:
            return f"{prefix}.{_RAFT_STEM[rest]}.{parameter}"
        layer, block, inner = rest.split(".", 2)
        return f"{prefix}.{layer}.{block}.{_RAFT_BLOCK.get(inner, inner)}.{parameter}"
    if name.startswith("update_block."):
        return f"update_block.{_RAFT_UPDATE[name.removeprefix('update_block.')]}.{parameter}"
    return {"mask_predictor.convrelu.0": "update_block.mask.0", "mask_predictor.conv": "update_block.mask.2"}[name] + f".{parameter}"


def write_raft_checkpoint(path: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """A random RAFT (full size, 5.3 M parameters) saved as ``raft-things.pth`` is: ``torch.save`` of the
    ``nn.DataParallel`` state dict (keys ``module.fnet.conv1.weight``, ...; 179 keys, the context encoder's
    ``norm3`` stored twice, also as ``downsample.1``). Update-block weights are damped so 20 refinement
    iterations stay finite."""
    from torchvision.models.optical_flow import raft_large

    torch.manual_seed(seed)
    model = raft_large(weights=None, progress=False)
    state_dict: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for key, value in model.state_dict().items():
            value = value.clone()
            if value.is_floating_point():
                value = value + torch.randn_like(value) * 0.02
                if key.startswith("update_block.") or "running_var" in key:
                    value = value.abs() * 0.5 + 0.5 if "running_var" in key else value * 0.5
            official = f"module.{official_raft_key(key)}"
            state_dict[official] = value
            if ".downsample.1." in official:
                state_dict[official.replace("downsample.1", "norm3")] = value
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict, path)
    return path


def write_dino_checkpoint(
    path: str | os.PathLike[str], *, dim: int = 64, depth: int = 2, patch: int = 16, grid: int = 14, seed: int = 0
) -> Path:
    """A random DINO ViT in the layout of ``dino_vitbase16_pretrain.pth`` (flat state dict: ``cls_token``,
    ``pos_embed``, ``patch_embed.proj.*``, ``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*``,
    ``norm.*``); the real one is ``dim=768, depth=12``. Heads are ``dim // 64``, as the loader assumes."""
    from rewardkit.rewards.dino import DinoVisionTransformer

    torch.manual_seed(seed)
    model = DinoVisionTransformer(dim, depth, max(1, dim // 64), patch, grid)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def _official_resblock_shapes(prefix: str, width: int) -> dict[str, tuple[int, ...]]:
    """One CLIP residual block as ViCLIP names it (``nn.MultiheadAttention`` + ``c_fc``/``c_proj`` MLP)."""
    return {
        f"{prefix}.attn.in_proj_weight": (3 * width, width),
        f"{prefix}.attn.in_proj_bias": (3 * width,),
        f"{prefix}.attn.out_proj.weight": (width, width),
        f"{prefix}.attn.out_proj.bias": (width,),
        f"{prefix}.ln_1.weight": (width,),
        f"{prefix}.ln_1.bias": (width,),
        f"{prefix}.mlp.c_fc.weight": (4 * width, width),
        f"{prefix}.mlp.c_fc.bias": (4 * width,),
        f"{prefix}.mlp.c_proj.weight": (width, 4 * width),
        f"{prefix}.mlp.c_proj.bias": (width,),
        f"{prefix}.ln_2.weight": (width,),
        f"{prefix}.ln_2.bias": (width,),
    }


def viclip_state_shapes(
    *,
    vision_width: int = 1024,
    vision_layers: int = 24,
    patch: int = 14,
    resolution: int = 224,
    frames: int = 8,
    text_width: int = 768,
    text_layers: int = 12,
    context_length: int = 32,
    vocab_size: int = 49408,
    embed_dim: int = 768,
) -> dict[str, tuple[int, ...]]:
    """Key -> shape of ViCLIP's ``state_dict()`` (vbench/third_party/ViCLIP: viclip.py, viclip_vision.py
    ``VisionTransformer``, viclip_text.py ``CLIP_TEXT``), written from the official modules; the defaults are
    ViClip-InternVid-10M-FLT.pth's ViT-L/14 (8 frames, 32-token text context)."""
    grid = resolution // patch
    shapes: dict[str, tuple[int, ...]] = {
        "temp": (),
        "vision_encoder.conv1.weight": (vision_width, 3, 1, patch, patch),
        "vision_encoder.class_embedding": (vision_width,),
        "vision_encoder.positional_embedding": (grid * grid + 1, vision_width),
        "vision_encoder.temporal_positional_embedding": (1, frames, vision_width),
        "vision_encoder.ln_pre.weight": (vision_width,),
        "vision_encoder.ln_pre.bias": (vision_width,),
        "vision_encoder.ln_post.weight": (vision_width,),
        "vision_encoder.ln_post.bias": (vision_width,),
        "vision_encoder.proj": (vision_width, embed_dim),
        "text_encoder.token_embedding.weight": (vocab_size, text_width),
        "text_encoder.positional_embedding": (context_length, text_width),
        "text_encoder.ln_final.weight": (text_width,),
        "text_encoder.ln_final.bias": (text_width,),
        "text_encoder.text_projection": (text_width, embed_dim),
    }
    for layer in range(vision_layers):
        shapes.update(_official_resblock_shapes(f"vision_encoder.transformer.resblocks.{layer}", vision_width))
    for layer in range(text_layers):
        shapes.update(_official_resblock_shapes(f"text_encoder.transformer.resblocks.{layer}", text_width))
    return shapes


def write_viclip_checkpoint(
    path: str | os.PathLike[str],
    *,
    vision_width: int = 64,
    vision_layers: int = 2,
    patch: int = 32,
    text_width: int = 64,
    text_layers: int = 2,
    embed_dim: int = 32,
    seed: int = 0,
) -> Path:
    """A random ViCLIP saved as ``ViClip-InternVid-10M-FLT.pth`` is: ``torch.save({"model": state_dict})``
    with the official keys (``viclip_state_shapes``); 224-px input, 8 frames, 32-token context, the full CLIP
    vocabulary. LayerNorm weights are near 1, everything else small Gaussian noise."""
    generator = torch.Generator().manual_seed(seed)
    shapes = viclip_state_shapes(
        vision_width=vision_width, vision_layers=vision_layers, patch=patch, text_width=text_width,
        text_layers=text_layers, embed_dim=embed_dim,
    )
    state_dict: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        noise = torch.randn(shape, generator=generator)
        if key == "temp":
            state_dict[key] = torch.tensor(0.01)
        elif ".ln_" in key and key.endswith(".weight"):
            state_dict[key] = 1 + 0.1 * noise
        elif key.endswith(("_embedding", "proj", "projection")):
            state_dict[key] = noise * shape[-1] ** -0.5
        else:
            state_dict[key] = noise * 0.05
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state_dict}, path)
    return path


# ------------------------------------------------------------------ the tiny fixtures of TINY_REWARDS


def tiny_dynamic_degree(folder: str | os.PathLike[str]) -> dict[str, str]:
    """``create_reward("dynamic_degree", **options)`` on a random full-size RAFT."""
    return {"weights": str(write_raft_checkpoint(Path(folder) / "raft-things.pth"))}


def tiny_subject_consistency(folder: str | os.PathLike[str]) -> dict[str, str]:
    return {"weights": str(write_dino_checkpoint(Path(folder) / "dino_vitbase16_pretrain.pth"))}


def tiny_overall_consistency(folder: str | os.PathLike[str]) -> dict[str, str]:
    return {"weights": str(write_viclip_checkpoint(Path(folder) / "ViClip-InternVid-10M-FLT.pth"))}
