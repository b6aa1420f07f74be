"""ImageReward.

Xu et al., "ImageReward: Learning and Evaluating Human Preferences for Text-to-Image Generation"
(NeurIPS 2023, arXiv:2304.05977), https://github.com/THUDM/ImageReward (now zai-org/ImageReward), PyPI
``image-reward`` 1.5.

BLIP: a ViT-L/16 vision encoder (24 layers, width 1024, 224 px, LayerNorm eps 1e-6) whose 197 output tokens
all feed the cross-attention of a BERT-base text encoder (12 layers, width 768, vocabulary 30524); the text
encoder's [CLS] state goes through a linear MLP ``768 -> 1024 -> 128 -> 64 -> 16 -> 1`` (no activations; its
dropouts are inactive at eval) and the score is ``(r - 0.16717362830052426) / 1.0333394966054072``.

Built on transformers' BLIP modules (``BlipVisionModel``, and ``BlipTextModel`` with cross-attention to the
image tokens), not on the ``image-reward`` package. The official ``ImageReward.pt`` (a flat state dict with
keys ``blip.visual_encoder.*``, ``blip.text_encoder.*``, ``mlp.layers.*``) is loaded by an explicit key
mapping; any missing or unexpected key is an error (the official loader uses ``strict=False``). Five
entries of the official state dict are unused by scoring and dropped when present (their absence is
fine): ``blip.vision_proj.*``, ``blip.text_proj.*`` (BLIP's contrastive projections) and
``blip.text_encoder.embeddings.position_ids`` (a buffer). Architecture sizes come from ``med_config.json`` (text) and the checkpoint's shapes (vision
width and depth; heads = width / 64 as in ViT-B and ViT-L), so the same loader serves real and tiny files.

Tokenizer: ``bert-base-uncased`` (vocab.txt, from ``google-bert/bert-base-uncased`` or a local folder) plus
``[DEC]`` as bos token and ``[ENC]`` as an additional special token (ids 30522 and 30523); prompts are padded
to and truncated at 35 tokens. The scoring path (``ImageReward.score``) keeps [CLS] at position 0: the
``[ENC]`` id is never substituted there. A vocabulary of any other size than 30522 is refused (offline,
transformers can silently build a 5-token tokenizer that maps every word to [UNK]).

Preprocessing. ``reference``: the official torchvision pipeline on a PIL image (bicubic resize of the
shortest side to 224 with PIL, centre crop, RGB, ToTensor, OpenAI CLIP mean/std). ``differentiable``: the same
steps in torch (bicubic antialiased ``interpolate``, crop, normalise), which is what the official ReFL
training path does (``ReFL.py`` applies torchvision ``Resize(224, BICUBIC)`` and ``CenterCrop`` to the
decoded image tensor before ``ImageReward.score_gard``); it differs from the PIL path at sharp edges.

Text features: the text encoder attends to the image, so its output cannot be cached per prompt; the
tokenization is what is cached (once per prompt), and the text encoder runs once per image.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from rewardkit.registry import WeightFile, register_reward
from rewardkit.rewards.base import ImageScorer, PreprocessMode, TextFeatureCache
from rewardkit.transforms import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ShortestSideCropPreprocess
from rewardkit.weights import (
    MissingWeightsError,
    WeightsArgument,
    WeightsMismatchError,
    build_with_weights,
    check_keys,
    load_state_dict,
    load_strict,
)

__all__ = [
    "ImageRewardModel",
    "ImageReward",
    "IMAGEREWARD_WEIGHTS",
    "TOKENIZER_REPO",
    "build_tokenizer",
    "map_official_keys",
]

TOKENIZER_REPO = "google-bert/bert-base-uncased"
BERT_VOCAB_SIZE = 30522  # bert-base-uncased's vocab.txt; [DEC] and [ENC] take ids 30522 and 30523
MAX_PROMPT_TOKENS = 35
IMAGE_SIZE = 224
PATCH_SIZE = 16
SCORE_MEAN = 0.16717362830052426
SCORE_STD = 1.0333394966054072
MLP_WIDTHS = (1024, 128, 64, 16, 1)
# Positions of the Linear layers in the official ``MLP.layers`` nn.Sequential (dropouts sit between them).
MLP_LINEAR_INDICES = (0, 2, 4, 6, 7)
# In the official state dict, not used by scoring; dropped when present.
UNUSED_KEYS = (
    "blip.vision_proj.weight",
    "blip.vision_proj.bias",
    "blip.text_proj.weight",
    "blip.text_proj.bias",
    "blip.text_encoder.embeddings.position_ids",
)

# Size: the official ImageReward model's state dict (BLIP ViT-L/16 + BERT-base with cross-attention + MLP
# + BLIP's two unused 256-d projections) has 446,665,953 parameters, stored in fp32 = 1.79 GB
# (counted by rewardkit.testing.imagereward.official_state_dict_shapes, whose key set and shapes the
# real-size parity test checks against the official model).
IMAGEREWARD_WEIGHTS = {
    "model": WeightFile(
        "THUDM/ImageReward", "ImageReward.pt", 1_786_663_812, "Apache-2.0", extra_files=("med_config.json",)
    ),
    "tokenizer": WeightFile(
        TOKENIZER_REPO, "vocab.txt", 231_508, "Apache-2.0", extra_files=("tokenizer_config.json",), holds_weights=False
    ),
}


def _vision_map(index_key: str) -> str:
    """Official ``visual_encoder.*`` key (prefix removed) -> ``BlipVisionModel`` key."""
    fixed = {
        "cls_token": "embeddings.class_embedding",
        "pos_embed": "embeddings.position_embedding",
        "patch_embed.proj.weight": "embeddings.patch_embedding.weight",
        "patch_embed.proj.bias": "embeddings.patch_embedding.bias",
        "norm.weight": "post_layernorm.weight",
        "norm.bias": "post_layernorm.bias",
    }
    if index_key in fixed:
        return fixed[index_key]
    parts = index_key.split(".")
    if parts[0] != "blocks" or len(parts) < 4:
        raise KeyError(index_key)
    block, rest = parts[1], ".".join(parts[2:])
    renames = {
        "norm1": "layer_norm1",
        "norm2": "layer_norm2",
        "attn.qkv": "self_attn.qkv",
        "attn.proj": "self_attn.projection",
        "mlp.fc1": "mlp.fc1",
        "mlp.fc2": "mlp.fc2",
    }
    module, _, leaf = rest.rpartition(".")
    if module not in renames:
        raise KeyError(index_key)
    return f"encoder.layers.{block}.{renames[module]}.{leaf}"


def map_official_keys(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename the official ``ImageReward.pt`` keys to ``ImageRewardModel``'s; returns (mapped, unknown keys).

    ``blip.visual_encoder.X`` -> ``vision.<BlipVisionModel name of X>``; ``blip.text_encoder.X`` ->
    ``text.X`` (transformers' BLIP text model kept BLIP's ``med.py`` names); ``mlp.layers.{0,2,4,6,7}.P`` ->
    ``mlp.{0..4}.P``. The unused official keys (``UNUSED_KEYS``) are dropped.
    """
    mapped: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    mlp_positions = {str(index): str(position) for position, index in enumerate(MLP_LINEAR_INDICES)}
    for key, value in state_dict.items():
        if key in UNUSED_KEYS:
            continue
        try:
            if key.startswith("blip.visual_encoder."):
                new = "vision." + _vision_map(key[len("blip.visual_encoder.") :])
            elif key.startswith("blip.text_encoder."):
                new = "text." + key[len("blip.text_encoder.") :]
            elif key.startswith("mlp.layers."):
                index, _, leaf = key[len("mlp.layers.") :].partition(".")
                new = f"mlp.{mlp_positions[index]}.{leaf}"
            else:
                raise KeyError(key)
        except KeyError:
            unknown.append(key)
            continue
        mapped[new] = value
    return mapped, unknown


