"""DOVER: disentangled technical and aesthetic video quality.

Wu et al., "Exploring Video Quality Assessment on User Generated Contents from Aesthetic and Technical
Perspectives" (ICCV 2023, arXiv:2211.04894), https://github.com/VQAssessment/DOVER (files ``dover.yml``,
``dover-mobile.yml``, ``evaluate_one_video.py``, ``dover/models/{evaluator,swin_backbone,conv_backbone,
head}.py``, ``dover/datasets/dover_datasets.py``).

Two branches, each a 3D backbone plus a head ``Conv3d(C, hidden, 1) -> GELU -> Conv3d(hidden, 1, 1)``
applied at every position of the feature map; a branch's score is the mean of its map (over positions and
clips). ``variant=dover`` (``DOVER.pth``): the technical branch is FAST-VQA's Swin3D-T with gated relative
position bias (patch (2, 4, 4), window (8, 7, 7), depths 2, 2, 6, 2, heads 3, 6, 12, 24, a second
"fragment" bias table in stages 1-3), the aesthetic branch an inflated 3D ConvNeXt-T (depths 3, 3, 9, 3,
widths 96..768, stem kernel (2, 4, 4), depthwise kernels (1|3, 7, 7) cycling "131"); heads 768 -> 64 -> 1.
``variant=mobile`` (``DOVER-Mobile.pth``, ``dover-mobile.yml``): both branches are inflated ConvNeXt-V2
femto (GRN, no layer scale; depths 2, 2, 6, 2, widths 48..384); heads 384 -> 32 -> 1. Both variants
sample and preprocess the same way.

Gated relative position bias (``swin_backbone.py``): each token belongs to one of the 7x7 spatial
fragments (``nearest`` interpolation of the 7x7 grid to the padded feature map, shifted with the window);
for two tokens of a window whose fragment coordinates differ by ``(dh, dw)``, the gate is
``g = |dh| + |dw|`` and the attention bias is ``g * B_rel + (1 - g) * B_frag``. The gate is not clipped
to 0/1 (tokens two fragments apart get ``2 * B_rel - B_frag``): rewardkit computes it as the official
code does. Shifted windows use Swin's mask (-100 between regions).

Sampling (``dover.yml``, test phase, as ``evaluate_one_video.py`` uses it; random even at test time):

- technical: ``UnifiedFrameSampler(32, 3, 2)``: the video is cut into 3 equal segments of
  ``L = F // 3`` frames; each gives a clip of 32 frames at interval 2 starting at a random offset in
  ``[0, L - 64)`` (0 when ``L <= 64``); indices are taken modulo F, so short videos loop. Each frame is
  cut into "fragments": a 7x7 grid of 32x32 patches spliced into 224x224. Cell (i, j) starts at
  ``min(H // 7 * i, H - 32)`` (same for the width) plus a random offset in ``[0, H // 7 - 32)`` (0 when
  ``H // 7 <= 32``), drawn per cell and per clip (32-frame chunk).
- aesthetic: ``UnifiedFrameSampler(1, 32, 2)``: 32 segments of ``L = F // 32`` frames, one frame each at
  a random offset in ``[0, L - 2)`` (0 when ``L <= 2``), modulo F (a video of fewer than 32 frames gives
  32 copies of frame 0, as the official code). Frames are resized to 224x224 with bilinear
  interpolation, aspect ratio not kept.
- Normalisation on the 0-255 scale: mean (123.675, 116.28, 103.53), std (58.395, 57.12, 57.375).

Randomness comes from the ``rng`` argument (a numpy Generator; None means one seeded with 0, so scores
are reproducible). ``self.sampler.indices`` returns the technical clips' 96 frame indices followed by the
aesthetic branch's 32 (only those of the branch asked for with ``branch=technical|aesthetic``), so
``score_sampled`` knows which decoded frame feeds which branch by its position; the fragment offsets are
drawn in ``score_sampled`` once the frame size is known, per video in batch order.

Short and small videos, as the official code: no video is too short (indices loop), but an empty one is a
ValueError. When the short side is under 224 pixels the frames are upsampled (``get_spatial_fragments``'
fallback: bilinear, ``scale_factor = 1 / min(H / 224, W / 224)``, on ``frames / 255``, truncated back to
8 bits), but the fragment grid is still the one of the original size, so the fragments come from the
top-left part of the upsampled frame; rewardkit reproduces that. Frames with a side under 32 pixels (on
which the official code fails) are a ValueError for the technical branch.

Score (``evaluate_one_video.py``, ``fuse_results``): ``branch=technical`` and ``branch=aesthetic`` return
the raw branch scores t and a (unbounded; the registry's score range (0, 1) is the fused score's);
``branch=fused`` (default) returns ``sigmoid(0.6104 * (t - 0.1107) / 0.07355 + 0.3896 * (a + 0.08285) /
0.03774)``. With ``branch=fused`` the engine also writes ``dover_technical``, ``dover_aesthetic`` and
``dover_fused``.

Preprocessing modes. ``reference``: the official 8-bit pipeline, on the CPU (float input is first rounded
to 8 bits). The aesthetic resize is torchvision's ``Resize((224, 224))`` on uint8 frames, whose result
depends on the torchvision version: ``requirements.txt`` pins ``torch~=1.13`` (torchvision 0.14, whose
tensor resize does not antialias unless asked and rounds the float result back to 8 bits); that is
``antialias=False``, the default. torchvision >= 0.17 antialiases by default: ``antialias=True`` gives
what the unchanged official script computes in a current environment. ``differentiable``: the same steps
on float pixels in torch, without the 8-bit rounding and truncation, so gradients flow to the pixels each
view reads: those inside the fragments (for frames upsampled because they are small, the pixels the
bilinear upsampling reads for them) and those the aesthetic resize reads (when shrinking, every pixel
with ``antialias=True``; without antialiasing, the 2x2 neighbourhood of each sampling point). Frame
indices and fragment positions are discrete choices; no gradient flows through them. On 8-bit frames at
least 224 pixels high and wide the technical scores of the two modes are identical (a pure crop) and
the aesthetic views differ by at most 0.5 (``antialias=False``) or 1 (``antialias=True``) grey level.

Parity, measured once against the official code (same random weights, frames and random draws; real
architectures, 100-frame videos of 270x480 and 120x160): identical views (max |diff| 0) and branch scores
within 6e-8 (DOVER; DOVER-Mobile: identical), fused within 2e-8.

Weights: ``DOVER.pth`` from the Hugging Face repo ``teowu/DOVER`` (also a GitHub release asset, v0.1.0)
and ``DOVER-Mobile.pth`` from the GitHub release v0.5.0; flat state dicts with keys
``technical_backbone.*``, ``aesthetic_backbone.*``, ``technical_head.*``, ``aesthetic_head.*``, loaded
strictly (as the official ``load_state_dict``). ``DOVER-Mobile.pth`` also holds the two ConvNeXt-V2
ImageNet classifiers (``{technical,aesthetic}_backbone.head.{weight,bias}``), which DOVER never uses;
they are dropped when present. Architecture sizes are read from the checkpoint's shapes (so tiny test
checkpoints load through the same path); the backbone family must match ``variant``. DOVER++
(``DOVER_plus_plus.pth``, a state dict wrapped under ``state_dict``) is not supported.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rewardkit.registry import WeightFile, register_reward
from rewardkit.rewards.base import VideoScorer
from rewardkit.transforms import as_float_videos
from rewardkit.weights import (
    WeightsArgument,
    WeightsMismatchError,
    build_with_weights,
    load_state_dict,
    load_strict,
)

__all__ = [
    "DOVER_MEAN",
    "DOVER_STD",
    "DOVER_WEIGHTS",
    "SwinConfig",
    "ConvNeXtConfig",
    "DoverConfig",
    "DOVER_CONFIG",
    "MOBILE_CONFIG",
    "DoverSampling",
    "DoverSampler",
    "DoverModel",
    "DoverReward",
    "clip_frame_indices",
    "fragment_starts",
    "draw_fragment_offsets",
    "spatial_fragments",
    "technical_view",
    "aesthetic_view",
    "FUSE_CENTRES",
    "fuse_scores",
    "config_from_state_dict",
    "load_dover_model",
]

DOVER_MEAN = (123.675, 116.28, 103.53)
DOVER_STD = (58.395, 57.12, 57.375)
Branch = Literal["fused", "technical", "aesthetic"]
Variant = Literal["dover", "mobile"]
# In DOVER-Mobile.pth, not used by DOVER (ConvNeXt-V2's ImageNet classifiers); dropped when present.
UNUSED_KEYS = tuple(f"{branch}_backbone.head.{leaf}" for branch in ("technical", "aesthetic") for leaf in ("weight", "bias"))

# Sizes are the tensor bytes of the official models' state dicts (381 tensors, 58,062,270 elements of which
# 1,843,968 are int64 relative_position_index entries; 288 tensors, 10,674,546 fp32 elements), counted from
# the models built by the official code; the files add their pickle framing. No hash is published: the
# Hub file is checked against the Hub's own LFS hash, the GitHub release asset is not checked.
DOVER_WEIGHTS: dict[str, WeightFile] = {
    "dover": WeightFile("teowu/DOVER", "DOVER.pth", 239_624_952, "S-Lab License 1.0 (non-commercial)"),
    "mobile": WeightFile(
        "VQAssessment/DOVER",
        "DOVER-Mobile.pth",
        42_698_184,
        "S-Lab License 1.0 (non-commercial)",
        url="https://github.com/QualityAssessment/DOVER/releases/download/v0.5.0/DOVER-Mobile.pth",
    ),
}


# ---------------------------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class SwinConfig:
    """Swin3D with gated relative position bias (DOVER's technical branch, FAST-VQA's backbone).

    ``fragment_biases[i]``: stage i has the second ("fragment") bias table and gates between the two.
    """

    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    patch_size: tuple[int, int, int] = (2, 4, 4)
    window_size: tuple[int, int, int] = (8, 7, 7)
    mlp_ratio: float = 4.0
    fragment_biases: tuple[bool, ...] = (True, True, True, False)

    @property
    def out_channels(self) -> int:
        return self.embed_dim * 2 ** (len(self.depths) - 1)


@dataclass(frozen=True)
class ConvNeXtConfig:
    """Inflated 3D ConvNeXt: stem Conv3d (2, 4, 4), downsampling Conv3d (1, 2, 2), depthwise (k, 7, 7).

    ``version`` 1: ConvNeXt blocks with layer scale (``gamma``); 2: ConvNeXt-V2 blocks with GRN.
    ``inflate``: the temporal kernel size k of each block's depthwise conv, cycling within a stage.
    """

    dims: tuple[int, ...] = (96, 192, 384, 768)
    depths: tuple[int, ...] = (3, 3, 9, 3)
    version: int = 1
    inflate: str = "131"

    @property
    def out_channels(self) -> int:
        return self.dims[-1]


@dataclass(frozen=True)
class DoverConfig:
    """Both branches and the width of the heads' hidden layer."""

    technical: SwinConfig | ConvNeXtConfig = field(default_factory=SwinConfig)
    aesthetic: ConvNeXtConfig = field(default_factory=ConvNeXtConfig)
    head_hidden: int = 64


