"""Sparse vs. full decoding of a 64-frame clip, with decord and with the PyAV fallback.

Run:
    uv run pytest benchmarks/bench_decode.py --benchmark-only -p no:cacheprovider

Each benchmark group holds one backend on one clip, so "sparse" (``read_frames(path, [0, 16, 32, 48])``,
the segmental sampling of 4 out of 64 frames) and "all" (``read_frames(path)[[0, 16, 32, 48]]``) sit
side by side. Two encodings of the same frames are measured: libx264's default keyframe interval
(keyint 250, so the whole clip is one GOP, as written by ``write_video``) and a keyframe every 16
frames, where each sampled frame is a keyframe.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from rewardkit.video import io
from rewardkit.video.io import read_frames, write_video

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


def write_gop16(path: Path, frames: np.ndarray) -> None:
    """Same settings as write_video(.mp4) except a keyframe every 16 frames."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8, options={"crf": "18", "preset": "fast"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.gop_size = 16
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bench")
    frames = make_clip()
    paths = {"default GOP": root / "default_gop.mp4", "GOP 16": root / "gop16.mp4"}
    write_video(paths["default GOP"], frames)
    write_gop16(paths["GOP 16"], frames)
    return paths


@pytest.fixture(params=["decord", "pyav"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "decord":
        pytest.importorskip("decord")

        def no_fallback(*args: object) -> None:
            raise AssertionError("decord fell back to PyAV; the benchmark would measure the wrong backend")

        monkeypatch.setattr(io, "_read_pyav", no_fallback)
    else:
        monkeypatch.setattr(io, "_FORCE_PYAV", True)
    return request.param


@pytest.mark.parametrize("gop", ["default GOP", "GOP 16"])
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
