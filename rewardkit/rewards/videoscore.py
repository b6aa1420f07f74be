"""VideoScore: five human-feedback scores of a generated video from an Idefics2 regression model.

He et al., "VideoScore: Building Automatic Metrics to Simulate Fine-grained Human Feedback for Video
Generation" (EMNLP 2024, arXiv:2406.15252), https://github.com/TIGER-AI-Lab/VideoScore (inference:
``examples/run_videoscore.py``; benchmark: ``benchmark/eval_videoscore.py``), model code in Mantis
(https://github.com/TIGER-AI-Lab/Mantis, ``mantis/models/idefics2/modeling_idefics2.py``,
``Idefics2ForSequenceClassification``). Checkpoints: ``TIGER-Lab/VideoScore`` (``v1``, 16 frames) and
``TIGER-Lab/VideoScore-v1.1`` (``v1.1``, 48 frames, better text-to-video alignment).

Model. Mantis-8B-Idefics2 (SigLIP vision tower at up to 980 px, a perceiver resampling each frame to 64
tokens, Mistral-7B) plus a linear head ``score`` (4096 -> 5, with bias) read at the last token of the
sequence (Mantis pools at the token before the first pad; the config has no pad id and the official code
scores one unpadded video at a time, so that is the last token). The five outputs are regressions on the
1-4 human rating scale of VideoFeedback: visual quality, temporal consistency, dynamic degree,
text-to-video alignment, factual consistency. The official scripts print each rounded to 3 decimals; here
they are not rounded. The main score defaults to their mean, as the repository's pairwise-preference
evaluation combines them (``benchmark/get_genaibench_pairwise_acc.py``).

Built on transformers' ``Idefics2Model`` and loaded with ``from_pretrained`` from the official folder
(``config.json``, safetensors shards, processor and tokenizer files); any missing, unexpected or misshapen
key is an error. One difference from transformers' own Idefics2 config handling is corrected: Mantis' perceiver
uses the text model's width and RMSNorm epsilon (1e-5), which the perceiver config is set to here.

Input. Frames: ``np.arange(0, T, T / N).astype(int)`` for a video of T > N frames (N = 16 for v1, 48 for
v1.1), every frame when T <= N (``examples/run_videoscore.py``). Text: ``REGRESSION_QUERY_PROMPT`` with the
prompt inserted, then ``"<image> "`` once per frame, passed as raw text (no chat template) to the Idefics2
processor, which expands each ``<image>`` to ``<fake_token_around_image>`` + 64 ``<image>`` +
``<fake_token_around_image>`` and prepends ``<s>``. The tokenizer is the checkpoint's ``tokenizer.json`` run
as is, as transformers 4.x did (transformers 5's ``LlamaTokenizer`` rebuilds the pipeline and tokenizes the
spaces after image tokens differently). Images: the checkpoint's Idefics2 image processor with PIL
(no image splitting; each side scaled up to at least 378 px and the longer side down to at most 980 px,
bilinear; ``(x / 255 - 0.5) / 0.5``). Not differentiable: preprocessing runs through PIL and the tokenizer.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from rewardkit.registry import WeightFile, register_reward
from rewardkit.rewards.base import VideoScorer
from rewardkit.transforms import as_float_videos, check_prompts, to_pil
from rewardkit.weights import (
    MissingWeightsError,
    WeightsArgument,
    WeightsMismatchError,
    build_with_weights,
    check_keys,
    hub_blob_hash,
    sha256_of,
)

__all__ = [
    "OUTPUT_NAMES",
    "REGRESSION_QUERY_PROMPT",
    "VIDEOSCORE_FRAMES",
    "VIDEOSCORE_REPOS",
    "VIDEOSCORE_WEIGHTS",
    "VideoScore",
    "VideoScoreSampler",
    "build_query",
    "load_videoscore_config",
    "load_videoscore_model",
    "load_videoscore_processor",
    "videoscore_model_class",
]

VIDEOSCORE_REPOS = {"v1": "TIGER-Lab/VideoScore", "v1.1": "TIGER-Lab/VideoScore-v1.1"}
VIDEOSCORE_FRAMES = {"v1": 16, "v1.1": 48}
OUTPUT_NAMES = ("visual_quality", "temporal_consistency", "dynamic_degree", "text_alignment", "factual_consistency")
Output = Literal[
    "mean", "visual_quality", "temporal_consistency", "dynamic_degree", "text_alignment", "factual_consistency"
]

# The official text, with its trailing space after "sub-score,"; identical in examples/run_videoscore.py and
# benchmark/utils_tools.py of TIGER-AI-Lab/VideoScore.
REGRESSION_QUERY_PROMPT = """
Suppose you are an expert in judging and evaluating the quality of AI-generated videos,
please watch the following frames of a given video and see the text prompt for generating the video,
then give scores from 5 different dimensions:
(1) visual quality: the quality of the video in terms of clearness, resolution, brightness, and color
(2) temporal consistency, both the consistency of objects or humans and the smoothness of motion or movements
(3) dynamic degree, the degree of dynamic changes
(4) text-to-video alignment, the alignment between the text prompt and the video content
(5) factual consistency, the consistency of the video content with the common-sense and factual knowledge

