"""RAFT optical flow (Teed & Deng, "RAFT: Recurrent All-Pairs Field Transforms for Optical Flow", ECCV 2020,
https://github.com/princeton-vl/RAFT) and the VBench metrics built on it.

VBench (Huang et al., CVPR 2024, arXiv:2311.17982, https://github.com/Vchitect/VBench):

- ``dynamic_degree`` (vbench/dynamic_degree.py): RAFT ``raft-things.pth`` with 20 iterations on 0..255 RGB
  frames padded to multiples of 8 (replicate, centred: RAFT's ``InputPadder`` "sintel" mode); frames at
  about 8 fps (every ``max(1, round(fps / 8))``-th, ``fps`` read from the container; the option ``fps``,
  default 8 = every frame, for videos that record none); per pair the mean of the top 5 % flow magnitudes over the *padded* flow field; dynamic
  (1.0) when at least ``round(4 * N / 16)`` pairs exceed ``6 * min(H, W) / 256``. RAFT is torchvision's
  ``raft_large`` (the same architecture; it expects [-1, 1] input where RAFT rescales 0..255 itself) loaded
  from the official checkpoint by an explicit key map (``map_raft_keys``), strictly.
- static filter (vbench/cli/static_filter.py), used by ``temporal_flickering static_filter=raft``: the same
  RAFT on every frame, top 2 %, see rewardkit.rewards.motion for the decision.

``raft-things.pth`` is published only inside RAFT's ``models.zip``, so rewardkit cannot fetch it: the
registry declares it as a file the user supplies by path (``RAFT_WEIGHTS.manual``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rewardkit.lazy import lazy_import
from rewardkit.registry import WeightFile, register_reward
from rewardkit.rewards.motion import (
    FrameRateSubsample,
    StreamingVideoMetric,
    dynamic_outputs,
)
from rewardkit.weights import (
    WeightsArgument,
    WeightsMismatchError,
    build_with_weights,
    load_state_dict,
    load_strict,
)

raft_large = lazy_import("torchvision.models.optical_flow", "raft_large")

__all__ = [
    "RAFT_WEIGHTS",
    "DynamicDegree",
    "RaftFlow",
    "RaftTopFraction",
    "load_raft",
    "map_raft_keys",
]

RAFT_ITERATIONS = 20  # VBench: self.model(image1, image2, iters=20, test_mode=True)
# Size: the tensor bytes of the official state dict (179 tensors: torchvision raft_large's 5.3 M parameters
# and batch-norm buffers, the context encoder's norm3 stored twice), counted from the architecture.
RAFT_WEIGHTS = WeightFile(
    "princeton-vl/RAFT",
    "raft-things.pth",
    21_045_384,
    "BSD-3-Clause",
    manual=(
        "published only inside RAFT's models.zip (https://github.com/princeton-vl/RAFT, download_models.sh; "
        "VBench fetches https://dl.dropboxusercontent.com/s/4j4z58wuv8o0mfz/models.zip): unzip it and pass "
        "models/raft-things.pth"
    ),
)


_RAFT_LAYER_NAMES = {
    "conv1": "convnormrelu1.0",
    "norm1": "convnormrelu1.1",
    "conv2": "convnormrelu2.0",
    "norm2": "convnormrelu2.1",
    "downsample.0": "downsample.0",
    "downsample.1": "downsample.1",
}
_RAFT_UPDATE_NAMES = {
    "encoder.convc1": "motion_encoder.convcorr1.0",
    "encoder.convc2": "motion_encoder.convcorr2.0",
    "encoder.convf1": "motion_encoder.convflow1.0",
    "encoder.convf2": "motion_encoder.convflow2.0",
    "encoder.conv": "motion_encoder.conv.0",
    "gru.convz1": "recurrent_block.convgru1.convz",
    "gru.convr1": "recurrent_block.convgru1.convr",
    "gru.convq1": "recurrent_block.convgru1.convq",
    "gru.convz2": "recurrent_block.convgru2.convz",
    "gru.convr2": "recurrent_block.convgru2.convr",
    "gru.convq2": "recurrent_block.convgru2.convq",
    "flow_head.conv1": "flow_head.conv1",
    "flow_head.conv2": "flow_head.conv2",
}


def _map_raft_key(key: str) -> str | None:
    """One official RAFT key (``module.`` removed) -> torchvision's; None for the duplicate ``norm3``
    (RAFT registers each residual block's ``norm3`` again as ``downsample.1``)."""
    module, _, rest = key.partition(".")
    if module in ("fnet", "cnet"):
        encoder = "feature_encoder" if module == "fnet" else "context_encoder"
        stem = {"conv1": "convnormrelu.0", "norm1": "convnormrelu.1", "conv2": "conv"}
        name, _, parameter = rest.rpartition(".")
        if name in stem:
            return f"{encoder}.{stem[name]}.{parameter}"
        layer, block, *inner = name.split(".")
        inner_name = ".".join(inner)
        if inner_name == "norm3":
            return None
        if layer.startswith("layer") and inner_name in _RAFT_LAYER_NAMES:
            return f"{encoder}.{layer}.{block}.{_RAFT_LAYER_NAMES[inner_name]}.{parameter}"
    elif module == "update_block":
        name, _, parameter = rest.rpartition(".")
        if name in _RAFT_UPDATE_NAMES:
            return f"update_block.{_RAFT_UPDATE_NAMES[name]}.{parameter}"
        if name in ("mask.0", "mask.2"):
            return f"mask_predictor.{'convrelu.0' if name == 'mask.0' else 'conv'}.{parameter}"
    raise WeightsMismatchError(f"unexpected key {key!r} in a RAFT checkpoint (expected princeton-vl RAFT's keys)")


def map_raft_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """princeton-vl RAFT (``raft-things.pth``, keys ``module.fnet.*``, ``module.update_block.gru.*``, ...)
    -> torchvision ``raft_large`` keys. Every key must map; duplicated ``norm3`` tensors must equal their
    ``downsample.1`` twin."""
    stripped = {key.removeprefix("module."): value for key, value in state_dict.items()}
    mapped: dict[str, torch.Tensor] = {}
    for key, value in stripped.items():
        target = _map_raft_key(key)
        if target is None:
            twin = key.replace("norm3", "downsample.1")
            if twin not in stripped or not torch.equal(stripped[twin], value):
                raise WeightsMismatchError(f"RAFT checkpoint key {key!r} has no equal twin {twin!r}")
            continue
        mapped[target] = value
    return mapped


class RaftFlow(torch.nn.Module):
    """RAFT as VBench calls it: 0..255 RGB frames ``[N, 3, H, W]`` padded to multiples of 8 (replicate,
    centred), 20 refinement iterations; returns the upsampled flow on the padded grid ``[N, 2, H', W']``."""

    def __init__(self, raft: torch.nn.Module, iterations: int = RAFT_ITERATIONS) -> None:
        super().__init__()
        self.raft = raft
        self.iterations = iterations

    @torch.no_grad()
    def forward(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        height, width = image1.shape[-2:]
        pad_h, pad_w = (-height) % 8, (-width) % 8
        padding = [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2]
        device = next(self.raft.parameters()).device
        pair = [F.pad(image.float().to(device), padding, mode="replicate") * (2 / 255) - 1 for image in (image1, image2)]
        return self.raft(*pair, num_flow_updates=self.iterations)[-1]

    def top_fraction_means(self, frames: torch.Tensor, pairs: Sequence[tuple[int, int]], fraction: float) -> list[float]:
        """VBench's per-pair statistic (mean of the top ``fraction`` flow magnitudes, padded grid) for
        pairs of frame indices of one video ``[T, 3, H, W]`` (0..255)."""
        stats: list[float] = []
        for start in range(0, len(pairs), 8):
            chunk = pairs[start : start + 8]
            flow = self(frames[[a for a, _ in chunk]], frames[[b for _, b in chunk]])
            magnitude = flow.float().square().sum(dim=1).sqrt().flatten(1)
            count = int(magnitude.shape[1] * fraction)
            stats += magnitude.topk(count, dim=1).values.double().mean(dim=1).tolist()
        return stats


def load_raft(path: Path) -> RaftFlow:
    """RAFT (``raft_large`` architecture) from the official ``raft-things.pth``, strictly (eval, frozen)."""
    model = raft_large(weights=None, progress=False)
    load_strict(model, map_raft_keys(load_state_dict(path)), str(path))
    model.eval().requires_grad_(False)
    return RaftFlow(model)


class RaftTopFraction(torch.nn.Module):
    """A ``PairStatistic`` with RAFT: per pair of uint8 frames ``[k, H, W, 3]``, the mean of the top
    ``fraction`` flow magnitudes on the padded grid (VBench's static filter: 0.02; dynamic degree: 0.05)."""

    def __init__(self, raft: RaftFlow, fraction: float) -> None:
        super().__init__()
        self.raft = raft
        self.fraction = fraction

    def forward(self, first: np.ndarray, second: np.ndarray) -> list[float]:
        frames = torch.from_numpy(np.concatenate([first, second])).permute(0, 3, 1, 2).float()
        count = len(first)
        return self.raft.top_fraction_means(frames, [(i, count + i) for i in range(count)], self.fraction)


class DynamicDegree(StreamingVideoMetric):
    """VBench dynamic_degree with RAFT: 1.0 for a dynamic video, 0.0 for a static one. Outputs as
    ``dynamic_degree_flow``: ``flow_top5``, ``moving_pairs``, ``required_pairs``, ``threshold``. Streams
    (``score_stream``): RAFT runs on consecutive kept frames as they arrive."""

    needs_prompt = False
    max_prompt_tokens = None
    output_names = ("flow_top5", "moving_pairs", "required_pairs", "threshold")

    def __init__(self, raft: RaftFlow, fps: float = 8.0) -> None:
        super().__init__()
        self.statistic = RaftTopFraction(raft, 0.05)
        self.sampler = FrameRateSubsample(fps)
        self.weights_sha256: str | None = None

    @property
    def raft(self) -> RaftFlow:
        return self.statistic.raft

    def score_stream(
        self,
        chunks: Iterable[np.ndarray],
        indices: Sequence[int],
        num_frames: int,
        prompt: str | None = None,
        rng: np.random.Generator | None = None,
    ) -> dict[str, float]:
        return dynamic_outputs(self.statistic, chunks)


@register_reward(
    "dynamic_degree",
    modality="video",
    needs_prompt=False,
    differentiable=False,
    score_range=(0.0, 1.0),
    weights={"model": RAFT_WEIGHTS},
    description="VBench dynamic degree (1 = dynamic video) with RAFT raft-things optical flow",
    paper="arXiv:2311.17982",
    repository="https://github.com/Vchitect/VBench",
)
def create_dynamic_degree(
    *, fps: float = 8.0, device: torch.device, dtype: torch.dtype, weights: WeightsArgument
) -> DynamicDegree:
    """VBench's dynamic degree; ``weights`` is RAFT's ``raft-things.pth`` (not downloadable by rewardkit),
    ``fps`` the frame rate of videos that record none (VBench keeps every ``round(fps / 8)``-th frame)."""
    return build_with_weights(
        "dynamic_degree", weights, {}, lambda paths: DynamicDegree(load_raft(paths["model"]).to(device), fps=fps)
    )

