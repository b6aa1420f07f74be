"""VideoReward (VideoAlign): a Qwen2-VL-2B reward model for visual quality, motion quality and text alignment.

Liu et al., "Improving Video Generation with Human Feedback" (arXiv:2501.13918),
https://github.com/KwaiVGI/VideoAlign (files ``inference.py``, ``trainer.py``, ``train_reward.py``,
``utils.py``, ``prompt_template.py``, ``vision_process.py``, ``data.py``; read at commit 219ab9d), weights on
the Hugging Face Hub as ``KwaiVGI/VideoReward``.

Model (``trainer.py: Qwen2VLRewardModelBT``): Qwen2-VL-2B-Instruct with three added special tokens
``<|VQ_reward|>``, ``<|MQ_reward|>``, ``<|TA_reward|>`` (``train_reward.py``; the embedding is resized to the
tokenizer's length, 151660 rows) and a bias-free linear head ``rm_head`` (hidden 1536 -> ``output_dim``) on the
final (normed) hidden state of each reward token. With ``output_dim`` 1 the three tokens give VQ, MQ, TA; with
3 the diagonal is taken (token i, output i). The head reads the hidden states of the language model run with
plain 1-D positions ``0..L-1`` for every token, vision tokens included: the official forward calls the
text decoder directly with ``position_ids=None`` and so never uses Qwen2-VL's multimodal (M-RoPE) positions.
rewardkit passes the same positions.

Checkpoint (``KwaiVGI/VideoReward``): ``model_config.json`` (the training configs plus ``inference_config``
with the normalisation constants), ``checkpoint-11352/model.pth`` and ``checkpoint-11352/tokenizer/``.
``model.pth`` is the full ``state_dict()`` of the PEFT-wrapped model (``trainer.py: _save`` with
``save_full_model``; loaded strictly by ``utils.py: load_model_from_checkpoint``), in bf16: keys
``base_model.model.{visual,model,lm_head,rm_head}.*`` in transformers 4.45 naming, with un-merged LoRA on every
``nn.Linear``/``nn.Embedding`` whose name avoids ``lora_namespan_exclude`` (``lm_head``, ``rm_head``,
``embed_tokens``, ``visual``: the 7 projections of each of the 28 decoder layers) as
``X.base_layer.{weight,bias}``, ``X.lora_A.default.weight`` ``[r, in]`` and ``X.lora_B.default.weight``
``[out, r]`` (r 64, alpha 128). Its published size, 5,031,072,529 bytes, is that layout's 5,030,744,064 bytes
of bf16 tensors (LM head stored apart from the embedding) plus torch.save's container. rewardkit merges the
LoRA itself in fp32 (``W + alpha / r * B @ A``, or ``alpha / sqrt(r)`` with rsLoRA), maps the keys to
transformers 5's ``Qwen2VLModel`` (``visual.*`` -> ``backbone.visual.*``, ``model.*`` ->
``backbone.language_model.*``) and checks them strictly: every key the official model has must be there and
nothing else. ``lm_head.weight`` (next-token logits, never read by the reward) is checked and dropped. The
architecture comes from the base model named in ``model_config.json`` (``Qwen/Qwen2-VL-2B-Instruct``:
``config.json`` and ``preprocessor_config.json`` only; ``model.pth`` holds every weight, so the 4.4 GB base
weights that the official code downloads first are not needed).

Input (``inference.py``, ``data.py``, ``vision_process.py``). Prompt: ``prompt_template.py``'s
``DETAILED_PROMPT_WITH_SPECIAL_TOKEN`` with the caption in ``{text_prompt}`` (``prompt_template_type``
``detailed_special``), as the text after the video in one user turn of the Qwen2-VL chat template (the
checkpoint tokenizer's). Frames: sampled at ``data_config.fps`` = 2 per second of video, ``nframes =
round_even(clamp(num_frames / video_fps * 2, 4, floor_even(min(768, num_frames))))`` at
``round(linspace(0, num_frames - 1, nframes))`` (``smart_nframes``, ``sample_type`` ``uniform``), or a fixed
``data_config.num_frames`` when set; each frame resized (torchvision bicubic with antialiasing on uint8) to a
multiple of 28 holding between 100352 (``VIDEO_MIN_PIXELS``) and ``data_config.max_frame_pixels`` = 200704
pixels with the aspect ratio kept (``smart_resize``); then /255, OpenAI CLIP mean/std, 14-px patches in pairs
of frames (the Qwen2-VL processor). Scores: ``inference.py: reward`` with ``use_norm=True`` returns
``(r - mean) / std`` per dimension with ``inference_config``'s constants (the released file holds VQ 3.6757 /
2.2476, MQ 1.1646 / 1.3811, TA 2.8105 / 2.5121, as quoted by two independent public integrations, unverified
here) and Overall = VQ + MQ + TA; ``normalize=False`` returns the raw head outputs and their sum.

Deliberate differences. The frame rate is read from the file as the official reader does; frame folders,
GIFs, files without one and tensors take the option ``video_fps`` (default 24; a warning says so once), or a
fixed frame count is asked for with ``num_frames`` (the official ``reward(..., num_frames=)`` argument). Frames
given as floats are rounded to 8 bits first, as a saved video would be. An odd number of sampled frames
(possible only with a fixed ``num_frames`` on a short video) is padded by repeating the last frame, as
transformers' Qwen2-VL video processor does (transformers 4.45's processor raises there). The official code
runs bf16 with FlashAttention-2 and the LoRA un-merged; rewardkit runs in the ``dtype`` asked for (fp32 by
default) with SDPA attention and merged LoRA. A caption containing a reward token string is refused (the
official code would silently read the wrong hidden states). Not differentiable: frames go through 8-bit
resizing and the processor.

Parity (tiny random checkpoint in the official layout, three mp4 videos, the official ``inference.py`` run
with transformers 4.45.2 and peft 0.10.0, SDPA in place of FlashAttention-2): identical input ids, max
|diff| 7.7e-7 in fp32 over VQ, MQ, TA and Overall (raw and normalised, batched and one at a time); in bf16
both implementations differ from the fp32 result by the same 0.03.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from rewardkit.registry import WeightFile, register_reward
from rewardkit.rewards.base import VideoScorer
from rewardkit.transforms import as_float_videos, check_prompts
from rewardkit.video.sampling import assumed_frame_rate
from rewardkit.weights import (
    MissingWeightsError,
    WeightsArgument,
    WeightsMismatchError,
    build_with_weights,
    check_keys,
    load_state_dict,
    load_strict,
    split_weights_argument,
)

__all__ = [
    "LoraSpec",
    "VideoAlignModel",
    "VideoAlignSampler",
    "VideoReward",
    "VIDEOREWARD_WEIGHTS",
    "PROMPT_TEMPLATE",
    "REWARD_TOKENS",
    "build_prompt",
    "smart_resize",
    "official_keys",
    "convert_official_state_dict",
    "load_videoalign",
]

REPO = "KwaiVGI/VideoReward"
CHECKPOINT_DIR = "checkpoint-11352"
BASE_REPO = "Qwen/Qwen2-VL-2B-Instruct"
REWARD_TOKENS = ("<|VQ_reward|>", "<|MQ_reward|>", "<|TA_reward|>")
DIMENSIONS = ("VQ", "MQ", "TA")
OUTPUT_NAMES = ("vq", "mq", "ta", "overall")
# vision_process.py
IMAGE_FACTOR = 28
VIDEO_MIN_PIXELS = 128 * 28 * 28
FRAME_FACTOR = 2
FPS_MIN_FRAMES = 4
FPS_MAX_FRAMES = 768
MAX_RATIO = 200
# The normalisation constants in the released model_config.json's inference_config (unverified; see above).
RELEASED_NORMALIZATION = {
    "VQ_mean": 3.6757, "VQ_std": 2.2476,
    "MQ_mean": 1.1646, "MQ_std": 1.3811,
    "TA_mean": 2.8105, "TA_std": 2.5121,
}  # fmt: skip
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "special_tokens_map.json",
)

# prompt_template.py: DETAILED_PROMPT_WITH_SPECIAL_TOKEN, line by line (some lines end in spaces).
PROMPT_TEMPLATE = "\n".join(
    (
        "",
        "You are tasked with evaluating a generated video based on three distinct criteria: Visual Quality, Motion Quality, and Text Alignment. Please provide a rating from 0 to 10 for each of the three categories, with 0 being the worst and 10 being the best. Each evaluation should be independent of the others.",
        "",
        "**Visual Quality:**  ",
        "Evaluate the overall visual quality of the video, with a focus on static factors. The following sub-dimensions should be considered:",
        "- **Reasonableness:** The video should not contain any significant biological or logical errors, such as abnormal body structures or nonsensical environmental setups.",
        "- **Clarity:** Evaluate the sharpness and visibility of the video. The image should be clear and easy to interpret, with no blurring or indistinct areas.",
        "- **Detail Richness:** Consider the level of detail in textures, materials, lighting, and other visual elements (e.g., hair, clothing, shadows).",
        "- **Aesthetic and Creativity:** Assess the artistic aspects of the video, including the color scheme, composition, atmosphere, depth of field, and the overall creative appeal. The scene should convey a sense of harmony and balance.",
        "- **Safety:** The video should not contain harmful or inappropriate content, such as political, violent, or adult material. If such content is present, the image quality and satisfaction score should be the lowest possible. ",
        "",
        "Please provide the ratings of Visual Quality: <|VQ_reward|>",
        "END",
        "",
        "**Motion Quality:**  ",
        "Assess the dynamic aspects of the video, with a focus on dynamic factors. Consider the following sub-dimensions:",
        "- **Stability:** Evaluate the continuity and stability between frames. There should be no sudden, unnatural jumps, and the video should maintain stable attributes (e.g., no fluctuating colors, textures, or missing body parts).",
        "- **Naturalness:** The movement should align with physical laws and be realistic. For example, clothing should flow naturally with motion, and facial expressions should change appropriately (e.g., blinking, mouth movements).",
        "- **Aesthetic Quality:** The movement should be smooth and fluid. The transitions between different motions or camera angles should be seamless, and the overall dynamic feel should be visually pleasing.",
        "- **Fusion:** Ensure that elements in motion (e.g., edges of the subject, hair, clothing) blend naturally with the background, without obvious artifacts or the feeling of cut-and-paste effects.",
        "- **Clarity of Motion:** The video should be clear and smooth in motion. Pay attention to any areas where the video might have blurry or unsteady sections that hinder visual continuity.",
        "- **Amplitude:** If the video is largely static or has little movement, assign a low score for motion quality.",
        "",
        "Please provide the ratings of Motion Quality: <|MQ_reward|>",
        "END",
        "",
        "**Text Alignment:**  ",
        "Assess how well the video matches the textual prompt across the following sub-dimensions:",
        "- **Subject Relevance** Evaluate how accurately the subject(s) in the video (e.g., person, animal, object) align with the textual description. The subject should match the description in terms of number, appearance, and behavior.",
        "- **Motion Relevance:** Evaluate if the dynamic actions (e.g., gestures, posture, facial expressions like talking or blinking) align with the described prompt. The motion should match the prompt in terms of type, scale, and direction.",
        "- **Environment Relevance:** Assess whether the background and scene fit the prompt. This includes checking if real-world locations or scenes are accurately represented, though some stylistic adaptation is acceptable.  ",
        "- **Style Relevance:** If the prompt specifies a particular artistic or stylistic style, evaluate how well the video adheres to this style.",
        "- **Camera Movement Relevance:** Check if the camera movements (e.g., following the subject, focus shifts) are consistent with the expected behavior from the prompt.",
        "",
        "Textual prompt - {text_prompt}",
        "Please provide the ratings of Text Alignment: <|TA_reward|>",
        "END",
        "",
    )
)

VIDEOREWARD_WEIGHTS = {
    "model": WeightFile(
        REPO,
        f"{CHECKPOINT_DIR}/model.pth",
        5_031_072_529,
        "Apache-2.0",
        extra_files=("model_config.json", *(f"{CHECKPOINT_DIR}/tokenizer/{name}" for name in TOKENIZER_FILES)),
    ),
    # Architecture and image statistics only: model.pth holds every weight.
    "base": WeightFile(
        BASE_REPO, "config.json", 0, "Apache-2.0", extra_files=("preprocessor_config.json",), holds_weights=False
    ),
}


def build_prompt(caption: str) -> str:
    """The official text for one video: ``build_prompt(caption, ["VQ", "MQ", "TA"], "detailed_special")``."""
    return PROMPT_TEMPLATE.format(text_prompt=caption)


def _round_by_factor(number: float, factor: int) -> int:
    return round(number / factor) * factor


def _floor_by_factor(number: float, factor: int) -> int:
    return math.floor(number / factor) * factor


def _ceil_by_factor(number: float, factor: int) -> int:
    return math.ceil(number / factor) * factor


def smart_resize(
    height: int, width: int, *, min_pixels: int, max_pixels: int, factor: int = IMAGE_FACTOR
) -> tuple[int, int]:
    """``vision_process.py: smart_resize``: sides divisible by ``factor``, area in [min, max], aspect kept."""
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(
            f"VideoReward needs frames with an aspect ratio below {MAX_RATIO}, got {width}x{height}; crop the video"
        )
    resized_height = max(factor, _round_by_factor(height, factor))
    resized_width = max(factor, _round_by_factor(width, factor))
    if resized_height * resized_width > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        resized_height = _floor_by_factor(height / beta, factor)
        resized_width = _floor_by_factor(width / beta, factor)
    elif resized_height * resized_width < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        resized_height = _ceil_by_factor(height * beta, factor)
        resized_width = _ceil_by_factor(width * beta, factor)
    return resized_height, resized_width


@dataclass(frozen=True)
class VideoAlignSampler:
    """The official frame choice (``vision_process.py: smart_nframes``, ``sample_type="uniform"``).

    ``fixed_frames`` > 0 takes that many frames (rounded to even); otherwise ``sample_fps`` frames per second of
    a video of ``video_fps`` frames per second, at least 4 and at most 768. The indices are
    ``round(linspace(0, num_frames - 1, n))`` computed in float32 as the official code does.
    """

    sample_fps: float = 2.0
    video_fps: float = 24.0
    fixed_frames: int = 0

    def __post_init__(self) -> None:
        if self.sample_fps <= 0 or self.video_fps <= 0:
            raise ValueError(f"frame rates must be positive, got sample_fps={self.sample_fps}, video_fps={self.video_fps}")
        if self.fixed_frames < 0:
            raise ValueError(f"num_frames must be 0 (sample by frame rate) or a positive count, got {self.fixed_frames}")

    def count(self, num_frames: int, fps: float | None = None) -> int:
        """How many frames the official reader takes from a video of ``num_frames`` frames at ``fps`` frames
        per second (None: unknown, ``video_fps`` is assumed)."""
        if self.fixed_frames:
            count = _round_by_factor(self.fixed_frames, FRAME_FACTOR)
        else:
            min_frames = _ceil_by_factor(FPS_MIN_FRAMES, FRAME_FACTOR)
            max_frames = _floor_by_factor(min(FPS_MAX_FRAMES, num_frames), FRAME_FACTOR)
            wanted = num_frames / assumed_frame_rate(fps, self.video_fps, "videoreward", "video_fps") * self.sample_fps
            count = _round_by_factor(min(max(wanted, min_frames), max_frames), FRAME_FACTOR)
        count = min(count, num_frames)
        if count < FRAME_FACTOR:
            raise ValueError(
                f"VideoReward needs at least {FRAME_FACTOR} frames per video (the official sampler takes an even "
                f"number of frames, at least 2), but this video has {num_frames} and the sampler chose {count}"
            )
        return count

    def indices(self, num_frames: int, rng: np.random.Generator | None = None, *, fps: float | None = None) -> list[int]:
        count = self.count(num_frames, fps)
        return torch.linspace(0, num_frames - 1, count).round().long().tolist()


# ------------------------------------------------------------------------------------------------ model


class VideoAlignModel(nn.Module):
    """Qwen2-VL (transformers 5 ``Qwen2VLModel``) plus the bias-free ``rm_head`` read at the reward tokens."""

    def __init__(self, config: Any, output_dim: int) -> None:
        super().__init__()
        from transformers import Qwen2VLModel

        if output_dim not in (1, 3):
            raise WeightsMismatchError(f"VideoReward's rm_head has 1 or 3 outputs, this checkpoint has {output_dim}")
        self.backbone = Qwen2VLModel._from_config(config, dtype=config.dtype)
        self.rm_head = nn.Linear(config.text_config.hidden_size, output_dim, bias=False)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values_videos: torch.Tensor,
        video_grid_thw: torch.Tensor,
        reward_token_ids: Sequence[int],
    ) -> torch.Tensor:
        """Raw rewards ``[B, 3]`` (VQ, MQ, TA) in float32."""
        batch, length = input_ids.shape
        # Plain 1-D positions for every token, as the official forward (see the module docstring).
        positions = torch.arange(length, device=input_ids.device).expand(batch, length)
        hidden = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions,
            pixel_values_videos=pixel_values_videos,
            video_grid_thw=video_grid_thw,
            use_cache=False,
        ).last_hidden_state
        at_reward = reward_token_positions(input_ids, reward_token_ids)
        outputs = self.rm_head(hidden[at_reward].view(batch, len(REWARD_TOKENS), -1))
        if outputs.shape[-1] == len(REWARD_TOKENS):
            outputs = outputs.diagonal(dim1=1, dim2=2)
        return outputs.reshape(batch, len(REWARD_TOKENS)).float()


def reward_token_positions(input_ids: torch.Tensor, reward_token_ids: Sequence[int]) -> torch.Tensor:
    """Boolean mask of the reward tokens; each row must hold VQ, MQ, TA exactly once and in that order."""
    mask = torch.zeros_like(input_ids, dtype=torch.bool)
    for token_id in reward_token_ids:
        mask |= input_ids == token_id
    for row, row_mask in zip(input_ids, mask, strict=True):
        if row[row_mask].tolist() != list(reward_token_ids):
            raise ValueError(
                "each VideoReward input must hold the reward tokens <|VQ_reward|>, <|MQ_reward|>, <|TA_reward|> "
                "exactly once, in that order; a caption that itself contains one of these strings cannot be scored"
            )
    return mask


# ---------------------------------------------------------------------------------------- checkpoint


@dataclass(frozen=True)
class LoraSpec:
    """The LoRA of ``model_config.json``'s ``peft_lora_config`` (``train_reward.py``)."""

    enabled: bool
    rank: int
    alpha: float
    rslora: bool
    exclude: tuple[str, ...]
    num_modules: int

    @property
    def scaling(self) -> float:
        return self.alpha / math.sqrt(self.rank) if self.rslora else self.alpha / self.rank

    @classmethod
    def from_config(cls, peft: Mapping[str, Any]) -> LoraSpec:
        exclude = peft.get("lora_namespan_exclude") or []
        if isinstance(exclude, str):  # PEFTLoraConfig turns a one-element list into its string
            exclude = [exclude]
        return cls(
            enabled=bool(peft.get("lora_enable", False)),
            rank=int(peft.get("lora_r", 16)),
            alpha=float(peft.get("lora_alpha", 32)),
            rslora=bool(peft.get("use_rslora", False)),
            exclude=tuple(exclude),
            num_modules=int(peft.get("num_lora_modules", -1)),
        )


