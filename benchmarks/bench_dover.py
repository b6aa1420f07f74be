"""DOVER clips per second on one video file: sparse decoding of the sampled frames plus both branches.

Run:
    HF_HUB_OFFLINE=1 uv run pytest benchmarks/bench_dover.py --benchmark-only -o python_files='bench_*.py' \\
        -p no:cacheprovider

Weights: random checkpoints in the official ``DOVER.pth`` / ``DOVER-Mobile.pth`` layouts
(``rewardkit.testing.dover``), loaded with ``create_reward("dover", variant=..., weights=PATH)``. Default size
``tiny`` (Swin3D and ConvNeXt widths 8..64, the official geometry: 3 clips x 32 frames of 7x7 fragments of
32 px, 32 aesthetic frames of 224 px); ``REWARDKIT_BENCH_SIZE=real`` uses the published architectures
(58 M and 10.7 M parameters; a round takes about a minute on 2 CPU cores for DOVER, so set
``REWARDKIT_BENCH_ROUNDS=1``). Torch's default thread pool; models built outside the timing.

Workload: one 192-frame 240x320 H.264 clip (8 s at 24 fps). A round is what the scoring engine does for a
file: ``sampler.indices`` (seeded), ``read_frames`` of the distinct indices (sparse decoding), then
``score_sampled_details`` (fused, technical and aesthetic scores) under ``torch.inference_mode()``.
Group ``dover-1-clip-<size>``; ``extra_info`` records the frames the video has, the frame positions the
model consumes (96 technical + 32 aesthetic) and the distinct frames actually decoded, and clips/s.
Each benchmark runs one warm-up round, then 3 timed rounds of 1 iteration (``benchmark.pedantic``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("REWARDKIT_CACHE", tempfile.mkdtemp(prefix="rewardkit-bench-"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from pytest_benchmark.fixture import BenchmarkFixture  # noqa: E402

from rewardkit import create_reward  # noqa: E402
from rewardkit.rewards.dover import DOVER_CONFIG, MOBILE_CONFIG  # noqa: E402
from rewardkit.testing.dover import TINY_DOVER, TINY_DOVER_MOBILE, pattern_video, write_dover_checkpoint  # noqa: E402
from rewardkit.video.io import probe, read_frames, write_video  # noqa: E402

SIZE = os.environ.get("REWARDKIT_BENCH_SIZE", "tiny")
CONFIGS = {
    "dover": DOVER_CONFIG if SIZE == "real" else TINY_DOVER,
    "mobile": MOBILE_CONFIG if SIZE == "real" else TINY_DOVER_MOBILE,
}
FRAMES, HEIGHT, WIDTH = 192, 240, 320
_ROUNDS = int(os.environ.get("REWARDKIT_BENCH_ROUNDS", "3"))
ROUNDS = {"rounds": _ROUNDS, "iterations": 1, "warmup_rounds": 1 if _ROUNDS > 1 else 0}

pytestmark = pytest.mark.benchmark(group=f"dover-1-clip-{SIZE}")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dover") / "clip.mp4"
    write_video(path, pattern_video(FRAMES, HEIGHT, WIDTH, seed=0), fps=24)
    return path


def score_file(reward: torch.nn.Module, path: Path, seed: int = 0) -> dict[str, float]:
    """The engine's work for one file and one video reward."""
    rng = np.random.default_rng(seed)
    num_frames = probe(path).num_frames
    indices = reward.sampler.indices(num_frames, rng)
    frames = torch.from_numpy(read_frames(path, indices)).permute(0, 3, 1, 2)[None]
    with torch.inference_mode():
        outputs = reward.score_sampled_details(frames, torch.tensor([indices]), num_frames, rng=rng)
    return {key: float(value[0]) for key, value in outputs.items()}


@pytest.mark.parametrize("variant", ["dover", "mobile"])
def test_rewardkit_clip(benchmark: BenchmarkFixture, tmp_path: Path, clip: Path, variant: str) -> None:
    checkpoint = write_dover_checkpoint(tmp_path / f"{variant}.pth", CONFIGS[variant], seed=0, centred_heads=SIZE == "real")
    reward = create_reward("dover", variant=variant, weights=str(checkpoint))
    indices = reward.sampler.indices(FRAMES, np.random.default_rng(0))
    benchmark.extra_info.update({
        "video_frames": FRAMES,
        "frames_used_by_model": len(indices),
        "frames_decoded": len(set(indices)),
    })
    outputs = benchmark.pedantic(lambda: score_file(reward, clip), **ROUNDS)
    assert set(outputs) == {"score", "technical", "aesthetic", "fused"}
    assert all(np.isfinite(value) for value in outputs.values())
    assert outputs == score_file(reward, clip)  # seeded: every round scores the same views
    if benchmark.stats is not None:
        benchmark.extra_info["clips_per_second"] = round(1.0 / benchmark.stats.stats.mean, 4)
