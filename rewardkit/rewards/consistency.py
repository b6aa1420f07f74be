"""VBench's frame-consistency formula and the scorer shared by ``subject_consistency`` (DINO,
rewardkit.rewards.dino) and ``background_consistency`` (CLIP, rewardkit.rewards.clip), with VBench's
frame transforms.

Huang et al., "VBench" (CVPR 2024, arXiv:2311.17982), https://github.com/Vchitect/VBench
(vbench/subject_consistency.py, vbench/background_consistency.py, vbench/utils.py). VBench's dimension
value for the two consistencies is frame-weighted (the sum of pair similarities over all videos / the
number of pairs); it equals the mean of these per-video scores when every video has the same number of
frames. VBench runs CLIP in fp16 on a GPU (``clip.load``); rewardkit uses the ``dtype`` asked for. Files
stream (``score_stream``): 16 frames at a time, keeping the first and previous frames' features.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from rewardkit.lazy import lazy_import
from rewardkit.rewards.base import VideoScorer
from rewardkit.transforms import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, as_float_videos, normalize
from rewardkit.video.sampling import All

InterpolationMode = lazy_import("torchvision.transforms.functional", "InterpolationMode")
center_crop = lazy_import("torchvision.transforms.functional", "center_crop")
resize = lazy_import("torchvision.transforms.functional", "resize")

__all__ = ["FeatureConsistency", "consistency_scores", "frames_0_255", "vbench_clip_transform"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def frames_0_255(frames: torch.Tensor) -> torch.Tensor:
    """Videos ``[B, K, 3, H, W]`` as float 0..255, as VBench's readers hand them to the models (uint8 kept
    exact; float [0, 1] scaled without rounding so gradients can flow)."""
    videos = as_float_videos(frames, keep_uint8=True)
    return videos.float() if videos.dtype == torch.uint8 else videos.float() * 255.0


def vbench_clip_transform(frames: torch.Tensor, size: int = 224) -> torch.Tensor:
    """VBench's ``clip_transform(size)`` (vbench/utils.py) on frames ``[N, 3, H, W]`` in 0..255: short side to
    ``size`` (bicubic, ``antialias=False``), centre crop, /255, CLIP mean/std. A uint8 input is resized as
    torchvision resizes uint8 tensors (result rounded and clamped to uint8), as VBench's decord frames are
    in overall_consistency; a float input stays float (background_consistency, and gradients)."""
    pixels = center_crop(resize(frames, size, interpolation=InterpolationMode.BICUBIC, antialias=False), [size, size])
    return normalize(pixels.float() / 255.0, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)


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
        self.stream_chunk = 16  # files are scored 16 frames at a time (``score_stream``)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames ``[N, 3, H, W]`` in 0..255 -> model input, VBench's ``dino_transform``/``clip_transform``."""
        if self.transform == "clip":
            return vbench_clip_transform(frames)
        pixels = resize(frames, 224, interpolation=InterpolationMode.BILINEAR, antialias=False) / 255.0
        return normalize(pixels, IMAGENET_MEAN, IMAGENET_STD)

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """Encoder features ``[N, D]`` of frames ``[N, 3, H, W]`` in 0..255, 32 frames per forward."""
        device = next(self.encoder.parameters()).device
        pixels = self.preprocess(frames.to(device))
        return torch.cat([self.encoder(chunk.to(self.dtype)) for chunk in pixels.split(32)])

    def score_sampled(self, frames: torch.Tensor, indices: torch.Tensor | None, num_frames: int, prompts: Any = None, rng: Any = None) -> torch.Tensor:
        """Scores ``[B]`` of every frame ``[B, T, 3, H, W]`` in order (``indices`` not needed)."""
        videos = frames_0_255(frames)
        batch, count = videos.shape[:2]
        return consistency_scores(self.features(videos.flatten(0, 1)).view(batch, count, -1)).float()

    def score_stream(
        self,
        chunks: Iterable[np.ndarray],
        indices: Sequence[int],
        num_frames: int,
        prompt: str | None = None,
        rng: np.random.Generator | None = None,
    ) -> dict[str, float]:
        """``consistency_scores`` of one video arriving as uint8 chunks: keeps the first and previous
        frames' features, so memory does not grow with the length."""
        first: torch.Tensor | None = None
        previous: torch.Tensor | None = None
        pair_values: list[torch.Tensor] = []
        for chunk in chunks:
            features = F.normalize(self.features(torch.from_numpy(chunk).permute(0, 3, 1, 2).float()).float(), dim=-1)
            first = features[0] if first is None else first
            sequence = features if previous is None else torch.cat([previous[None], features])
            if len(sequence) > 1:
                to_previous = (sequence[1:] * sequence[:-1]).sum(-1).clamp(min=0)
                to_first = (sequence[1:] * first).sum(-1).clamp(min=0)
                pair_values.append((to_previous + to_first) / 2)
            previous = features[-1]
        if not pair_values:
            raise ValueError(f"consistency compares frames and needs at least 2, got {len(indices)}")
        return {"score": float(torch.cat(pair_values).mean())}