DOVER_CONFIG = DoverConfig()
_FEMTO = ConvNeXtConfig(dims=(48, 96, 192, 384), depths=(2, 2, 6, 2), version=2)
MOBILE_CONFIG = DoverConfig(technical=_FEMTO, aesthetic=_FEMTO, head_hidden=32)
_VARIANT_FAMILY = {"dover": "Swin3D technical branch (DOVER.pth)", "mobile": "ConvNeXt-V2 technical branch (DOVER-Mobile.pth)"}


@dataclass(frozen=True)
class DoverSampling:
    """The views' geometry and frame sampling: ``dover.yml``'s test-phase ``sample_types``.

    The fragment offsets are drawn per ``clip_len`` frames (the official ``aligned: 32``).
    """

    fragments: int = 7
    fragment_size: int = 32
    clip_len: int = 32
    num_clips: int = 3
    frame_interval: int = 2
    aesthetic_size: int = 224
    aesthetic_frames: int = 32
    aesthetic_interval: int = 2

    @property
    def technical_frames(self) -> int:
        return self.clip_len * self.num_clips

    @property
    def view_size(self) -> int:
        return self.fragments * self.fragment_size


# --------------------------------------------------------------------------------------------- sampling


def clip_frame_indices(
    num_frames: int, segments: int, clip_len: int, interval: int, rng: np.random.Generator
) -> np.ndarray:
    """The official ``UnifiedFrameSampler`` (one call, ``drop_rate`` 0): ``segments`` equal segments of
    ``L = num_frames // segments`` frames, each giving ``clip_len`` frames ``interval`` apart from a random
    offset in ``[0, L - clip_len * interval)`` (0 when the segment is not longer than that), modulo
    ``num_frames``. ``rng`` is called only when some offset is random, as the official code."""
    if num_frames < 1:
        raise ValueError(f"DOVER needs a video with at least one frame, got {num_frames}")
    length = num_frames // segments
    span = clip_len * interval
    if length > span:
        offsets = rng.integers(0, length - span, size=segments)
    else:
        offsets = np.zeros(segments, dtype=np.int64)
    starts = np.arange(segments, dtype=np.int64) * length + offsets
    indices = starts[:, None] + np.arange(clip_len, dtype=np.int64)[None, :] * interval
    return indices.reshape(-1) % num_frames


