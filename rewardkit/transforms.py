"""Pixel validation and the preprocessing pipelines shared by rewards.

Each pipeline has two implementations. ``reference`` reproduces the official code path exactly (PIL where
the official code used PIL), so scores match published tools. ``differentiable`` does the same steps in
torch on float tensors so gradients reach the pixels. Rewards document and the test suite measures the
gap between the two.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = [
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "as_float_images",
    "as_float_videos",
    "check_prompts",
    "to_uint8_hwc",
    "to_pil",
    "normalize",
    "resize_longest_and_pad",
    "resize_shortest_and_center_crop",
    "Preprocess",
    "LongestSidePadPreprocess",
    "ShortestSideCropPreprocess",
]

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _as_float(pixels: torch.Tensor, what: str, keep_uint8: bool) -> torch.Tensor:
    if pixels.dtype == torch.uint8:
        return pixels if keep_uint8 else pixels.float() / 255.0
    if not torch.is_floating_point(pixels):
        raise ValueError(
            f"{what} must be float in [0, 1] or uint8 in [0, 255], got dtype {pixels.dtype}; "
            f"convert with pixels.float() / 255"
        )
    return pixels


def _check_channels(pixels: torch.Tensor, channel_dim: int, what: str, layout: str) -> None:
    channels = pixels.shape[channel_dim]
    if channels != 3:
        hint = "drop the alpha channel (pixels[..., :3, :, :])" if channels == 4 else "convert to RGB"
        if channels == 1:
            hint = "repeat the grey channel: pixels.expand(..., 3, H, W)"
        raise ValueError(f"{what} must have 3 colour channels in layout {layout}, got {channels}; {hint}")


def as_float_images(pixels: torch.Tensor, keep_uint8: bool = False) -> torch.Tensor:
    """Validate a batch of images ``[B, 3, H, W]`` and return it as float in [0, 1] (uint8 input is
    returned unchanged when ``keep_uint8``)."""
    if not isinstance(pixels, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor [B, 3, H, W], got {type(pixels).__name__}")
    if pixels.ndim == 3:
        raise ValueError(f"images must be batched [B, 3, H, W], got shape {tuple(pixels.shape)}; add pixels[None]")
    if pixels.ndim == 5:
        raise ValueError(
            f"got a video batch {tuple(pixels.shape)} where images [B, 3, H, W] were expected; wrap the image "
            f"reward with rewardkit.PerFrameReward(...) to score videos"
        )
    if pixels.ndim != 4:
        raise ValueError(f"images must have shape [B, 3, H, W], got {tuple(pixels.shape)}")
    _check_channels(pixels, 1, "images", "[B, 3, H, W]")
    return _as_float(pixels, "images", keep_uint8)


def as_float_videos(pixels: torch.Tensor, keep_uint8: bool = False) -> torch.Tensor:
    """Validate a batch of videos ``[B, T, 3, H, W]`` and return it as float in [0, 1] (uint8 input is
    returned unchanged when ``keep_uint8``)."""
    if not isinstance(pixels, torch.Tensor):
        raise ValueError(f"videos must be a torch.Tensor [B, T, 3, H, W], got {type(pixels).__name__}")
    if pixels.ndim != 5:
        raise ValueError(
            f"videos must have shape [B, T, 3, H, W], got {tuple(pixels.shape)}"
            + ("; add a batch dimension with pixels[None]" if pixels.ndim == 4 else "")
        )
    _check_channels(pixels, 2, "videos", "[B, T, 3, H, W]")
    return _as_float(pixels, "videos", keep_uint8)


def check_prompts(prompts: Sequence[str] | str | None, batch: int, reward: str, needs_prompt: bool) -> list[str] | None:
    """Return the prompts as a list of ``batch`` strings, or raise a ValueError saying what is wrong."""
    if prompts is None:
        if needs_prompt:
            raise ValueError(f"reward {reward!r} scores image-text agreement and needs one prompt per item")
        return None
    if isinstance(prompts, str):
        prompts = [prompts] * batch
    prompts = list(prompts)
    if len(prompts) != batch:
        raise ValueError(f"got {len(prompts)} prompts for a batch of {batch}; give one prompt per item")
    for prompt in prompts:
        if not isinstance(prompt, str):
            raise ValueError(f"prompts must be strings, got {type(prompt).__name__}")
    return prompts


def to_uint8_hwc(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """One image as uint8 ``[H, W, 3]``: float ``[3, H, W]`` in [0, 1] is rounded, as saving a PNG would."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a uint8 [H, W, 3] array, got {image.dtype} {image.shape}")
        return image
    if image.dtype == torch.uint8:
        return image.permute(1, 2, 0).cpu().numpy()
    return (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def to_pil(image: torch.Tensor | np.ndarray) -> Image.Image:
    """One image (uint8 HWC array, or CHW tensor) as an RGB PIL image."""
    return Image.fromarray(to_uint8_hwc(image), mode="RGB")


def normalize(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Channel-wise ``(x - mean) / std`` on ``[..., 3, H, W]``."""
    mean_tensor = torch.tensor(mean, dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
    std_tensor = torch.tensor(std, dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
    return (pixels - mean_tensor) / std_tensor


def resize_longest_and_pad(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """HPSv2's eval resize on float ``[B, 3, H, W]``: longest side to ``size`` (bicubic, antialiased,
    new side = round(side * size / longest)), then zero-pad centred (left/top get pad // 2)."""
    height, width = pixels.shape[-2:]
    scale = size / float(max(height, width))
    if scale == 1.0:
        return pixels
    new_height, new_width = round(height * scale), round(width * scale)
    resized = F.interpolate(pixels, size=(new_height, new_width), mode="bicubic", antialias=True, align_corners=False)
    pad_h, pad_w = size - new_height, size - new_width
    return F.pad(resized, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=0.0)


def resize_shortest_and_center_crop(pixels: torch.Tensor, size: int, antialias: bool = True) -> torch.Tensor:
    """CLIP's eval resize on float ``[B, 3, H, W]``: shortest side to ``size`` (bicubic, antialiased unless
    ``antialias=False``, as VBench's tensor transform; the long side truncated as torchvision and
    transformers do), then a centre crop of ``size`` x ``size``."""
    height, width = pixels.shape[-2:]
    if height <= width:
        new_height, new_width = size, int(size * width / height)
    else:
        new_height, new_width = int(size * height / width), size
    if (new_height, new_width) != (height, width):
        pixels = F.interpolate(pixels, size=(new_height, new_width), mode="bicubic", antialias=antialias, align_corners=False)
    top = int(round((new_height - size) / 2.0))
    left = int(round((new_width - size) / 2.0))
    return pixels[..., top : top + size, left : left + size]


def frame_to_tensor(frame: np.ndarray) -> torch.Tensor:
    """uint8 ``[H, W, 3]`` -> float ``[3, H, W]`` in [0, 1], exactly as torchvision's ToTensor."""
    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float().div(255)


class Preprocess:
    """A picklable preprocessing step (it runs in DataLoader workers): ``__call__`` takes one uint8
    ``[H, W, 3]`` frame, ``batch`` a float ``[B, 3, H, W]`` batch in [0, 1] (differentiable).

    ``key``: steps with equal keys give equal outputs for the same frame, so the scoring engine preprocesses
    a frame once for every reward whose step has that key (any preprocessing callable may define one)."""

    @property
    def key(self) -> tuple:
        return (type(self).__name__, *sorted(vars(self).items()))

    def __call__(self, frame: np.ndarray) -> torch.Tensor:
        return self.batch(frame_to_tensor(frame)[None])[0]

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class LongestSidePadPreprocess(Preprocess):
    """Resize the longest side to ``size``, zero-pad to a square, normalise (HPSv2's eval transform)."""

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.size, self.mean, self.std = size, tuple(mean), tuple(std)

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        return normalize(resize_longest_and_pad(images, self.size), self.mean, self.std)


class ShortestSideCropPreprocess(Preprocess):
    """Resize the shortest side to ``size``, centre-crop, normalise (CLIP's eval transform, in torch).
    ``antialias=False`` is torchvision's tensor ``Resize(antialias=False)``, as VBench uses it."""

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float], antialias: bool = True) -> None:
        self.size, self.mean, self.std, self.antialias = size, tuple(mean), tuple(std), antialias

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        return normalize(resize_shortest_and_center_crop(images, self.size, self.antialias), self.mean, self.std)
