"""Video decoding per backend: sparse vs. full reads of a 64-frame clip, and full-decode speed against
``ffmpeg -f null`` on the same file.

Run:
    uv run pytest benchmarks/bench_decode.py --benchmark-only -p no:cacheprovider

Each benchmark group holds one backend (torchcodec where it loads, and PyAV) on one clip, so "sparse"
(``read_frames(path, [0, 16, 32, 48])``, the segmental sampling of 4 out of 64 frames; one open for probe
and read, as the engine does) and "all" (``read_frames(path)[[0, 16, 32, 48]]``, decode everything, then
select) sit side by side. Two encodings of the same frames: a keyframe every 16 frames (each sampled frame
is then a keyframe) and every 250 (libx264's default, as ``write_video`` writes: the clip is one GOP, so a
sparse read still decodes frames 0..48).

The "full" group decodes every frame of the GOP 250 clip to RGB with each backend, next to ``ffmpeg
-benchmark -threads 1 -i CLIP -f null -`` (decoding only, no RGB conversion: the physical limit of one CPU
decoder thread here; both backends decode with one thread). Its time is ffmpeg's own ``-benchmark`` real
time (process start-up excluded), kept in ``extra_info["ffmpeg_seconds"]``; the row is skipped when the
``ffmpeg`` command is absent.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from rewardkit.video import io
from rewardkit.video.io import open_media, read_frames

NUM_FRAMES, HEIGHT, WIDTH = 64, 320, 512
INDICES = [0, 16, 32, 48]


def make_clip() -> np.ndarray:
    """A textured scene panning right, with a moving disk: realistic P/B-frame sizes, no pure noise."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (HEIGHT // 8, (WIDTH + 4 * NUM_FRAMES) // 8, 3), dtype=np.uint8)
    texture = np.kron(texture, np.ones((8, 8, 1), dtype=np.uint8))  # 8x8 blocks: detail the codec keeps
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    frames = np.empty((NUM_FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    for t in range(NUM_FRAMES):
        frame = texture[:, 4 * t : 4 * t + WIDTH].copy()
        frame[(yy - HEIGHT / 2) ** 2 + (xx - 40 - 6 * t) ** 2 < 40**2] = (230, 40, 40)
        frames[t] = frame
    return frames


def write_with_gop(path: Path, frames: np.ndarray, gop: int) -> None:
    """write_video(.mp4)'s settings (libx264, crf 18, preset fast, yuv420p) with a keyframe every ``gop``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8, options={"crf": "18", "preset": "fast"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.gop_size = gop
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bench")
    frames = make_clip()
    paths = {"GOP 16": root / "gop16.mp4", "GOP 250": root / "gop250.mp4"}
    write_with_gop(paths["GOP 16"], frames, 16)
    write_with_gop(paths["GOP 250"], frames, 250)
    return paths


@pytest.fixture(params=io.VIDEO_BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, clips: dict[str, Path]) -> str:
    if request.param == "torchcodec" and io._torchcodec_decoders() is None:
        pytest.skip(f"torchcodec cannot load here: {io._torchcodec_state}")
    monkeypatch.setenv(io.BACKEND_ENV, request.param)
    with open_media(clips["GOP 16"]) as media:
        assert media.backend == request.param, "the benchmark would measure the wrong backend"
    return request.param


@pytest.mark.parametrize("gop", ["GOP 16", "GOP 250"])
@pytest.mark.parametrize("mode", ["sparse", "all"])
def test_decode(
    benchmark: BenchmarkFixture, clips: dict[str, Path], backend: str, gop: str, mode: str
) -> None:
    path = clips[gop]
    benchmark.group = f"{backend}, {gop}"
    if mode == "sparse":
        frames = benchmark(read_frames, path, INDICES)
    else:
        frames = benchmark(lambda: read_frames(path)[INDICES])
    assert frames.shape == (len(INDICES), HEIGHT, WIDTH, 3)


def test_full_decode(benchmark: BenchmarkFixture, clips: dict[str, Path], backend: str) -> None:
    benchmark.group = "full decode, GOP 250"
    frames = benchmark(read_frames, clips["GOP 250"])
    assert frames.shape == (NUM_FRAMES, HEIGHT, WIDTH, 3)


def ffmpeg_null_seconds(path: Path) -> float:
    """ffmpeg's own real time (``-benchmark``'s rtime, printed at the default log level) for decoding
    ``path`` to nothing on one thread."""
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-benchmark", "-threads", "1", "-i", str(path), "-f", "null", "-"]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    return float(re.search(r"rtime=([0-9.]+)s", result.stdout + result.stderr).group(1))


def test_ffmpeg_null(benchmark: BenchmarkFixture, clips: dict[str, Path]) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("no ffmpeg command here (apt-get install ffmpeg)")
    benchmark.group = "full decode, GOP 250"
    seconds = benchmark(ffmpeg_null_seconds, clips["GOP 250"])
    benchmark.extra_info["ffmpeg_seconds"] = seconds
    benchmark.extra_info["frames_per_second"] = NUM_FRAMES / seconds
