"""MUSIQ, the multi-scale image quality transformer, and VBench's ``imaging_quality`` dimension.

Ke et al., "MUSIQ: Multi-scale Image Quality Transformer" (ICCV 2021, arXiv:2108.05997); official TF code
https://github.com/google-research/google-research/tree/master/musiq. VBench (Huang et al., arXiv:2311.17982,
https://github.com/Vchitect/VBench, ``vbench/imaging_quality.py``) runs the PyTorch port of IQA-PyTorch
(pyiqa, https://github.com/chaofengc/IQA-PyTorch, ``pyiqa/archs/musiq_arch.py`` and
``pyiqa/data/multiscale_trans_util.py``; unchanged but for formatting from pyiqa 0.1.8 to 0.1.16) as
``MUSIQ(pretrained_model_path=musiq_spaq_ckpt-358bb6af.pth)``: the SPAQ checkpoint with pyiqa's default
options (one output, longer sides 224 and 384 plus the full resolution). rewardkit re-implements it with
the same parameter names so that checkpoint loads strictly; the file is a flat state dict
(``conv_root.*``, ``block1.*``, ``embedding.*``, ``transformer_encoder.*``, ``head.*``; pyiqa loads it with
``strict=True`` after dropping a ``module.`` prefix, and so does rewardkit).

The model, per image in [0, 1]: scale to [-1, 1]; for each longer side L in (224, 384) resize keeping the
aspect ratio (``round`` of the scaled sides, bicubic, ``align_corners=False``, no antialiasing), plus the
image itself; cut each into 32 x 32 patches after TF "SAME" zero padding to whole patches; each patch gets a
hash-based spatial position (its row and column mapped by nearest-neighbour interpolation onto a 10 x 10
grid) and a scale index (0, 1, 2); the resized scales are zero-padded (mask 0) or cut to ``ceil(L/32)^2``
patches, the full resolution keeps all of them. Patches go through a ResNet stem (weight-standardised 7x7
conv, GroupNorm, ReLU, SAME max-pool, one bottleneck), are flattened channel-last into tokens, embedded,
given the two embeddings, prefixed with a CLS token and run through 14 pre-norm transformer blocks whose
attention fills masked pairs with -1000; the CLS token's linear head is the quality (SPAQ MOS, about 0-100).

``imaging_quality`` (VBench's ``technical_quality``, default ``imaging_quality_preprocessing_mode='longer'``):
every frame, decoded as uint8, is resized so that its longer side is 512 when it is longer (torchvision
``Resize((int(s * h), int(s * w)), antialias=False)``, bilinear, on the uint8 tensor, so the result is
rounded back to uint8; ``s = 512 / max(h, w)``), divided by 255 and scored; the video's score is the mean
over its frames / 100 (VBench divides the mean over videos by 100, which is the mean of these). VBench's
other modes are the option ``preprocessing``. Float frames in [0, 1] are resized in float without the
8-bit rounding, so gradients reach the pixels. VBench feeds one frame at a time; rewardkit batches frames
of one size, which changes nothing (GroupNorm and attention are per image).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F

from rewardkit.lazy import lazy_import
from rewardkit.registry import WeightFile, register_reward
from rewardkit.rewards.base import VideoScorer
from rewardkit.transforms import as_float_videos
from rewardkit.video.sampling import All
from rewardkit.weights import (
    WeightsArgument,
    WeightsMismatchError,
    build_with_weights,
    load_state_dict,
    load_strict,
)

center_crop = lazy_import("torchvision.transforms.functional", "center_crop")
resize = lazy_import("torchvision.transforms.functional", "resize")

__all__ = [
    "MUSIQ_SPAQ_WEIGHTS",
    "ImagingQuality",
    "MultiScaleTokens",
    "MusiqModel",
    "hashed_positions",
    "load_musiq",
    "multiscale_patches",
    "vbench_imaging_resize",
]

VBenchResize = Literal["longer", "shorter", "shorter_centercrop", "none"]
VBENCH_RESIZE_MODES = ("longer", "shorter", "shorter_centercrop", "none")

MUSIQ_SPAQ_WEIGHTS = WeightFile(
    "chaofengc/IQA-PyTorch",
    "musiq_spaq_ckpt-358bb6af.pth",
    # Size: the tensor bytes of pyiqa's MUSIQ (SPAQ) state dict, 27,125,825 fp32 parameters counted from the
    # architecture (rewardkit.testing_musiq.official_musiq_shapes); the file adds its pickle framing. No hash
    # is published (the file name's 358bb6af is only a prefix), so none is pinned.
    108_503_300,
    "Apache-2.0 (google-research MUSIQ weights, converted by IQA-PyTorch)",
    url="https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/musiq_spaq_ckpt-358bb6af.pth",
)
STEM_CHANNELS = 64  # pyiqa: resnet_token_dim
NUM_HEADS = 6  # every MUSIQ checkpoint; not recoverable from the weights
MASKED_LOGIT = -1e3  # pyiqa fills masked attention logits with -1000, not -inf
FRAMES_PER_CHUNK = 8


# ------------------------------------------------------------------------------------- patch extraction


class MultiScaleTokens(NamedTuple):
    """MUSIQ's input for N images: ``patches [N, L, 3 * P * P]`` (channel, row, column order), hashed
    ``spatial`` positions and ``scale`` indices ``[N, L]`` (long), and ``mask [N, L]`` (False = padding)."""

    patches: torch.Tensor
    spatial: torch.Tensor
    scale: torch.Tensor
    mask: torch.Tensor


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) of one side."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    top, bottom = _same_padding(x.shape[-2], kernel, stride)
    left, right = _same_padding(x.shape[-1], kernel, stride)
    return F.pad(x, (left, right, top, bottom))


def hashed_positions(grid_size: int, rows: int, columns: int) -> torch.Tensor:
    """Hash-based spatial position of each patch of a ``rows x columns`` grid, row-major ``[rows * columns]``:
    row and column indices mapped onto ``grid_size`` cells by nearest-neighbour interpolation (torch's
    ``nearest``, as pyiqa), then ``row_cell * grid_size + column_cell``."""
    cells = torch.arange(grid_size, dtype=torch.float32).view(1, 1, grid_size)
    row_cells = F.interpolate(cells, size=rows, mode="nearest").view(rows, 1)
    column_cells = F.interpolate(cells, size=columns, mode="nearest").view(1, columns)
    return (row_cells * grid_size + column_cells).long().flatten()


def _scale_tokens(
    images: torch.Tensor, patch_size: int, grid_size: int, scale_id: int, max_len: int | None
) -> MultiScaleTokens:
    """Patches of one scale, padded with zero tokens (mask False, position 0, scale 0) or cut to ``max_len``
    (None keeps every patch)."""
    count, channels, height, width = images.shape
    patches = F.unfold(_pad_same(images, patch_size, patch_size), patch_size, stride=patch_size).transpose(1, 2)
    positions = hashed_positions(grid_size, math.ceil(height / patch_size), math.ceil(width / patch_size))
    positions = positions.to(images.device).expand(count, -1)
    scale = torch.full_like(positions, scale_id)
    mask = torch.ones_like(positions, dtype=torch.bool)
    tokens = MultiScaleTokens(patches, positions, scale, mask)
    if max_len is None:
        return tokens
    extra = max(max_len - patches.shape[1], 0)
    return MultiScaleTokens(
        *(torch.cat([field, field.new_zeros(count, extra, *field.shape[2:])], dim=1)[:, :max_len] for field in tokens)
    )


def multiscale_patches(
    images: torch.Tensor,
    patch_size: int = 32,
    grid_size: int = 10,
    longer_side_lengths: Sequence[int] = (224, 384),
    max_seq_len_from_original_res: int | None = -1,
) -> MultiScaleTokens:
    """pyiqa's ``get_multiscale_patches`` on images ``[N, 3, H, W]`` (already in [-1, 1]): one scale per
    sorted longer side (aspect kept, Python ``round`` of the sides, bicubic, no antialias; at most
    ``ceil(L / patch_size)^2`` tokens), then the original resolution as the last scale (all patches when
    ``max_seq_len_from_original_res`` < 0, that many when >= 0, left out when None)."""
    height, width = images.shape[-2:]
    parts = []
    for scale_id, longer in enumerate(sorted(longer_side_lengths)):
        ratio = longer / max(height, width)
        size = (round(height * ratio), round(width * ratio))
        resized = F.interpolate(images, size=size, mode="bicubic", align_corners=False)
        parts.append(_scale_tokens(resized, patch_size, grid_size, scale_id, math.ceil(longer / patch_size) ** 2))
    if max_seq_len_from_original_res is not None:
        max_len = max_seq_len_from_original_res if max_seq_len_from_original_res >= 0 else None
        parts.append(_scale_tokens(images, patch_size, grid_size, len(parts), max_len))
    return MultiScaleTokens(*(torch.cat(field, dim=1) for field in zip(*parts, strict=True)))


# ------------------------------------------------------------------------------------------------ model


class StdConv2d(torch.nn.Conv2d):
    """Convolution with weight standardisation (per output channel: minus mean, over unbiased std + 1e-5)
    and TF "SAME" zero padding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight - self.weight.mean(dim=(1, 2, 3), keepdim=True)
        weight = weight / (weight.std(dim=(1, 2, 3), keepdim=True) + 1e-5)
        return F.conv2d(_pad_same(x, self.kernel_size[0], self.stride[0]), weight, self.bias, self.stride)