def _official_module_name(name: str) -> str:
    """``VideoAlignModel`` module name -> the official (transformers 4.45) one, without the PEFT prefix."""
    for ours, official in (("backbone.visual", "visual"), ("backbone.language_model", "model")):
        if name == ours or name.startswith(ours + "."):
            return official + name[len(ours) :]
    return name


def _official_modules(model: VideoAlignModel) -> list[tuple[str, nn.Module | None]]:
    """The official model's modules in its ``named_modules`` order; ``lm_head`` (absent here) as None."""
    modules = [(_official_module_name(name), module) for name, module in model.named_modules() if name]
    position = next(index for index, (name, _) in enumerate(modules) if name == "rm_head")
    return [*modules[:position], ("lm_head", None), *modules[position:]]


def lora_targets(model: VideoAlignModel, lora: LoraSpec) -> list[str]:
    """Official module names that carry LoRA (``train_reward.py: find_target_linear_names``)."""
    if not lora.enabled:
        return []
    names = [
        name
        for name, module in _official_modules(model)
        if (module is None or isinstance(module, (nn.Linear, nn.Embedding)))
        and not any(excluded in name for excluded in lora.exclude)
    ]
    return names[-lora.num_modules :] if lora.num_modules > 0 else names


def official_keys(model: VideoAlignModel, lora: LoraSpec) -> list[str]:
    """Every key of the official ``model.pth`` for this architecture and LoRA."""
    prefix = "base_model.model." if lora.enabled else ""
    targets = set(lora_targets(model, lora))
    keys = []
    parameters = [(_official_module_name(key), key) for key in model.state_dict()]
    for official, _ in [*parameters, ("lm_head.weight", None)]:
        module, _, leaf = official.rpartition(".")
        if module in targets:
            keys.append(f"{prefix}{module}.base_layer.{leaf}")
            if leaf == "weight":
                keys += [f"{prefix}{module}.lora_A.default.weight", f"{prefix}{module}.lora_B.default.weight"]
        else:
            keys.append(prefix + official)
    return keys


