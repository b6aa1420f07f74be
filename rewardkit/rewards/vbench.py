"""VBench's model-based dimensions as registry scorers.

Huang et al., "VBench: Comprehensive Benchmark Suite for Video Generative Models" (CVPR 2024,
arXiv:2311.17982), https://github.com/Vchitect/VBench. Per dimension, the official file and what is kept:

- ``dynamic_degree`` (vbench/dynamic_degree.py): RAFT (Teed & Deng, ECCV 2020,
  https://github.com/princeton-vl/RAFT, ``raft-things.pth``) with 20 iterations on 0..255 RGB frames padded
  to multiples of 8 (replicate, centred: RAFT's ``InputPadder`` "sintel" mode); frames at about 8 fps
  (every ``max(1, round(fps / 8))``-th, the option ``fps`` being the videos' frame rate, default 8 = every
  frame); per pair the mean of the top 5 % flow magnitudes over the *padded* flow field; dynamic (1.0) when
  at least ``round(4 * N / 16)`` pairs exceed ``6 * min(H, W) / 256``. RAFT is torchvision's ``raft_large``
  (the same architecture; it expects [-1, 1] input where RAFT rescales 0..255 itself) loaded from the
  official checkpoint by an explicit key map (``map_raft_keys``), strictly.
- static filter (vbench/cli/static_filter.py), used by ``temporal_flickering static_filter=raft``: the same
  RAFT on every frame, top 2 %, see rewardkit.rewards.motion for the decision.
- ``subject_consistency`` (vbench/subject_consistency.py): DINO ViT-B/16 (Caron et al., ICCV 2021,
  https://github.com/facebookresearch/dino, torch.hub ``dino_vitb16``, ``dino_vitbase16_pretrain.pth``)
  CLS features of every frame; frames as float 0..255 resized so the short side is 224 (bilinear,
  ``antialias=False``, no crop), /255, ImageNet mean/std; DINO interpolates its position embeddings to the
  frame's patch grid (bicubic, its ``+0.1`` scale trick). Per video
  ``mean_{i>=1} (max(0, cos(f_{i-1}, f_i)) + max(0, cos(f_0, f_i))) / 2``.
- ``background_consistency`` (vbench/background_consistency.py): the same formula on CLIP ViT-B/32 image
  embeddings (OpenAI weights through open_clip), frames resized to 224 on the short side (bicubic,
  ``antialias=False``), centre-cropped, /255, CLIP mean/std.
- ``aesthetic_quality`` (vbench/aesthetic_quality.py): the ``aesthetic`` reward with ``head=vbench`` on
  every frame, averaged (rewardkit.rewards.aesthetic holds the model and its documentation).

VBench's dimension value for the two consistencies is frame-weighted (the sum of pair similarities over all
videos / the number of pairs); it equals the mean of these per-video scores when every video has the same
number of frames. VBench runs the models in fp16 on a GPU for CLIP (``clip.load``); rewardkit uses the
``dtype`` asked for (fp32 by default).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from rewardkit.lazy import lazy_import
from rewardkit.registry import WeightFile, register_reward
from rewardkit.rewards.base import VideoScorer
from rewardkit.rewards.motion import (
    FrameRateSubsample,
    dynamic_params,
    is_dynamic,
    is_static,
    static_params,
)
from rewardkit.transforms import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, as_float_videos
from rewardkit.video.sampling import All
from rewardkit.weights import (
    MissingWeightsError,
    WeightsMismatchError,
    explicit_weights_file,
    load_state_dict,
    load_strict,
    resolve_weight_file,
    sha256_of,
)

raft_large = lazy_import("torchvision.models.optical_flow", "raft_large")
InterpolationMode = lazy_import("torchvision.transforms.functional", "InterpolationMode")
center_crop = lazy_import("torchvision.transforms.functional", "center_crop")
resize = lazy_import("torchvision.transforms.functional", "resize")

__all__ = [
    "DINO_WEIGHTS",
    "AestheticQuality",
    "DinoVisionTransformer",
    "DynamicDegree",
    "FeatureConsistency",
    "RaftFlow",
    "RaftStaticFilter",
    "consistency_scores",
    "load_raft",
    "map_raft_keys",
    "vbench_clip_transform",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RAFT_ITERATIONS = 20  # VBench: self.model(image1, image2, iters=20, test_mode=True)
RAFT_SOURCE = (
    "raft-things.pth from RAFT's models.zip (https://github.com/princeton-vl/RAFT, download_models.sh; VBench "
    "fetches https://dl.dropboxusercontent.com/s/4j4z58wuv8o0mfz/models.zip): unzip it and pass "
    "weights=PATH/models/raft-things.pth (on the command line --weights)"
)
DINO_WEIGHTS = WeightFile(
    "facebookresearch/dino",
    "dino_vitbase16_pretrain.pth",
    0,
    "Apache-2.0",
    url="https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth",
)


# ------------------------------------------------------------------------------------------------ RAFT

_RAFT_LAYER_NAMES = {
    "conv1": "convnormrelu1.0",
    "norm1": "convnormrelu1.1",
    "conv2": "convnormrelu2.0",
    "norm2": "convnormrelu2.1",
    "downsample.0": "downsample.0",
    "downsample.1": "downsample.1",
}
_RAFT_UPDATE_NAMES = {
    "encoder.convc1": "motion_encoder.convcorr1.0",
    "encoder.convc2": "motion_encoder.convcorr2.0",
    "encoder.convf1": "motion_encoder.convflow1.0",
    "encoder.convf2": "motion_encoder.convflow2.0",
    "encoder.conv": "motion_encoder.conv.0",
    "gru.convz1": "recurrent_block.convgru1.convz",
    "gru.convr1": "recurrent_block.convgru1.convr",
    "gru.convq1": "recurrent_block.convgru1.convq",
    "gru.convz2": "recurrent_block.convgru2.convz",
    "gru.convr2": "recurrent_block.convgru2.convr",
    "gru.convq2": "recurrent_block.convgru2.convq",
    "flow_head.conv1": "flow_head.conv1",
    "flow_head.conv2": "flow_head.conv2",
}


def _map_raft_key(key: str) -> str | None:
    """One official RAFT key (``module.`` removed) -> torchvision's; None for the duplicate ``norm3``
    (RAFT registers each residual block's ``norm3`` again as ``downsample.1``)."""
    module, _, rest = key.partition(".")
    if module in ("fnet", "cnet"):
        encoder = "feature_encoder" if module == "fnet" else "context_encoder"
        stem = {"conv1": "convnormrelu.0", "norm1": "convnormrelu.1", "conv2": "conv"}
        name, _, parameter = rest.rpartition(".")
        if name in stem:
            return f"{encoder}.{stem[name]}.{parameter}"
        layer, block, *inner = name.split(".")
        inner_name = ".".join(inner)
        if inner_name == "norm3":
            return None
        if layer.startswith("layer") and inner_name in _RAFT_LAYER_NAMES:
            return f"{encoder}.{layer}.{block}.{_RAFT_LAYER_NAMES[inner_name]}.{parameter}"
    elif module == "update_block":
        name, _, parameter = rest.rpartition(".")
        if name in _RAFT_UPDATE_NAMES:
            return f"update_block.{_RAFT_UPDATE_NAMES[name]}.{parameter}"
        if name in ("mask.0", "mask.2"):
            return f"mask_predictor.{'convrelu.0' if name == 'mask.0' else 'conv'}.{parameter}"
    raise WeightsMismatchError(f"unexpected key {key!r} in a RAFT checkpoint (expected princeton-vl RAFT's keys)")


def map_raft_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """princeton-vl RAFT (``raft-things.pth``, keys ``module.fnet.*``, ``module.update_block.gru.*``, ...)
    -> torchvision ``raft_large`` keys. Every key must map; duplicated ``norm3`` tensors must equal their
    ``downsample.1`` twin."""
    stripped = {key.removeprefix("module."): value for key, value in state_dict.items()}
    mapped: dict[str, torch.Tensor] = {}
    for key, value in stripped.items():
        target = _map_raft_key(key)
        if target is None:
            twin = key.replace("norm3", "downsample.1")
            if twin not in stripped or not torch.equal(stripped[twin], value):
                raise WeightsMismatchError(f"RAFT checkpoint key {key!r} has no equal twin {twin!r}")
            continue
        mapped[target] = value
    return mapped


class RaftFlow(torch.nn.Module):
    """RAFT as VBench calls it: 0..255 RGB frames ``[N, 3, H, W]`` padded to multiples of 8 (replicate,
    centred), 20 refinement iterations; returns the upsampled flow on the padded grid ``[N, 2, H', W']``."""

    def __init__(self, raft: torch.nn.Module, iterations: int = RAFT_ITERATIONS) -> None:
        super().__init__()
        self.raft = raft
        self.iterations = iterations

    @torch.no_grad()
    def forward(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        height, width = image1.shape[-2:]
        pad_h, pad_w = (-height) % 8, (-width) % 8
        padding = [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2]
        device = next(self.raft.parameters()).device
        pair = [F.pad(image.float().to(device), padding, mode="replicate") * (2 / 255) - 1 for image in (image1, image2)]
        return self.raft(*pair, num_flow_updates=self.iterations)[-1]

    def top_fraction_means(self, frames: torch.Tensor, pairs: Sequence[tuple[int, int]], fraction: float) -> list[float]:
        """VBench's per-pair statistic (mean of the top ``fraction`` flow magnitudes, padded grid) for
        pairs of frame indices of one video ``[T, 3, H, W]`` (0..255)."""
        stats: list[float] = []
        for start in range(0, len(pairs), 8):
            chunk = pairs[start : start + 8]
            flow = self(frames[[a for a, _ in chunk]], frames[[b for _, b in chunk]])
            magnitude = flow.float().square().sum(dim=1).sqrt().flatten(1)
            count = int(magnitude.shape[1] * fraction)
            stats += magnitude.topk(count, dim=1).values.double().mean(dim=1).tolist()
        return stats


def load_raft(weights: str | None, *, reward: str, device: torch.device | str = "cpu") -> tuple[RaftFlow, str]:
    """RAFT (``raft_large`` architecture) from the official ``raft-things.pth``, strictly; returns the model
    and the file's sha256."""
    if weights is None:
        raise MissingWeightsError(f"reward {reward!r} needs RAFT weights, which rewardkit cannot download: get {RAFT_SOURCE}")
    path = explicit_weights_file(weights, reward=reward)
    state_dict = load_state_dict(path)
    model = raft_large(weights=None, progress=False)
    load_strict(model, map_raft_keys(state_dict), str(path))
    model.eval().requires_grad_(False)
    return RaftFlow(model).to(device), sha256_of(path)


def _frames_0_255(frames: torch.Tensor) -> torch.Tensor:
    """Videos ``[B, K, 3, H, W]`` as float 0..255, as VBench's readers hand them to the models (uint8 kept
    exact; float [0, 1] scaled without rounding so gradients can flow)."""
    videos = as_float_videos(frames, keep_uint8=True)
    return videos.float() if videos.dtype == torch.uint8 else videos.float() * 255.0


class RaftStaticFilter(torch.nn.Module):
    """VBench's static filter with RAFT: ``filter(video)`` for one uint8 video ``[T, H, W, 3]`` (all frames)."""

    def __init__(self, raft: RaftFlow) -> None:
        super().__init__()
        self.raft = raft

    def forward(self, video: np.ndarray) -> bool:
        if len(video) < 2:
            raise ValueError(f"the static filter compares frames and needs at least 2, got {len(video)}")
        frames = torch.from_numpy(video).permute(0, 3, 1, 2).float()
        last = len(frames) - 1
        pairs = [(i, i + 1) for i in range(last)] + [(0, last), (last, 0)]
        stats = self.raft.top_fraction_means(frames, pairs, 0.02)
        return is_static(stats[:-2], stats[-2:], *static_params(video.shape[1], video.shape[2], len(video)))


class DynamicDegree(VideoScorer):
    """VBench dynamic_degree with RAFT: 1.0 for a dynamic video, 0.0 for a static one. Outputs as
    ``dynamic_degree_flow``: ``flow_top5``, ``moving_pairs``, ``required_pairs``, ``threshold``."""

    needs_prompt = False
    max_prompt_tokens = None
    output_names = ("flow_top5", "moving_pairs", "required_pairs", "threshold")

    def __init__(self, raft: RaftFlow, fps: float = 8.0) -> None:
        super().__init__()
        self.raft = raft
        self.sampler = FrameRateSubsample(fps)
        self.weights_sha256: str | None = None

    def score_sampled(self, frames: torch.Tensor, indices: torch.Tensor | None, num_frames: int, prompts: Any = None, rng: Any = None) -> torch.Tensor:
        """Scores ``[B]`` of frames ``[B, K, 3, H, W]`` decoded at ``self.sampler``'s indices, in order."""
        return self.score_sampled_details(frames, indices, num_frames, prompts, rng)["score"]

    def score_sampled_details(
        self, frames: torch.Tensor, indices: torch.Tensor | None, num_frames: int, prompts: Any = None, rng: Any = None
    ) -> dict[str, torch.Tensor]:
        videos = _frames_0_255(frames)
        if videos.shape[1] < 2:
            raise ValueError(f"dynamic degree compares consecutive frames and needs at least 2, got {videos.shape[1]}")
        rows = []
        for video in videos:
            stats = self.raft.top_fraction_means(video, [(i, i + 1) for i in range(len(video) - 1)], 0.05)
            thres, count_num = dynamic_params(video.shape[-2], video.shape[-1], len(video))
            rows.append([float(is_dynamic(stats, thres, count_num)), float(np.mean(stats)), float(sum(s > thres for s in stats)), float(count_num), thres])
        table = torch.tensor(rows, dtype=torch.float32)
        return dict(zip(("score", *self.output_names), table.unbind(1), strict=True))


@register_reward(
    "dynamic_degree",
    modality="video",
    needs_prompt=False,
    differentiable=False,
    score_range=(0.0, 1.0),
    description="VBench dynamic degree (1 = dynamic video) with RAFT raft-things optical flow",
    paper="arXiv:2311.17982",
    repository="https://github.com/Vchitect/VBench",
)
def create_dynamic_degree(
    *, fps: float = 8.0, device: torch.device, dtype: torch.dtype, weights: str | None
) -> DynamicDegree:
    """VBench's dynamic degree; ``weights`` is RAFT's ``raft-things.pth`` (not downloadable by rewardkit),
    ``fps`` the videos' frame rate (VBench keeps every ``round(fps / 8)``-th frame)."""
    raft, sha256 = load_raft(weights, reward="dynamic_degree", device=device)
    metric = DynamicDegree(raft, fps=fps)
    metric.weights_sha256 = sha256
    return metric


# ------------------------------------------------------------------------------------------------ DINO


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


# ----------------------------------------------------------------------------------------- consistency


def _normalize(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    mean_t = torch.tensor(mean, dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
    return (pixels - mean_t) / std_t


def vbench_clip_transform(frames: torch.Tensor, size: int = 224) -> torch.Tensor:
    """VBench's ``clip_transform(size)`` (vbench/utils.py) on frames ``[N, 3, H, W]`` in 0..255: short side to
    ``size`` (bicubic, ``antialias=False``), centre crop, /255, CLIP mean/std. A uint8 input is resized as
    torchvision resizes uint8 tensors (result rounded and clamped to uint8), as VBench's decord frames are
    in overall_consistency; a float input stays float (background_consistency, and gradients)."""
    pixels = center_crop(resize(frames, size, interpolation=InterpolationMode.BICUBIC, antialias=False), [size, size])
    return _normalize(pixels.float() / 255.0, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)


def consistency_scores(features: torch.Tensor) -> torch.Tensor:
    """VBench's subject/background consistency of per-frame features ``[B, T, D]`` (T >= 2):
    ``mean_{i>=1} (max(0, cos(f_{i-1}, f_i)) + max(0, cos(f_0, f_i))) / 2`` per video."""
    if features.shape[1] < 2:
        raise ValueError(f"consistency compares frames and needs at least 2, got {features.shape[1]}")
    features = F.normalize(features.float(), dim=-1)
    previous = (features[:, 1:] * features[:, :-1]).sum(-1).clamp(min=0)
    first = (features[:, 1:] * features[:, :1]).sum(-1).clamp(min=0)
    return ((previous + first) / 2).mean(dim=1)


class FeatureConsistency(VideoScorer):
    """Subject or background consistency: a frame encoder, VBench's transform, ``consistency_scores``."""

    needs_prompt = False
    max_prompt_tokens = None

    def __init__(self, encoder: torch.nn.Module, transform: Literal["dino", "clip"], *, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.encoder = encoder.eval().requires_grad_(False)
        self.transform = transform
        self.dtype = dtype
        self.sampler = All()
        self.weights_sha256: str | None = None

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames ``[N, 3, H, W]`` in 0..255 -> model input, VBench's ``dino_transform``/``clip_transform``."""
        if self.transform == "clip":
            return vbench_clip_transform(frames)
        pixels = resize(frames, 224, interpolation=InterpolationMode.BILINEAR, antialias=False) / 255.0
        return _normalize(pixels, IMAGENET_MEAN, IMAGENET_STD)

    def score_sampled(self, frames: torch.Tensor, indices: torch.Tensor | None, num_frames: int, prompts: Any = None, rng: Any = None) -> torch.Tensor:
        """Scores ``[B]`` of every frame ``[B, T, 3, H, W]`` in order (``indices`` not needed)."""
        videos = _frames_0_255(frames)
        batch, count = videos.shape[:2]
        device = next(self.encoder.parameters()).device
        pixels = self.preprocess(videos.flatten(0, 1).to(device))
        features = torch.cat([self.encoder(chunk.to(self.dtype)) for chunk in pixels.split(32)])
        return consistency_scores(features.view(batch, count, -1)).float()


@register_reward(
    "subject_consistency",
    modality="video",
    needs_prompt=False,
    differentiable=True,
    score_range=(0.0, 1.0),
    weights={"weights": DINO_WEIGHTS},
    description="VBench subject consistency: DINO ViT-B/16 feature similarity to the previous and first frame",
    paper="arXiv:2311.17982",
    repository="https://github.com/Vchitect/VBench",
)
def create_subject_consistency(*, device: torch.device, dtype: torch.dtype, weights: str | None) -> FeatureConsistency:
    """VBench's subject consistency; ``weights`` is DINO's ``dino_vitbase16_pretrain.pth`` (downloaded from
    dl.fbaipublicfiles.com when absent)."""
    path = explicit_weights_file(weights, reward="subject_consistency") if weights else resolve_weight_file(DINO_WEIGHTS, reward="subject_consistency")
    encoder = DinoVisionTransformer.from_state_dict(load_state_dict(path), str(path)).to(device=device, dtype=dtype)
    metric = FeatureConsistency(encoder, "dino", dtype=dtype)
    metric.weights_sha256 = sha256_of(Path(path))
    return metric


@register_reward(
    "background_consistency",
    modality="video",
    needs_prompt=False,
    differentiable=True,
    score_range=(0.0, 1.0),
    weights=lambda options: _clip_files(options["architecture"]),
    description="VBench background consistency: CLIP ViT-B/32 similarity to the previous and first frame",
    paper="arXiv:2311.17982",
    repository="https://github.com/Vchitect/VBench",
)
def create_background_consistency(
    *, architecture: str = "ViT-B-32", device: torch.device, dtype: torch.dtype, weights: str | None
) -> FeatureConsistency:
    """VBench's background consistency; ``weights`` an open_clip checkpoint of ``architecture`` (default
    open_clip's Hub file of ViT-B-32/openai, the OpenAI weights VBench loads with ``clip.load``)."""
    from rewardkit.rewards.clip import build_pretrained_open_clip

    model, _, path = build_pretrained_open_clip(architecture, "openai", weights, reward="background_consistency")
    metric = FeatureConsistency(model.visual.to(device=device, dtype=dtype), "clip", dtype=dtype)
    metric.weights_sha256 = sha256_of(Path(path))
    return metric


def _clip_files(architecture: str) -> list[WeightFile]:
    from rewardkit.rewards.clip import _clip_weight_files

    return _clip_weight_files({"architecture": architecture, "pretrained": "openai"})


# ------------------------------------------------------------------------------------------- aesthetic


class AestheticQuality(VideoScorer):
    """VBench aesthetic_quality: the ``aesthetic`` reward (``head=vbench``) on every frame, averaged."""

    needs_prompt = False
    max_prompt_tokens = None

    def __init__(self, aesthetic: torch.nn.Module) -> None:
        super().__init__()
        self.aesthetic = aesthetic
        self.sampler = All()
        self.weights_sha256: str | None = aesthetic.weights_sha256

    def score_sampled(self, frames: torch.Tensor, indices: torch.Tensor | None, num_frames: int, prompts: Any = None, rng: Any = None) -> torch.Tensor:
        """Mean over every frame ``[B, T, 3, H, W]`` of the per-frame VBench aesthetic score (/10)."""
        videos = as_float_videos(frames, keep_uint8=True)
        batch, count = videos.shape[:2]
        scores = torch.cat([self.aesthetic(chunk) for chunk in videos.flatten(0, 1).split(32)])
        return scores.view(batch, count).float().mean(dim=1)


@register_reward(
    "aesthetic_quality",
    modality="video",
    needs_prompt=False,
    differentiable=True,
    score_range=(0.0, 1.0),
    weights=lambda options: _aesthetic_files(options),
    description="VBench aesthetic quality: LAION linear aesthetic head on CLIP ViT-L/14, /10, mean over frames",
    paper="arXiv:2311.17982",
    repository="https://github.com/Vchitect/VBench",
)
def create_aesthetic_quality(
    *,
    clip_weights: str | None = None,
    architecture: str = "ViT-L-14",
    mode: Literal["reference", "differentiable"] = "reference",
    device: torch.device,
    dtype: torch.dtype,
    weights: str | None,
) -> AestheticQuality:
    """``aesthetic`` with ``head=vbench`` (its ``weights``/``clip_weights``/``architecture``/``mode``) on
    every frame, averaged per video as VBench does."""
    from rewardkit.registry import create_reward

    aesthetic = create_reward(
        "aesthetic", head="vbench", clip_weights=clip_weights, architecture=architecture, mode=mode,
        device=device, dtype=dtype, weights=weights,
    )
    return AestheticQuality(aesthetic)


def _aesthetic_files(options: Mapping[str, Any]) -> list[WeightFile]:
    from rewardkit.rewards.aesthetic import _aesthetic_weight_files

    return _aesthetic_weight_files({"head": "vbench", "architecture": options["architecture"]})
