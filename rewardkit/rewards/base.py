"""The scorer contract shared by every reward model.

An image reward takes pixels ``[B, 3, H, W]`` (float in [0, 1], or uint8) and B prompts and returns a float
tensor ``[B]``. Scoring splits into two halves so the engine can run the first in DataLoader workers:
``preprocessor`` turns one uint8 ``[H, W, 3]`` frame into the model's input, and ``score_preprocessed``
scores a batch of those inputs. ``forward`` chains the two: per image through the official (PIL) path in
``reference`` mode, batched in torch in ``differentiable`` mode.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import numpy as np
import torch

from rewardkit.transforms import Preprocess, as_float_images, as_float_videos, check_prompts, to_uint8_hwc
from rewardkit.video.sampling import FrameSampler, frame_indices

__all__ = ["ImageScorer", "PreprocessMode", "TextFeatureCache", "VideoScorer"]

PreprocessMode = Literal["reference", "differentiable"]


class TextFeatureCache:
    """Text features per prompt (LRU), so a batch never encodes the same prompt twice."""

    def __init__(self, encode: Callable[[list[str]], torch.Tensor], capacity: int = 4096) -> None:
        self._encode = encode
        self._capacity = capacity
        self._features: OrderedDict[str, torch.Tensor] = OrderedDict()

    def __call__(self, prompts: Sequence[str]) -> torch.Tensor:
        missing = list(dict.fromkeys(prompt for prompt in prompts if prompt not in self._features))
        if missing:
            with torch.no_grad():
                encoded = self._encode(missing)
            for prompt, feature in zip(missing, encoded, strict=True):
                self._features[prompt] = feature.detach()
        for prompt in prompts:
            self._features.move_to_end(prompt)
        stacked = torch.stack([self._features[prompt] for prompt in prompts])
        while len(self._features) > self._capacity:
            self._features.popitem(last=False)
        return stacked

    def clear(self) -> None:
        self._features.clear()


class ImageScorer(torch.nn.Module):
    """Base class of image-text and image-only rewards. Subclasses set ``reference_preprocess`` and
    ``torch_preprocess`` and implement ``score_preprocessed``."""

    modality = "image"
    needs_prompt = True
    max_prompt_tokens: int | None = None

    def __init__(self, mode: PreprocessMode, dtype: torch.dtype) -> None:
        super().__init__()
        if mode not in ("reference", "differentiable"):
            raise ValueError(f"mode must be 'reference' or 'differentiable', got {mode!r}")
        self.mode = mode
        self.dtype = dtype
        self.weights_sha256: str | None = None
        # Set by subclasses: the official per-image path and the all-torch (differentiable) one.
        self.reference_preprocess: Callable[[np.ndarray], torch.Tensor]
        self.torch_preprocess: Preprocess

    @property
    def preprocessor(self) -> Callable[[np.ndarray], torch.Tensor]:
        """Per-frame preprocessing of the current mode (picklable, for DataLoader workers)."""
        return self.reference_preprocess if self.mode == "reference" else self.torch_preprocess

    @property
    def name(self) -> str:
        info = getattr(self, "info", None)
        return info.name if info is not None else type(self).__name__

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def freeze(self) -> None:
        """Rewards are judges, not students: gradients go to the pixels, never to the reward's weights."""
        self.requires_grad_(False)
        self.eval()

    def score_preprocessed(self, pixel_values: torch.Tensor, prompts: Sequence[str] | None) -> torch.Tensor:
        """Score model-ready inputs ``[B, 3, S, S]`` against ``prompts``; returns float32 ``[B]``."""
        raise NotImplementedError

    def prompt_token_count(self, prompt: str) -> int:
        """Tokens the prompt takes, start and end tokens included (compared to ``max_prompt_tokens``)."""
        raise NotImplementedError

    def prompt_truncated(self, prompt: str) -> bool:
        return self.max_prompt_tokens is not None and self.prompt_token_count(prompt) > self.max_prompt_tokens

    def forward(self, images: torch.Tensor, prompts: Sequence[str] | str | None = None) -> torch.Tensor:
        images = as_float_images(images, keep_uint8=self.mode == "reference")
        prompts = check_prompts(prompts, images.shape[0], self.name, self.needs_prompt)
        if self.mode == "reference":
            # The official pipelines start from 8-bit images; uint8 input is used as is, float is rounded.
            pixel_values = torch.stack([self.preprocessor(to_uint8_hwc(image)) for image in images])
        else:
            pixel_values = self.torch_preprocess.batch(images)
        return self.score_preprocessed(pixel_values, prompts)