for each dimension, output a float number from 1.0 to 4.0,
the higher the number is, the better the video performs in that sub-score, \n\
the lowest 1.0 means Bad, the highest 4.0 means Perfect/Real (the video is like a real video)
Here is an output example:
visual quality: 3.2
temporal consistency: 2.7
dynamic degree: 4.0
text-to-video alignment: 2.3
factual consistency: 1.8

For this video, the text prompt is "{text_prompt}",
all the frames of video are as follows:
"""
IMAGE_TOKEN = "<image>"

_SHARDS = tuple(f"model-{index:05d}-of-00004.safetensors" for index in range(1, 5))
_COMPANIONS = (
    "config.json",
    *_SHARDS,
    "preprocessor_config.json",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
)
# Size: the four bf16 shards as the Hub lists them (4.97 + 4.92 + 5.00 + 1.66 GB; 8.27B parameters), the same for
# both versions; the index file itself is 74 kB.
VIDEOSCORE_WEIGHTS = {
    version: WeightFile(repo, "model.safetensors.index.json", 16_550_000_000, license, extra_files=_COMPANIONS)
    for version, repo, license in (("v1", VIDEOSCORE_REPOS["v1"], "Apache-2.0"), ("v1.1", VIDEOSCORE_REPOS["v1.1"], "MIT"))
}


@dataclass(frozen=True)
class VideoScoreSampler:
    """VideoScore's frames (``examples/run_videoscore.py``): ``np.arange(0, T, T / n).astype(int)`` when the
    video has T > n frames, else every frame (a shorter video is scored on all its T frames)."""

    n: int

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"VideoScoreSampler needs n >= 1, got {self.n}")

    def indices(self, num_frames: int, rng: np.random.Generator | None = None, *, fps: float | None = None) -> list[int]:
        if num_frames < 1:
            raise ValueError(f"VideoScore needs a video with at least 1 frame, got {num_frames}")
        if num_frames > self.n:
            return [int(index) for index in np.arange(0, num_frames, num_frames / self.n).astype(int)]
        return list(range(num_frames))


def build_query(prompt: str, num_frames: int) -> str:
    """The official text: the template with ``prompt`` inserted, then ``"<image> "`` for each frame not
    already referenced by an ``<image>`` in the text."""
    text = REGRESSION_QUERY_PROMPT.format(text_prompt=prompt)
    present = text.count(IMAGE_TOKEN)
    if present > num_frames:
        raise ValueError(
            f"the prompt contains {present} '{IMAGE_TOKEN}' markers but only {num_frames} frames were given; "
            f"remove '{IMAGE_TOKEN}' from the prompt"
        )
    return text + f"{IMAGE_TOKEN} " * (num_frames - present)


def _require(folder: Path, names: Sequence[str], repo: str) -> None:
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise MissingWeightsError(
            f"{folder} lacks {', '.join(missing)}: reward 'videoscore' needs the model folder of the Hugging Face "
            f"repo {repo} (config.json, the safetensors shards with model.safetensors.index.json, "
            f"preprocessor_config.json, processor_config.json, tokenizer.json, tokenizer_config.json)"
        )


def load_videoscore_config(folder: str | Path) -> Any:
    """The checkpoint's ``Idefics2Config`` with the perceiver set to the text model's width and RMSNorm epsilon,
    as Mantis' perceiver reads them (``config.text_config.hidden_size`` and ``.rms_norm_eps``)."""
    from transformers import Idefics2Config

    config = Idefics2Config.from_pretrained(str(folder))
    config.perceiver_config.hidden_size = config.text_config.hidden_size
    config.perceiver_config.rms_norm_eps = config.text_config.rms_norm_eps
    if config.num_labels != len(OUTPUT_NAMES):
        raise WeightsMismatchError(
            f"{Path(folder) / 'config.json'} declares {config.num_labels} outputs; a VideoScore checkpoint has 5"
        )
    return config


