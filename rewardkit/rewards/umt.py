"""UMT (Li et al., "Unmasked Teacher: Towards Training-Efficient Video Foundation Models", ICCV 2023,
arXiv:2303.16058, https://github.com/OpenGVLab/unmasked_teacher) as VBench uses it, and VBench's
``human_action`` on it.

VBench (Huang et al., arXiv:2311.17982, https://github.com/Vchitect/VBench, ``vbench/human_action.py`` with
``vbench/third_party/umt``) classifies each video with UMT-L/16 fine-tuned on Kinetics-400
(``l16_ptk710_ftk710_ftk400_f16_res224.pth``) and counts it correct when the action its file name names is one
of the top-5 classes whose sigmoid score, rounded to 4 decimals, is at least 0.85
(``rewardkit.rewards.vbench_rules.human_action_correct``); the dimension is the fraction of correct videos.

- Frames: 16, ``get_frame_indices(16, T, sample="middle")`` (``VBenchMiddleFrames``), as uint8.
- Preprocessing (``vbench_umt_transform``), VBench's ``Compose([Resize(256, "bilinear"), CenterCrop(224),
  ClipToTensor(), Normalize(ImageNet)])`` from UMT's video transforms: OpenCV ``INTER_LINEAR`` resize of
  each frame so the short side is 256 (the long side ``int(256 * long / short)``; skipped when the short
  side is already 256), a 224 crop at ``int(round((size - 224) / 2))`` (Python's half-to-even rounding),
  ``/ 255`` in float32, ImageNet mean and std; the clip is ``[3, 16, 224, 224]``.
- Network (``UmtClassifier``, the parameter names of UMT's ``modeling_finetune.VisionTransformer`` as VBench
  builds it: ``vit_large_patch16_224``, ``all_frames=16, tubelet_size=1, use_mean_pooling=True``): a
  ``Conv3d`` patch embedding (1 x 16 x 16), fixed sine-cosine positions made for 8 frames of 14 x 14 patches
  and linearly interpolated to 16 frames, 24 pre-norm blocks (width 1024, 16 heads, a q and v bias but no k
  bias, exact GELU MLP, LayerNorm eps 1e-6), the mean over all tokens, ``fc_norm`` and a 400-class ``head``.

Weights: the Hub's file is a flat state dict of float16 tensors (607 MB: exactly the 303,484,304 parameters
without ``pos_embed`` at 2 bytes each). VBench loads it with ``strict=False``, so its positions are the fixed
table above; a checkpoint that carries ``pos_embed`` (as UMT's training code would save it) replaces the table,
as it would in VBench. Every other key is loaded strictly; the widths, depth and class count are read from the
checkpoint (heads = width / 64). The Kinetics-400 class names come from VBench's
``kinetics_400_categories.txt`` (``name<TAB>index``), pinned and hash-checked like the weights.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rewardkit.errors import UserInputError
from rewardkit.lazy import lazy_import
from rewardkit.registry import WeightFile, register_reward
from rewardkit.rewards.base import VideoScorer
from rewardkit.rewards.vbench_rules import action_label, human_action_correct
from rewardkit.rewards.viclip import VBenchMiddleFrames
from rewardkit.transforms import as_float_videos, check_prompts
from rewardkit.weights import (
    WeightsArgument,
    WeightsMismatchError,
    build_with_weights,
    load_state_dict,
    load_strict,
)

cv2 = lazy_import("cv2", extra="eval")

__all__ = [
    "KINETICS_CLASSES_FILE",
    "UMT_WEIGHTS",
    "HumanAction",
    "UmtClassifier",
    "create_human_action",
    "load_kinetics_classes",
    "load_umt",
    "sinusoid_positions",
    "vbench_umt_transform",
]

# Size and sha256 as the Hub lists the file (commit b696240, its Git LFS details: 607 MB); the repo's licence.
UMT_WEIGHTS = WeightFile(
    "OpenGVLab/VBench_Used_Models",
    "l16_ptk710_ftk710_ftk400_f16_res224.pth",
    607_000_000,
    "Apache-2.0",
    sha256="bfee78a03bf806fbc0c216309e8f92792011b7db6556fa860e9d869c1e69fecd",
)

# human_action's class names (``name<TAB>index`` per line, 400 lines), read by VBench's ``build_dict``.
KINETICS_CLASSES_FILE = WeightFile(
    "Vchitect/VBench",
    "kinetics_400_categories.txt",
    7_446,
    "Apache-2.0",
    sha256="903552632974b59d4d1beda96f7bb2829602bfeca1b3fdd5eb4bec3c5a12c1df",
    url="https://raw.githubusercontent.com/Vchitect/VBench/45e79ec14e69a2187202c675d2dbce1a71843d53/"
    "vbench/third_party/umt/kinetics_400_categories.txt",
    holds_weights=False,
)

FRAMES = 16  # VBench: create_model(..., all_frames=16), load_video(num_frames=16)
IMAGE_SIZE = 224
SHORT_SIDE = 256
PATCH_GRID = IMAGE_SIZE // 16
TABLE_FRAMES = 8  # UMT's sine-cosine table is made for 8 frames (pre_n_position = 8 * 14 * 14) and interpolated
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def sinusoid_positions(width: int, frames: int = FRAMES) -> torch.Tensor:
    """UMT's fixed positions ``[1, frames * 196, width]``: the sine-cosine table of 8 frames x 14 x 14
    positions (angle ``p / 10000 ** (2 * (j // 2) / width)``, sine on even channels, cosine on odd, in float64,
    then float32), linearly interpolated along time to ``frames`` (``align_corners=False``)."""
    positions = np.arange(TABLE_FRAMES * PATCH_GRID * PATCH_GRID, dtype=np.float64)[:, None]
    angles = positions / np.power(10000, 2 * (np.arange(width) // 2) / width)[None, :]
    angles[:, 0::2], angles[:, 1::2] = np.sin(angles[:, 0::2]), np.cos(angles[:, 1::2])
    table = torch.tensor(angles, dtype=torch.float32, device="cpu")  # on the CPU even under a meta-device context
    if frames == TABLE_FRAMES:
        return table[None]
    by_time = table.view(TABLE_FRAMES, PATCH_GRID * PATCH_GRID, width).permute(1, 2, 0)  # [196, width, 8]
    stretched = F.interpolate(by_time, size=frames, mode="linear")  # [196, width, frames]
    return stretched.permute(2, 0, 1).reshape(1, frames * PATCH_GRID * PATCH_GRID, width)


class _Attention(nn.Module):
    """UMT's attention: one bias-free ``qkv`` projection plus separate q and v biases (k has none)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(width))
        self.v_bias = nn.Parameter(torch.zeros(width))
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        q, k, v = F.linear(x, self.qkv.weight, bias).view(batch, tokens, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v)
        return self.proj(attended.transpose(1, 2).reshape(batch, tokens, width))


class _Mlp(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, width: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = _Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = _Mlp(width, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, width: int, tubelet: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(3, width, kernel_size=(tubelet, 16, 16), stride=(tubelet, 16, 16))


class UmtClassifier(nn.Module):
    """UMT's video ViT classifier (``modeling_finetune.VisionTransformer`` with mean pooling), parameter
    names kept. Input ``[B, 3, 16, 224, 224]`` (normalised); output the class logits ``[B, classes]``.
    Defaults are VBench's UMT-L/16."""

    def __init__(self, *, width: int = 1024, depth: int = 24, hidden: int = 4096, classes: int = 400, tubelet: int = 1) -> None:
        super().__init__()
        if width % 64:
            raise ValueError(f"UMT's width is a multiple of its 64-channel heads, got {width}")
        self.patch_embed = _PatchEmbed(width, tubelet)
        # Fixed (not a parameter of the published file); a checkpoint's own pos_embed replaces it (load_umt).
        self.register_buffer("pos_embed", sinusoid_positions(width, FRAMES // tubelet), persistent=False)
        self.blocks = nn.ModuleList(_Block(width, width // 64, hidden) for _ in range(depth))
        self.fc_norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, classes)

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed.proj(videos).flatten(2).transpose(1, 2)
        x = x + self.pos_embed.to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.head(self.fc_norm(x.mean(1)))


def load_umt(path: Path) -> UmtClassifier:
    """UMT from a flat state dict in the layout of ``l16_ptk710_ftk710_ftk400_f16_res224.pth``, built to its
    shapes and loaded strictly (``pos_embed`` optional, see the module docstring); eval, frozen, float32."""
    state = dict(load_state_dict(path))
    needed = ("patch_embed.proj.weight", "blocks.0.mlp.fc1.weight", "head.weight")
    if not all(isinstance(state.get(key), torch.Tensor) for key in needed):
        raise WeightsMismatchError(
            f"{path} is not a UMT checkpoint (expected a flat state dict with patch_embed.*, blocks.N.* and head.* "
            f"keys, as l16_ptk710_ftk710_ftk400_f16_res224.pth)"
        )
    patch = state["patch_embed.proj.weight"]
    hidden = state["blocks.0.mlp.fc1.weight"].shape[0]
    depth = len({key.split(".")[1] for key in state if key.startswith("blocks.")})
    model = UmtClassifier(width=patch.shape[0], depth=depth, hidden=hidden, classes=state["head.weight"].shape[0], tubelet=patch.shape[2])
    own = state.pop("pos_embed", None)
    if own is not None:
        if tuple(own.shape) != tuple(model.pos_embed.shape):
            raise WeightsMismatchError(f"{path}: pos_embed has shape {tuple(own.shape)}, the model needs {tuple(model.pos_embed.shape)}")
        model.pos_embed.copy_(own)
    load_strict(model, state, str(path))
    return model.float().eval().requires_grad_(False)


def load_kinetics_classes(path: str | Path) -> tuple[str, ...]:
    """Kinetics-400 class names in index order, lower case (VBench's ``build_dict``), from a file in the
    format of VBench's ``kinetics_400_categories.txt``: ``name<TAB>index`` per line."""
    path = Path(path)
    names: dict[int, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        name, tab, index = line.strip().partition("\t")
        if not tab or not index.isdigit():
            raise UserInputError(f"{path} line {number}: expected 'class name<TAB>index', got {line!r}")
        names[int(index)] = name.lower()
    if sorted(names) != list(range(len(names))):
        raise UserInputError(f"{path}: class indices must be 0..{len(names) - 1} without gaps")
    return tuple(names[index] for index in range(len(names)))


def vbench_umt_transform(frames: np.ndarray) -> torch.Tensor:
    """VBench's human_action preprocessing of uint8 frames ``[T, H, W, 3]``: ``[3, T, 224, 224]`` float32."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames [T, H, W, 3], got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    if min(height, width) != SHORT_SIDE:
        if width < height:
            size = (SHORT_SIDE, int(SHORT_SIDE * height / width))  # (width, height), as OpenCV takes it
        else:
            size = (int(SHORT_SIDE * width / height), SHORT_SIDE)
        frames = np.stack([cv2.resize(np.ascontiguousarray(frame), size, interpolation=cv2.INTER_LINEAR) for frame in frames])
        height, width = frames.shape[1:3]
    top, left = int(round((height - IMAGE_SIZE) / 2.0)), int(round((width - IMAGE_SIZE) / 2.0))
    crop = torch.from_numpy(np.ascontiguousarray(frames[:, top : top + IMAGE_SIZE, left : left + IMAGE_SIZE]))
    clip = crop.permute(3, 0, 1, 2).float() / 255
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32)[:, None, None, None]
    return (clip - mean) / std


class HumanAction(VideoScorer):
    """VBench human_action: 1 when the action the prompt names (``action_label``: ``"A person is riding a
    bike"`` -> ``"riding a bike"``) is among UMT's top-5 Kinetics-400 classes scoring at least 0.85, else 0.
    Output ``label_probability``: UMT's sigmoid score of that class (0 when the prompt names no class)."""

    needs_prompt = True
    output_names = ("label_probability",)

    def __init__(self, model: UmtClassifier, classes: Sequence[str], *, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if model.num_classes != len(classes):
            raise WeightsMismatchError(f"the UMT checkpoint has {model.num_classes} classes but the class list names {len(classes)}")
        self.model = model
        self.classes = tuple(classes)
        self.dtype = dtype
        self.sampler = VBenchMiddleFrames(FRAMES)
        self.weights_sha256: str | None = None
        self._warned: set[str] = set()

    @torch.no_grad()
    def class_probabilities(self, frames: torch.Tensor) -> torch.Tensor:
        """Sigmoid class scores ``[B, classes]`` (float32) of the 16 sampled frames ``[B, 16, 3, H, W]`` per video."""
        videos = as_float_videos(frames, keep_uint8=True)
        if videos.dtype != torch.uint8:  # float [0, 1]: the 8-bit frames a video file would hold
            videos = (videos.float() * 255.0).round().clamp(0, 255).to(torch.uint8)
        if videos.shape[1] != FRAMES:
            raise ValueError(f"human_action classifies {FRAMES} frames per video (its sampler's), got {videos.shape[1]}")
        device = self.model.head.weight.device
        clips = torch.stack([vbench_umt_transform(video.permute(0, 2, 3, 1).cpu().numpy()) for video in videos])
        return torch.sigmoid(self.model(clips.to(device=device, dtype=self.dtype)).float()).cpu()

    def score_sampled_details(
        self, frames: torch.Tensor, indices: torch.Tensor | None, num_frames: int, prompts: Any = None, rng: Any = None
    ) -> dict[str, torch.Tensor]:
        videos = as_float_videos(frames, keep_uint8=True)
        texts = check_prompts(prompts, videos.shape[0], "human_action", needs_prompt=True)
        probabilities = self.class_probabilities(videos)
        scores, label_probabilities = [], []
        for row, text in zip(probabilities.tolist(), texts, strict=True):
            label = action_label(text)
            if label not in self.classes and label not in self._warned:
                self._warned.add(label)
                warnings.warn(f"human_action: {label!r} (from the prompt {text!r}) is not a Kinetics-400 class; VBench counts such a video wrong", stacklevel=2)
            scores.append(float(human_action_correct(row, self.classes, label)))
            label_probabilities.append(row[self.classes.index(label)] if label in self.classes else 0.0)
        return {"score": torch.tensor(scores), "label_probability": torch.tensor(label_probabilities)}


@register_reward(
    "human_action",
    modality="video",
    needs_prompt=True,
    differentiable=False,
    score_range=(0.0, 1.0),
    weights={"model": UMT_WEIGHTS, "classes": KINETICS_CLASSES_FILE},
    description="VBench human action: UMT-L/16 Kinetics-400 top-5 (score >= 0.85) holds the prompt's action",
    paper="arXiv:2311.17982; UMT arXiv:2303.16058",
    repository="https://github.com/Vchitect/VBench",
)
def create_human_action(*, device: torch.device, dtype: torch.dtype, weights: WeightsArgument) -> HumanAction:
    """VBench's human_action; ``weights`` is UMT's ``l16_ptk710_ftk710_ftk400_f16_res224.pth`` (role ``classes``:
    VBench's ``kinetics_400_categories.txt``)."""

    def build(paths: Mapping[str, Path]) -> HumanAction:
        model = load_umt(paths["model"]).to(device=device, dtype=dtype)
        return HumanAction(model, load_kinetics_classes(paths["classes"]), dtype=dtype)

    return build_with_weights("human_action", weights, {}, build)