class ImageRewardModel(nn.Module):
    """BLIP vision + cross-attention text encoder + linear MLP, returning the normalised ImageReward."""

    def __init__(self, med_config: Mapping[str, Any], vision_width: int, vision_depth: int) -> None:
        super().__init__()
        from transformers import BlipTextConfig, BlipVisionConfig
        from transformers.models.blip.modeling_blip import BlipVisionModel
        from transformers.models.blip.modeling_blip_text import BlipTextModel

        if vision_width % 64:
            raise WeightsMismatchError(f"vision width {vision_width} is not a multiple of the 64-wide ViT heads")
        vision_config = BlipVisionConfig(
            hidden_size=vision_width,
            intermediate_size=4 * vision_width,
            num_hidden_layers=vision_depth,
            num_attention_heads=vision_width // 64,
            image_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE,
            hidden_act="gelu",
            layer_norm_eps=1e-6,
            attention_dropout=0.0,
        )
        text_config = BlipTextConfig(
            vocab_size=med_config["vocab_size"],
            hidden_size=med_config["hidden_size"],
            encoder_hidden_size=vision_width,  # BLIP_Pretrain sets encoder_width to the vision width
            intermediate_size=med_config["intermediate_size"],
            num_hidden_layers=med_config["num_hidden_layers"],
            num_attention_heads=med_config["num_attention_heads"],
            max_position_embeddings=med_config["max_position_embeddings"],
            hidden_act=med_config.get("hidden_act", "gelu"),
            layer_norm_eps=med_config.get("layer_norm_eps", 1e-12),
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            pad_token_id=med_config.get("pad_token_id", 0),
            is_decoder=True,  # builds the cross-attention layers; forward runs bidirectionally (is_decoder=False)
        )
        for config in (vision_config, text_config):
            config._attn_implementation = "eager"
        self.vision = BlipVisionModel(vision_config)
        self.text = BlipTextModel(text_config, add_pooling_layer=False)
        widths = (text_config.hidden_size, *MLP_WIDTHS)
        self.mlp = nn.Sequential(*(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)))

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        image_embeds = self.vision(pixel_values=pixel_values).last_hidden_state
        image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        text = self.text(
            input_ids=input_ids,
            attention_mask=attention_mask,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=image_mask,
            is_decoder=False,
        ).last_hidden_state
        reward = self.mlp(text[:, 0, :]).squeeze(-1).float()
        return (reward - SCORE_MEAN) / SCORE_STD


