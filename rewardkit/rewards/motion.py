"""Weight-free motion dimensions after VBench, with OpenCV optical flow in place of RAFT and AMT.

Huang et al., "VBench: Comprehensive Benchmark Suite for Video Generative Models" (CVPR 2024,
arXiv:2311.17982), https://github.com/Vchitect/VBench: vbench/dynamic_degree.py, vbench/motion_smoothness.py
and vbench/cli/static_filter.py. The decisions, statistics, thresholds and frame handling are VBench's; only
the models are replaced, so these are approximations registered under their own names:

- ``dynamic_degree_flow``: VBench's dynamic_degree with OpenCV flow (DIS, medium preset, or Farneback) on
  grey frames instead of RAFT (raft-things, 20 iterations). Frames: VBench keeps every
  ``max(1, round(fps / 8))``-th frame (about 8 fps), ``fps`` read from the container as VBench does; frame
  folders, GIFs, files that record no rate and tensors take the option ``fps`` (default 8: every frame, what
  VBench does below 12 fps), with a warning once. Per consecutive pair of kept frames, the statistic is the mean of the top 5 % flow magnitudes
  (``int(0.05 * H * W)`` pixels); ``thres = 6 * min(H, W) / 256`` and a video is dynamic (score 1.0, else
  0.0) when at least ``round(4 * N / 16)`` of its pairs exceed it (N kept frames, Python's round). The
  dimension is the mean over videos. VBench pads frames to multiples of 8 for RAFT and takes the top 5 % of
  the padded flow field; flow here runs on the frames as they are.
- ``motion_smoothness_flow``: VBench's motion_smoothness with the middle frames interpolated by
  bidirectional flow warping instead of AMT-S: frames 0, 2, 4, ... are kept, the frame between each kept
  pair is synthesised and compared with the real odd frame: ``(255 - mean_j mean|F_{2j+1} - I_j|) / 255``
  (mean over pixels and channels of 8-bit images, then over pairs). The interpolation follows Super SloMo's
  linear flow approximation at t = 1/2 (Jiang et al., CVPR 2018, eq. 4): with flows F01 and F10,
  ``F_t0 = (F10 - F01) / 4``, ``F_t1 = (F01 - F10) / 4``, ``I_t = (warp(I0, F_t0) + warp(I1, F_t1)) / 2`` by
  bilinear backward warping with replicated borders; the result is truncated to uint8 as AMT's
  ``tensor2img`` does. Every frame of the video is read, as in VBench.

All three stream (``score_stream``): frames arrive in order, a few at a time, and only the frames a pair
still needs are kept (the first, the previous, the last even and odd ones), so memory does not grow with
the video's length; the results equal scoring the whole clip at once.
- Static filter (used by temporal_flickering): VBench's ``StaticFilter`` on all frames: flow for every
  consecutive pair plus first->last and last->first, statistic the mean of the top 2 % magnitudes,
  ``thres = 3 * min(H, W) / 256``, ``count_num = round(2 * N / 16)``; a video is static unless more than
  ``count_num`` consecutive pairs exceed ``thres`` or a first/last pair exceeds ``2 * count_num * thres``.

None of these is differentiable (OpenCV, thresholds). Agreement with RAFT/AMT is not measured here (their
weights could not be obtained); see tests/test_motion.py for the synthetic clips they are checked on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from rewardkit.lazy import lazy_import
from rewardkit.registry import register_reward
from rewardkit.rewards.base import VideoScorer
from rewardkit.transforms import as_float_videos
from rewardkit.video.sampling import All, assumed_frame_rate
from rewardkit.weights import WeightsArgument, build_with_weights

cv2 = lazy_import("cv2", extra="eval")

__all__ = [
    "DynamicDegreeFlow",
    "FlowMethod",
    "FlowTopFraction",
    "FrameRateSubsample",
    "MotionSmoothnessFlow",
    "PairStatistic",
    "PairStream",
    "StreamingVideoMetric",
    "dynamic_outputs",
    "dynamic_params",
    "flow_is_static",
    "interpolate_midpoint",
    "is_dynamic",
    "is_static",
    "optical_flow",
    "static_params",
    "static_verdict",
    "top_fraction_mean",
    "videos_to_uint8",
]

FlowMethod = Literal["dis", "farneback"]
PairStatistic = Callable[[np.ndarray, np.ndarray], list[float]]
"""Statistics of the frame pairs ``(first[i], second[i])``, each argument uint8 ``[k, H, W, 3]``."""


def videos_to_uint8(frames: torch.Tensor) -> np.ndarray:
    """Videos ``[B, K, 3, H, W]`` (uint8, or float in [0, 1], rounded as saving a file would) as uint8
    ``[B, K, H, W, 3]`` RGB arrays, the way VBench reads frames with OpenCV."""
    videos = as_float_videos(frames, keep_uint8=True)
    if videos.dtype != torch.uint8:
        videos = (videos.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return np.ascontiguousarray(videos.permute(0, 1, 3, 4, 2).cpu().numpy())


def optical_flow(frame0: np.ndarray, frame1: np.ndarray, method: FlowMethod = "dis") -> np.ndarray:
    """Dense flow ``[H, W, 2]`` (float32 pixels, x then y) from RGB uint8 ``frame0`` to ``frame1``."""
    if min(frame0.shape[:2]) < 16:
        raise ValueError(f"optical flow needs frames of at least 16x16 pixels, got {frame0.shape[1]}x{frame0.shape[0]}")
    gray0 = cv2.cvtColor(frame0, cv2.COLOR_RGB2GRAY)
    gray1 = cv2.cvtColor(frame1, cv2.COLOR_RGB2GRAY)
    if method == "dis":
        return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(gray0, gray1, None)
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(gray0, gray1, None, 0.5, 5, 15, 3, 5, 1.2, 0)
    raise ValueError(f"flow method must be 'dis' or 'farneback', got {method!r}")


def top_fraction_mean(flow: np.ndarray, fraction: float) -> float:
    """Mean of the largest ``int(fraction * H * W)`` flow magnitudes (VBench's ``get_score``)."""
    magnitude = np.sqrt(np.square(flow[..., 0]) + np.square(flow[..., 1])).ravel()
    count = int(magnitude.size * fraction)
    if count < 1:
        raise ValueError(
            f"frames of {flow.shape[1]}x{flow.shape[0]} pixels are too small for a top {fraction:.0%} flow "
            f"statistic; use frames of at least {int(np.ceil(1 / fraction))} pixels"
        )
    return float(np.partition(magnitude, magnitude.size - count)[-count:].mean(dtype=np.float64))


def dynamic_params(height: int, width: int, num_frames: int) -> tuple[float, int]:
    """VBench dynamic_degree: ``(thres, count_num) = (6 * min(H, W) / 256, round(4 * N / 16))``."""
    return 6.0 * min(height, width) / 256.0, round(4 * (num_frames / 16.0))


def is_dynamic(pair_stats: Sequence[float], thres: float, count_num: int) -> bool:
    """VBench ``check_move``: at least ``count_num`` pairs strictly above ``thres`` (false without pairs)."""
    return len(pair_stats) > 0 and sum(stat > thres for stat in pair_stats) >= count_num


def static_params(height: int, width: int, num_frames: int) -> tuple[float, int]:
    """VBench static filter: ``(thres, count_num) = (3 * min(H, W) / 256, round(2 * N / 16))``."""
    return 3.0 * min(height, width) / 256.0, round(2 * (num_frames / 16.0))


def is_static(pair_stats: Sequence[float], loop_stats: Sequence[float], thres: float, count_num: int) -> bool:
    """VBench ``check_static``: consecutive pairs above ``thres`` at most ``count_num``, and both
    first<->last pairs at most ``2 * count_num * thres``."""
    moving = sum(stat > thres for stat in pair_stats)
    return moving <= count_num and all(stat <= thres * count_num * 2 for stat in loop_stats)


@dataclass(frozen=True)
class FlowTopFraction:
    """A ``PairStatistic``: per pair, the mean of the top ``fraction`` OpenCV flow magnitudes (VBench's
    ``get_score``)."""

    fraction: float
    method: FlowMethod = "dis"

    def __call__(self, first: np.ndarray, second: np.ndarray) -> list[float]:
        return [top_fraction_mean(optical_flow(a, b, self.method), self.fraction) for a, b in zip(first, second, strict=True)]


class PairStream:
    """Statistics of the consecutive frame pairs of ONE video fed in order, chunk by chunk (uint8
    ``[k, H, W, 3]``), holding only the first and the latest frame: memory does not grow with length."""

    def __init__(self, statistic: PairStatistic) -> None:
        self.statistic = statistic
        self.stats: list[float] = []
        self.first: np.ndarray | None = None
        self.last: np.ndarray | None = None
        self.count = 0

    def update(self, frames: np.ndarray) -> None:
        if len(frames) == 0:
            return
        sequence = frames if self.last is None else np.concatenate([self.last[None], frames])
        if len(sequence) > 1:
            self.stats += self.statistic(sequence[:-1], sequence[1:])
        if self.first is None:
            self.first = frames[0].copy()
        self.last = frames[-1].copy()
        self.count += len(frames)


def static_verdict(stream: PairStream) -> bool:
    """VBench's static filter on every frame of a finished stream: its consecutive-pair statistics plus
    (first, last) and (last, first)."""
    if stream.first is None or stream.last is None or stream.count < 2:
        raise ValueError(f"the static filter compares frames and needs at least 2, got {stream.count}")
    loop = stream.statistic(np.stack([stream.first, stream.last]), np.stack([stream.last, stream.first]))
    return is_static(stream.stats, loop, *static_params(*stream.first.shape[:2], stream.count))


def dynamic_outputs(statistic: PairStatistic, chunks: Iterable[np.ndarray]) -> dict[str, float]:
    """VBench's dynamic-degree decision and statistics of ONE video whose kept frames arrive in order as
    uint8 ``[k, H, W, 3]`` chunks, each consecutive pair measured by ``statistic``."""
    stream = PairStream(statistic)
    for chunk in chunks:
        stream.update(chunk)
    if stream.first is None or stream.count < 2:
        raise ValueError(f"dynamic degree compares consecutive frames and needs at least 2, got {stream.count}")
    thres, count_num = dynamic_params(*stream.first.shape[:2], stream.count)
    return {
        "score": float(is_dynamic(stream.stats, thres, count_num)),
        "flow_top5": float(np.mean(stream.stats)),
        "moving_pairs": float(sum(stat > thres for stat in stream.stats)),
        "required_pairs": float(count_num),
        "threshold": thres,
    }


def flow_is_static(video: np.ndarray, method: FlowMethod = "dis") -> bool:
    """VBench's static filter on one uint8 video ``[T, H, W, 3]`` (every frame) with OpenCV flow."""
    stream = PairStream(FlowTopFraction(0.02, method))
    stream.update(video)
    return static_verdict(stream)


def _backward_warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` (float32 ``[H, W, 3]``) sampled at ``x + flow(x)``, bilinear, borders replicated."""
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(
        image, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def interpolate_midpoint(frame0: np.ndarray, frame1: np.ndarray, method: FlowMethod = "dis") -> np.ndarray:
    """The uint8 frame halfway between two RGB uint8 frames, by bidirectional flow warping (see the module
    docstring: Super SloMo's linear approximation at t = 1/2, truncated to uint8 like AMT's output)."""
    flow01 = optical_flow(frame0, frame1, method)
    flow10 = optical_flow(frame1, frame0, method)
    flow_t0 = (flow10 - flow01) / 4.0
    middle = 0.5 * _backward_warp(frame0.astype(np.float32), flow_t0)
    middle += 0.5 * _backward_warp(frame1.astype(np.float32), -flow_t0)
    return np.clip(middle, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class FrameRateSubsample:
    """VBench's ~8 fps subsampling for dynamic_degree: every ``max(1, round(rate / 8))``-th frame from the
    first (at least 2 kept frames), ``rate`` being the container's frame rate, or ``fps`` for videos that
    record none (frame folders, GIFs, tensors; with a warning once)."""

    fps: float = 8.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be a positive frame rate (used for videos that record none), got {self.fps}")

    @property
    def interval(self) -> int:
        """The interval at the fallback rate ``fps``."""
        return self.interval_at(self.fps)

    @staticmethod
    def interval_at(rate: float) -> int:
        return max(1, round(rate / 8))

    def indices(self, num_frames: int, rng: np.random.Generator | None = None, *, fps: float | None = None) -> list[int]:
        rate = assumed_frame_rate(fps, self.fps, "dynamic degree", "fps")
        interval = self.interval_at(rate)
        indices = list(range(0, num_frames, interval))
        if len(indices) < 2:
            raise ValueError(
                f"dynamic degree compares frames kept every {interval} (at {rate:g} fps) and needs 2 of "
                f"them, but the video has {num_frames} frame(s); give a longer video"
            )
        return indices


class StreamingVideoMetric(VideoScorer):
    """A video metric computed frame by frame in order: ``score_stream`` holds a few frames whatever the
    video's length, and tensors ``[B, K, 3, H, W]`` are scored as one chunk per video (rounded to uint8
    as a saved file would be)."""

    stream_chunk = 8

    def score_sampled_details(
        self,
        frames: torch.Tensor,
        indices: torch.Tensor | None,
        num_frames: int,
        prompts: Sequence[str] | None = None,
        rng: np.random.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """``score`` plus every name in ``output_names``, each float32 ``[B]``."""
        per_video = [self.score_stream([video], range(len(video)), num_frames) for video in videos_to_uint8(frames)]
        return {key: torch.tensor([row[key] for row in per_video], dtype=torch.float32) for key in per_video[0]}


class _FlowVideoMetric(StreamingVideoMetric):
    """The OpenCV-flow metrics' options."""

    def __init__(self, sampler: All | FrameRateSubsample, method: FlowMethod) -> None:
        super().__init__()
        if method not in ("dis", "farneback"):
            raise ValueError(f"flow must be 'dis' or 'farneback', got {method!r}")
        self.sampler = sampler
        self.method: FlowMethod = method
        self.weights_sha256: str | None = None


class DynamicDegreeFlow(_FlowVideoMetric):
    """VBench dynamic_degree with OpenCV flow: 1.0 for a dynamic video, 0.0 for a static one.

    Outputs: ``flow_top5`` (the per-pair top-5 % flow magnitude, averaged over pairs, in pixels),
    ``moving_pairs`` (pairs above the threshold), ``required_pairs`` (``round(4 * N / 16)``) and
    ``threshold`` (``6 * min(H, W) / 256``).
    """

    output_names = ("flow_top5", "moving_pairs", "required_pairs", "threshold")

    def __init__(self, fps: float = 8.0, method: FlowMethod = "dis") -> None:
        super().__init__(FrameRateSubsample(fps), method)

    def score_stream(
        self,
        chunks: Iterable[np.ndarray],
        indices: Sequence[int],
        num_frames: int,
        prompt: str | None = None,
        rng: np.random.Generator | None = None,
    ) -> dict[str, float]:
        return dynamic_outputs(FlowTopFraction(0.05, self.method), chunks)


class MotionSmoothnessFlow(_FlowVideoMetric):
    """VBench motion_smoothness with flow-warped midpoints instead of AMT-S; higher is smoother.

    Output ``interp_mae``: the mean absolute difference (0..255) between real and interpolated odd frames.
    """

    output_names = ("interp_mae",)

    def __init__(self, method: FlowMethod = "dis") -> None:
        super().__init__(All(), method)

    def score_stream(
        self,
        chunks: Iterable[np.ndarray],
        indices: Sequence[int],
        num_frames: int,
        prompt: str | None = None,
        rng: np.random.Generator | None = None,
    ) -> dict[str, float]:
        """Frames 0, 2, 4, ... are kept; each odd frame is compared with the midpoint of its neighbours."""
        if len(indices) < 3:
            raise ValueError(
                f"motion smoothness interpolates between frames 0, 2, 4, ... and needs at least 3 frames, "
                f"got {len(indices)}"
            )
        maes: list[float] = []
        previous_even: np.ndarray | None = None
        odd: np.ndarray | None = None
        for position, frame in enumerate(frame for chunk in chunks for frame in chunk):
            if position % 2:
                odd = frame.copy()
                continue
            if previous_even is not None and odd is not None:
                maes.append(float(np.mean(cv2.absdiff(odd, interpolate_midpoint(previous_even, frame, self.method)))))
            previous_even = frame.copy()
        mae = float(np.mean(maes))
        return {"score": (255.0 - mae) / 255.0, "interp_mae": mae}


@register_reward(
    "dynamic_degree_flow",
    modality="video",
    needs_prompt=False,
    differentiable=False,
    score_range=(0.0, 1.0),
    description="VBench dynamic degree (1 = dynamic video) with OpenCV optical flow instead of RAFT",
    paper="arXiv:2311.17982",
    repository="https://github.com/Vchitect/VBench",
)
def create_dynamic_degree_flow(
    *,
    fps: float = 8.0,
    flow: Literal["dis", "farneback"] = "dis",
    device: torch.device,
    dtype: torch.dtype,
    weights: WeightsArgument,
) -> DynamicDegreeFlow:
    """VBench's dynamic-degree decision on OpenCV flow (VBench keeps every ``round(fps / 8)``-th frame);
    ``fps`` is the frame rate of videos that record none (files use their container's), ``flow`` the
    OpenCV method."""
    return build_with_weights("dynamic_degree_flow", weights, {}, lambda paths: DynamicDegreeFlow(fps=fps, method=flow))


@register_reward(
    "motion_smoothness_flow",
    modality="video",
    needs_prompt=False,
    differentiable=False,
    score_range=(0.0, 1.0),
    description="VBench motion smoothness with flow-warped frame interpolation instead of AMT-S",
    paper="arXiv:2311.17982",
    repository="https://github.com/Vchitect/VBench",
)
def create_motion_smoothness_flow(
    *,
    flow: Literal["dis", "farneback"] = "dis",
    device: torch.device,
    dtype: torch.dtype,
    weights: WeightsArgument,
) -> MotionSmoothnessFlow:
    """VBench's motion-smoothness formula with bidirectional OpenCV-flow interpolation of the odd frames."""
    return build_with_weights("motion_smoothness_flow", weights, {}, lambda paths: MotionSmoothnessFlow(method=flow))
