"""VBench-style dimensions: videos/s per dimension, and the weight-free ones against straightforward numpy.

Run:
    HF_HUB_OFFLINE=1 uv run pytest benchmarks/bench_vbench_dims.py --benchmark-only -o python_files='bench_*.py' \\
        -p no:cacheprovider --benchmark-columns=mean,ops

Workload: 4 synthetic videos (rewardkit.testing.vbench: static, flickering, squares at 1 and 5 px/frame) of
16 frames at 128x128, uint8 ``[4, 16, 3, 128, 128]``; ``ops`` x 4 is videos/s. Groups:

- ``temporal_flickering``: rewardkit (one torch reduction over the batch) vs numpy as VBench writes it
  (per pair ``np.mean(cv2.absdiff(float32, float32))``, per video);
- ``dynamic_degree_flow``: rewardkit vs numpy (the same OpenCV DIS flow per pair, then VBench's
  ``np.sort``-based top 5 % and ``check_move`` loop): the flow dominates, so the ratio is near 1;
- ``motion_smoothness_flow``: rewardkit (cv2.remap warping) vs numpy (scipy ``map_coordinates`` bilinear
  warping of the same flows, VBench's ``vfi_score``);
- ``subject_consistency`` / ``background_consistency``: rewardkit only, tiny random DINO ViT (64 wide,
  2 blocks) and tiny open_clip (rewardkit.testing), so they time the transforms and plumbing, not the real
  networks. RAFT (``dynamic_degree``) is not benchmarked: 20 full-size iterations take seconds per pair
  on CPU.

Every pair checks that both sides give the same scores. Each benchmark: 1 warm-up round, 3 timed rounds.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from pytest_benchmark.fixture import BenchmarkFixture  # noqa: E402
from scipy.ndimage import map_coordinates  # noqa: E402

from rewardkit import create_reward  # noqa: E402
from rewardkit.rewards.motion import optical_flow  # noqa: E402
from rewardkit.testing.clip import write_open_clip_config, write_open_clip_safetensors  # noqa: E402
from rewardkit.testing.vbench import (  # noqa: E402
    flicker_clip,
    moving_square_clip,
    static_clip,
    to_video_tensor,
    write_dino_checkpoint,
)

CLIPS = [static_clip(16, 128, 128), flicker_clip(16, 128, 128), moving_square_clip(16, 128, 128, speed=1.0, size=40),
         moving_square_clip(16, 128, 128, speed=5.0, size=40)]
VIDEOS = to_video_tensor(*CLIPS)


def run(benchmark: BenchmarkFixture, function):
    return benchmark.pedantic(function, rounds=3, iterations=1, warmup_rounds=1)


def numpy_flicker(clips: list[np.ndarray]) -> list[float]:
    out = []
    for frames in clips:
        maes = [np.mean(cv2.absdiff(frames[i].astype(np.float32), frames[i + 1].astype(np.float32))) for i in range(len(frames) - 1)]
        out.append((255.0 - float(np.mean(maes))) / 255.0)
    return out


def numpy_dynamic(clips: list[np.ndarray]) -> list[float]:
    out = []
    for frames in clips:
        scores = []
        for a, b in zip(frames[:-1], frames[1:], strict=True):
            flow = optical_flow(a, b)
            rad = np.sqrt(np.square(flow[..., 0]) + np.square(flow[..., 1])).flatten()
            scores.append(np.mean(abs(np.sort(-rad))[: int(rad.size * 0.05)]))
        thres, count_num = 6.0 * min(frames.shape[1:3]) / 256.0, round(4 * len(frames) / 16.0)
        out.append(float(sum(score > thres for score in scores) >= count_num))
    return out


def numpy_smoothness(clips: list[np.ndarray]) -> list[float]:
    out = []
    for frames in clips:
        rows, columns = np.mgrid[0 : frames.shape[1], 0 : frames.shape[2]].astype(np.float64)
        maes = []
        for j in range(len(frames[0::2]) - 1):
            a, b = frames[2 * j], frames[2 * j + 2]
            half = (optical_flow(b, a) - optical_flow(a, b)) / 4
            warped = [np.stack([map_coordinates(image[..., c].astype(np.float64), [rows + sign * half[..., 1], columns + sign * half[..., 0]],
                                                order=1, mode="nearest") for c in range(3)], axis=-1) for image, sign in ((a, 1), (b, -1))]
            middle = np.clip(0.5 * warped[0] + 0.5 * warped[1], 0, 255).astype(np.uint8)
            maes.append(np.mean(cv2.absdiff(frames[2 * j + 1], middle)))
        out.append((255.0 - float(np.mean(maes))) / 255.0)
    return out


@pytest.mark.benchmark(group="temporal_flickering")
def test_flicker_rewardkit(benchmark):
    metric = create_reward("temporal_flickering")
    scores = run(benchmark, lambda: metric(VIDEOS))
    assert scores.tolist() == pytest.approx(numpy_flicker(CLIPS), abs=1e-6)


@pytest.mark.benchmark(group="temporal_flickering")
def test_flicker_numpy(benchmark):
    assert len(run(benchmark, lambda: numpy_flicker(CLIPS))) == 4


@pytest.mark.benchmark(group="dynamic_degree_flow")
def test_dynamic_rewardkit(benchmark):
    metric = create_reward("dynamic_degree_flow")
    scores = run(benchmark, lambda: metric(VIDEOS))
    assert scores.tolist() == numpy_dynamic(CLIPS) and scores[0] == 0.0 and scores[3] == 1.0


@pytest.mark.benchmark(group="dynamic_degree_flow")
def test_dynamic_numpy(benchmark):
    assert len(run(benchmark, lambda: numpy_dynamic(CLIPS))) == 4


@pytest.mark.benchmark(group="motion_smoothness_flow")
def test_smoothness_rewardkit(benchmark):
    metric = create_reward("motion_smoothness_flow")
    scores = run(benchmark, lambda: metric(VIDEOS))
    # bilinear sampling in cv2.remap (fixed point) vs scipy (float64) differs by < 1/255 per pixel
    assert scores.tolist() == pytest.approx(numpy_smoothness(CLIPS), abs=2e-3)


@pytest.mark.benchmark(group="motion_smoothness_flow")
def test_smoothness_numpy(benchmark):
    assert len(run(benchmark, lambda: numpy_smoothness(CLIPS))) == 4


@pytest.fixture(scope="module")
def tiny_files():
    folder = Path(tempfile.mkdtemp(prefix="rewardkit-bench-vbench-"))
    config = write_open_clip_config(folder)
    return {
        "dino": str(write_dino_checkpoint(folder / "dino.pth")),
        "clip_config": str(config),
        "clip": str(write_open_clip_safetensors(folder / "clip.safetensors", str(config))),
    }


@pytest.mark.benchmark(group="model-based-tiny")
def test_subject_consistency_tiny(benchmark, tiny_files):
    metric = create_reward("subject_consistency", weights=tiny_files["dino"])
    with torch.inference_mode():
        scores = run(benchmark, lambda: metric(VIDEOS))
    assert scores.shape == (4,) and scores[0].item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.benchmark(group="model-based-tiny")
def test_background_consistency_tiny(benchmark, tiny_files):
    metric = create_reward("background_consistency", architecture=tiny_files["clip_config"], weights=tiny_files["clip"])
    with torch.inference_mode():
        scores = run(benchmark, lambda: metric(VIDEOS))
    assert scores.shape == (4,) and scores[0].item() == pytest.approx(1.0, abs=1e-5)