class MusiqBottleneck(torch.nn.Module):
    """The stem's one residual bottleneck (1x1, 3x3, 1x1 standardised convs with GroupNorm(32, eps=1e-4)),
    with a projected shortcut."""

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = StdConv2d(channels, channels, 1, bias=False)
        self.gn1 = torch.nn.GroupNorm(32, channels, eps=1e-4)
        self.conv2 = StdConv2d(channels, channels, 3, bias=False)
        self.gn2 = torch.nn.GroupNorm(32, channels, eps=1e-4)
        self.conv3 = StdConv2d(channels, out_channels, 1, bias=False)
        self.gn3 = torch.nn.GroupNorm(32, out_channels, eps=1e-4)
        self.conv_proj = StdConv2d(channels, out_channels, 1, bias=False)
        self.gn_proj = torch.nn.GroupNorm(32, out_channels, eps=1e-4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.gn_proj(self.conv_proj(x))
        y = F.relu(self.gn1(self.conv1(x)))
        y = F.relu(self.gn2(self.conv2(y)))
        return F.relu(self.gn3(self.conv3(y)) + shortcut)


class MusiqAttention(torch.nn.Module):
    """Multi-head self-attention (``query``/``key``/``value``/``out``); a pair with a masked token gets
    logit -1000."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"MUSIQ's width {dim} must be divisible by its {heads} attention heads")
        self.heads = heads
        self.query = torch.nn.Linear(dim, dim)
        self.key = torch.nn.Linear(dim, dim)
        self.value = torch.nn.Linear(dim, dim)
        self.out = torch.nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q, k, v = (
            layer(x).view(batch, tokens, self.heads, dim // self.heads).transpose(1, 2)
            for layer in (self.query, self.key, self.value)
        )
        # pyiqa fills a masked pair's logit with -1000; here -1000 is added (one fused SDPA kernel). Both put
        # exp(-1000) = 0 on a masked key of a real token; rows of padding tokens differ, and no real token
        # ever reads them.
        pairs = mask[:, None, :, None] & mask[:, None, None, :]
        bias = torch.zeros(pairs.shape, dtype=q.dtype, device=q.device).masked_fill_(~pairs, MASKED_LOGIT)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.out(attended.transpose(1, 2).reshape(batch, tokens, dim))


class MusiqMlp(torch.nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(dim, hidden)
        self.fc2 = torch.nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class MusiqBlock(torch.nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-6)."""

    def __init__(self, dim: int, mlp_dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.attention = MusiqAttention(dim, heads)
        self.norm2 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MusiqMlp(dim, mlp_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


class MusiqEncoder(torch.nn.Module):
    """Token embeddings (hashed spatial position, scale), CLS token, transformer blocks, final LayerNorm."""

    def __init__(self, dim: int, mlp_dim: int, heads: int, layers: int, num_scales: int, grid_size: int) -> None:
        super().__init__()
        self.posembed_input = torch.nn.Module()
        self.posembed_input.position_emb = torch.nn.Parameter(torch.zeros(1, grid_size * grid_size, dim))
        self.scaleembed_input = torch.nn.Module()
        self.scaleembed_input.scale_emb = torch.nn.Parameter(torch.zeros(num_scales, dim))
        self.cls = torch.nn.Parameter(torch.zeros(1, 1, dim))
        self.transformer = torch.nn.ModuleDict({f"encoderblock_{i}": MusiqBlock(dim, mlp_dim, heads) for i in range(layers)})
        self.encoder_norm = torch.nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor, spatial: torch.Tensor, scale: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.posembed_input.position_emb[0][spatial] + self.scaleembed_input.scale_emb[scale]
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1)
        mask = torch.cat([mask.new_ones(len(mask), 1), mask], dim=1)
        for block in self.transformer.values():
            x = block(x, mask)
        return self.encoder_norm(x)


class MusiqModel(torch.nn.Module):
    """MUSIQ with pyiqa's parameter names (one-output head, as the SPAQ and KonIQ checkpoints).

    ``forward(images [N, 3, H, W] in [0, 1]) -> [N]`` quality scores; ``score_tokens`` scores prepared
    ``MultiScaleTokens``.
    """

    def __init__(
        self,
        *,
        patch_size: int = 32,
        hidden_size: int = 384,
        mlp_dim: int = 1152,
        num_heads: int = NUM_HEADS,
        num_layers: int = 14,
        num_scales: int = 3,
        grid_size: int = 10,
        longer_side_lengths: Sequence[int] = (224, 384),
        max_seq_len_from_original_res: int | None = -1,
    ) -> None:
        super().__init__()
        if patch_size % 4:
            raise ValueError(f"MUSIQ's patch size must be a multiple of 4 (the stem downsamples by 4), got {patch_size}")
        expected_scales = len(longer_side_lengths) + (max_seq_len_from_original_res is not None)
        if num_scales != expected_scales:
            raise ValueError(f"num_scales={num_scales} but the multi-scale input has {expected_scales} scales")
        self.patch_size = patch_size
        self.grid_size = grid_size
        self.longer_side_lengths = tuple(longer_side_lengths)
        self.max_seq_len_from_original_res = max_seq_len_from_original_res
        self.conv_root = StdConv2d(3, STEM_CHANNELS, 7, stride=2, bias=False)
        self.gn_root = torch.nn.GroupNorm(32, STEM_CHANNELS, eps=1e-6)
        self.block1 = MusiqBottleneck(STEM_CHANNELS, STEM_CHANNELS * 4)
        self.embedding = torch.nn.Linear(STEM_CHANNELS * 4 * (patch_size // 4) ** 2, hidden_size)
        self.transformer_encoder = MusiqEncoder(hidden_size, mlp_dim, num_heads, num_layers, num_scales, grid_size)
        self.head = torch.nn.Linear(hidden_size, 1)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor], source: str) -> MusiqModel:
        """Sizes read from a pyiqa MUSIQ checkpoint (6 heads, pyiqa's default multi-scale options); strict."""
        state_dict = {key.removeprefix("module."): value for key, value in state_dict.items()}
        needed = ("embedding.weight", "transformer_encoder.posembed_input.position_emb", "transformer_encoder.scaleembed_input.scale_emb")
        if any(key not in state_dict for key in needed):
            raise WeightsMismatchError(
                f"{source} is not a pyiqa MUSIQ checkpoint (expected a flat state dict with conv_root.*, block1.*, "
                f"embedding.*, transformer_encoder.*, head.*, as musiq_spaq_ckpt-358bb6af.pth)"
            )
        hidden_size, token_dim = state_dict["embedding.weight"].shape
        layers = {key.split(".")[2] for key in state_dict if key.startswith("transformer_encoder.transformer.")}
        mlp_dims = {value.shape[0] for key, value in state_dict.items() if key.endswith("mlp.fc1.weight")}
        model = cls(
            patch_size=4 * math.isqrt(token_dim // (STEM_CHANNELS * 4)),
            hidden_size=hidden_size,
            mlp_dim=min(mlp_dims, default=4 * hidden_size),  # a mismatch is reported by the strict load
            num_layers=len(layers),
            num_scales=state_dict["transformer_encoder.scaleembed_input.scale_emb"].shape[0],
            grid_size=math.isqrt(state_dict["transformer_encoder.posembed_input.position_emb"].shape[1]),
        )
        load_strict(model, state_dict, source)
        return model

    def tokens(self, images: torch.Tensor) -> MultiScaleTokens:
        """pyiqa's eval-time input: images in [0, 1] -> [-1, 1] -> multi-scale patches."""
        return multiscale_patches(
            (images - 0.5) * 2, self.patch_size, self.grid_size, self.longer_side_lengths, self.max_seq_len_from_original_res
        )

    def score_tokens(self, tokens: MultiScaleTokens) -> torch.Tensor:
        count, length = tokens.mask.shape
        x = tokens.patches.reshape(count * length, 3, self.patch_size, self.patch_size)
        x = F.relu(self.gn_root(self.conv_root(x)))
        x = self.block1(F.max_pool2d(_pad_same(x, 3, 2), 3, 2))
        x = self.embedding(x.permute(0, 2, 3, 1).reshape(count, length, -1))  # channel-last, as TF
        x = self.transformer_encoder(x, tokens.spatial, tokens.scale, tokens.mask)
        return self.head(x[:, 0])[:, 0]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.score_tokens(self.tokens(images))


def load_musiq(path: str | Path) -> MusiqModel:
    """MUSIQ from a pyiqa checkpoint file, strictly (eval, frozen)."""
    model = MusiqModel.from_state_dict(load_state_dict(path), str(path))
    model.eval().requires_grad_(False)
    return model


# ------------------------------------------------------------------------------------ VBench dimension


def _check_mode(mode: str) -> None:
    if mode not in VBENCH_RESIZE_MODES:
        raise ValueError(f"preprocessing must be one of {', '.join(map(repr, VBENCH_RESIZE_MODES))}, got {mode!r}")


def vbench_imaging_resize(frames: torch.Tensor, mode: VBenchResize = "longer") -> torch.Tensor:
    """VBench's imaging-quality ``transform`` on frames ``[N, 3, H, W]`` (uint8 0..255, or float in [0, 1]):
    ``longer``/``shorter`` resize (bilinear, ``antialias=False``, sides ``int(512 / side * h)``) when that side
    exceeds 512, ``shorter_centercrop`` also centre-crops 512 x 512 then, ``none`` keeps the frames. Returns
    float in [0, 1]; uint8 frames are resized as uint8 (rounded), as VBench's decord frames are."""
    _check_mode(mode)
    height, width = frames.shape[-2:]
    side = max(height, width) if mode == "longer" else min(height, width)
    if mode != "none" and side > 512:
        scale = 512.0 / side
        frames = resize(frames, [int(scale * height), int(scale * width)], antialias=False)
        if mode == "shorter_centercrop":
            frames = center_crop(frames, [512, 512])
    return frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()


class ImagingQuality(VideoScorer):
    """VBench imaging_quality: MUSIQ (SPAQ) on every frame after VBench's resize, mean over frames / 100."""

    needs_prompt = False
    max_prompt_tokens = None

    def __init__(self, musiq: MusiqModel, preprocessing: VBenchResize = "longer", dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        _check_mode(preprocessing)
        self.musiq = musiq
        self.preprocessing = preprocessing
        self.dtype = dtype
        self.sampler = All()
        self.weights_sha256: str | None = None

    def score_sampled(
        self, frames: torch.Tensor, indices: torch.Tensor | None, num_frames: int, prompts: Any = None, rng: Any = None
    ) -> torch.Tensor:
        """Scores ``[B]`` of frames ``[B, K, 3, H, W]`` (uint8 or float in [0, 1]); every frame counts once."""
        videos = as_float_videos(frames, keep_uint8=True)
        batch, count = videos.shape[:2]
        if count == 0:
            raise ValueError("imaging_quality needs at least one frame per video, got 0")
        device = next(self.musiq.parameters()).device
        scores = [
            self.musiq(vbench_imaging_resize(chunk.to(device), self.preprocessing).to(self.dtype))
            for chunk in videos.flatten(0, 1).split(FRAMES_PER_CHUNK)
        ]
        per_frame = torch.cat(scores).double().view(batch, count)
        return (per_frame.mean(dim=1) / 100.0).float()


@register_reward(
    "imaging_quality",
    modality="video",
    needs_prompt=False,
    differentiable=True,
    score_range=(0.0, 1.0),
    weights={"model": MUSIQ_SPAQ_WEIGHTS},
    description="VBench imaging quality: MUSIQ (SPAQ) on every frame, longer side <= 512, mean / 100",
    paper="arXiv:2311.17982",
    repository="https://github.com/Vchitect/VBench",
)
def create_imaging_quality(
    *,
    preprocessing: Literal["longer", "shorter", "shorter_centercrop", "none"] = "longer",
    device: torch.device,
    dtype: torch.dtype,
    weights: WeightsArgument,
) -> ImagingQuality:
    """VBench's imaging quality; ``weights`` is pyiqa's ``musiq_spaq_ckpt-358bb6af.pth`` (downloaded from the
    IQA-PyTorch GitHub release when absent); ``preprocessing`` is VBench's
    ``imaging_quality_preprocessing_mode`` (``none`` for its ``'None'``)."""
    return build_with_weights(
        "imaging_quality",
        weights,
        {},
        lambda paths: ImagingQuality(load_musiq(paths["model"]).to(device=device, dtype=dtype), preprocessing, dtype=dtype),
    )