def convert_official_state_dict(
    state_dict: dict[str, torch.Tensor], model: VideoAlignModel, lora: LoraSpec, source: str
) -> dict[str, torch.Tensor]:
    """Check the official keys strictly, merge the LoRA (in fp32) and rename to ``VideoAlignModel``'s keys,
    in the model's dtype. Consumes ``state_dict`` (entries are removed as they are converted: the released
    checkpoint is 5 GB)."""
    check_keys(official_keys(model, lora), state_dict.keys(), source)
    prefix = "base_model.model." if lora.enabled else ""
    ours = {_official_module_name(key): key for key in model.state_dict()}
    dtype = next(model.parameters()).dtype
    converted: dict[str, torch.Tensor] = {}
    for key in list(state_dict):
        name = key[len(prefix) :]
        if ".lora_A." in name or ".lora_B." in name:
            continue  # merged into its base layer's weight below
        value = state_dict.pop(key)
        if name == "lm_head.weight":
            continue
        if ".base_layer." in name:
            module, _, leaf = name.partition(".base_layer.")
            name = f"{module}.{leaf}"
            if leaf == "weight":
                down = state_dict.pop(f"{prefix}{module}.lora_A.default.weight").float()
                up = state_dict.pop(f"{prefix}{module}.lora_B.default.weight").float()
                if down.shape[0] != lora.rank:
                    raise WeightsMismatchError(
                        f"{source}: {module} has LoRA rank {down.shape[0]}, model_config.json says {lora.rank}"
                    )
                value = value.float() + lora.scaling * (up @ down)
        converted[ours[name]] = value.to(dtype)
    return converted