def build_tokenizer(folder: str | Path) -> Any:
    """bert-base-uncased from ``folder`` plus ImageReward's [DEC] (bos) and [ENC] tokens, as the official
    ``init_tokenizer``; refuses any vocabulary that is not the 30522-token bert-base-uncased one."""
    from transformers import BertTokenizer

    folder = Path(folder)
    if not (folder / "vocab.txt").is_file():
        raise MissingWeightsError(
            f"no vocab.txt in {folder}: reward 'imagereward' needs the bert-base-uncased tokenizer files "
            f"(vocab.txt, tokenizer_config.json) from the Hugging Face repo {TOKENIZER_REPO}"
        )
    tokenizer = BertTokenizer.from_pretrained(str(folder))
    if len(tokenizer) != BERT_VOCAB_SIZE:
        raise MissingWeightsError(
            f"the tokenizer in {folder} has {len(tokenizer)} tokens, but ImageReward needs the 30522-token "
            f"bert-base-uncased vocabulary (a smaller one maps words to [UNK] and gives meaningless scores). "
            f"Supply the vocab.txt of {TOKENIZER_REPO}: `rewardkit download imagereward` on a connected "
            f"machine, or weights={{'tokenizer': FOLDER}} (--weights imagereward.tokenizer=FOLDER)"
        )
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    ids = tokenizer.convert_tokens_to_ids(["[DEC]", "[ENC]"])
    if ids != [BERT_VOCAB_SIZE, BERT_VOCAB_SIZE + 1]:
        raise MissingWeightsError(f"[DEC]/[ENC] got ids {ids} in the tokenizer from {folder}, expected 30522/30523")
    return tokenizer