@dataclass(frozen=True)
class DoverSampler:
    """Frame indices for DOVER's branches: the technical clips' ``num_clips * clip_len`` frames, then the
    aesthetic branch's ``aesthetic_frames`` (either left out when its branch is not scored). Picklable, so
    it can run in DataLoader workers; ``rng`` None uses a generator seeded with ``seed``."""

    technical: bool = True
    aesthetic: bool = True
    sampling: DoverSampling = field(default_factory=DoverSampling)
    seed: int = 0

    @property
    def counts(self) -> tuple[int, int]:
        """How many indices each branch gets (technical, aesthetic)."""
        s = self.sampling
        return (s.technical_frames if self.technical else 0, s.aesthetic_frames if self.aesthetic else 0)

    def indices(self, num_frames: int, rng: np.random.Generator | None = None, *, fps: float | None = None) -> list[int]:
        generator = rng if rng is not None else np.random.default_rng(self.seed)
        s = self.sampling
        parts = []
        if self.technical:
            parts.append(clip_frame_indices(num_frames, s.num_clips, s.clip_len, s.frame_interval, generator))
        if self.aesthetic:
            parts.append(clip_frame_indices(num_frames, s.aesthetic_frames, 1, s.aesthetic_interval, generator))
        if not parts:
            raise ValueError("DoverSampler samples no branch; set technical or aesthetic")
        return [int(index) for index in np.concatenate(parts)]