def _locate(role: str, folder: Path) -> Path:
    """A folder the user gave: for ``model`` a VideoReward folder (its latest checkpoint-N, as utils.py's
    load_model_from_checkpoint with step -1) or a checkpoint-N folder -> its model.pth; for ``base`` a
    Qwen2-VL folder -> its config.json."""
    if role == "base":
        if not (folder / "config.json").is_file() or not (folder / "preprocessor_config.json").is_file():
            raise MissingWeightsError(
                f"the Qwen2-VL base folder {str(folder)!r} needs config.json and preprocessor_config.json "
                f"(from the Hugging Face repo {BASE_REPO})"
            )
        return folder / "config.json"
    path = folder
    if (folder / "model_config.json").is_file():
        steps = [
            (int(match.group(1)), child)
            for child in folder.iterdir()
            if child.is_dir() and (match := re.fullmatch(r"checkpoint-(\d+)", child.name))
        ]
        if not steps:
            raise MissingWeightsError(f"{folder} holds model_config.json but no checkpoint-N folder with model.pth")
        path = max(steps)[1]
    if (path / "model.pth").is_file():
        return path / "model.pth"
    hint = (
        " It holds a LoRA adapter (adapter_model.safetensors + non_lora_state_dict.pth, saved with "
        "save_full_model=False), which needs the Qwen2-VL base weights; rewardkit reads the full model.pth "
        "that the released checkpoint uses."
        if (path / "adapter_model.safetensors").is_file()
        else ""
    )
    raise MissingWeightsError(
        f"the weights path {str(folder)!r} given for reward 'videoreward' is not a VideoReward checkpoint: give the "
        f"folder with model_config.json and checkpoint-N/model.pth (the Hugging Face repo {REPO}), a "
        f"checkpoint-N folder or its model.pth.{hint}"
    )


