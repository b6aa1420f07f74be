"""ViCLIP (Wang et al., "InternVid", arXiv:2307.06942) and VBench's ``overall_consistency`` and
``temporal_style`` on it.

Huang et al., "VBench: Comprehensive Benchmark Suite for Video Generative Models" (CVPR 2024,
arXiv:2311.17982), https://github.com/Vchitect/VBench (vbench/overall_consistency.py; VBench's copy of
ViCLIP in vbench/third_party/ViCLIP): ViCLIP ViT-L/14 video-text cosine on 8 frames picked
``read_frames_decord_by_fps(num_frames=8, sample="middle")``: the video split at
``linspace(0, T, 9).astype(int)``, the middle ``(start + end - 1) // 2`` of each part, the last index
repeated when T < 8 (``VBenchMiddleFrames``); frames through ``clip_transform(224)`` on uint8 tensors
(``vbench_clip_transform``). ViCLIP here: a CLIP ViT whose frame tokens get a learned temporal embedding
per frame and are attended jointly (one class token for the video) and a CLIP text transformer with a
32-token context, both with ViCLIP's parameter names so ``ViClip-InternVid-10M-FLT.pth`` (``{"model":
state_dict}``) loads strictly. The transformer blocks and the text tower are open_clip's modules, whose
parameter names and computation are those of ViCLIP's blocks (QuickGELU, pre-norm, argmax pooling).
The dimension value is the plain mean over videos. VBench's vbench/temporal_style.py is the same
computation as vbench/overall_consistency.py (same 8 middle frames, transform, ViCLIP features and
cosine); the two dimensions differ only in their prompt lists (the temporal-style prompts, such as
"... , in slow motion"), so both are registered on one scorer here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardkit.lazy import lazy_import
from rewardkit.registry import WeightFile, register_reward
from rewardkit.rewards.base import TextFeatureCache, VideoScorer
from rewardkit.rewards.consistency import vbench_clip_transform
from rewardkit.transforms import as_float_videos, check_prompts
from rewardkit.weights import (
    WeightsArgument,
    WeightsMismatchError,
    build_with_weights,
    load_state_dict,
    load_strict,
)

open_clip = lazy_import("open_clip")
QuickGELU = lazy_import("open_clip.transformer", "QuickGELU")
TextTransformer = lazy_import("open_clip.transformer", "TextTransformer")
Transformer = lazy_import("open_clip.transformer", "Transformer")

__all__ = [
    "VICLIP_WEIGHTS",
    "ViClipTextVideoScore",
    "build_viclip_score",
    "ViClip",
    "ViClipVision",
    "VBenchMiddleFrames",
]

# Size and sha256 as the Hub lists the file (commit 83290ee, its Git LFS details: 1.71 GB); the repo's licence.
VICLIP_WEIGHTS = WeightFile(
    "OpenGVLab/VBench_Used_Models",
    "ViClip-InternVid-10M-FLT.pth",
    1_710_000_000,
    "Apache-2.0",
    sha256="7a4d6ad6eac6632db3693f4b97f9f8f6445b65b1e139a6fc6686150522238c56",
)
VICLIP_CONTEXT_LENGTH = 32  # ViCLIP: self.max_txt_l = 32


@dataclass(frozen=True)
class VBenchMiddleFrames:
    """VBench's ``get_frame_indices(n, T, sample="middle")``: the middle frame of each of ``n`` parts split at
    ``linspace(0, T, n + 1).astype(int)``; for T < n every frame, then the last one repeated up to ``n``."""

    frames: int = 8

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"VBenchMiddleFrames needs at least 1 frame, got {self.frames}")

    def indices(self, num_frames: int, rng: np.random.Generator | None = None, *, fps: float | None = None) -> list[int]:
        if num_frames < 1:
            raise ValueError(f"the video has no frames (num_frames={num_frames})")
        edges = np.linspace(0, num_frames, min(self.frames, num_frames) + 1).astype(int)
        chosen = [int((start + end - 1) // 2) for start, end in zip(edges[:-1], edges[1:], strict=True)]
        return chosen + [chosen[-1]] * (self.frames - len(chosen))


# ------------------------------------------------------------------------------------------------ ViCLIP


class ViClipVision(torch.nn.Module):
    """ViCLIP's video encoder (viclip_vision.py ``VisionTransformer``, parameter names kept): per-frame patch
    embedding (``Conv3d`` with a temporal kernel), spatial then temporal position embeddings, one class token
    attending over every frame's patches, ``ln_post`` of the class token times ``proj``."""

    def __init__(
        self, *, width: int, layers: int, heads: int, patch: int, grid: int, frames: int, output_dim: int, kernel: int = 1
    ) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv3d(3, width, (kernel, patch, patch), (kernel, patch, patch), bias=False)
        self.class_embedding = torch.nn.Parameter(torch.zeros(width))
        self.positional_embedding = torch.nn.Parameter(torch.zeros(grid * grid + 1, width))
        self.temporal_positional_embedding = torch.nn.Parameter(torch.zeros(1, frames, width))
        self.ln_pre = torch.nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads, act_layer=QuickGELU, norm_layer=torch.nn.LayerNorm)
        self.ln_post = torch.nn.LayerNorm(width)
        self.proj = torch.nn.Parameter(torch.zeros(width, output_dim))

    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        """Embeddings ``[B, output_dim]`` of normalised videos ``[B, T, 3, H, W]`` (T = the trained frame
        count, or 1, which gets the mean temporal embedding as in ViCLIP)."""
        batch = videos.shape[0]
        x = self.conv1(videos.transpose(1, 2))  # [B, C, T', h, w]
        x = x.permute(0, 2, 3, 4, 1).flatten(2, 3)  # [B, T', h*w, C]
        if x.shape[2] + 1 != self.positional_embedding.shape[0]:
            side = self.conv1.kernel_size[-1] * round((self.positional_embedding.shape[0] - 1) ** 0.5)
            raise ValueError(f"ViCLIP takes {side}x{side} frames, got {tuple(videos.shape[-2:])}")
        temporal = self.temporal_positional_embedding
        if x.shape[1] == 1:
            temporal = temporal.mean(dim=1, keepdim=True)
        elif x.shape[1] != temporal.shape[1]:
            raise ValueError(f"ViCLIP was trained on {temporal.shape[1]} frames and cannot take {x.shape[1]}")
        x = x + self.positional_embedding[1:].to(x.dtype) + temporal[:, :, None].to(x.dtype)
        x = x.transpose(1, 2).flatten(1, 2)  # patch-major, frame-minor tokens, as ViCLIP orders them
        cls = (self.class_embedding + self.positional_embedding[0]).to(x.dtype).expand(batch, 1, -1)
        x = self.transformer(self.ln_pre(torch.cat([cls, x], dim=1)))
        return self.ln_post(x[:, 0]) @ self.proj