def fragment_starts(size: int, fragments: int, fragment_size: int) -> list[int]:
    """Where the grid cells start along one axis: ``min(size // fragments * i, size - fragment_size)``."""
    return [min(size // fragments * i, size - fragment_size) for i in range(fragments)]


def draw_fragment_offsets(
    height: int, width: int, chunks: int, sampling: DoverSampling, rng: np.random.Generator
) -> np.ndarray:
    """Random offsets ``[2, fragments, fragments, chunks]`` (rows, then columns) inside each grid cell:
    uniform in ``[0, size // fragments - fragment_size)``, or 0 when a cell is not larger than a fragment.
    ``height`` and ``width`` are the frame's original size (before any upsampling)."""
    grid = (sampling.fragments, sampling.fragments, chunks)
    offsets = []
    for size in (height, width):
        cell = size // sampling.fragments
        if cell > sampling.fragment_size:
            offsets.append(rng.integers(0, cell - sampling.fragment_size, size=grid))
        else:
            offsets.append(np.zeros(grid, dtype=np.int64))
    return np.stack(offsets)


def spatial_fragments(
    frames: torch.Tensor, starts: tuple[Sequence[int], Sequence[int]], offsets: np.ndarray, chunk_len: int, fragment_size: int
) -> torch.Tensor:
    """Splice ``frames [T, C, H, W]`` into ``[T, C, g * f, g * f]``: for every chunk of ``chunk_len`` frames,
    cell (i, j) is the ``f x f`` patch at ``(starts[0][i] + offsets[0, i, j, chunk], starts[1][j] +
    offsets[1, i, j, chunk])``. Plain slicing, so gradients reach exactly the copied pixels."""
    rows_start, columns_start = starts
    chunks = []
    for chunk in range(frames.shape[0] // chunk_len):
        clip = frames[chunk * chunk_len : (chunk + 1) * chunk_len]
        rows = []
        for i, top in enumerate(rows_start):
            cells = []
            for j, left in enumerate(columns_start):
                y = top + int(offsets[0, i, j, chunk])
                x = left + int(offsets[1, i, j, chunk])
                cells.append(clip[..., y : y + fragment_size, x : x + fragment_size])
            rows.append(torch.cat(cells, dim=-1))
        chunks.append(torch.cat(rows, dim=-2))
    return torch.cat(chunks, dim=0)


def technical_view(
    frames: torch.Tensor, offsets: np.ndarray, sampling: DoverSampling, *, exact: bool
) -> torch.Tensor:
    """The fragments view of ``frames [T, 3, H, W]`` (uint8 when ``exact``, else float on the 0-255
    scale), as float32 on the 0-255 scale ``[T, 3, S, S]``; ``offsets`` from ``draw_fragment_offsets``.

    Frames whose short side is under ``S`` are first upsampled as the official code does (bilinear on
    ``frames / 255`` with ``scale_factor = 1 / ratio``; ``exact`` truncates back to 8 bits), while the grid
    stays that of the original size."""
    height, width = frames.shape[-2:]
    size = sampling.view_size
    ratio = min(height / size, width / size)
    if ratio < 1:
        upsampled = F.interpolate(frames.float() / 255.0, scale_factor=1 / ratio, mode="bilinear") * 255.0
        frames = upsampled.to(torch.uint8) if exact else upsampled
    starts = (
        fragment_starts(height, sampling.fragments, sampling.fragment_size),
        fragment_starts(width, sampling.fragments, sampling.fragment_size),
    )
    return spatial_fragments(frames, starts, offsets, sampling.clip_len, sampling.fragment_size).float()


def aesthetic_view(frames: torch.Tensor, size: int, *, antialias: bool, exact: bool) -> torch.Tensor:
    """``frames [T, 3, H, W]`` resized to ``size x size`` (bilinear, aspect ratio not kept), as float32 on
    the 0-255 scale. ``exact`` (uint8 input): torchvision's resize on 8-bit tensors, with antialiasing as
    torchvision >= 0.17, or without it as torchvision 0.14 (float interpolation, rounded to 8 bits)."""
    if exact and antialias:
        from torchvision.transforms import functional as TF

        return TF.resize(frames, [size, size], antialias=True).float()
    resized = F.interpolate(frames.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=antialias)
    return resized.round() if exact else resized


# The raw branch scores that ``fuse_scores`` maps to a logit of 0 (evaluate_one_video.py's ``fuse_results``).
FUSE_CENTRES = {"technical": 0.1107, "aesthetic": -0.08285}


def fuse_scores(technical: torch.Tensor, aesthetic: torch.Tensor) -> torch.Tensor:
    """``evaluate_one_video.py``'s ``fuse_results``: the overall quality in (0, 1)."""
    logit = (
        0.6104 * (technical - FUSE_CENTRES["technical"]) / 0.07355
        + 0.3896 * (aesthetic - FUSE_CENTRES["aesthetic"]) / 0.03774
    )
    return torch.sigmoid(logit)


def _normalize(pixels: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(DOVER_MEAN, dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
    std = torch.tensor(DOVER_STD, dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
    return (pixels - mean) / std


# ------------------------------------------------------------------------------------- Swin3D (GRPB)


def _effective_window(
    size: tuple[int, int, int], window: tuple[int, int, int], shift: tuple[int, int, int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A window no larger than the feature map, and no shift along an axis the window covers whole."""
    window_out = tuple(s if s <= w else w for s, w in zip(size, window, strict=True))
    shift_out = tuple(0 if s <= w else h for s, w, h in zip(size, window, shift, strict=True))
    return window_out, shift_out


def _window_partition(x: torch.Tensor, window: Sequence[int]) -> torch.Tensor:
    """``[B, D, H, W, C]`` -> ``[B, windows, wd * wh * ww, C]`` (windows in D, H, W order)."""
    batch, depth, height, width, channels = x.shape
    wd, wh, ww = window
    x = x.reshape(batch, depth // wd, wd, height // wh, wh, width // ww, ww, channels)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(batch, -1, wd * wh * ww, channels)


def _window_reverse(windows: torch.Tensor, window: Sequence[int], depth: int, height: int, width: int) -> torch.Tensor:
    """Inverse of ``_window_partition``."""
    batch, channels = windows.shape[0], windows.shape[-1]
    wd, wh, ww = window
    x = windows.reshape(batch, depth // wd, height // wh, width // ww, wd, wh, ww, channels)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(batch, depth, height, width, channels)


def _nearest_cells(cells: int, size: int) -> torch.Tensor:
    """Which of ``cells`` equal parts each of ``size`` positions falls in, by nearest interpolation (as the
    official ``global_position_index``)."""
    grid = torch.arange(cells, dtype=torch.float32)[None, None]
    return F.interpolate(grid, size=size, mode="nearest")[0, 0].long()


@functools.lru_cache(maxsize=32)
def _fragment_gate(padded: tuple[int, ...], window: tuple[int, ...], shift: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """``[windows, N, N]`` uint8: the L1 distance between the fragment coordinates of two tokens of a
    window, with ``window[1] x window[2]`` fragments spread over the padded map and shifted with the window.
    Cached (as the official ``global_position_index``): it depends only on the geometry."""
    depth, height, width = padded
    with torch.inference_mode(False):  # a cached tensor must stay usable outside inference mode
        rows = _nearest_cells(window[1], height)[:, None].expand(height, width)
        columns = _nearest_cells(window[2], width)[None, :].expand(height, width)
        coordinates = torch.stack([rows, columns], dim=-1)[None].expand(depth, height, width, 2)
        coordinates = torch.roll(coordinates, shifts=tuple(-s for s in shift), dims=(0, 1, 2))
        windows = _window_partition(coordinates[None], window)[0].to(device=device, dtype=torch.float32)
        rows, columns = windows[..., 0], windows[..., 1]  # [windows, N] each
        gate = (rows[:, :, None] - rows[:, None, :]).abs() + (columns[:, :, None] - columns[:, None, :]).abs()
        return gate.to(torch.uint8)


@functools.lru_cache(maxsize=32)
def _shift_mask(padded: tuple[int, ...], window: tuple[int, ...], shift: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """``[windows, N, N]`` bool: True between tokens of a shifted window that came from different regions
    of the unshifted map (Swin's mask, -100 in the attention logits). Cached."""
    with torch.inference_mode(False):  # a cached tensor must stay usable outside inference mode
        labels = []
        for size, w, s in zip(padded, window, shift, strict=True):
            label = torch.zeros(size, dtype=torch.long)
            if s > 0:
                label[size - w : size - s] = 1
                label[size - s :] = 2
            labels.append(label)
        regions = labels[0][:, None, None] * 9 + labels[1][None, :, None] * 3 + labels[2][None, None, :]
        windows = _window_partition(regions[None, ..., None], window)[0, ..., 0].to(device)  # [windows, N]
        return windows[:, :, None] != windows[:, None, :]


def _relative_position_index(window: Sequence[int]) -> torch.Tensor:
    """``[N, N]`` index into the ``(2wd-1)(2wh-1)(2ww-1)`` bias table for every pair of window tokens."""
    wd, wh, ww = window
    coordinates = torch.stack(torch.meshgrid(torch.arange(wd), torch.arange(wh), torch.arange(ww), indexing="ij"))
    flat = coordinates.flatten(1)
    relative = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0)
    relative = relative + torch.tensor([wd - 1, wh - 1, ww - 1])
    return relative[..., 0] * (2 * wh - 1) * (2 * ww - 1) + relative[..., 1] * (2 * ww - 1) + relative[..., 2]


class _WindowAttention3D(nn.Module):
    def __init__(self, dim: int, window: tuple[int, int, int], num_heads: int, fragment_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        table = (2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table, num_heads))
        if fragment_bias:
            self.fragment_position_bias_table = nn.Parameter(torch.zeros(table, num_heads))
        self.register_buffer("relative_position_index", _relative_position_index(window))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        """``x [B, windows, N, C]``; ``gate`` (used when this stage has fragment biases) and ``mask``
        ``[windows, N, N]`` from ``_fragment_gate`` and ``_shift_mask``."""
        batch, windows, tokens, channels = x.shape
        heads = self.num_heads
        # A window reduced to a small feature map reads the top-left block of the full window's index,
        # as the official code does.
        index = self.relative_position_index[:tokens, :tokens].reshape(-1)

        def table_bias(table: torch.Tensor) -> torch.Tensor:
            return table[index].view(tokens, tokens, -1).permute(2, 0, 1)[None]  # [1, heads, N, N]

        bias = table_bias(self.relative_position_bias_table)
        if gate is not None:
            # g * B_rel + (1 - g) * B_frag
            bias = torch.lerp(table_bias(self.fragment_position_bias_table), bias, gate[:, None].to(bias.dtype))
        if mask is not None:
            bias = bias + mask[:, None].to(bias.dtype) * -100.0
        # Windows and heads share one axis so that the bias broadcasts over the batch: with 4-D inputs
        # PyTorch can use its fused attention kernels.
        bias = bias.expand(windows, heads, tokens, tokens).reshape(1, windows * heads, tokens, tokens)
        qkv = self.qkv(x).view(batch, windows, tokens, 3, heads, channels // heads).permute(3, 0, 1, 4, 2, 5)
        query, key, value = (part.reshape(batch, windows * heads, tokens, -1) for part in qkv)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=bias)
        out = out.view(batch, windows, heads, tokens, -1).transpose(2, 3).reshape(batch, windows, tokens, channels)
        return self.proj(out)


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _SwinBlock3D(nn.Module):
    def __init__(self, dim: int, num_heads: int, window: tuple[int, int, int], shift: tuple[int, int, int], mlp_ratio: float, fragment_bias: bool) -> None:
        super().__init__()
        self.window, self.shift, self.fragment_bias = window, shift, fragment_bias
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _WindowAttention3D(dim, window, num_heads, fragment_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, D, H, W, C]``."""
        _, depth, height, width, _ = x.shape
        window, shift = _effective_window((depth, height, width), self.window, self.shift)
        padded = tuple(-(-size // w) * w for size, w in zip((depth, height, width), window, strict=True))
        shortcut = x
        x = self.norm1(x)
        x = F.pad(x, (0, 0, 0, padded[2] - width, 0, padded[1] - height, 0, padded[0] - depth))
        shifted = any(s > 0 for s in shift)
        if shifted:
            x = torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        gate = _fragment_gate(padded, window, shift, x.device) if self.fragment_bias else None
        mask = _shift_mask(padded, window, shift, x.device) if shifted else None
        x = self.attn(_window_partition(x, window), gate, mask)
        x = _window_reverse(x, window, *padded)
        if shifted:
            x = torch.roll(x, shifts=tuple(shift), dims=(1, 2, 3))
        x = shortcut + x[:, :depth, :height, :width]
        return x + self.mlp(self.norm2(x))


class _PatchMerging(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, D, H, W, C]`` -> ``[B, D, H/2, W/2, 2C]``."""
        height, width = x.shape[2:4]
        x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        x = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class _SwinStage(nn.Module):
    def __init__(self, dim: int, depth: int, num_heads: int, config: SwinConfig, fragment_bias: bool, downsample: bool) -> None:
        super().__init__()
        window = tuple(config.window_size)
        shift = tuple(w // 2 for w in window)
        self.blocks = nn.ModuleList(
            _SwinBlock3D(dim, num_heads, window, (0, 0, 0) if i % 2 == 0 else shift, config.mlp_ratio, fragment_bias)
            for i in range(depth)
        )
        self.downsample = _PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class _PatchEmbed3D(nn.Module):
    def __init__(self, patch_size: tuple[int, int, int], embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv3d(3, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, T, H, W]`` (zero-padded to whole patches) -> ``[B, D, H', W', C]``."""
        pad = [(-size) % patch for size, patch in zip(x.shape[2:], self.patch_size, strict=True)]
        x = F.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]))
        return self.norm(self.proj(x).permute(0, 2, 3, 4, 1))


class SwinTransformer3D(nn.Module):
    """Swin3D with gated relative position bias; returns normalised features ``[B, C, D, H, W]``."""

    def __init__(self, config: SwinConfig) -> None:
        super().__init__()
        self.patch_embed = _PatchEmbed3D(tuple(config.patch_size), config.embed_dim)
        stages = len(config.depths)
        self.layers = nn.ModuleList(
            _SwinStage(
                config.embed_dim * 2**i,
                config.depths[i],
                config.num_heads[i],
                config,
                bool(config.fragment_biases[i]),
                downsample=i < stages - 1,
            )
            for i in range(stages)
        )
        self.norm = nn.LayerNorm(config.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x).permute(0, 4, 1, 2, 3)


# ------------------------------------------------------------------------------------ 3D ConvNeXt (v1, v2)


class _LayerNormChannelsFirst(nn.Module):
    """LayerNorm over dim 1 of ``[B, C, D, H, W]``, written out as ConvNeXt's ``channels_first`` one."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        variance = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(variance + self.eps)
        return self.weight[:, None, None, None] * x + self.bias[:, None, None, None]


class _GRN(nn.Module):
    """ConvNeXt-V2's global response normalisation, as the inflated official block applies it to
    ``[B, T, H, W, C]``: the L2 norm is taken over dims 1 and 2 (time and height)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        scaled = norm / (norm.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * scaled) + self.beta + x


class _ConvNeXtBlock3D(nn.Module):
    def __init__(self, dim: int, temporal_kernel: int, version: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv3d(dim, dim, kernel_size=(temporal_kernel, 7, 7), padding=(temporal_kernel // 2, 3, 3), groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.grn = _GRN(4 * dim) if version == 2 else None
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6)) if version == 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.pwconv1(self.norm(self.dwconv(x).permute(0, 2, 3, 4, 1))))
        if self.grn is not None:
            y = self.grn(y)
        y = self.pwconv2(y)
        if self.gamma is not None:
            y = self.gamma * y
        return x + y.permute(0, 4, 1, 2, 3)


class ConvNeXt3D(nn.Module):
    """Inflated 3D ConvNeXt (v1 or v2 blocks); returns normalised features ``[B, C, D, H, W]``."""

    def __init__(self, config: ConvNeXtConfig) -> None:
        super().__init__()
        if config.version not in (1, 2):
            raise ValueError(f"ConvNeXt version must be 1 or 2, got {config.version}")
        dims = config.dims
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv3d(3, dims[0], kernel_size=(2, 4, 4), stride=(2, 4, 4)), _LayerNormChannelsFirst(dims[0]))]
        )
        for i in range(len(dims) - 1):
            self.downsample_layers.append(
                nn.Sequential(_LayerNormChannelsFirst(dims[i]), nn.Conv3d(dims[i], dims[i + 1], kernel_size=(1, 2, 2), stride=(1, 2, 2)))
            )
        self.stages = nn.ModuleList(
            nn.Sequential(
                *(_ConvNeXtBlock3D(dim, int(config.inflate[j % len(config.inflate)]), config.version) for j in range(depth))
            )
            for dim, depth in zip(dims, config.depths, strict=True)
        )
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for downsample, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(downsample(x))
        return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


# ------------------------------------------------------------------------------------------------ model


class DoverHead(nn.Module):
    """Per-position regression: ``Conv3d(C, hidden, 1) -> GELU -> Conv3d(hidden, 1, 1)`` (the official
    ``VQAHead``; its dropouts are inactive at inference)."""

    def __init__(self, in_channels: int, hidden: int) -> None:
        super().__init__()
        self.fc_hid = nn.Conv3d(in_channels, hidden, kernel_size=1)
        self.fc_last = nn.Conv3d(hidden, 1, kernel_size=1)
        self.gelu = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_last(self.gelu(self.fc_hid(x)))


def _backbone(config: SwinConfig | ConvNeXtConfig) -> nn.Module:
    return SwinTransformer3D(config) if isinstance(config, SwinConfig) else ConvNeXt3D(config)


class DoverModel(nn.Module):
    """Both DOVER branches, with the official state-dict names; ``technical``/``aesthetic`` map a batch of
    normalised clips ``[N, 3, T, S, S]`` to one score per clip (the mean of the head's map)."""

    def __init__(self, config: DoverConfig = DOVER_CONFIG) -> None:
        super().__init__()
        self.config = config
        self.technical_backbone = _backbone(config.technical)
        self.aesthetic_backbone = _backbone(config.aesthetic)
        self.technical_head = DoverHead(config.technical.out_channels, config.head_hidden)
        self.aesthetic_head = DoverHead(config.aesthetic.out_channels, config.head_hidden)

    def technical(self, clips: torch.Tensor) -> torch.Tensor:
        return self.technical_head(self.technical_backbone(clips)).flatten(1).mean(1)

    def aesthetic(self, clips: torch.Tensor) -> torch.Tensor:
        return self.aesthetic_head(self.aesthetic_backbone(clips)).flatten(1).mean(1)


# ------------------------------------------------------------------------------------ loading weights


def _require(state_dict: Mapping[str, torch.Tensor], key: str, source: str) -> torch.Tensor:
    if key not in state_dict:
        raise WeightsMismatchError(
            f"checkpoint {source} has no {key!r}; a DOVER checkpoint is a flat state dict with keys "
            f"technical_backbone.*, aesthetic_backbone.*, technical_head.*, aesthetic_head.* (DOVER.pth or DOVER-Mobile.pth)"
        )
    return state_dict[key]


def _count(state_dict: Mapping[str, torch.Tensor], pattern: str) -> int:
    count = 0
    while pattern.format(count) in state_dict:
        count += 1
    return count


def _swin_config(state_dict: Mapping[str, torch.Tensor], prefix: str, source: str) -> SwinConfig:
    patch = _require(state_dict, f"{prefix}patch_embed.proj.weight", source)
    stages = _count(state_dict, prefix + "layers.{}.blocks.0.norm1.weight")
    if stages == 0:
        _require(state_dict, f"{prefix}layers.0.blocks.0.norm1.weight", source)
    depths = tuple(_count(state_dict, f"{prefix}layers.{i}.blocks.{{}}.norm1.weight") for i in range(stages))
    attention = [f"{prefix}layers.{i}.blocks.0.attn." for i in range(stages)]
    heads = tuple(int(_require(state_dict, f"{a}relative_position_bias_table", source).shape[1]) for a in attention)
    tokens = int(_require(state_dict, f"{attention[0]}relative_position_index", source).shape[0])
    table = int(state_dict[f"{attention[0]}relative_position_bias_table"].shape[0])
    windows = [
        (depth, side, side)
        for depth in range(1, 65)
        for side in range(1, 65)
        if depth * side * side == tokens and (2 * depth - 1) * (2 * side - 1) ** 2 == table
    ]
    if not windows:
        raise WeightsMismatchError(f"checkpoint {source}: cannot find a window size for {tokens} tokens and a {table}-row bias table")
    embed_dim = int(patch.shape[0])
    hidden = int(_require(state_dict, f"{prefix}layers.0.blocks.0.mlp.fc1.weight", source).shape[0])
    return SwinConfig(
        embed_dim=embed_dim,
        depths=depths,
        num_heads=heads,
        patch_size=tuple(int(size) for size in patch.shape[2:]),
        window_size=windows[0],
        mlp_ratio=hidden / embed_dim,
        fragment_biases=tuple(f"{a}fragment_position_bias_table" in state_dict for a in attention),
    )


def _convnext_config(state_dict: Mapping[str, torch.Tensor], prefix: str, source: str) -> ConvNeXtConfig:
    stem = _require(state_dict, f"{prefix}downsample_layers.0.0.weight", source)
    stages = _count(state_dict, prefix + "stages.{}.0.dwconv.weight")
    dims = [int(stem.shape[0])]
    for i in range(1, stages):
        dims.append(int(_require(state_dict, f"{prefix}downsample_layers.{i}.1.weight", source).shape[0]))
    depths = tuple(_count(state_dict, f"{prefix}stages.{i}.{{}}.dwconv.weight") for i in range(stages))
    longest = max(range(stages), key=lambda i: depths[i])
    kernels = "".join(str(int(state_dict[f"{prefix}stages.{longest}.{j}.dwconv.weight"].shape[2])) for j in range(depths[longest]))
    return ConvNeXtConfig(
        dims=tuple(dims),
        depths=depths,
        version=2 if f"{prefix}stages.0.0.grn.gamma" in state_dict else 1,
        inflate=kernels[:3],
    )


def _branch_config(state_dict: Mapping[str, torch.Tensor], branch: str, source: str) -> SwinConfig | ConvNeXtConfig:
    prefix = f"{branch}_backbone."
    if f"{prefix}patch_embed.proj.weight" in state_dict:
        return _swin_config(state_dict, prefix, source)
    if f"{prefix}downsample_layers.0.0.weight" in state_dict:
        return _convnext_config(state_dict, prefix, source)
    raise WeightsMismatchError(
        f"checkpoint {source} has neither a Swin3D ({prefix}patch_embed.*) nor a ConvNeXt "
        f"({prefix}downsample_layers.*) {branch} backbone; is it DOVER.pth or DOVER-Mobile.pth?"
    )


def config_from_state_dict(state_dict: Mapping[str, torch.Tensor], source: str = "state dict") -> DoverConfig:
    """The architecture a DOVER checkpoint was saved from, read from its key names and shapes."""
    aesthetic = _branch_config(state_dict, "aesthetic", source)
    if not isinstance(aesthetic, ConvNeXtConfig):
        raise WeightsMismatchError(f"checkpoint {source} has a Swin3D aesthetic backbone; DOVER's is a ConvNeXt")
    return DoverConfig(
        technical=_branch_config(state_dict, "technical", source),
        aesthetic=aesthetic,
        head_hidden=int(_require(state_dict, "technical_head.fc_hid.weight", source).shape[0]),
    )


def _variant_of(config: DoverConfig) -> str:
    return "dover" if isinstance(config.technical, SwinConfig) else "mobile"


def load_dover_model(path: str | Path, variant: Variant = "dover") -> DoverModel:
    """Build the model a DOVER checkpoint describes and load it strictly (the unused classifier heads of
    ``DOVER-Mobile.pth`` are dropped); its technical backbone must be the one ``variant`` has."""
    source = str(path)
    state_dict = load_state_dict(path)
    if not isinstance(state_dict, Mapping) or not all(isinstance(value, torch.Tensor) for value in state_dict.values()):
        raise WeightsMismatchError(
            f"{source} is not a DOVER checkpoint: expected a flat state dict of tensors (as DOVER.pth), got "
            f"{type(state_dict).__name__}"
            + (" with a 'state_dict' entry (DOVER++'s layout, not supported)" if isinstance(state_dict, Mapping) and "state_dict" in state_dict else "")
        )
    state_dict = {key: value for key, value in state_dict.items() if key not in UNUSED_KEYS}
    config = config_from_state_dict(state_dict, source)
    found = _variant_of(config)
    if found != variant:
        raise WeightsMismatchError(
            f"checkpoint {source} has a {_VARIANT_FAMILY[found]}, but variant={variant!r} expects a "
            f"{_VARIANT_FAMILY[variant]}; pass variant={found} (--reward dover:variant={found})"
        )
    model = DoverModel(config)
    load_strict(model, state_dict, source)
    return model


# ----------------------------------------------------------------------------------------------- reward


class DoverReward(VideoScorer):
    """DOVER quality of videos ``[B, T, 3, H, W]`` (no prompt): the fused score, or one branch's."""

    def __init__(
        self,
        model: DoverModel,
        *,
        branch: Branch = "fused",
        mode: Literal["reference", "differentiable"] = "reference",
        antialias: bool = False,
        sampling: DoverSampling | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if branch not in ("fused", "technical", "aesthetic"):
            raise ValueError(f"branch must be 'fused', 'technical' or 'aesthetic', got {branch!r}")
        if mode not in ("reference", "differentiable"):
            raise ValueError(f"mode must be 'reference' or 'differentiable', got {mode!r}")
        self.model = model
        self.branch, self.mode, self.antialias, self.seed = branch, mode, antialias, seed
        self.sampling = sampling if sampling is not None else DoverSampling()
        self.sampler = DoverSampler(branch != "aesthetic", branch != "technical", self.sampling, seed)
        self.output_names: tuple[str, ...] = ("technical", "aesthetic", "fused") if branch == "fused" else (branch,)
        self.weights_sha256: str | None = None
        self.requires_grad_(False)
        self.eval()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def forward(
        self, videos: torch.Tensor, prompts: Sequence[str] | str | None = None, rng: np.random.Generator | None = None
    ) -> torch.Tensor:
        """Scores ``[B]``: frames sampled per video and fragments drawn from ``rng`` (None: a generator
        seeded with ``seed``); ``prompts`` are ignored."""
        return super().forward(videos, prompts, rng if rng is not None else np.random.default_rng(self.seed))

    def score_sampled_details(
        self,
        frames: torch.Tensor,
        indices: torch.Tensor,
        num_frames: int,
        prompts: Sequence[str] | str | None = None,
        rng: np.random.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """``score`` plus each of ``output_names`` (float32 ``[B]``). Fragment offsets come from ``rng``
        (None: a generator seeded with ``seed``), drawn per video in batch order."""
        frames = as_float_videos(frames, keep_uint8=True)
        technical_count, aesthetic_count = self.sampler.counts
        if frames.shape[1] != technical_count + aesthetic_count:
            raise ValueError(
                f"DOVER with branch={self.branch!r} expects the {technical_count + aesthetic_count} frames its sampler "
                f"picks ({technical_count} technical, then {aesthetic_count} aesthetic), got {frames.shape[1]}; "
                f"decode the frames at reward.sampler.indices(num_frames)"
            )
        if indices is not None and tuple(indices.shape) != tuple(frames.shape[:2]):
            raise ValueError(f"indices must have shape {tuple(frames.shape[:2])}, got {tuple(indices.shape)}")
        generator = rng if rng is not None else np.random.default_rng(self.seed)
        exact = self.mode == "reference"
        pixels = _to_pixels(frames, exact)
        outputs: dict[str, torch.Tensor] = {}
        if technical_count:
            outputs["technical"] = self._technical(pixels[:, :technical_count], generator, exact)
        if aesthetic_count:
            outputs["aesthetic"] = self._aesthetic(pixels[:, technical_count:], exact)
        if self.branch == "fused":
            outputs["fused"] = fuse_scores(outputs["technical"], outputs["aesthetic"])
        return {"score": outputs[self.branch], **outputs}

    def _technical(self, pixels: torch.Tensor, rng: np.random.Generator, exact: bool) -> torch.Tensor:
        s = self.sampling
        height, width = pixels.shape[-2:]
        if min(height, width) < s.fragment_size:
            raise ValueError(
                f"DOVER's technical branch cuts {s.fragment_size}x{s.fragment_size} fragments and needs frames at least "
                f"that large, got {height}x{width} (the official code fails on them too); upscale the video or use "
                f"branch=aesthetic"
            )
        views = [
            technical_view(video, draw_fragment_offsets(height, width, s.num_clips, s, rng), s, exact=exact)
            for video in pixels
        ]
        clips = torch.stack(views).to(self.device)  # [B, clips * clip_len, 3, S, S]
        batch = clips.shape[0]
        clips = _normalize(clips).view(batch * s.num_clips, s.clip_len, 3, s.view_size, s.view_size)
        scores = self.model.technical(clips.transpose(1, 2).to(self.dtype)).float()
        return scores.view(batch, s.num_clips).mean(1)

    def _aesthetic(self, pixels: torch.Tensor, exact: bool) -> torch.Tensor:
        size = self.sampling.aesthetic_size
        views = torch.stack([aesthetic_view(video, size, antialias=self.antialias, exact=exact) for video in pixels])
        clips = _normalize(views.to(self.device)).transpose(1, 2)  # [B, 3, T, S, S]
        return self.model.aesthetic(clips.to(self.dtype)).float()


def _to_pixels(frames: torch.Tensor, exact: bool) -> torch.Tensor:
    """``reference``: uint8 on the CPU (float input rounded, as an 8-bit decoder would give it);
    ``differentiable``: float on the 0-255 scale, where the frames are."""
    if exact:
        if frames.dtype != torch.uint8:
            frames = (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
        return frames.cpu()
    return frames.float() if frames.dtype == torch.uint8 else frames.float() * 255.0


def _dover_weight_files(options: Mapping[str, Any]) -> dict[str, WeightFile]:
    return {"model": DOVER_WEIGHTS[options["variant"]]}


@register_reward(
    "dover",
    modality="video",
    needs_prompt=False,
    differentiable=True,
    score_range=(0.0, 1.0),
    description="DOVER video quality: fused technical+aesthetic score in (0, 1), or either raw branch score",
    weights=_dover_weight_files,
    paper="arXiv:2211.04894 (ICCV 2023)",
    repository="https://github.com/VQAssessment/DOVER",
)
def create_dover(
    *,
    branch: Literal["fused", "technical", "aesthetic"] = "fused",
    variant: Literal["dover", "mobile"] = "dover",
    mode: Literal["reference", "differentiable"] = "reference",
    antialias: bool = False,
    device: torch.device,
    dtype: torch.dtype,
    weights: WeightsArgument,
) -> DoverReward:
    """DOVER (``variant=dover``, ``DOVER.pth``) or DOVER-Mobile (``variant=mobile``, ``DOVER-Mobile.pth``).

    ``branch=fused`` (default) is the official overall score in (0, 1) (the engine also writes the raw
    ``technical`` and ``aesthetic`` scores); ``technical``/``aesthetic`` return that branch's raw score
    (unbounded; about -0.2..0.4 on UGC videos) and skip the other branch. ``antialias`` chooses the
    aesthetic resize: False as the pinned torchvision 0.14 (default), True as torchvision >= 0.17.
    ``weights`` is the checkpoint file (or a folder holding it).
    """

    def build(paths: Mapping[str, Path]) -> DoverReward:
        model = load_dover_model(paths["model"], variant).to(device=device, dtype=dtype)
        return DoverReward(model, branch=branch, mode=mode, antialias=antialias)

    return build_with_weights("dover", weights, {"variant": variant}, build)