def load_videoscore_processor(folder: str | Path) -> Any:
    """Idefics2 processor from the checkpoint's files: the PIL image processor and ``tokenizer.json`` as is."""
    from transformers import Idefics2Processor
    from transformers.models.idefics2.image_processing_pil_idefics2 import Idefics2ImageProcessorPil
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    folder = Path(folder)
    image_processor = Idefics2ImageProcessorPil.from_pretrained(str(folder))
    tokenizer = TokenizersBackend.from_pretrained(str(folder))
    settings = json.loads((folder / "processor_config.json").read_text())
    processor = Idefics2Processor(image_processor, tokenizer, image_seq_len=settings.get("image_seq_len", 64))
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    if image_processor.do_image_splitting or image_id != 32001:
        raise WeightsMismatchError(
            f"the processor files in {folder} do not match VideoScore's (image splitting off, <image> = 32001; "
            f"got splitting={image_processor.do_image_splitting}, <image> = {image_id})"
        )
    return processor


@functools.cache
def videoscore_model_class() -> type:
    """``VideoScoreModel``: Mantis' ``Idefics2ForSequenceClassification`` at inference, on transformers'
    ``Idefics2Model`` (created on first use, so that importing rewardkit does not import transformers)."""
    from transformers.models.idefics2.modeling_idefics2 import Idefics2Model, Idefics2PreTrainedModel

    class VideoScoreModel(Idefics2PreTrainedModel):
        """``model`` (Idefics2) + linear ``score`` (with bias) read at the last token."""

        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.model = Idefics2Model(config)
            self.score = nn.Linear(config.text_config.hidden_size, config.num_labels)
            self.post_init()

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            pixel_values: torch.Tensor,
            pixel_attention_mask: torch.Tensor,
        ) -> torch.Tensor:
            """Logits ``[B, 5]`` at each sequence's last real token (right padding)."""
            hidden = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                pixel_values=pixel_values,
                pixel_attention_mask=pixel_attention_mask,
                use_cache=False,
            ).last_hidden_state
            last = attention_mask.sum(dim=1) - 1
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
            return self.score(pooled).float()

    return VideoScoreModel


