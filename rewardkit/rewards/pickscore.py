"""PickScore.

Kirstain et al., "Pick-a-Pic: An Open Dataset of User Preferences for Text-to-Image Generation"
(NeurIPS 2023, arXiv:2305.01569), https://github.com/yuvalkirstain/PickScore.

A transformers ``CLIPModel`` (ViT-H-14) from ``yuvalkirstain/PickScore_v1`` with the processor of a
different repository, ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` (only its small processor files are
fetched). Score: ``logit_scale.exp() * cos(image, text)``.

Reference preprocessing uses transformers' PIL image processor (``CLIPImageProcessorPil``: PIL bicubic
resize of the shortest edge to 224, centre crop, rescale, OpenAI mean/std), which is what PickScore's
published numbers used; transformers 5 defaults to a torchvision backend that differs slightly.
Text is padded and truncated to 77 tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from rewardkit.registry import WeightFile, register_reward
from rewardkit.rewards.base import ImageScorer, PreprocessMode, TextFeatureCache
from rewardkit.transforms import ShortestSideCropPreprocess
from rewardkit.weights import MissingWeightsError, WeightsArgument, WeightsMismatchError, build_with_weights

__all__ = ["PickScore", "PICKSCORE_WEIGHTS"]

PROCESSOR_REPO = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
PROCESSOR_FILES = ("preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

# Size: the CLIP ViT-H-14 has 986,109,441 parameters, stored in fp32.
PICKSCORE_WEIGHTS = {
    "model": WeightFile("yuvalkirstain/PickScore_v1", "pytorch_model.bin", 3_944_437_764, "MIT", extra_files=("config.json",)),
    "processor": WeightFile(
        PROCESSOR_REPO, PROCESSOR_FILES[0], 0, "MIT", extra_files=PROCESSOR_FILES[1:], holds_weights=False
    ),
}


class ProcessorTransform:
    """Reference preprocessing: uint8 ``[H, W, 3]`` through transformers' PIL CLIP image processor."""

    def __init__(self, image_processor: Any) -> None:
        self.image_processor = image_processor

    def __call__(self, frame: np.ndarray) -> torch.Tensor:
        return self.image_processor(images=Image.fromarray(frame, mode="RGB"), return_tensors="pt")["pixel_values"][0]

    @property
    def key(self) -> tuple[str, str]:
        """Equal for processors with equal settings: see ``rewardkit.transforms.Preprocess.key``."""
        return type(self).__name__, self.image_processor.to_json_string()


class PickScore(ImageScorer):
    """PickScore: ``logit_scale.exp() * cos(image, text)`` with a transformers CLIPModel."""

    def __init__(self, model: Any, image_processor: Any, tokenizer: Any, *, mode: PreprocessMode, dtype: torch.dtype) -> None:
        super().__init__(mode, dtype)
        self.model = model
        self.tokenizer = tokenizer
        self.max_prompt_tokens = 77
        self.image_size = image_processor.crop_size["height"]
        self.reference_preprocess = ProcessorTransform(image_processor)
        self.torch_preprocess = ShortestSideCropPreprocess(
            self.image_size, image_processor.image_mean, image_processor.image_std
        )
        self.text_features = TextFeatureCache(self._encode_text)
        self.freeze()

    def _encode_text(self, prompts: list[str]) -> torch.Tensor:
        inputs = self.tokenizer(prompts, padding=True, truncation=True, max_length=77, return_tensors="pt").to(self.device)
        features = self.model.get_text_features(**inputs).pooler_output.float()
        return features / features.norm(dim=-1, keepdim=True)

    def prompt_token_count(self, prompt: str) -> int:
        return len(self.tokenizer(prompt, truncation=False)["input_ids"])

    def score_preprocessed(self, pixel_values: torch.Tensor, prompts: Sequence[str] | None) -> torch.Tensor:
        image = self.model.get_image_features(pixel_values=pixel_values.to(self.device, self.dtype)).pooler_output.float()
        image = image / image.norm(dim=-1, keepdim=True)
        text = self.text_features(prompts)
        return self.model.logit_scale.float().exp() * (image * text).sum(dim=-1)


def _weights_file(role: str, folder: Path) -> Path:
    """The weights file in a transformers model folder the user gave (``save_pretrained`` writes safetensors)."""
    if role != "model":
        if (folder / PROCESSOR_FILES[0]).is_file():
            return folder / PROCESSOR_FILES[0]
        raise MissingWeightsError(
            f"the processor folder {str(folder)!r} given for reward 'pickscore' lacks {PROCESSOR_FILES[0]}; it needs "
            f"{', '.join(PROCESSOR_FILES)} of {PROCESSOR_REPO}"
        )
    if not (folder / "config.json").is_file():
        raise MissingWeightsError(
            f"the weights path {str(folder)!r} given for reward 'pickscore' must be a transformers model folder "
            f"with config.json and the weights (as saved by CLIPModel.save_pretrained, or a download of "
            f"{PICKSCORE_WEIGHTS['model'].repo})"
        )
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    raise MissingWeightsError(f"no model.safetensors or pytorch_model.bin in {folder}")


@register_reward(
    "pickscore",
    modality="image",
    needs_prompt=True,
    differentiable=True,
    score_range=(0.0, 100.0),
    description="PickScore (CLIP ViT-H-14 fine-tuned on Pick-a-Pic)",
    weights=PICKSCORE_WEIGHTS,
    paper="arXiv:2305.01569",
    repository="https://github.com/yuvalkirstain/PickScore",
)
def create_pickscore(
    *,
    mode: Literal["reference", "differentiable"] = "reference",
    device: torch.device,
    dtype: torch.dtype,
    weights: WeightsArgument,
) -> PickScore:
    """PickScore v1; ``weights`` is the model folder, or ``{"model": FOLDER, "processor": FOLDER}`` where the
    processor folder holds the processor files of ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``."""
    from transformers import AutoTokenizer, CLIPModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    def build(paths: Mapping[str, Path]) -> PickScore:
        model_folder, processor_folder = paths["model"].parent, paths["processor"].parent
        model, loading = CLIPModel.from_pretrained(model_folder, dtype=dtype, output_loading_info=True)
        problems = {kind: keys for kind, keys in loading.items() if kind in ("missing_keys", "unexpected_keys", "mismatched_keys") and keys}
        if problems:
            raise WeightsMismatchError(f"checkpoint in {model_folder} does not match CLIPModel: {problems}")
        return PickScore(
            model.to(device),
            CLIPImageProcessorPil.from_pretrained(processor_folder),
            AutoTokenizer.from_pretrained(processor_folder),
            mode=mode,
            dtype=dtype,
        )

    return build_with_weights("pickscore", weights, {}, build, locate=_weights_file)