class VideoScorer(torch.nn.Module):
    """Base class of rewards that score whole videos (the scoring engine's video contract).

    Subclasses set ``self.sampler`` (picklable: ``indices(num_frames, rng) -> list[int]``, run in
    DataLoader workers before decoding) and implement ``score_sampled_details``, returning ``score`` and
    one ``[B]`` tensor per name in ``output_names``, or override ``score_sampled`` when they have a
    single output. ``forward`` samples, gathers and scores.
    """

    modality = "video"
    needs_prompt = False
    max_prompt_tokens: int | None = None
    output_names: tuple[str, ...] = ()
    weights_sha256: str | None = None  # of the main weights file, recorded in every results row
    sampler: FrameSampler
    stream_chunk = 0  # > 0: ``score_stream`` takes the sampled frames of a file this many at a time

    def score_sampled_details(
        self,
        frames: torch.Tensor,
        indices: torch.Tensor,
        num_frames: int,
        prompts: Sequence[str] | str | None = None,
        rng: np.random.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """``score`` and the named outputs, each ``[B]``, of frames ``[B, K, 3, H, W]`` decoded at
        ``indices`` ``[B, K]`` of ``num_frames``-frame videos."""
        return {"score": self.score_sampled(frames, indices, num_frames, prompts, rng)}

    def score_sampled(
        self,
        frames: torch.Tensor,
        indices: torch.Tensor,
        num_frames: int,
        prompts: Sequence[str] | str | None = None,
        rng: np.random.Generator | None = None,
    ) -> torch.Tensor:
        """The score ``[B]`` of frames ``[B, K, 3, H, W]`` decoded at ``indices``."""
        if type(self).score_sampled_details is VideoScorer.score_sampled_details:
            raise NotImplementedError(f"{type(self).__name__} implements neither score_sampled nor score_sampled_details")
        return self.score_sampled_details(frames, indices, num_frames, prompts, rng)["score"]

    def score_stream(
        self,
        chunks: Iterable[np.ndarray],
        indices: Sequence[int],
        num_frames: int,
        prompt: str | None = None,
        rng: np.random.Generator | None = None,
    ) -> dict[str, float]:
        """``score`` and the named outputs of ONE video whose frames at ``indices`` arrive in order as uint8
        ``[k, H, W, 3]`` chunks of at most ``stream_chunk`` frames, so memory stays bounded by a chunk
        whatever the length. Rewards with ``stream_chunk > 0`` implement it; the scoring engine then decodes
        their frames while it scores (``rewardkit.video.io.iter_frames``)."""
        raise NotImplementedError(f"{type(self).__name__} does not stream: it scores its sampled frames all at once")

    def frame_indices(
        self, num_frames: int, batch: int = 1, rng: np.random.Generator | None = None, fps: float | None = None
    ) -> torch.Tensor:
        """Indices ``[batch, K]`` to decode, drawn per video (random samplers use ``rng``)."""
        return frame_indices(self.sampler, num_frames, batch, rng, fps)

    def forward(
        self, videos: torch.Tensor, prompts: Sequence[str] | str | None = None, rng: np.random.Generator | None = None
    ) -> torch.Tensor:
        """Scores ``[B]`` of videos ``[B, T, 3, H, W]`` (float in [0, 1] or uint8)."""
        videos = as_float_videos(videos, keep_uint8=True)
        batch, num_frames = videos.shape[:2]
        indices = self.frame_indices(num_frames, batch, rng)
        frames = torch.stack([video[index] for video, index in zip(videos, indices.to(videos.device), strict=True)])
        return self.score_sampled(frames, indices, num_frames, prompts, rng)
