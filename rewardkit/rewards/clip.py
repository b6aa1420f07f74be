"""CLIP score with open_clip models.

Radford et al., "Learning Transferable Visual Models From Natural Language Supervision" (ICML 2021),
https://github.com/mlfoundations/open_clip. Score forms:

- ``cosine``: cos(image, text) of the L2-normalised embeddings.
- ``hessel``: CLIPScore of Hessel et al. (EMNLP 2021, https://github.com/jmhessel/clipscore),
  ``2.5 * max(cos, 0)`` with the prompt prefixed by "A photo depicts ".
- ``x100``: ``max(100 * cos, 0)`` per image (torchmetrics' CLIPScore clamps the batch MEAN instead).

The model is built with ``pretrained=None`` and the checkpoint loaded through rewardkit's safe, strict
loader; ``architecture`` is an open_clip model name or a path to an open_clip JSON model config.
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
from rewardkit.rewards.base import ImageScorer, PreprocessMode, TextFeatureCache
from rewardkit.transforms import ShortestSideCropPreprocess
from rewardkit.weights import (
    explicit_weights_file,
    load_state_dict,
    load_strict,
    resolve_weight_file,
    sha256_of,
)

open_clip = lazy_import("open_clip")

__all__ = [
    "OpenClipReward",
    "ClipScore",
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


def build_pretrained_open_clip(
    architecture: str, pretrained: str, weights: str | None, *, reward: str, option: str = "weights"
) -> tuple[torch.nn.Module, Any, Path]:
    """An open_clip model loaded strictly from ``weights`` or, when None, from open_clip's Hub file for
    ``architecture``/``pretrained`` (resolved like every rewardkit weight). Returns model, tokenizer and path.

    The activation follows open_clip's pretrained config (OpenAI models use QuickGELU)."""
    config = {} if architecture.endswith(".json") else (open_clip.get_pretrained_cfg(architecture, pretrained) or {})
    model, tokenizer = build_open_clip(architecture, quick_gelu=bool(config.get("quick_gelu", False)))
    if weights is None:
        weight_file = _clip_weight_files({"architecture": architecture, "pretrained": pretrained})[0]
        path = resolve_weight_file(weight_file, reward=reward, option=option)
    else:
        path = explicit_weights_file(weights, reward=reward)
    load_strict(model, load_state_dict(path), str(path))
    return model, tokenizer, path


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
        self.weights_sha256 = sha256_of(path)
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


def _clip_weight_files(options: Mapping[str, Any]) -> list[WeightFile]:
    architecture, pretrained = options["architecture"], options["pretrained"]
    # The defaults' Hub repos (as open_clip's pretrained configs name them, so `rewardkit list` need not
    # import open_clip) and sizes: parameter counts x 4 bytes (fp32 safetensors), from open_clip's configs.
    known = {
        ("ViT-L-14", "openai"): ("timm/vit_large_patch14_clip_224.openai", 1_710_466_052, "MIT"),
        ("ViT-B-32", "openai"): ("timm/vit_base_patch32_clip_224.openai", 605_109_252, "MIT"),
    }
    if (architecture, pretrained) in known:
        repo, size, license_name = known[(architecture, pretrained)]
        return [WeightFile(repo, "open_clip_model.safetensors", size, license_name)]
    config = open_clip.get_pretrained_cfg(architecture, pretrained) if not architecture.endswith(".json") else {}
    if not config.get("hf_hub"):
        raise ValueError(
            f"open_clip has no Hugging Face weights for architecture={architecture!r} pretrained={pretrained!r}; "
            f"see open_clip.list_pretrained() or pass --weights PATH"
        )
    return [WeightFile(config["hf_hub"].rstrip("/"), "open_clip_model.safetensors", 0, "see the model card")]


# The range of each score form (see the module docstring).
CLIP_SCORE_RANGES = {"cosine": (-1.0, 1.0), "hessel": (0.0, 2.5), "x100": (0.0, 100.0)}


@register_reward(
    "clip",
    modality="image",
    needs_prompt=True,
    differentiable=True,
    score_range=lambda options: CLIP_SCORE_RANGES[options["form"]],
    description="CLIP image-text similarity (open_clip; cosine, Hessel's CLIPScore or x100)",
    weights=_clip_weight_files,
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
    weights: str | None,
) -> ClipScore:
    """CLIP score with an open_clip model (default ViT-L-14, OpenAI weights)."""
    model, tokenizer, path = build_pretrained_open_clip(architecture, pretrained, weights, reward="clip")
    reward = ClipScore(model, tokenizer, form=form, mode=mode, device=device, dtype=dtype)
    reward.weights_sha256 = sha256_of(path)
    return reward
