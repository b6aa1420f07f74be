"""Image rewards as video rewards, by composition (InstructVideo, arXiv:2312.12490,
https://github.com/ali-vilab/VGen, utils/reward/reward.py).

``PerFrameReward(image_reward, sampler, weighting)``: the sampler picks frame indices from the frame count
alone, so a decoder (file reader or VAE) produces only those frames; the image reward scores each picked
frame against the video's prompt; the weighting combines the frame scores. With ``Segmental(S, "random")``
and ``TemporalAttenuation(1.0)`` this is InstructVideo's segmental, temporally attenuated reward
``R = (1/S) * sum_i exp(-|g(i) - F//2|) * r(x_g(i), c)``; its training loss is ``mean(1 - R)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from rewardkit.registry import WeightFile, create_reward, get_reward_info, register_reward
from rewardkit.rewards.base import ImageScorer, VideoScorer
from rewardkit.transforms import Preprocess, as_float_images, as_float_videos, check_prompts, to_uint8_hwc
from rewardkit.video.sampling import FrameSampler, Segmental
from rewardkit.video.weighting import FrameWeighting, TemporalAttenuation
from rewardkit.weights import WeightsArgument, build_with_weights

__all__ = ["PerFrameReward", "PatchReward", "PatchScores", "PatchPreprocess", "patch_boxes", "parse_grid"]


class PerFrameReward(VideoScorer):
    """Score videos ``[B, T, 3, H, W]`` with an image reward on sampled, weighted frames (the video contract
    of ``VideoScorer``: ``frame_indices``, ``score_sampled``, ``forward``)."""

    def __init__(
        self,
        image_reward: ImageScorer,
        sampler: FrameSampler | None = None,
        weighting: FrameWeighting | None = None,
    ) -> None:
        super().__init__()
        if getattr(image_reward, "modality", "image") != "image":
            raise ValueError(f"PerFrameReward wraps image rewards; {image_reward.name!r} already scores videos")
        self.image_reward = image_reward
        self.sampler = sampler if sampler is not None else Segmental(4, "random")
        self.weighting = weighting if weighting is not None else TemporalAttenuation(1.0)

    @property
    def needs_prompt(self) -> bool:
        return self.image_reward.needs_prompt

    def score_sampled(
        self,
        frames: torch.Tensor,
        indices: torch.Tensor,
        num_frames: int,
        prompts: Sequence[str] | str | None = None,
        rng: np.random.Generator | None = None,
    ) -> torch.Tensor:
        """Score already-decoded sampled frames ``[B, S, 3, H, W]`` taken at ``indices`` ``[B, S]`` (the
        image reward is deterministic: ``rng`` is not used)."""
        frames = as_float_videos(frames, keep_uint8=True)
        batch, segments = frames.shape[:2]
        prompts = check_prompts(prompts, batch, self.image_reward.name, self.needs_prompt)
        frame_prompts = None if prompts is None else [prompt for prompt in prompts for _ in range(segments)]
        scores = self.image_reward(frames.flatten(0, 1), frame_prompts).view(batch, segments)
        return self.weighting(scores, indices.to(scores.device), num_frames)


# ------------------------------------------------------------------------------------------ patch level


def patch_boxes(height: int, width: int, grid: tuple[int, int], overlap: float = 0.0) -> list[tuple[int, int, int, int]]:
    """Crops ``(top, left, bottom, right)`` of a ``grid = (rows, cols)`` of patches, row by row.

    Along an axis of length L with g patches and overlap o (a fraction of the patch size), each patch is
    ``L / (g - (g - 1) * o)`` long and starts ``(1 - o)`` patch lengths after the previous one, so the
    patches cover the axis exactly; edges are rounded to whole pixels. ``o = 0`` tiles the image.
    """
    rows, cols = grid
    if rows < 1 or cols < 1:
        raise ValueError(f"a patch grid needs at least 1x1 patches, got {rows}x{cols}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"patch overlap is a fraction of the patch size in [0, 1), got {overlap}")

    def spans(length: int, count: int) -> list[tuple[int, int]]:
        size = length / (count - (count - 1) * overlap)
        stride = size * (1.0 - overlap)
        edges = [(round(index * stride), min(length, round(index * stride + size))) for index in range(count)]
        if min(end - start for start, end in edges) < 2:
            raise ValueError(
                f"a {length}-pixel side cannot be cut into {count} patches of at least 2 pixels; "
                f"use a coarser grid or larger frames"
            )
        return edges

    return [(top, left, bottom, right) for top, bottom in spans(height, rows) for left, right in spans(width, cols)]


class PatchPreprocess(Preprocess):
    """Cut a frame into grid patches and preprocess each with the base reward's step: ``[P, 3, S, S]``
    per frame (``[B, P, 3, S, S]`` for a batch), patches row by row. Picklable (DataLoader workers)."""

    def __init__(self, base: Callable[[np.ndarray], torch.Tensor], grid: tuple[int, int], overlap: float) -> None:
        self.base, self.grid, self.overlap = base, grid, overlap

    def __call__(self, frame: np.ndarray) -> torch.Tensor:
        boxes = patch_boxes(frame.shape[0], frame.shape[1], self.grid, self.overlap)
        return torch.stack([self.base(np.ascontiguousarray(frame[top:bottom, left:right])) for top, left, bottom, right in boxes])

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        boxes = patch_boxes(images.shape[-2], images.shape[-1], self.grid, self.overlap)
        return torch.stack([self.base.batch(images[..., top:bottom, left:right]) for top, left, bottom, right in boxes], dim=1)


class PatchScores(NamedTuple):
    """Per-patch scores ``[B, rows, cols]`` (``[B, T, rows, cols]`` for videos) and their pooled score
    ``[B]`` (``[B, T]``)."""

    patches: torch.Tensor
    pooled: torch.Tensor


class PatchReward(ImageScorer):
    """An image reward applied to local crops (HALO's patch-level reward, arXiv:2502.06812, built from any
    image reward rather than HALO's distilled patch model).

    ``patches(images, prompts)`` gives per-patch scores and the pooled score; ``forward`` returns the
    pooled score ``[B]`` so the patch reward also works wherever an image reward does (``PerFrameReward``,
    the scoring engine). Every patch is scored against the whole prompt. ``pooling``: ``mean`` of the
    patches, or ``min`` (the worst region decides). Gradients reach the pixels in ``differentiable`` mode.
    """

    def __init__(
        self,
        image_reward: ImageScorer,
        grid: tuple[int, int] = (3, 3),
        overlap: float = 0.0,
        pooling: Literal["mean", "min"] = "mean",
    ) -> None:
        super().__init__(image_reward.mode, image_reward.dtype)
        if getattr(image_reward, "modality", "image") != "image":
            raise ValueError(f"PatchReward wraps image rewards; {image_reward.name!r} scores videos")
        if pooling not in ("mean", "min"):
            raise ValueError(f"pooling must be 'mean' or 'min', got {pooling!r}")
        patch_boxes(64, 64, grid, overlap)  # check grid and overlap now, not at the first frame
        self.image_reward = image_reward
        self.grid, self.overlap, self.pooling = tuple(grid), overlap, pooling
        self.needs_prompt = image_reward.needs_prompt
        self.max_prompt_tokens = image_reward.max_prompt_tokens
        self.weights_sha256 = image_reward.weights_sha256
        self.reference_preprocess = PatchPreprocess(image_reward.reference_preprocess, self.grid, overlap)
        self.torch_preprocess = PatchPreprocess(image_reward.torch_preprocess, self.grid, overlap)
        self.output_names = tuple(f"{row}_{col}" for row in range(self.grid[0]) for col in range(self.grid[1]))

    def prompt_token_count(self, prompt: str) -> int:
        return self.image_reward.prompt_token_count(prompt)

    def _pool(self, patches: torch.Tensor) -> torch.Tensor:
        flat = patches.flatten(-2)
        return flat.mean(-1) if self.pooling == "mean" else flat.amin(-1)

    def score_patches_preprocessed(self, pixel_values: torch.Tensor, prompts: Sequence[str] | None) -> torch.Tensor:
        """Per-patch scores ``[B, rows, cols]`` of preprocessed patches ``[B, P, 3, S, S]``."""
        batch, count = pixel_values.shape[:2]
        patch_prompts = None if prompts is None else [prompt for prompt in prompts for _ in range(count)]
        scores = self.image_reward.score_preprocessed(pixel_values.flatten(0, 1), patch_prompts)
        return scores.view(batch, *self.grid)

    def score_preprocessed(self, pixel_values: torch.Tensor, prompts: Sequence[str] | None) -> torch.Tensor:
        return self._pool(self.score_patches_preprocessed(pixel_values, prompts))

    def score_preprocessed_details(self, pixel_values: torch.Tensor, prompts: Sequence[str] | None) -> dict[str, torch.Tensor]:
        """The pooled ``score`` and one entry per patch, named ``row_col``."""
        patches = self.score_patches_preprocessed(pixel_values, prompts)
        flat = patches.flatten(1)
        return {"score": self._pool(patches)} | {name: flat[:, index] for index, name in enumerate(self.output_names)}

    def patches(self, pixels: torch.Tensor, prompts: Sequence[str] | str | None = None) -> PatchScores:
        """Per-patch and pooled scores of images ``[B, 3, H, W]`` or of every frame of videos
        ``[B, T, 3, H, W]`` (a video's prompt applies to all its frames)."""
        if pixels.dim() == 5:
            batch, frames = pixels.shape[:2]
            prompts = check_prompts(prompts, batch, self.name, self.needs_prompt)
            frame_prompts = None if prompts is None else [prompt for prompt in prompts for _ in range(frames)]
            result = self.patches(pixels.flatten(0, 1), frame_prompts)
            return PatchScores(result.patches.view(batch, frames, *self.grid), result.pooled.view(batch, frames))
        images = as_float_images(pixels, keep_uint8=self.mode == "reference")
        prompts = check_prompts(prompts, images.shape[0], self.name, self.needs_prompt)
        if self.mode == "reference":
            pixel_values = torch.stack([self.preprocessor(to_uint8_hwc(image)) for image in images])
        else:
            pixel_values = self.torch_preprocess.batch(images)
        patches = self.score_patches_preprocessed(pixel_values, prompts)
        return PatchScores(patches, self._pool(patches))


def parse_grid(grid: str | Sequence[int]) -> tuple[int, int]:
    """``"3x3"`` (or ``"3"``, or ``(3, 3)``) -> ``(rows, cols)``."""
    if not isinstance(grid, str):
        rows, cols = grid
        return int(rows), int(cols)
    parts = grid.lower().replace("*", "x").split("x")
    try:
        if len(parts) == 1:
            return int(parts[0]), int(parts[0])
        if len(parts) == 2:
            return int(parts[0]), int(parts[1])
    except ValueError:
        pass
    raise ValueError(f"cannot read patch grid {grid!r}; write ROWSxCOLS, e.g. 3x3 or 2x4")


def _patch_weight_files(options: Mapping[str, Any]) -> dict[str, WeightFile]:
    base_info = get_reward_info(options["base"])
    return base_info.weight_roles({key: value for key, value in options.items() if key in base_info.options})


@register_reward(
    "patch",
    modality="image",
    needs_prompt=True,
    differentiable=True,
    description="an image reward on a grid of local crops (HALO patch-level reward); prompt if its base needs one",
    weights=_patch_weight_files,
    paper="arXiv:2502.06812",
)
def create_patch_reward(
    *,
    base: str = "hpsv2",
    grid: str = "3x3",
    overlap: float = 0.0,
    pooling: Literal["mean", "min"] = "mean",
    mode: Literal["reference", "differentiable"] = "reference",
    device: torch.device,
    dtype: torch.dtype,
    weights: WeightsArgument,
    **base_options: Any,
) -> PatchReward:
    """``base`` (an image reward) scored on each patch of a ``grid``; the per-patch scores go to the
    results as columns ``patch_ROW_COL``. Any other option is the base reward's (``version=v2.0``)."""
    info = get_reward_info(base)
    if info.modality != "image" or base == "patch":
        raise ValueError(f"patch needs an image reward as base, got {base!r} ({info.modality}); e.g. base=hpsv2")
    cells = parse_grid(grid)

    def build(paths: Mapping[str, Path]) -> PatchReward:
        image_reward = create_reward(base, device=device, dtype=dtype, weights=paths, mode=mode, **base_options)
        return PatchReward(image_reward, cells, overlap, pooling)

    # Resolved as ``patch`` so that missing files are reported for the reward the user asked for.
    return build_with_weights("patch", weights, {"base": base, **base_options}, build)
