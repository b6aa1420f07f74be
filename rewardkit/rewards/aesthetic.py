"""LAION aesthetic predictor: how much people like an image, on average, from its CLIP embedding.

Christoph Schuhmann, "improved aesthetic predictor" (LAION aesthetic predictor v2; no paper),
https://github.com/christophschuhmann/improved-aesthetic-predictor, file ``simple_inference.py``:
OpenAI CLIP ViT-L/14 image embedding (open_clip ``ViT-L-14``/``openai``, QuickGELU), L2-normalised,
into an MLP 768 -> 1024 -> 128 -> 64 -> 16 -> 1 with no activations (the Dropout layers between are
inactive at inference). Weights ``sac+logos+ava1-l14-linearMSE.pth``: a flat state dict with keys
``layers.{0,2,4,6,7}.{weight,bias}`` whose tensors were saved on ``cuda:0`` (rewardkit loads on CPU).
The score is a regression of mean human ratings on a 1-10 scale (SAC, LAION-Logos, AVA): about 1-10,
most photos between 4 and 7; it is a linear function, not clamped.

``head=vbench`` is VBench's ``aesthetic_quality`` (Huang et al., "VBench: Comprehensive Benchmark Suite
for Video Generative Models", arXiv:2311.17982, https://github.com/Vchitect/VBench, file
``vbench/aesthetic_quality.py``): the same CLIP embedding, ``F.normalize``-d, into LAION's first predictor
``sa_0_4_vit_l_14_linear.pth`` (https://github.com/LAION-AI/aesthetic-predictor; one ``nn.Linear(768, 1)``,
keys ``weight``, ``bias``), divided by 10: about 0-1. VBench scores every frame of a video and averages
(``rewardkit score --frames all``); the ``aesthetic_quality`` reward does exactly that.

Preprocessing, ``reference`` mode: ``laion`` uses ``clip.load``'s preprocess, which is open_clip's eval
transform for this model (PIL bicubic resize of the shortest side to 224, centre crop, RGB, ToTensor,
OpenAI mean/std); ``vbench`` uses VBench's tensor transform (torchvision ``Resize(224, bicubic,
antialias=False)`` on the float frames, centre crop, /255, OpenAI mean/std), which is already all torch.
``differentiable`` mode: the same steps in torch (``laion``: bicubic with antialiasing, so it differs from
PIL at sharp edges; ``vbench``: identical to ``reference`` but for the 8-bit rounding of float input).
Deliberate difference: both official scripts run CLIP in fp16 on a GPU (``clip.load``'s default there);
rewardkit runs it in the ``dtype`` asked for (fp32 by default, as the official scripts on CPU) and the head
always in fp32, as they do.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from rewardkit.registry import WeightFile, register_reward
from rewardkit.rewards.base import ImageScorer, PreprocessMode, VideoScorer
from rewardkit.rewards.clip import (
    build_pretrained_open_clip,
    clip_weight_file,
    open_clip_image_size,
    open_clip_reference_transform,
)
from rewardkit.transforms import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    ShortestSideCropPreprocess,
    as_float_videos,
)
from rewardkit.video.sampling import All
from rewardkit.weights import (
    WeightsArgument,
    WeightsMismatchError,
    build_with_weights,
    check_keys,
    load_state_dict,
    load_strict,
)

__all__ = [
    "AestheticPredictor",
    "AestheticQuality",
    "AESTHETIC_HEADS",
    "LaionAestheticMLP",
    "aesthetic_weight_roles",
    "build_aesthetic",
]

HeadName = Literal["laion", "vbench"]

# The heads live only in the authors' GitHub repositories (a copy of the LAION head is on the Hub as
# trl-lib/ddpo-aesthetic-predictor/aesthetic-model.pth, renamed). URLs are pinned to the commits that added
# the files; sha256 computed from those commits' blobs. Sizes are parameter counts x 4 bytes (fp32):
# MLP 768*1024+1024 + 1024*128+128 + 128*64+64 + 64*16+16 + 16+1 = 927,969 parameters; Linear 768+1 = 769
# (the files, with their pickle framing, are 3,714,759 and 4,071 bytes).
AESTHETIC_HEADS: dict[str, WeightFile] = {
    "laion": WeightFile(
        "christophschuhmann/improved-aesthetic-predictor",
        "sac+logos+ava1-l14-linearMSE.pth",
        927_969 * 4,
        "Apache-2.0",
        sha256="21dd590f3ccdc646f0d53120778b296013b096a035a2718c9cb0d511bff0f1e0",
        url="https://raw.githubusercontent.com/christophschuhmann/improved-aesthetic-predictor/"
        "6934dd81792f086e613a121dbce43082cb8be85e/sac%2Blogos%2Bava1-l14-linearMSE.pth",
    ),
    "vbench": WeightFile(
        "LAION-AI/aesthetic-predictor",
        "sa_0_4_vit_l_14_linear.pth",
        769 * 4,
        "MIT",
        sha256="2cd4e60f4f24ae3bcd57b847b13c1f3ba27edc28cc1a7f9ce74ee9f421243cba",
        url="https://raw.githubusercontent.com/LAION-AI/aesthetic-predictor/"
        "6d122adad522ab246644d9dc1c6d7a3810ee255f/sa_0_4_vit_l_14_linear.pth",
    ),
}
_BACKBONE_PRETRAINED = "openai"


class LaionAestheticMLP(torch.nn.Module):
    """The improved predictor's MLP: Linear layers at indices 0, 2, 4, 6, 7 of ``layers``, no activations.

    The official module has Dropout(0.2), Dropout(0.2), Dropout(0.1) at indices 1, 3, 5; they hold no
    weights and do nothing at inference, so Identity stands in for them: the keys are the same and the
    reward stays deterministic even inside a module someone puts in train mode."""

    def __init__(self, in_features: int = 768) -> None:
        super().__init__()
        identity = torch.nn.Identity
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(in_features, 1024), identity(),
            torch.nn.Linear(1024, 128), identity(),
            torch.nn.Linear(128, 64), identity(),
            torch.nn.Linear(64, 16),
            torch.nn.Linear(16, 1),
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.layers(embeddings)


def _make_head(head: str, in_features: int) -> torch.nn.Module:
    return LaionAestheticMLP(in_features) if head == "laion" else torch.nn.Linear(in_features, 1)


_INPUT_WEIGHT = {"laion": "layers.0.weight", "vbench": "weight"}


def _check_head_keys(head: str, state_dict: Any, source: str) -> None:
    """A flat state dict with exactly the head's keys, or an error that says which file was meant."""
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise WeightsMismatchError(
            f"{source} is not an aesthetic head: expected a flat state dict of tensors "
            f"(as {AESTHETIC_HEADS[head].filename}), got {type(state_dict).__name__}"
        )
    other = "vbench" if head == "laion" else "laion"
    expected = set(_make_head(head, 1).state_dict())
    if set(state_dict) != expected and set(state_dict) == set(_make_head(other, 1).state_dict()):
        raise WeightsMismatchError(
            f"{source} has the keys of the {other!r} head ({AESTHETIC_HEADS[other].filename}), but head={head!r} "
            f"was asked for; pass head={other} (--reward aesthetic:head={other}) or the {head!r} head file "
            f"{AESTHETIC_HEADS[head].filename}"
        )
    check_keys(expected, state_dict.keys(), source)