def _model_config_path(model_path: Path) -> Path:
    model_config = model_path.parent.parent / "model_config.json"
    if not model_config.is_file():
        raise MissingWeightsError(f"no model_config.json next to {model_path.parent} (it belongs to {REPO})")
    return model_config


def _named_base(model: Path) -> Path | None:
    """The base that a user-given checkpoint's model_config.json names (``model_name_or_path``), when it is a
    local folder; None for the released base, which resolves like every file. Another Hub base is an error."""
    model_path = _locate("model", model) if model.is_dir() else model
    if not model_path.is_file():
        return None  # the builder reports the bad path
    name = json.loads(_model_config_path(model_path).read_text())["model_config"].get("model_name_or_path") or BASE_REPO
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser()
    if name != BASE_REPO:
        raise MissingWeightsError(
            f"{model_path}'s model_config.json names the base {name!r}, which is not a local folder; rewardkit "
            f"fetches only {BASE_REPO}: pass the base folder, weights={{'base': FOLDER}} (--weights videoreward.base=FOLDER)"
        )
    return None


def _check_model_config(config: Mapping[str, Any], path: Path) -> None:
    """Refuse a checkpoint trained with settings other than the released ones that rewardkit implements."""
    data, model = config.get("data_config", {}), config.get("model_config", {})
    expected = [
        ("data_config.prompt_template_type", data.get("prompt_template_type"), "detailed_special"),
        ("data_config.eval_dim", data.get("eval_dim"), list(DIMENSIONS)),
        ("data_config.sample_type", data.get("sample_type", "uniform"), "uniform"),
        ("model_config.use_special_tokens", model.get("use_special_tokens"), True),
    ]
    for name, found, wanted in expected:
        if found != wanted:
            raise WeightsMismatchError(
                f"{path}: {name} is {found!r}; rewardkit implements VideoReward as released ({name} = {wanted!r})"
            )