class VideoScore(VideoScorer):
    """VideoScore of videos ``[B, T, 3, H, W]`` against their prompts; ``output`` picks the main score."""

    needs_prompt = True
    output_names = OUTPUT_NAMES

    def __init__(self, model: nn.Module, processor: Any, *, num_frames: int, output: str, shards: list[Path]) -> None:
        super().__init__()
        if output != "mean" and output not in OUTPUT_NAMES:
            raise ValueError(f"output must be 'mean' or one of {', '.join(OUTPUT_NAMES)}; got {output!r}")
        self.model = model
        self.processor = processor
        self.output = output
        self.sampler = VideoScoreSampler(num_frames)
        self._shards = shards
        self._weights_sha256: str | None = None
        self.requires_grad_(False)
        self.eval()

    @property
    def weights_sha256(self) -> str:
        """sha256 over the shards' names and sha256s (computed on first use and remembered)."""
        if self._weights_sha256 is None:
            digest = hashlib.sha256()
            for shard in self._shards:
                # A Hub cache blob is named by its sha256: no need to read 16 GB again.
                digest.update(f"{shard.name} {hub_blob_hash(shard) or sha256_of(shard)}\n".encode())
            self._weights_sha256 = digest.hexdigest()
        return self._weights_sha256

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def name(self) -> str:
        info = getattr(self, "info", None)
        return info.name if info is not None else "videoscore"

    def encode(self, frames: torch.Tensor, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Processor inputs for frame stacks ``[B, K, 3, H, W]`` (uint8, or float in [0, 1] rounded to 8 bits).

        Each video goes through the processor alone, exactly as the official script calls it; the token
        sequences are then right-padded (id 0, masked), which leaves every real token's causal context unchanged.
        """
        encoded = [
            self.processor(
                text=build_query(prompt, len(video)), images=[to_pil(frame) for frame in video], return_tensors="pt"
            )
            for video, prompt in zip(frames, prompts, strict=True)
        ]
        length = max(item["input_ids"].shape[1] for item in encoded)
        input_ids = torch.zeros(len(encoded), length, dtype=torch.long)
        attention_mask = torch.zeros(len(encoded), length, dtype=torch.long)
        for row, item in enumerate(encoded):
            input_ids[row, : item["input_ids"].shape[1]] = item["input_ids"][0]
            attention_mask[row, : item["input_ids"].shape[1]] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "pixel_values": torch.cat([item["pixel_values"] for item in encoded]),
            "pixel_attention_mask": torch.cat([item["pixel_attention_mask"] for item in encoded]),
        }

    def logits(self, frames: torch.Tensor, prompts: Sequence[str] | str | None) -> torch.Tensor:
        """The five raw outputs ``[B, 5]`` (float32), in the order of ``output_names``."""
        frames = as_float_videos(frames, keep_uint8=True)
        prompts = check_prompts(prompts, frames.shape[0], self.name, self.needs_prompt)
        inputs = self.encode(frames, prompts)
        dtype = next(self.model.parameters()).dtype
        with torch.no_grad():
            return self.model(
                input_ids=inputs["input_ids"].to(self.device),
                attention_mask=inputs["attention_mask"].to(self.device),
                pixel_values=inputs["pixel_values"].to(self.device, dtype),
                pixel_attention_mask=inputs["pixel_attention_mask"].to(self.device),
            )

    def score_sampled_details(
        self,
        frames: torch.Tensor,
        indices: torch.Tensor,
        num_frames: int,
        prompts: Sequence[str] | str | None = None,
        rng: np.random.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """``score`` (the chosen output) and the five outputs by name, each ``[B]``, for frames decoded at ``indices``."""
        logits = self.logits(frames, prompts)
        details = {name: logits[:, index] for index, name in enumerate(OUTPUT_NAMES)}
        main = logits.mean(dim=1) if self.output == "mean" else details[self.output]
        return {"score": main, **details}



def _single_file(role: str, folder: Path) -> Path:
    """The shard index in a model folder the user gave, or its single ``model.safetensors``."""
    if (folder / "model.safetensors.index.json").is_file():
        return folder / "model.safetensors.index.json"
    if not (folder / "model.safetensors").is_file():
        raise MissingWeightsError(
            f"the folder {str(folder)!r} given for reward 'videoscore' lacks model.safetensors.index.json and "
            f"model.safetensors; it should be the model folder of {' or '.join(VIDEOSCORE_REPOS.values())}"
        )
    return folder / "model.safetensors"


def _shard_files(folder: Path, repo: str) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        _require(folder, names, repo)
        return [folder / name for name in names]
    _require(folder, ("model.safetensors",), repo)
    return [folder / "model.safetensors"]


def check_checkpoint(folder: Path, shards: Sequence[Path], config: Any) -> None:
    """Compare the shards' keys and shapes (read from the safetensors headers) with the model's; any missing,
    unexpected or misshapen key is a WeightsMismatchError."""
    from safetensors import safe_open

    found: dict[str, tuple[int, ...]] = {}
    for shard in shards:
        with safe_open(str(shard), "pt") as handle:
            found.update({key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()})
    with torch.device("meta"):
        expected = {key: tuple(value.shape) for key, value in videoscore_model_class()(config).state_dict().items()}
    check_keys(expected, found, str(folder))
    wrong = [f"{key}: checkpoint {found[key]} vs model {shape}" for key, shape in expected.items() if found[key] != shape]
    if wrong:
        raise WeightsMismatchError(
            f"checkpoint {folder} has {len(wrong)} tensors of the wrong shape (e.g. {'; '.join(wrong[:3])}); "
            f"it was made for a different architecture"
        )


def load_videoscore_model(folder: Path, shards: Sequence[Path], *, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """Check the checkpoint's keys and shapes, then ``VideoScoreModel.from_pretrained`` from safetensors only
    (whose loading report must be clean too)."""
    config = load_videoscore_config(folder)
    check_checkpoint(folder, shards, config)
    model, info = videoscore_model_class().from_pretrained(
        str(folder), config=config, dtype=dtype, use_safetensors=True, output_loading_info=True, device_map={"": device}
    )
    problems = []
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        keys = sorted(str(key) for key in info.get(kind, ()))
        if keys:
            problems.append(f"{len(keys)} {kind.replace('_keys', '')} (e.g. {', '.join(keys[:5])})")
    if problems or info.get("error_msgs"):
        raise WeightsMismatchError(
            f"checkpoint {folder} does not match the VideoScore model: {'; '.join(problems) or info['error_msgs']} "
            f"keys. Is it the folder of {', '.join(VIDEOSCORE_REPOS.values())}?"
        )
    return model.eval()


@register_reward(
    "videoscore",
    modality="video",
    needs_prompt=True,
    differentiable=False,
    higher_is_better=True,
    score_range=(1.0, 4.0),
    description="VideoScore (Idefics2 regression): visual quality, temporal consistency, dynamic degree, "
    "text alignment, factual consistency on the 1-4 human scale",
    weights=lambda options: {"model": VIDEOSCORE_WEIGHTS[options["version"]]},
    paper="arXiv:2406.15252",
    repository="https://github.com/TIGER-AI-Lab/VideoScore",
)
def create_videoscore(
    *,
    version: Literal["v1", "v1.1"] = "v1",
    output: Output = "mean",
    device: torch.device,
    dtype: torch.dtype,
    weights: WeightsArgument,
) -> VideoScore:
    """VideoScore; ``version`` v1 (16 frames) or v1.1 (48 frames); ``output`` the main score (default: mean of
    five); ``weights`` the model folder (or a file in it)."""

    def build(paths: Mapping[str, Path]) -> VideoScore:
        folder, repo = paths["model"].parent, VIDEOSCORE_REPOS[version]
        _require(folder, ("config.json", "preprocessor_config.json", "processor_config.json", "tokenizer.json"), repo)
        shards = _shard_files(folder, repo)
        model = load_videoscore_model(folder, shards, device=device, dtype=dtype)
        processor = load_videoscore_processor(folder)
        return VideoScore(model, processor, num_frames=VIDEOSCORE_FRAMES[version], output=output, shards=shards)

    return build_with_weights("videoscore", weights, {"version": version}, build, locate=_single_file)
