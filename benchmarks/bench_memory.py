"""Peak memory against clip length for the all-frame video metrics: streaming vs reading the clip at once.

Run (smoke size, as CI does):
    HF_HUB_OFFLINE=1 uv run pytest benchmarks/bench_memory.py -o python_files='bench_*.py' -p no:cacheprovider -s

Real size: ``REWARDKIT_BENCH_SIZE=real`` (1920x1080 clips of 100, 500 and 2000 frames; the frame counts can
be set with ``REWARDKIT_BENCH_LENGTHS=100,500``, the metrics with ``REWARDKIT_BENCH_METRICS``). Smoke size:
64x64 clips of 8 and 24 frames.

Workload: one H.264 clip per length (a textured pattern drifting 2 px per frame, 24 fps, libx264 ultrafast at
crf 35, written frame by frame with PyAV so that generating it holds one frame), then, per metric and length,
two forked processes (the imports are done once, before forking), each doing what the scoring engine does
for one file and one reward:

- ``stream``: ``score_stream(iter_frames(path, indices, stream_chunk), ...)`` (the engine's path now);
- ``whole``: ``read_frames(path, indices)`` then ``score_sampled_details`` on the whole clip (the way every
  video reward was scored before; still the way of non-streaming rewards, under the decode budget).

Reported per run: the process's peak resident set (``ru_maxrss``) after imports and the reward's build, the
peak during scoring, the growth between them (the memory the clip costs), and the score (both ways must
agree). A ``whole`` run whose frames alone would exceed half the machine's available memory is not started
and is reported as skipped with the bytes it would need. Results: a table on stdout and in
``benchmark.extra_info``.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import tempfile
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import av  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from pytest_benchmark.fixture import BenchmarkFixture  # noqa: E402

from rewardkit import create_reward  # noqa: E402
from rewardkit.video.io import iter_frames, probe, read_frames  # noqa: E402

SIZE = os.environ.get("REWARDKIT_BENCH_SIZE", "tiny")
HEIGHT, WIDTH = (1080, 1920) if SIZE == "real" else (64, 64)
LENGTHS = [int(n) for n in os.environ.get("REWARDKIT_BENCH_LENGTHS", "100,500,2000" if SIZE == "real" else "8,24").split(",")]
METRICS = os.environ.get("REWARDKIT_BENCH_METRICS", "temporal_flickering,dynamic_degree_flow,motion_smoothness_flow").split(",")
FPS = 24



def score_once(name: str, path: str, mode: str) -> dict[str, float]:
    """One file, one reward, as the engine scores it; the peak RSS before and during scoring."""
    reward = create_reward(name)
    info = probe(path)
    indices = reward.sampler.indices(info.num_frames, fps=info.fps)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.inference_mode():
        if mode == "stream":
            outputs = reward.score_stream(iter_frames(path, indices, reward.stream_chunk), indices, info.num_frames)
        else:
            frames = torch.from_numpy(read_frames(path, indices)).permute(0, 3, 1, 2)[None]
            details = reward.score_sampled_details(frames, torch.tensor([indices]), info.num_frames)
            outputs = {key: float(value[0]) for key, value in details.items()}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"before_mb": before / 1024, "peak_mb": peak / 1024, "frames": len(indices), "score": outputs["score"]}


def _child(name: str, path: str, mode: str, queue: multiprocessing.Queue) -> None:
    try:
        queue.put(score_once(name, path, mode))
    except BaseException as error:  # reported by the parent
        queue.put({"error": f"{type(error).__name__}: {error}"})


def write_drifting_clip(path: Path, frames: int, height: int, width: int) -> None:
    """A smooth random texture shifted 2 px right per frame, encoded as it is generated (one frame held)."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, size=(height // 16 + 1, width // 16 + 2, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(coarse, 16, axis=0), 16, axis=1)[:height]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS), options={"crf": "35", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            shift = (2 * index) % 16
            frame = np.ascontiguousarray(texture[:, shift : shift + width])
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = index
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode())


def available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def measure(name: str, path: Path, mode: str) -> dict[str, float]:
    """``score_once`` in a forked process (imports shared, so its peak counts only this file and reward)."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_child, args=(name, str(path), mode, queue))
    process.start()
    row = queue.get()
    process.join()
    if "error" in row:
        raise RuntimeError(f"{name} {mode} on {path.name} failed: {row['error']}")
    return {**row, "growth_mb": row["peak_mb"] - row["before_mb"]}


@pytest.fixture(scope="module")
def clips() -> dict[int, Path]:
    folder = Path(tempfile.mkdtemp(prefix="rewardkit-bench-memory-"))
    paths = {}
    for length in LENGTHS:
        paths[length] = folder / f"clip{length}.mp4"
        write_drifting_clip(paths[length], length, HEIGHT, WIDTH)
    return paths


@pytest.mark.benchmark(group=f"memory-{SIZE}")
@pytest.mark.parametrize("name", METRICS)
def test_peak_memory_against_length(benchmark: BenchmarkFixture, clips: dict[int, Path], name: str) -> None:
    rows = []

    def run() -> None:
        rows.clear()
        for length, path in clips.items():
            streamed = measure(name, path, "stream")
            frame_bytes = HEIGHT * WIDTH * 3 * streamed["frames"]
            if frame_bytes > available_bytes() / 2:
                whole = {"skipped": f"needs {frame_bytes / 2**30:.1f} GiB of frames"}
            else:
                whole = measure(name, path, "whole")
                assert whole["score"] == pytest.approx(streamed["score"], abs=1e-6), "both ways must give the same score"
            rows.append({"length": length, "stream": streamed, "whole": whole})

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update({"size": f"{WIDTH}x{HEIGHT}", "rows": rows})
    print(f"\n{name} at {WIDTH}x{HEIGHT}: peak RSS growth while scoring (MB), streaming vs whole clip")
    for row in rows:
        whole = row["whole"]
        whole_text = whole["skipped"] if "skipped" in whole else f"{whole['growth_mb']:.0f} (peak {whole['peak_mb']:.0f})"
        stream = row["stream"]
        print(f"  {row['length']:>5} frames: stream {stream['growth_mb']:.0f} (peak {stream['peak_mb']:.0f}), whole {whole_text}")
    if SIZE == "real":
        growths = [row["stream"]["growth_mb"] for row in rows]
        frame_mb = HEIGHT * WIDTH * 3 / 2**20
        assert max(growths) - min(growths) < 8 * frame_mb, "streaming memory must not grow with the clip's length"