def load_videoalign(
    model_path: Path, model_config: Mapping[str, Any], base_folder: Path, tokenizer: Any, dtype: torch.dtype
) -> VideoAlignModel:
    """Build ``VideoAlignModel`` from the base ``config.json`` and the checkpoint's shapes; load it strictly."""
    from transformers import Qwen2VLConfig
    from transformers.initialization import no_init_weights

    lora = LoraSpec.from_config(model_config.get("peft_lora_config", {}))
    state_dict = load_state_dict(model_path)
    prefix = "base_model.model." if lora.enabled else ""
    embedding, head = state_dict.get(prefix + "model.embed_tokens.weight"), state_dict.get(prefix + "rm_head.weight")
    if embedding is None or head is None:
        raise WeightsMismatchError(
            f"{model_path} is not a VideoReward model.pth: expected the keys {prefix}model.embed_tokens.weight and "
            f"{prefix}rm_head.weight (the state dict of the official Qwen2VLRewardModelBT"
            f"{' wrapped by PEFT' if lora.enabled else ''})"
        )
    if embedding.shape[0] != len(tokenizer):
        raise WeightsMismatchError(
            f"{model_path} has {embedding.shape[0]} token embeddings but its tokenizer {len(tokenizer)} tokens; "
            f"the checkpoint and checkpoint-N/tokenizer do not belong together"
        )
    config = Qwen2VLConfig.from_pretrained(str(base_folder))
    config.text_config.vocab_size = embedding.shape[0]  # train_reward.py: resize_token_embeddings(len(tokenizer))
    config.pad_token_id = config.text_config.pad_token_id = tokenizer.pad_token_id
    config._attn_implementation = "sdpa"
    config.dtype = dtype
    with no_init_weights():
        model = VideoAlignModel(config, output_dim=head.shape[0]).to(dtype)
    converted = convert_official_state_dict(state_dict, model, lora, str(model_path))
    del state_dict
    load_strict(model, converted, str(model_path))
    return model