def _load_head(head: str, state_dict: Any, embed_dim: int, source: str, backbone: str) -> torch.nn.Module:
    """Build the head from its checkpoint: exact keys, input width equal to the backbone's embedding."""
    _check_head_keys(head, state_dict, source)
    width = state_dict[_INPUT_WEIGHT[head]].shape[-1]
    if width != embed_dim:
        raise WeightsMismatchError(
            f"the aesthetic head {source} takes {width}-dim image embeddings, but the CLIP backbone {backbone!r} "
            f"produces {embed_dim}-dim ones. The official heads are for OpenAI CLIP ViT-L/14 (768): use "
            f"architecture=ViT-L-14 with its OpenAI weights, or a head trained on this backbone's embeddings"
        )
    module = _make_head(head, width)
    load_strict(module, state_dict, source)
    return module


class AestheticPredictor(ImageScorer):
    """Aesthetic score of an image: CLIP image embedding, L2-normalised, into a linear head (no prompt)."""

    needs_prompt = False

    def __init__(
        self,
        visual: torch.nn.Module,
        head_module: torch.nn.Module,
        *,
        head: str,
        image_size: int,
        preprocess_cfg: Mapping[str, Any],
        reference_preprocess: Any,
        mode: PreprocessMode,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        super().__init__(mode, dtype)
        self.head_name = head
        self.visual = visual.to(device=device, dtype=dtype)
        # The official scripts run the head in fp32 whatever CLIP ran in.
        self.head = head_module.to(device=device, dtype=torch.float32)
        if head == "vbench":
            # VBench's clip_transform: tensor Resize(224, bicubic, antialias=False), crop, /255, normalise.
            self.torch_preprocess = ShortestSideCropPreprocess(image_size, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, antialias=False)
            self.reference_preprocess = self.torch_preprocess
        else:
            self.torch_preprocess = ShortestSideCropPreprocess(image_size, preprocess_cfg["mean"], preprocess_cfg["std"])
            self.reference_preprocess = reference_preprocess
        self.freeze()

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings ``[B, D]`` in fp32, as each official script normalises them."""
        features = self.visual(pixel_values.to(self.device, self.dtype)).float()
        if self.head_name == "vbench":
            return F.normalize(features, dim=-1, p=2)
        # simple_inference.py's numpy ``normalized``: divide by the L2 norm, a zero norm counted as 1.
        norm = features.norm(dim=-1, keepdim=True)
        return features / torch.where(norm == 0, torch.ones_like(norm), norm)

    def score_preprocessed(self, pixel_values: torch.Tensor, prompts: Any = None) -> torch.Tensor:
        scores = self.head(self.embed(pixel_values)).squeeze(-1)
        return scores / 10 if self.head_name == "vbench" else scores


def aesthetic_weight_roles(head: str, architecture: str) -> dict[str, WeightFile]:
    """The head file and the CLIP backbone (open_clip's Hub file for ``architecture``/openai)."""
    return {"head": AESTHETIC_HEADS[head], "backbone": clip_weight_file(architecture, _BACKBONE_PRETRAINED)}


def build_aesthetic(
    paths: Mapping[str, Path], *, head: str, architecture: str, mode: PreprocessMode, device: torch.device, dtype: torch.dtype
) -> AestheticPredictor:
    """The predictor from its resolved ``head`` and ``backbone`` files; the head's keys are checked before
    the (large) backbone is built."""
    head_path = paths["head"]
    head_state = load_state_dict(head_path)
    _check_head_keys(head, head_state, str(head_path))
    model, _ = build_pretrained_open_clip(architecture, _BACKBONE_PRETRAINED, paths["backbone"])
    visual = model.visual
    head_module = _load_head(head, head_state, int(visual.output_dim), str(head_path), architecture)
    return AestheticPredictor(
        visual,
        head_module,
        head=head,
        image_size=open_clip_image_size(model),
        preprocess_cfg=visual.preprocess_cfg,
        reference_preprocess=open_clip_reference_transform(model),
        mode=mode,
        device=device,
        dtype=dtype,
    )


@register_reward(
    "aesthetic",
    modality="image",
    needs_prompt=False,
    differentiable=True,
    score_range=(0.0, 10.0),
    description="LAION aesthetic predictor v2 on CLIP ViT-L/14 (~1-10), or VBench's aesthetic head (/10, ~0-1)",
    weights=lambda options: aesthetic_weight_roles(options["head"], options["architecture"]),
    paper="no paper (LAION); VBench arXiv:2311.17982",
    repository="https://github.com/christophschuhmann/improved-aesthetic-predictor",
)
def create_aesthetic(
    *,
    head: Literal["laion", "vbench"] = "laion",
    architecture: str = "ViT-L-14",
    mode: Literal["reference", "differentiable"] = "reference",
    device: torch.device,
    dtype: torch.dtype,
    weights: WeightsArgument,
) -> AestheticPredictor:
    """LAION aesthetic predictor (``head=laion``, default) or VBench's aesthetic quality (``head=vbench``).

    ``weights`` is the head file (``sac+logos+ava1-l14-linearMSE.pth`` or ``sa_0_4_vit_l_14_linear.pth``),
    or ``{"head": PATH, "backbone": PATH}`` (on the command line ``--weights aesthetic.backbone=PATH``) where
    the backbone is an open_clip checkpoint of ``architecture`` (default: open_clip's Hub file for
    ViT-L-14/openai, ``open_clip_model.safetensors``, the ``clip`` reward's default). What is left out is
    resolved from the caches or downloaded. The score tensor carries no prompt dependence: prompts are ignored.
    """
    return build_with_weights(
        "aesthetic",
        weights,
        {"head": head, "architecture": architecture},
        lambda paths: build_aesthetic(paths, head=head, architecture=architecture, mode=mode, device=device, dtype=dtype),
    )


class AestheticQuality(VideoScorer):
    """VBench aesthetic_quality: the aesthetic predictor (``head=vbench``) on every frame, averaged."""

    needs_prompt = False
    max_prompt_tokens = None

    def __init__(self, aesthetic: AestheticPredictor) -> None:
        super().__init__()
        self.aesthetic = aesthetic
        self.sampler = All()
        self.weights_sha256: str | None = None

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
    weights=lambda options: aesthetic_weight_roles("vbench", options["architecture"]),
    description="VBench aesthetic quality: LAION linear aesthetic head on CLIP ViT-L/14, /10, mean over frames",
    paper="arXiv:2311.17982",
    repository="https://github.com/Vchitect/VBench",
)
def create_aesthetic_quality(
    *,
    architecture: str = "ViT-L-14",
    mode: Literal["reference", "differentiable"] = "reference",
    device: torch.device,
    dtype: torch.dtype,
    weights: WeightsArgument,
) -> AestheticQuality:
    """The aesthetic predictor with ``head=vbench`` (``weights``: the head file, or ``{"head": ...,
    "backbone": ...}``) on every frame, averaged per video as VBench does."""
    return build_with_weights(
        "aesthetic_quality",
        weights,
        {"architecture": architecture},
        lambda paths: AestheticQuality(
            build_aesthetic(paths, head="vbench", architecture=architecture, mode=mode, device=device, dtype=dtype)
        ),
    )
