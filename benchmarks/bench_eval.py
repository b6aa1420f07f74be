"""The eval harness's throughput per dimension, side by side with a naive loop doing the same work.

Run:
    uv run pytest benchmarks/bench_eval.py --benchmark-only -p no:cacheprovider

Folders of 8 and of 100 32-frame 256x256 clips (a smoke run, ``--benchmark-disable``, uses 10 clips for
the second). Each group holds one dimension and one folder: ``harness`` is ``rewardkit.eval.evaluate`` on
the quick suite restricted to that dimension (fresh run directory each round, default DataLoader
workers, the engine's batching), ``score`` is ``rewardkit.score`` of the same reward with an ``out``
table (what ``rewardkit score`` does), ``naive`` a plain loop that decodes every frame of each video with
PyAV and computes the same score (numpy for temporal flickering; one reward call per sampled frame for
hpsv2, on the seeded tiny-weights checkpoint). ``extra_info`` records videos/s. The fixed cost per run is
the intercept of the time against the number of clips: ``(100 * t8 - 8 * t100) / 92``.

Each way runs one warm-up round, then ``REWARDKIT_BENCH_ROUNDS`` (default 2) timed rounds: a run's fixed
cost is timed (model and DataLoader set-up, worker start, probing, writing the results), what a process
pays once is not (importing torch and torchcodec, which pulls in ``torch._dynamo``: ``bench_startup.py``
times those side by side). Before every round of every way, outside the timing, Python's garbage is
collected (``collect_garbage``): otherwise a full collection of this pytest process's heap (torch,
pytest, every collected test; 1.2-3.2 s each at load ~13 on 2 cores), which falls due every ~20 s of
this benchmark, lands in whichever round happens to cross gc's threshold, whatever that round's own
allocations (a gc callback logged one inside a naive round, 2.39 s against 1.29 s for its other round;
the same is the likely cause of an earlier run's ``score`` first rounds of 1.25-1.52 s against 0.35 s).
"""

from __future__ import annotations

import gc
import itertools
import os
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from pytest_benchmark.fixture import BenchmarkFixture

from rewardkit import create_reward
from rewardkit.eval.harness import evaluate
from rewardkit.scoring import score
from rewardkit.testing.clip import write_tiny_hps
from rewardkit.video.io import write_video

FRAMES, SIZE = 32, 256
SUITE = Path(__file__).resolve().parent.parent / "eval" / "quick.toml"
ROUNDS = int(os.environ.get("REWARDKIT_BENCH_ROUNDS", "2"))


def collect_garbage() -> None:
    """Collect Python's garbage before a round (pytest-benchmark's untimed ``setup``)."""
    gc.collect()


@pytest.fixture(scope="module", params=[8, 100], ids=["8clips", "100clips"])
def videos(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    count = 10 if request.param == 100 and request.config.getoption("benchmark_disable") else request.param
    folder = tmp_path_factory.mktemp(f"videos{count}")
    rng = np.random.default_rng(0)
    for index in range(count):
        base = rng.integers(0, 255, (SIZE // 16, SIZE // 16, 3), dtype=np.uint8)
        frames = np.stack([np.roll(np.kron(base, np.ones((16, 16, 1), np.uint8)), 4 * t, axis=1) for t in range(FRAMES)])
        write_video(folder / f"a moving pattern number {index}-0.mp4", frames)
    return folder


@pytest.fixture(scope="module")
def tiny_hps(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_tiny_hps(tmp_path_factory.mktemp("tiny"))


def decode_all(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def naive_flicker(folder: Path) -> list[float]:
    scores = []
    for path in sorted(folder.glob("*.mp4")):
        frames = decode_all(path).astype(np.float32)
        scores.append((255.0 - np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3)).mean()) / 255.0)
    return scores


def naive_hps(folder: Path, reward: torch.nn.Module) -> list[float]:
    scores = []
    for path in sorted(folder.glob("*.mp4")):
        frames = decode_all(path)
        prompt = path.stem.rsplit("-", 1)[0]
        picked = [frames[segment * (len(frames) // 4)] for segment in range(4)]  # segmental:4, first frames
        per_frame = [float(reward(torch.from_numpy(frame).permute(2, 0, 1)[None], [prompt])[0]) for frame in picked]
        scores.append(float(np.mean(per_frame)))
    return scores


@pytest.mark.parametrize("dimension", ["temporal_flickering", "hpsv2"])
@pytest.mark.parametrize("way", ["harness", "score", "naive"])
def test_eval_throughput(
    benchmark: BenchmarkFixture, videos: Path, tiny_hps: tuple[Path, Path], tmp_path: Path, dimension: str, way: str
) -> None:
    checkpoint, config = tiny_hps
    count = len(list(videos.glob("*.mp4")))
    benchmark.group = f"eval: {dimension}, {count} videos of {FRAMES}x{SIZE}x{SIZE}"
    runs = itertools.count()
    if way == "harness":
        weights = {"hpsv2": str(checkpoint)}
        options = {"hpsv2": {"architecture": str(config)}}

        def run() -> list[float]:
            result = evaluate(SUITE, videos, out=tmp_path / f"run{next(runs)}", dimensions=[dimension], weights=weights,
                              options=options, progress=False)
            return result.videos.sort_values("path")["score"].tolist()
    elif way == "score":
        spec = "temporal_flickering" if dimension == "temporal_flickering" else f"hpsv2:architecture={config}"

        def run() -> list[float]:
            result = score(videos, [spec], weights={"hpsv2": str(checkpoint)}, out=tmp_path / f"run{next(runs)}.jsonl",
                           progress=False)
            return result.sort_values("path")["score"].tolist()
    else:
        reward = create_reward("hpsv2", weights=str(checkpoint), architecture=str(config))

        def run() -> list[float]:
            return naive_flicker(videos) if dimension == "temporal_flickering" else naive_hps(videos, reward)

    scores = benchmark.pedantic(run, setup=collect_garbage, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert len(scores) == count and np.isfinite(scores).all()
    if benchmark.stats is not None:
        benchmark.extra_info["videos_per_s"] = count / benchmark.stats["mean"]