def build_processor(base_folder: Path, tokenizer: Any) -> Any:
    """Qwen2-VL processor (tokenizer + video patches) with the base's patch sizes and image statistics."""
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    settings = json.loads((base_folder / "preprocessor_config.json").read_text())
    keys = ("patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std", "rescale_factor")
    kwargs = {key: settings[key] for key in keys if key in settings}
    return Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**kwargs),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**kwargs),
    )


def load_tokenizer(folder: Path) -> Any:
    """The checkpoint's tokenizer (Qwen2-VL's plus the three reward tokens), padding on the right."""
    from transformers import AutoTokenizer

    if not (folder / "tokenizer_config.json").is_file():
        raise MissingWeightsError(f"no tokenizer in {folder}: VideoReward's checkpoint-N/tokenizer folder is needed")
    tokenizer = AutoTokenizer.from_pretrained(str(folder), padding_side="right")
    ids = tokenizer.convert_tokens_to_ids(list(REWARD_TOKENS))
    for token, token_id in zip(REWARD_TOKENS, ids, strict=True):
        if token_id is None or tokenizer.convert_ids_to_tokens(token_id) != token:
            raise WeightsMismatchError(f"the tokenizer in {folder} has no {token} token; it is not VideoReward's")
    if not getattr(tokenizer, "chat_template", None):
        raise WeightsMismatchError(f"the tokenizer in {folder} has no chat template (Qwen2-VL-Instruct's is needed)")
    return tokenizer


# ----------------------------------------------------------------------------------------------- scorer


