"""CLIP (open_clip models): the ``clip`` score, and VBench's ``appearance_style`` and
``background_consistency``, which run CLIP ViT-B/32 on every frame.

Radford et al., "Learning Transferable Visual Models From Natural Language Supervision" (ICML 2021),
https://github.com/mlfoundations/open_clip. Score forms:

- ``cosine``: cos(image, text) of the L2-normalised embeddings.
- ``hessel``: CLIPScore of Hessel et al. (EMNLP 2021, https://github.com/jmhessel/clipscore),
  ``2.5 * max(cos, 0)`` with the prompt prefixed by "A photo depicts ".
- ``x100``: ``max(100 * cos, 0)`` per image (torchmetrics' CLIPScore clamps the batch MEAN instead).

The model is built with ``pretrained=None`` and the checkpoint loaded through rewardkit's safe, strict
loader; ``architecture`` is an open_clip model name or a path to an open_clip JSON model config.

VBench (Huang et al., CVPR 2024, arXiv:2311.17982, https://github.com/Vchitect/VBench), with open_clip's copy
of the OpenAI ViT-B/32 weights that VBench loads with ``clip.load``:

- ``appearance_style`` (vbench/appearance_style.py): CLIP on *every* frame, each frame through
  ``clip_transform_Image(224)`` (PIL bicubic resize of the short side to 224, centre crop, ToTensor, CLIP
  mean/std: open_clip's OpenAI eval transform, the ``clip`` reward's ``reference`` mode). Per frame VBench
  keeps ``logits_per_text / 100`` = ``exp(logit_scale) * cos / 100`` (``exp(logit_scale)`` is 100.03 for
  the OpenAI ViT-B/32 checkpoint, whose fp16 ``logit_scale`` is 4.6055); the video score is the mean over
  its frames. The prompt is the style text (VBench's ``auxiliary_info.appearance_style``, e.g. "Van Gogh
  style"), not the whole generation prompt. VBench tokenizes with ``clip.tokenize`` (77 tokens, an error
  beyond); open_clip truncates instead. VBench's dimension value is frame-weighted (sum of frame scores /
  number of frames, over all videos); it equals the mean of these per-video scores when every video has
  the same number of frames.
- ``background_consistency`` (vbench/background_consistency.py): VBench's consistency formula
  (rewardkit.rewards.consistency) on the image embeddings, frames resized to 224 on the short side
  (bicubic, ``antialias=False``), centre-cropped, /255, CLIP mean/std.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from rewardkit.lazy import lazy_import
from rewardkit.registry import WeightFile, register_reward
from rewardkit.rewards.base import ImageScorer, PreprocessMode, TextFeatureCache, VideoScorer
from rewardkit.rewards.consistency import FeatureConsistency
from rewardkit.transforms import ShortestSideCropPreprocess, as_float_videos, check_prompts
from rewardkit.video.sampling import All
from rewardkit.weights import WeightsArgument, build_with_weights, load_state_dict, load_strict

open_clip = lazy_import("open_clip")

__all__ = [
    "AppearanceStyle",
    "OpenClipReward",
    "ClipScore",
    "clip_weight_file",
    "build_open_clip",
    "build_pretrained_open_clip",
    "open_clip_image_size",
    "open_clip_reference_transform",
]

HESSEL_PREFIX = "A photo depicts "


@contextlib.contextmanager
def _quiet_open_clip():
    # open_clip logs "No pretrained weights loaded" at WARNING through the root logger; we load ourselves.
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def build_open_clip(architecture: str, *, quick_gelu: bool = False) -> tuple[torch.nn.Module, Any]:
    """An open_clip model with random weights and its tokenizer.

    ``architecture`` is a registered open_clip name (``ViT-H-14``) or a path to a JSON model config in
    open_clip's format, registered under its file stem.
    """
    name = architecture
    if architecture.endswith(".json"):
        path = Path(architecture)
        if not path.is_file():
            raise FileNotFoundError(f"open_clip model config {architecture!r} does not exist")
        open_clip.add_model_config(path)
        name = path.stem
    if name not in open_clip.list_models():
        raise ValueError(
            f"unknown open_clip architecture {architecture!r}; use a name from open_clip.list_models() "
            f"(e.g. ViT-L-14) or a path to a JSON model config"
        )
    with _quiet_open_clip():
        model = open_clip.create_model(name, pretrained=None, force_quick_gelu=quick_gelu)
    return model, open_clip.get_tokenizer(name)


class PilTransform:
    """Reference preprocessing: uint8 ``[H, W, 3]`` -> PIL -> an official torchvision transform."""

    def __init__(self, transform: Any) -> None:
        self.transform = transform

    def __call__(self, frame: np.ndarray) -> torch.Tensor:
        return self.transform(Image.fromarray(frame, mode="RGB"))

    @property
    def key(self) -> tuple[str, str]:
        """Equal for equal steps (torchvision's repr lists each step and its arguments): see ``Preprocess.key``."""
        return type(self).__name__, repr(self.transform)


def open_clip_image_size(model: torch.nn.Module) -> int:
    size = model.visual.image_size
    return size[0] if isinstance(size, tuple) else size


def open_clip_reference_transform(model: torch.nn.Module) -> PilTransform:
    """open_clip's own eval transform for ``model`` (for OpenAI models the same steps as ``clip.load``'s
    preprocess: PIL bicubic resize of the shortest side, centre crop, RGB, ToTensor, normalise)."""
    config = model.visual.preprocess_cfg
    return PilTransform(
        open_clip.image_transform(
            open_clip_image_size(model),
            is_train=False,
            mean=config["mean"],
            std=config["std"],
            resize_mode=config["resize_mode"],
            interpolation=config["interpolation"],
        )
    )


def build_pretrained_open_clip(architecture: str, pretrained: str, path: Path) -> tuple[torch.nn.Module, Any]:
    """An open_clip model of ``architecture`` loaded strictly from the checkpoint at ``path``, and its
    tokenizer. The activation follows open_clip's pretrained config (OpenAI models use QuickGELU)."""
    config = {} if architecture.endswith(".json") else (open_clip.get_pretrained_cfg(architecture, pretrained) or {})
    model, tokenizer = build_open_clip(architecture, quick_gelu=bool(config.get("quick_gelu", False)))
    load_strict(model, load_state_dict(path), str(path))
    return model, tokenizer


class OpenClipReward(ImageScorer):
    """Shared machinery of open_clip image-text rewards: loading, cached text features, cosine."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        mode: PreprocessMode,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        super().__init__(mode, dtype)
        self.model = model.to(device=device, dtype=dtype)
        self.tokenizer = tokenizer
        self.max_prompt_tokens = tokenizer.context_length
        self.image_size = open_clip_image_size(model)
        self.text_features = TextFeatureCache(self._encode_text)
        self.freeze()

    def load_checkpoint(self, path: Path, state_dict: Mapping[str, torch.Tensor]) -> None:
        load_strict(self.model, state_dict, str(path))
        self.model.to(dtype=self.dtype)
        self.text_features.clear()

    def _encode_text(self, prompts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(self.text_inputs(prompts)).to(self.device)
        return self.model.encode_text(tokens, normalize=True).float()

    def text_inputs(self, prompts: Sequence[str]) -> list[str]:
        """The strings actually tokenized (a score form may add a prefix)."""
        return list(prompts)

    def prompt_token_count(self, prompt: str) -> int:
        return len(self.tokenizer.encode(self.text_inputs([prompt])[0])) + 2

    def cosine(self, pixel_values: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        image = self.model.encode_image(pixel_values.to(self.device, self.dtype), normalize=True).float()
        text = self.text_features(prompts)
        return (image * text).sum(dim=-1)


class ClipScore(OpenClipReward):
    """CLIP image-text similarity; see the module docstring for the score forms."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, *, form: str, **kwargs: Any) -> None:
        super().__init__(model, tokenizer, **kwargs)
        self.form = form
        config = model.visual.preprocess_cfg
        self.torch_preprocess = ShortestSideCropPreprocess(self.image_size, config["mean"], config["std"])
        self.reference_preprocess = open_clip_reference_transform(model)

    def text_inputs(self, prompts: Sequence[str]) -> list[str]:
        return [HESSEL_PREFIX + prompt for prompt in prompts] if self.form == "hessel" else list(prompts)

    def score_preprocessed(self, pixel_values: torch.Tensor, prompts: Sequence[str] | None) -> torch.Tensor:
        cosine = self.cosine(pixel_values, prompts)
        if self.form == "hessel":
            return 2.5 * cosine.clamp(min=0)
        if self.form == "x100":
            return (100 * cosine).clamp(min=0)
        return cosine


def clip_weight_file(architecture: str, pretrained: str) -> WeightFile:
    """open_clip's Hugging Face file for ``architecture``/``pretrained`` (``open_clip_model.safetensors``)."""
    # The defaults' Hub repos (as open_clip's pretrained configs name them, so `rewardkit list` need not
    # import open_clip) and sizes: parameter counts x 4 bytes (fp32 safetensors), from open_clip's configs.
    known = {
        ("ViT-L-14", "openai"): ("timm/vit_large_patch14_clip_224.openai", 1_710_466_052, "MIT"),
        ("ViT-B-32", "openai"): ("timm/vit_base_patch32_clip_224.openai", 605_109_252, "MIT"),
    }
    if (architecture, pretrained) in known:
        repo, size, license_name = known[(architecture, pretrained)]
        return WeightFile(repo, "open_clip_model.safetensors", size, license_name)
    config = open_clip.get_pretrained_cfg(architecture, pretrained) if not architecture.endswith(".json") else {}
    if not config.get("hf_hub"):  # a JSON config or a pretrained tag without Hub weights: the user's file
        return WeightFile(
            "open_clip",
            "open_clip_model.safetensors",
            0,
            "see the model card",
            manual=f"an open_clip checkpoint of architecture={architecture!r} (open_clip has no Hugging Face weights "
            f"for pretrained={pretrained!r}; see open_clip.list_pretrained())",
        )
    return WeightFile(config["hf_hub"].rstrip("/"), "open_clip_model.safetensors", 0, "see the model card")


# The range of each score form (see the module docstring).
CLIP_SCORE_RANGES = {"cosine": (-1.0, 1.0), "hessel": (0.0, 2.5), "x100": (0.0, 100.0)}


@register_reward(
    "clip",
    modality="image",
    needs_prompt=True,
    differentiable=True,
    score_range=lambda options: CLIP_SCORE_RANGES[options["form"]],
    description="CLIP image-text similarity (open_clip; cosine, Hessel's CLIPScore or x100)",
    weights=lambda options: {"model": clip_weight_file(options["architecture"], options["pretrained"])},
    paper="arXiv:2103.00020; CLIPScore arXiv:2104.08718",
    repository="https://github.com/mlfoundations/open_clip",
)
def create_clip_score(
    *,
    architecture: str = "ViT-L-14",
    pretrained: str = "openai",
    form: Literal["cosine", "hessel", "x100"] = "cosine",
    mode: Literal["reference", "differentiable"] = "reference",
    device: torch.device,
    dtype: torch.dtype,
    weights: WeightsArgument,
) -> ClipScore:
    """CLIP score with an open_clip model (default ViT-L-14, OpenAI weights)."""

    def build(paths: Mapping[str, Path]) -> ClipScore:
        model, tokenizer = build_pretrained_open_clip(architecture, pretrained, paths["model"])
        return ClipScore(model, tokenizer, form=form, mode=mode, device=device, dtype=dtype)

    return build_with_weights("clip", weights, {"architecture": architecture, "pretrained": pretrained}, build)


# ------------------------------------------------------------------------ VBench dimensions on CLIP B/32


class AppearanceStyle(VideoScorer):
    """VBench appearance_style: per frame ``exp(logit_scale) * cos(CLIP image, CLIP text) / 100``, averaged
    over every frame of the video. ``clip`` is a ``ClipScore`` (``form="cosine"``)."""

    needs_prompt = True

    def __init__(self, clip: ClipScore) -> None:
        super().__init__()
        self.clip = clip
        self.sampler = All()
        self.weights_sha256: str | None = None
        self.max_prompt_tokens: int | None = clip.max_prompt_tokens

    def prompt_truncated(self, prompt: str) -> bool:
        """Whether ``prompt`` exceeds CLIP's 77 tokens (VBench's ``clip.tokenize`` would raise; it is truncated)."""
        return bool(self.clip.prompt_truncated(prompt))

    def score_sampled(
        self,
        frames: torch.Tensor,
        indices: torch.Tensor | None,
        num_frames: int,
        prompts: Sequence[str] | str | None = None,
        rng: Any = None,
    ) -> torch.Tensor:
        """Mean over the frames ``[B, K, 3, H, W]`` of VBench's per-frame style similarity."""
        videos = as_float_videos(frames, keep_uint8=True)
        batch, count = videos.shape[:2]
        texts = check_prompts(prompts, batch, "appearance_style", needs_prompt=True)
        per_frame = [text for text in texts for _ in range(count)]
        images = videos.flatten(0, 1)
        cosine = torch.cat([
            self.clip(images[start : start + 32], per_frame[start : start + 32]) for start in range(0, len(images), 32)
        ])
        scale = self.clip.model.logit_scale.detach().float().exp() / 100
        return (cosine.float().view(batch, count) * scale.to(cosine.device)).mean(dim=1)


def _vbench_clip_weights(options: Mapping[str, Any]) -> dict[str, WeightFile]:
    return {"model": clip_weight_file(options["architecture"], "openai")}


@register_reward(
    "appearance_style",
    modality="video",
    needs_prompt=True,
    differentiable=True,
    score_range=(-1.0, 1.0),
    weights=_vbench_clip_weights,
    description="VBench appearance style: CLIP ViT-B/32 frame-text similarity (logits / 100), mean over frames",
    paper="arXiv:2311.17982",
    repository="https://github.com/Vchitect/VBench",
)
def create_appearance_style(
    *,
    architecture: str = "ViT-B-32",
    mode: Literal["reference", "differentiable"] = "reference",
    device: torch.device,
    dtype: torch.dtype,
    weights: WeightsArgument,
) -> AppearanceStyle:
    """VBench's appearance style; ``weights`` an open_clip checkpoint of ``architecture`` (default open_clip's
    Hub file of ViT-B-32/openai, the weights VBench loads with ``clip.load("ViT-B/32")``); ``mode=reference``
    preprocesses with PIL as VBench does, ``differentiable`` in torch."""

    def build(paths: Mapping[str, Path]) -> AppearanceStyle:
        model, tokenizer = build_pretrained_open_clip(architecture, "openai", paths["model"])
        return AppearanceStyle(ClipScore(model, tokenizer, form="cosine", mode=mode, device=device, dtype=dtype))

    return build_with_weights("appearance_style", weights, {"architecture": architecture}, build)


@register_reward(
    "background_consistency",
    modality="video",
    needs_prompt=False,
    differentiable=True,
    score_range=(0.0, 1.0),
    weights=_vbench_clip_weights,
    description="VBench background consistency: CLIP ViT-B/32 similarity to the previous and first frame",
    paper="arXiv:2311.17982",
    repository="https://github.com/Vchitect/VBench",
)
def create_background_consistency(
    *, architecture: str = "ViT-B-32", device: torch.device, dtype: torch.dtype, weights: WeightsArgument
) -> FeatureConsistency:
    """VBench's background consistency; ``weights`` an open_clip checkpoint of ``architecture`` (default
    open_clip's Hub file of ViT-B-32/openai, the OpenAI weights VBench loads with ``clip.load``)."""

    def build(paths: Mapping[str, Path]) -> FeatureConsistency:
        model, _ = build_pretrained_open_clip(architecture, "openai", paths["model"])
        return FeatureConsistency(model.visual.to(device=device, dtype=dtype), "clip", dtype=dtype)

    return build_with_weights("background_consistency", weights, {"architecture": architecture}, build)
