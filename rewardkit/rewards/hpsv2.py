"""HPSv2 and HPSv2.1: Human Preference Score v2.

Wu et al., "Human Preference Score v2: A Solid Benchmark for Evaluating Human Preferences of
Text-to-Image Synthesis" (arXiv:2306.09341), https://github.com/tgxs002/HPSv2.

An open_clip ViT-H-14 fine-tuned on HPD v2. The score is the cosine of the L2-normalised image and text
embeddings (no logit scale; the HPD v2 benchmark reports it x100). The model is built with
``pretrained=None`` and the full HPS checkpoint (``{"state_dict": ...}``) is loaded strictly: the ~3.9 GB
LAION base weights the official package downloads first are never needed.

Preprocessing (official ``image_transform(..., resize_longest_max=True)``): RGB, ToTensor first, bicubic
antialiased resize of the float tensor so the longest side is 224 (new side = round(side * 224 / longest)),
zero-pad to 224 x 224 centred, then OpenAI CLIP normalisation (so the border is black, not mean grey).
That path is already all torch, so ``reference`` and ``differentiable`` differ only in that ``reference``
rounds float input to 8 bits first, as the official PIL entry point does. Deliberate difference: the
official transform keeps RGBA images as four channels, which its ViT cannot take; rewardkit drops alpha.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch

from rewardkit.registry import WeightFile, register_reward
from rewardkit.rewards.clip import OpenClipReward, build_open_clip
from rewardkit.transforms import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, LongestSidePadPreprocess
from rewardkit.weights import WeightsArgument, WeightsMismatchError, build_with_weights, load_state_dict

__all__ = ["HPSv2", "HPS_WEIGHTS"]

# Size: ViT-H-14 has 986,109,441 parameters, stored as fp16 ("compressed") = 1.97 GB.
HPS_WEIGHTS = {
    "v2.0": WeightFile("xswu/HPSv2", "HPS_v2_compressed.pt", 1_972_218_882, "Apache-2.0"),
    "v2.1": WeightFile("xswu/HPSv2", "HPS_v2.1_compressed.pt", 1_972_218_882, "Apache-2.0"),
}


class HPSv2(OpenClipReward):
    """HPSv2 / HPSv2.1 score: cos(image, text) of the fine-tuned ViT-H-14."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, **kwargs: Any) -> None:
        super().__init__(model, tokenizer, **kwargs)
        # The official eval transform is already all torch after ToTensor, so both modes share it.
        self.torch_preprocess = LongestSidePadPreprocess(self.image_size, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)
        self.reference_preprocess = self.torch_preprocess

    def score_preprocessed(self, pixel_values: torch.Tensor, prompts: Any) -> torch.Tensor:
        return self.cosine(pixel_values, prompts)


@register_reward(
    "hpsv2",
    modality="image",
    needs_prompt=True,
    differentiable=True,
    score_range=(-1.0, 1.0),
    description="Human Preference Score v2 / v2.1 (open_clip ViT-H-14)",
    weights=lambda options: {"model": HPS_WEIGHTS[options["version"]]},
    paper="arXiv:2306.09341",
    repository="https://github.com/tgxs002/HPSv2",
)
def create_hpsv2(
    *,
    version: Literal["v2.0", "v2.1"] = "v2.1",
    mode: Literal["reference", "differentiable"] = "reference",
    architecture: str = "ViT-H-14",
    device: torch.device,
    dtype: torch.dtype,
    weights: WeightsArgument,
) -> HPSv2:
    """HPSv2 (version v2.0) or HPSv2.1 (v2.1, the default)."""

    def build(paths: Mapping[str, Path]) -> HPSv2:
        path = paths["model"]
        checkpoint = load_state_dict(path)
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            weight_file = HPS_WEIGHTS[version]
            raise WeightsMismatchError(
                f"{path} is not an HPS checkpoint: expected a dict with key 'state_dict' "
                f"(as in {weight_file.repo}/{weight_file.filename})"
            )
        model, tokenizer = build_open_clip(architecture)
        reward = HPSv2(model, tokenizer, mode=mode, device=device, dtype=dtype)
        reward.load_checkpoint(path, checkpoint["state_dict"])
        return reward

    return build_with_weights("hpsv2", weights, {"version": version}, build)