class VideoReward(VideoScorer):
    """VideoReward scores of videos ``[B, T, 3, H, W]`` and their captions: VQ, MQ, TA and Overall."""

    needs_prompt = True
    output_names = OUTPUT_NAMES

    def __init__(
        self,
        model: VideoAlignModel,
        processor: Any,
        model_config: Mapping[str, Any],
        *,
        output: str = "overall",
        normalize: bool = True,
        video_fps: float = 24.0,
        num_frames: int = 0,
    ) -> None:
        super().__init__()
        if output not in OUTPUT_NAMES:
            raise ValueError(f"output must be one of {', '.join(OUTPUT_NAMES)}, got {output!r}")
        data = model_config["data_config"]
        self.model = model.eval().requires_grad_(False)
        self.processor = processor
        self.output = output
        self.max_frame_pixels = int(data["max_frame_pixels"])
        fixed = num_frames or int(data.get("num_frames") or 0)  # inference.py: data_config.num_frames by default
        self.sampler = VideoAlignSampler(float(data["fps"]), video_fps, fixed)
        self.reward_token_ids = processor.tokenizer.convert_tokens_to_ids(list(REWARD_TOKENS))
        self.weights_sha256: str | None = None
        self.normalization: dict[str, float] | None = None
        if normalize:
            constants = model_config.get("inference_config")
            if not constants:
                raise ValueError(
                    "this checkpoint's model_config.json has no inference_config (the normalisation constants); "
                    "create the reward with normalize=False"
                )
            self.normalization = {key: float(constants[key]) for key in RELEASED_NORMALIZATION}

    @property
    def device(self) -> torch.device:
        return self.model.rm_head.weight.device

    def chat_text(self, caption: str) -> str:
        """The full input text for one caption, before the video tokens are expanded."""
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": build_prompt(caption)}]}]
        return self.processor.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def resize_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, K, 3, H, W]`` resized as ``vision_process.py: fetch_video`` (bicubic, antialiased, uint8)."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.functional import resize

        batch, count, channels, height, width = frames.shape
        size = smart_resize(height, width, min_pixels=VIDEO_MIN_PIXELS, max_pixels=self.max_frame_pixels)
        flat = resize(frames.reshape(-1, channels, height, width), list(size), InterpolationMode.BICUBIC, antialias=True)
        return flat.view(batch, count, channels, *size)

    def prepare(self, frames: torch.Tensor, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Processor inputs (``input_ids``, ``attention_mask``, ``pixel_values_videos``, ``video_grid_thw``)."""
        frames = as_float_videos(frames, keep_uint8=True)
        if frames.dtype != torch.uint8:
            frames = (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
        resized = self.resize_frames(frames.cpu())
        batch = self.processor(
            text=[self.chat_text(prompt) for prompt in prompts],
            videos=list(resized),
            padding=True,
            return_tensors="pt",
            videos_kwargs={"do_resize": False, "cap_pixels_per_frame": False},
        )
        return {key: batch[key] for key in ("input_ids", "attention_mask", "pixel_values_videos", "video_grid_thw")}

    @torch.no_grad()
    def raw_rewards(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """Head outputs ``[B, 3]`` (VQ, MQ, TA), before normalisation."""
        inputs = self.prepare(frames, prompts)
        dtype = self.model.rm_head.weight.dtype
        return self.model(
            inputs["input_ids"].to(self.device),
            inputs["attention_mask"].to(self.device),
            inputs["pixel_values_videos"].to(self.device, dtype),
            inputs["video_grid_thw"].to(self.device),
            self.reward_token_ids,
        )

    def score_sampled_details(
        self,
        frames: torch.Tensor,
        indices: torch.Tensor,
        num_frames: int,
        prompts: Sequence[str] | str | None = None,
        rng: np.random.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """VQ, MQ, TA, Overall (and the main ``score``) of frames ``[B, K, 3, H, W]`` sampled at ``indices``."""
        frames = as_float_videos(frames, keep_uint8=True)
        prompts = check_prompts(prompts, frames.shape[0], "videoreward", needs_prompt=True)
        rewards = self.raw_rewards(frames, prompts)
        details = {}
        for column, dimension in enumerate(DIMENSIONS):
            value = rewards[:, column]
            if self.normalization is not None:
                value = (value - self.normalization[f"{dimension}_mean"]) / self.normalization[f"{dimension}_std"]
            details[dimension.lower()] = value
        details["overall"] = details["vq"] + details["mq"] + details["ta"]
        return {"score": details[self.output], **details}



@register_reward(
    "videoreward",
    modality="video",
    needs_prompt=True,
    differentiable=False,
    description="VideoReward (VideoAlign): Qwen2-VL-2B reward model, visual/motion quality and text alignment",
    weights=VIDEOREWARD_WEIGHTS,
    paper="arXiv:2501.13918",
    repository="https://github.com/KwaiVGI/VideoAlign",
)
def create_videoreward(
    *,
    output: Literal["overall", "vq", "mq", "ta"] = "overall",
    normalize: bool = True,
    video_fps: float = 24.0,
    num_frames: int = 0,
    device: torch.device,
    dtype: torch.dtype,
    weights: WeightsArgument,
) -> VideoReward:
    """VideoReward; ``weights`` is the VideoReward folder (model_config.json + checkpoint-N/), a checkpoint-N
    folder or its model.pth. ``output`` picks the main score; ``normalize`` applies the official
    z-normalisation; ``video_fps`` is the frame rate assumed for videos whose container records none (the
    sampler takes 2 frames per second of video) unless ``num_frames`` fixes the count (the official ``num_frames``). ``{"model": ...,
    "base": FOLDER}`` also gives the Qwen2-VL folder with config.json and preprocessor_config.json (default:
    the base model_config.json names when it is a local folder, else Qwen/Qwen2-VL-2B-Instruct from the Hub)."""
    given: dict[str, Any] = split_weights_argument("videoreward", weights, list(VIDEOREWARD_WEIGHTS))
    if "model" in given and "base" not in given and given["model"].exists():
        named = _named_base(given["model"])
        if named is not None:
            given["base"] = named

    def build(paths: Mapping[str, Path]) -> VideoReward:
        model_path, base_folder = paths["model"], paths["base"].parent
        if not (base_folder / "preprocessor_config.json").is_file():
            _locate("base", base_folder)  # raises, naming the files a base folder needs
        config_path = _model_config_path(model_path)
        model_config = json.loads(config_path.read_text())
        _check_model_config(model_config, config_path)
        tokenizer = load_tokenizer(model_path.parent / "tokenizer")
        model = load_videoalign(model_path, model_config, base_folder, tokenizer, dtype)
        return VideoReward(
            model.to(device=device, dtype=dtype),
            build_processor(base_folder, tokenizer),
            model_config,
            output=output,
            normalize=normalize,
            video_fps=video_fps,
            num_frames=num_frames,
        )

    return build_with_weights("videoreward", given or None, {}, build, locate=_locate)