class ImageReward(ImageScorer):
    """ImageReward score of image-prompt pairs, batched (the official package scores one image at a time)."""

    def __init__(self, model: ImageRewardModel, tokenizer: Any, *, mode: PreprocessMode, dtype: torch.dtype) -> None:
        super().__init__(mode, dtype)
        from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

        from rewardkit.rewards.clip import PilTransform

        self.model = model
        self.tokenizer = tokenizer
        self.max_prompt_tokens = MAX_PROMPT_TOKENS
        self.image_size = IMAGE_SIZE
        # The official ``_transform(224)`` (ImageReward.py), applied to the PIL image.
        self.reference_preprocess = PilTransform(
            Compose(
                [
                    Resize(IMAGE_SIZE, interpolation=InterpolationMode.BICUBIC),
                    CenterCrop(IMAGE_SIZE),
                    ToTensor(),
                    Normalize(OPENAI_CLIP_MEAN, OPENAI_CLIP_STD),
                ]
            )
        )
        self.torch_preprocess = ShortestSideCropPreprocess(IMAGE_SIZE, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)
        # Tokenization per prompt, [input_ids; attention_mask] as one [2, 35] tensor (see module docstring).
        self.text_features = TextFeatureCache(self._tokenize)
        self.freeze()

    def _tokenize(self, prompts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(
            prompts, padding="max_length", truncation=True, max_length=MAX_PROMPT_TOKENS, return_tensors="pt"
        )
        return torch.stack([tokens["input_ids"], tokens["attention_mask"]], dim=1)

    def prompt_token_count(self, prompt: str) -> int:
        return len(self.tokenizer(prompt, truncation=False)["input_ids"])

    def score_preprocessed(self, pixel_values: torch.Tensor, prompts: Sequence[str] | None) -> torch.Tensor:
        tokens = self.text_features(prompts).to(self.device)
        return self.model(pixel_values.to(self.device, self.dtype), tokens[:, 0], tokens[:, 1])


def _locate(role: str, folder: Path) -> Path:
    """The declared file in a folder the user gave, or an error that says which file it needs."""
    declared = folder / IMAGEREWARD_WEIGHTS[role].filename
    if declared.is_file():
        return declared
    if role == "tokenizer":
        raise MissingWeightsError(
            f"no vocab.txt in {folder}: reward 'imagereward' needs the bert-base-uncased tokenizer files "
            f"(vocab.txt, tokenizer_config.json) from the Hugging Face repo {TOKENIZER_REPO}"
        )
    raise MissingWeightsError(
        f"the weights folder {str(folder)!r} given for reward 'imagereward' holds no ImageReward.pt (with "
        f"med_config.json beside it), from the Hugging Face repo THUDM/ImageReward"
    )


def load_imagereward_model(path: Path, med_config_path: Path) -> ImageRewardModel:
    """Build the model from ``med_config.json`` and the checkpoint's shapes; load the checkpoint strictly."""
    state_dict = load_state_dict(path)
    if not isinstance(state_dict, Mapping) or "blip.visual_encoder.cls_token" not in state_dict:
        raise WeightsMismatchError(
            f"{path} is not an ImageReward checkpoint: expected a flat state dict with keys "
            f"'blip.visual_encoder.*', 'blip.text_encoder.*' and 'mlp.layers.*' (as THUDM/ImageReward's ImageReward.pt)"
        )
    med_config = json.loads(Path(med_config_path).read_text())
    vision_width = state_dict["blip.visual_encoder.cls_token"].shape[-1]
    vision_depth = len({key.split(".")[3] for key in state_dict if key.startswith("blip.visual_encoder.blocks.")})
    model = ImageRewardModel(med_config, vision_width, vision_depth)
    mapped, unknown = map_official_keys(state_dict)
    if unknown:
        check_keys([], unknown, str(path))  # raises, listing the keys no mapping rule knows
    load_strict(model, mapped, f"{path} (with {med_config_path})")
    return model


@register_reward(
    "imagereward",
    modality="image",
    needs_prompt=True,
    differentiable=True,
    description="ImageReward (BLIP ViT-L/16 + BERT cross-attention + MLP)",
    weights=IMAGEREWARD_WEIGHTS,
    paper="arXiv:2304.05977",
    repository="https://github.com/THUDM/ImageReward",
)
def create_imagereward(
    *,
    mode: Literal["reference", "differentiable"] = "reference",
    device: torch.device,
    dtype: torch.dtype,
    weights: WeightsArgument,
) -> ImageReward:
    """ImageReward v1.0; ``weights`` is ImageReward.pt (med_config.json beside it) or their folder, or
    ``{"model": ..., "tokenizer": FOLDER}`` with a folder holding bert-base-uncased's vocab.txt."""

    def build(paths: Mapping[str, Path]) -> ImageReward:
        path = paths["model"]
        med_config = path.parent / "med_config.json"
        if not med_config.is_file():
            raise MissingWeightsError(
                f"reward 'imagereward' needs med_config.json (from the Hugging Face repo THUDM/ImageReward) in the "
                f"folder of its checkpoint, {path.parent}"
            )
        text_tokenizer = build_tokenizer(paths["tokenizer"].parent)
        model = load_imagereward_model(path, med_config)
        if len(text_tokenizer) > model.text.config.vocab_size:
            raise WeightsMismatchError(
                f"the tokenizer has {len(text_tokenizer)} tokens but the checkpoint's text embedding only "
                f"{model.text.config.vocab_size} rows"
            )
        return ImageReward(model.to(device=device, dtype=dtype), text_tokenizer, mode=mode, dtype=dtype)

    return build_with_weights("imagereward", weights, {}, build, locate=_locate)