class ViClip(torch.nn.Module):
    """ViCLIP (viclip.py): ``vision_encoder``, ``text_encoder`` and the contrastive ``temp`` of
    ``ViClip-InternVid-10M-FLT.pth``; shapes are read from the checkpoint (heads = width / 64)."""

    def __init__(self, vision: ViClipVision, text: TextTransformer) -> None:
        super().__init__()
        self.vision_encoder = vision
        self.text_encoder = text
        self.temp = torch.nn.Parameter(torch.tensor(0.01))

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Any], source: str) -> ViClip:
        """A ViCLIP built to the checkpoint's shapes (the ``model`` entry of the official file) and loaded strictly."""
        if isinstance(state_dict.get("model"), Mapping):
            state_dict = state_dict["model"]
        needed = ("vision_encoder.conv1.weight", "vision_encoder.proj", "text_encoder.token_embedding.weight")
        if not all(key in state_dict for key in needed):
            raise WeightsMismatchError(
                f"{source} is not a ViCLIP checkpoint (expected {{'model': state dict}} with vision_encoder.* and "
                f"text_encoder.* keys, as ViClip-InternVid-10M-FLT.pth)"
            )

        def depth(prefix: str) -> int:
            return len({key.split(".")[3] for key in state_dict if key.startswith(f"{prefix}.transformer.resblocks.")})

        conv = state_dict["vision_encoder.conv1.weight"]
        width = conv.shape[0]
        vision = ViClipVision(
            width=width,
            layers=depth("vision_encoder"),
            heads=max(1, width // 64),
            patch=conv.shape[-1],
            grid=round((state_dict["vision_encoder.positional_embedding"].shape[0] - 1) ** 0.5),
            frames=state_dict["vision_encoder.temporal_positional_embedding"].shape[1],
            output_dim=state_dict["vision_encoder.proj"].shape[1],
            kernel=conv.shape[2],
        )
        vocab, text_width = state_dict["text_encoder.token_embedding.weight"].shape
        text = TextTransformer(
            context_length=state_dict["text_encoder.positional_embedding"].shape[0],
            vocab_size=vocab,
            width=text_width,
            heads=max(1, text_width // 64),
            layers=depth("text_encoder"),
            output_dim=state_dict["text_encoder.text_projection"].shape[1],
            act_layer=QuickGELU,
        )
        model = cls(vision, text)
        load_strict(model, state_dict, source)
        return model


class ViClipTextVideoScore(VideoScorer):
    """VBench overall_consistency / temporal_style: cosine of ViCLIP's video embedding (8 middle frames)
    and text embedding; ``dimension`` names the scorer in error messages."""

    needs_prompt = True

    def __init__(self, viclip: ViClip, *, dtype: torch.dtype = torch.float32, dimension: str = "overall_consistency") -> None:
        super().__init__()
        self.dimension = dimension
        self.viclip = viclip.eval().requires_grad_(False)
        self.dtype = dtype
        frames = viclip.vision_encoder.temporal_positional_embedding.shape[1]
        self.sampler = VBenchMiddleFrames(frames)
        self.max_prompt_tokens: int | None = viclip.text_encoder.context_length
        self.tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=self.max_prompt_tokens)
        self.text_features = TextFeatureCache(self._encode_text)
        self.weights_sha256: str | None = None

    @property
    def device(self) -> torch.device:
        return self.viclip.temp.device

    def prompt_truncated(self, prompt: str) -> bool:
        """Whether ``prompt`` exceeds ViCLIP's 32-token context (ViCLIP truncates, keeping the end token)."""
        return len(self.tokenizer.encode(prompt)) + 2 > self.max_prompt_tokens

    def _encode_text(self, prompts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(prompts).to(self.device)
        return torch.nn.functional.normalize(self.viclip.text_encoder(tokens).float(), dim=-1)

    def score_sampled(
        self,
        frames: torch.Tensor,
        indices: torch.Tensor | None,
        num_frames: int,
        prompts: Sequence[str] | str | None = None,
        rng: Any = None,
    ) -> torch.Tensor:
        """Scores ``[B]`` of frames ``[B, K, 3, H, W]`` decoded at ``self.sampler``'s indices, in order."""
        videos = as_float_videos(frames, keep_uint8=True)
        batch, count = videos.shape[:2]
        texts = check_prompts(prompts, batch, self.dimension, needs_prompt=True)
        if videos.dtype != torch.uint8:
            videos = videos * 255.0  # VBench's frames are uint8 0..255; float [0, 1] input is rescaled
        pixels = vbench_clip_transform(videos.flatten(0, 1).to(self.device)).view(batch, count, 3, 224, 224)
        video = torch.nn.functional.normalize(self.viclip.vision_encoder(pixels.to(self.dtype)).float(), dim=-1)
        return (video * self.text_features(texts)).sum(dim=-1)


def build_viclip_score(dimension: str, *, device: torch.device, dtype: torch.dtype, weights: WeightsArgument) -> ViClipTextVideoScore:
    """A ViCLIP text-video scorer registered as ``dimension``; ``weights`` is ``ViClip-InternVid-10M-FLT.pth``
    (downloaded from the Hugging Face repo OpenGVLab/VBench_Used_Models when absent)."""

    def build(paths: Mapping[str, Path]) -> ViClipTextVideoScore:
        path = paths["model"]
        viclip = ViClip.from_state_dict(load_state_dict(path), str(path)).to(device=device, dtype=dtype)
        return ViClipTextVideoScore(viclip, dtype=dtype, dimension=dimension)

    return build_with_weights(dimension, weights, {}, build)


@register_reward(
    "overall_consistency",
    modality="video",
    needs_prompt=True,
    differentiable=True,
    score_range=(-1.0, 1.0),
    weights={"model": VICLIP_WEIGHTS},
    description="VBench overall consistency: ViCLIP ViT-L/14 video-text cosine on 8 frames",
    paper="arXiv:2311.17982; ViCLIP arXiv:2307.06942",
    repository="https://github.com/Vchitect/VBench",
)
def create_overall_consistency(*, device: torch.device, dtype: torch.dtype, weights: WeightsArgument) -> ViClipTextVideoScore:
    """VBench's overall consistency (its prompt list: overall_consistency)."""
    return build_viclip_score("overall_consistency", device=device, dtype=dtype, weights=weights)


@register_reward(
    "temporal_style",
    modality="video",
    needs_prompt=True,
    differentiable=True,
    score_range=(-1.0, 1.0),
    weights={"model": VICLIP_WEIGHTS},
    description="VBench temporal style: ViCLIP ViT-L/14 video-text cosine on 8 frames (temporal-style prompts)",
    paper="arXiv:2311.17982; ViCLIP arXiv:2307.06942",
    repository="https://github.com/Vchitect/VBench",
)
def create_temporal_style(*, device: torch.device, dtype: torch.dtype, weights: WeightsArgument) -> ViClipTextVideoScore:
    """VBench's temporal style (its prompt list: temporal_style, e.g. camera motion and slow motion)."""
    return build_viclip_score("temporal_style", device=device, dtype=dtype, weights=weights)
