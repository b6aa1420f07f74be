"""Tests for rewardkit.video.io: probing and reading images, videos, GIFs and frame folders."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from rewardkit.video import io
from rewardkit.video.io import (
    DecodeError,
    MediaInfo,
    media_kind,
    open_media,
    probe,
    read_frames,
    video_backend,
    write_video,
)

NUM_FRAMES, HEIGHT, WIDTH = 16, 64, 96
CONTAINERS = [".mp4", ".webm", ".mov", ".avi", ".mkv"]
# Mean absolute error allowed between written and decoded frames (lossy codecs on smooth content).
MAX_MEAN_ERROR = {".mp4": 2.0, ".webm": 4.0, ".mov": 2.0, ".avi": 4.0, ".mkv": 2.0, ".gif": 4.0}


def make_frames(num_frames: int = NUM_FRAMES, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """Smooth frames whose blue level and square position encode the frame index."""
    yy, xx = np.mgrid[:height, :width]
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        frames[t, ..., 0] = xx * 255 // max(width - 1, 1)
        frames[t, ..., 1] = yy * 255 // max(height - 1, 1)
        frames[t, ..., 2] = 16 + t * 224 // max(num_frames - 1, 1)
        x0 = (t * 5) % max(width - 16, 1)
        frames[t, 8:24, x0 : x0 + 16] = 255
    return frames


def nearest_source(decoded: np.ndarray, source: np.ndarray) -> list[int]:
    """For each decoded frame, the index of the most similar source frame."""
    errors = np.abs(decoded[:, None].astype(np.int16) - source[None].astype(np.int16)).mean(axis=(2, 3, 4))
    return errors.argmin(axis=1).tolist()


@pytest.fixture(params=io.VIDEO_BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once per video backend available here: torchcodec (skipped where it cannot load, e.g.
    without FFmpeg's shared libraries) and the PyAV fallback."""
    if request.param == "torchcodec" and io._torchcodec_decoders() is None:
        pytest.skip(f"torchcodec cannot load here: {io._torchcodec_state}")
    monkeypatch.setenv(io.BACKEND_ENV, request.param)
    return request.param


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small video per container, written from make_frames()."""
    root = tmp_path_factory.mktemp("videos")
    paths = {}
    for ext in [*CONTAINERS, ".gif"]:
        paths[ext] = root / f"clip{ext}"
        write_video(paths[ext], make_frames())
    return paths


def write_with_gop(path: Path, frames: np.ndarray, gop: int, rotation: int = 0) -> None:
    """An H.264 mp4 with a keyframe every ``gop`` frames (and B-frames, so decode order != display
    order), optionally with a display matrix rotating it ``rotation`` degrees counter-clockwise."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8, options={"g": str(gop), "keyint_min": str(gop), "bf": "2"})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())


def write_faststart_mp4(path: Path, frames: np.ndarray) -> None:
    """An mp4 with its index (moov) first, so a truncated copy still declares every frame."""
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())


# ------------------------------------------------------------------------------------------ media_kind


def test_media_kind_by_extension(tmp_path: Path) -> None:
    assert media_kind("a.mp4") == "video"
    assert media_kind("dir/A.MOV") == "video"
    assert media_kind("clip.gif") == "video"
    assert media_kind("x.png") == "image"
    assert media_kind("x.JPEG") == "image"
    assert media_kind(tmp_path / "notes.txt") is None
    assert media_kind("no_extension") is None


def test_media_kind_frame_folders(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    assert media_kind(frames) is None  # empty
    Image.new("RGB", (4, 4)).save(frames / "0.png")
    (frames / ".DS_Store").write_bytes(b"\0")
    assert media_kind(frames) == "video"
    (frames / "notes.txt").write_text("x")
    assert media_kind(frames) is None
    (frames / "notes.txt").unlink()
    (frames / "sub").mkdir()
    assert media_kind(frames) is None


# ------------------------------------------------------------------------------------- video containers


@pytest.mark.parametrize("ext", CONTAINERS)
def test_probe_video(videos: dict[str, Path], ext: str, backend: str) -> None:
    with open_media(videos[ext]) as media:
        assert media.backend == backend  # no silent fallback on a good file
    info = probe(videos[ext])
    # write_video's default rate is 8 fps; the container's average rate must read back as exactly that.
    assert info == MediaInfo(str(videos[ext]), "video", NUM_FRAMES, HEIGHT, WIDTH, fps=8.0)


@pytest.mark.parametrize("ext", CONTAINERS)
def test_read_all_frames(videos: dict[str, Path], ext: str, backend: str) -> None:
    frames = read_frames(videos[ext])
    source = make_frames()
    assert frames.shape == (NUM_FRAMES, HEIGHT, WIDTH, 3) and frames.dtype == np.uint8
    assert nearest_source(frames, source) == list(range(NUM_FRAMES))
    assert np.abs(frames.astype(np.int16) - source).mean() < MAX_MEAN_ERROR[ext]


@pytest.mark.parametrize("ext", [*CONTAINERS, ".gif"])
def test_sparse_read_matches_full_read(videos: dict[str, Path], ext: str, backend: str) -> None:
    indices = [9, 0, 15, 9, 3]  # unsorted, with a duplicate
    full = read_frames(videos[ext])
    sparse = read_frames(videos[ext], indices)
    assert sparse.shape == (len(indices), HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(sparse, full[indices])


@pytest.mark.parametrize("ext", CONTAINERS)
def test_torchcodec_and_pyav_agree(videos: dict[str, Path], ext: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if io._torchcodec_decoders() is None:
        pytest.skip(f"torchcodec cannot load here: {io._torchcodec_state}")
    monkeypatch.setenv(io.BACKEND_ENV, "torchcodec")
    with_torchcodec = read_frames(videos[ext])
    monkeypatch.setenv(io.BACKEND_ENV, "pyav")
    with_pyav = read_frames(videos[ext])
    # Same bitstream and FFmpeg's bit-exact decoders; the yuv->rgb conversions differ by rounding at most.
    assert np.abs(with_torchcodec.astype(np.int16) - with_pyav).max() <= 2


@pytest.mark.parametrize("gop", [4, 250])
def test_sparse_reads_with_keyframes(tmp_path: Path, gop: int, backend: str) -> None:
    """Sparse reads seek to the keyframe before each wanted frame; frames must equal a full decode's,
    bit for bit, at either keyframe interval (B-frames included)."""
    path = tmp_path / f"gop{gop}.mp4"
    write_with_gop(path, make_frames(24), gop)
    full = read_frames(path)
    for indices in ([5, 13, 22], [23, 0, 11, 12], [7, 6]):
        np.testing.assert_array_equal(read_frames(path, indices), full[indices])


def test_pyav_decodes_from_the_keyframe_before_each_wanted_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a keyframe every 4 frames, frames 5 and 13 need frames 4-5 and 12-13 decoded (4 in all, by
    hand), and only the 2 wanted frames converted to RGB."""
    monkeypatch.setenv(io.BACKEND_ENV, "pyav")
    path = tmp_path / "gop4.mp4"
    write_with_gop(path, make_frames(24), 4)
    decoded: list[int] = []
    conversions: list[int] = []
    real_decoded, real_rgb = io._PyAVVideo._decoded, io._PyAVVideo._rgb

    def counting_decoded(self: io._PyAVVideo) -> object:
        for frame in real_decoded(self):
            decoded.append(frame.pts)
            yield frame

    def counting_rgb(self: io._PyAVVideo, frame: av.VideoFrame) -> np.ndarray:
        conversions.append(frame.pts)
        return real_rgb(self, frame)

    monkeypatch.setattr(io._PyAVVideo, "_decoded", counting_decoded)
    monkeypatch.setattr(io._PyAVVideo, "_rgb", counting_rgb)
    with open_media(path) as media:
        decoded.clear()  # opening decodes the first frame once, for the rotation
        media.read([13, 5, 13])
    assert len(decoded) == 4 and len(conversions) == 2


def test_pyav_counts_frames_from_the_container_index(videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """mp4/mov/avi index every frame: no packet scan at open. mkv/webm index keyframes only: a scan."""
    monkeypatch.setenv(io.BACKEND_ENV, "pyav")
    scans: list[str] = []
    real_scan = io._PyAVVideo._count_by_demux

    def counting_scan(self: io._PyAVVideo) -> int:
        scans.append(self.path.suffix)
        return real_scan(self)

    monkeypatch.setattr(io._PyAVVideo, "_count_by_demux", counting_scan)
    for ext in CONTAINERS:
        assert probe(videos[ext]).num_frames == NUM_FRAMES
    assert scans == [".webm", ".mkv"]


def test_out_of_range_index(videos: dict[str, Path], backend: str) -> None:
    with pytest.raises(ValueError, match=r"\[16\] are out of range.*valid indices are 0\.\.15"):
        read_frames(videos[".mp4"], [0, 16])
    with pytest.raises(ValueError, match=r"\[-1\] are out of range"):
        read_frames(videos[".mp4"], [-1])


def test_empty_index_list(videos: dict[str, Path]) -> None:
    assert read_frames(videos[".mp4"], []).shape == (0, HEIGHT, WIDTH, 3)


def test_boolean_mask_is_rejected(videos: dict[str, Path]) -> None:
    with pytest.raises(TypeError, match="not a boolean mask"):
        read_frames(videos[".mp4"], [True, False])


def test_numpy_indices(videos: dict[str, Path]) -> None:
    frames = read_frames(videos[".mp4"], np.array([2, 4]))
    np.testing.assert_array_equal(frames, read_frames(videos[".mp4"])[[2, 4]])


def test_one_frame_video(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "one.mp4"
    write_video(path, make_frames(1))
    assert probe(path).num_frames == 1
    assert read_frames(path).shape == (1, HEIGHT, WIDTH, 3)
    with pytest.raises(ValueError, match=r"valid indices are 0\.\.0"):
        read_frames(path, [1])


def test_video_without_frames(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "empty_stream.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        container.start_encoding()  # writes the header although no frame follows
    for call in (probe, read_frames):
        with pytest.raises(DecodeError, match=r"empty_stream\.mp4.*contains no video frames"):
            call(path)


# ------------------------------------------------------------------------------------ broken video files


def test_zero_byte_file(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    for call in (probe, read_frames):
        with pytest.raises(DecodeError, match=r"empty\.mp4.*the file is empty \(0 bytes\)"):
            call(path)


def test_random_bytes_named_mp4(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    for call in (probe, read_frames):
        with pytest.raises(
            DecodeError, match=r"noise\.mp4.*cannot open it as a video.*ffmpeg -i IN -c:v libx264"
        ):
            call(path)


def test_truncated_mp4(videos: dict[str, Path], tmp_path: Path, backend: str) -> None:
    """The first half of an mp4 written by PyAV/FFmpeg lacks the index (moov), which comes last."""
    data = videos[".mp4"].read_bytes()
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: len(data) // 2])
    for call in (probe, read_frames):
        with pytest.raises(DecodeError, match=r"half\.mp4.*truncated.*ffmpeg -i IN"):
            call(path)


def test_truncated_faststart_mp4(tmp_path: Path, backend: str) -> None:
    """With the index first, the header still declares 16 frames but only some packets remain."""
    full = tmp_path / "full.mp4"
    write_faststart_mp4(full, make_frames())
    data = full.read_bytes()
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: len(data) // 2])
    for call in (probe, read_frames):
        with pytest.raises(
            DecodeError, match=r"half\.mp4.*declares 16 frames but only \d+ are present.*truncated"
        ):
            call(path)


def test_torchcodec_failure_falls_back_to_pyav(videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A file torchcodec rejects is read by PyAV, and the backend says so."""
    decoders = io._torchcodec_decoders()
    if decoders is None:
        pytest.skip(f"torchcodec cannot load here: {io._torchcodec_state}")

    def rejecting_decoder(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Could not open input file")

    monkeypatch.setattr(decoders, "VideoDecoder", rejecting_decoder)
    with open_media(videos[".mp4"]) as media:
        assert media.backend == "pyav"
        frames = media.read([1, 15])
    monkeypatch.setenv(io.BACKEND_ENV, "pyav")
    np.testing.assert_array_equal(frames, read_frames(videos[".mp4"], [1, 15]))


def test_missing_torchcodec_falls_back_without_error(
    videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A machine where torchcodec cannot load (no FFmpeg libraries) reads everything with PyAV."""
    monkeypatch.delenv(io.BACKEND_ENV, raising=False)
    monkeypatch.setattr(io, "_torchcodec_state", None)
    monkeypatch.setitem(sys.modules, "torchcodec.decoders", None)  # makes the import raise ImportError
    assert video_backend() == "pyav"
    with open_media(videos[".mp4"]) as media:
        assert media.backend == "pyav" and media.info.num_frames == NUM_FRAMES
        assert media.read([3]).shape == (1, HEIGHT, WIDTH, 3)
    monkeypatch.setenv(io.BACKEND_ENV, "torchcodec")
    with pytest.raises(ValueError, match=r"torchcodec cannot be loaded here.*apt-get install"):
        probe(videos[".mp4"])
    with pytest.raises(ValueError, match=r"needs torchcodec.*apt-get install"):
        open_media(videos[".mp4"], device="cuda")



TORCHCODEC_IN_A_FRESH_PROCESS = """
import sys
import numpy as np
import torch
from rewardkit.video import io
from tests.test_video_io import make_frames
{prepare}
if io._torchcodec_decoders() is None:
    print("unavailable", io._torchcodec_state)
    raise SystemExit
path = sys.argv[1]
io.write_video(path, make_frames())
with io.open_media(path) as media:
    frames = media.read([2, 9])
    backend = media.backend
io.os.environ[io.BACKEND_ENV] = "pyav"
gap = int(np.abs(frames.astype(np.int16) - io.read_frames(path, [2, 9])).max())
print(backend, "torch._dynamo" in sys.modules, "_dynamo" in vars(torch), gap)
"""


def run_torchcodec_in_a_fresh_process(tmp_path: Path, prepare: str = "") -> list[str]:
    code = TORCHCODEC_IN_A_FRESH_PROCESS.format(prepare=prepare)
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "clip.mp4")], capture_output=True, text=True, timeout=600,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode == 0, result.stderr
    words = result.stdout.split()
    if words[0] == "unavailable":
        pytest.skip(f"torchcodec cannot load here: {' '.join(words[1:])}")
    return words


def test_torchcodec_loads_without_torch_dynamo(tmp_path: Path) -> None:
    """Loading torchcodec must not import torch._dynamo (about the cost of `import torch` again): checked in
    a fresh interpreter through sys.modules, with the stand-in gone from torch afterwards, and the frames it
    decodes within 2 levels of PyAV's (the same tolerance as test_torchcodec_and_pyav_agree)."""
    backend, dynamo_imported, stand_in_left, gap = run_torchcodec_in_a_fresh_process(tmp_path)
    assert (backend, dynamo_imported, stand_in_left) == ("torchcodec", "False", "False")
    assert int(gap) <= 2


@pytest.mark.slow  # imports torch._dynamo in a fresh interpreter: seconds
def test_torchcodec_that_needs_more_of_torch_dynamo_is_imported_as_it_is(tmp_path: Path) -> None:
    """A torchcodec version that uses more of torch._dynamo at import than the stand-in offers (here: a
    stand-in without disallow_in_graph) is imported for real after all, with torch._dynamo, and decodes."""
    prepare = "del io._DynamoStandIn.disallow_in_graph"
    backend, dynamo_imported, stand_in_left, gap = run_torchcodec_in_a_fresh_process(tmp_path, prepare)
    assert (backend, dynamo_imported) == ("torchcodec", "True") and int(gap) <= 2

def test_backend_and_device_are_checked(videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(io.BACKEND_ENV, "decord")
    with pytest.raises(ValueError, match=r"REWARDKIT_VIDEO_BACKEND='decord' is not a video backend.*torchcodec, pyav"):
        probe(videos[".mp4"])
    monkeypatch.delenv(io.BACKEND_ENV)
    with pytest.raises(ValueError, match=r"decode device must be 'cpu', 'cuda' or 'cuda:N', got 'gpu'"):
        open_media(videos[".mp4"], device="gpu")


def test_probe_and_read_share_one_open(videos: dict[str, Path], backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """open_media opens the file once; info and reads come from that one open."""
    opened: list[str] = []
    real_pyav, real_torchcodec = io._PyAVVideo.__init__, io._TorchcodecVideo.__init__

    def count_pyav(self: io._PyAVVideo, *args: object) -> None:
        opened.append("pyav")
        real_pyav(self, *args)

    def count_torchcodec(self: io._TorchcodecVideo, *args: object) -> None:
        opened.append("torchcodec")
        real_torchcodec(self, *args)

    monkeypatch.setattr(io._PyAVVideo, "__init__", count_pyav)
    monkeypatch.setattr(io._TorchcodecVideo, "__init__", count_torchcodec)
    with open_media(videos[".mp4"]) as media:
        assert media.info.num_frames == NUM_FRAMES
        media.read([0, 8])
        media.read()
    assert opened == [backend]


# ------------------------------------------------------------------------------------------ rotation


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_video_decodes_as_players_show_it(tmp_path: Path, rotation: int, backend: str) -> None:
    """A display matrix rotating by ``rotation`` degrees counter-clockwise (what phones write): frames come
    out turned as np.rot90 turns the source (counter-clockwise, k = rotation / 90), which is what ffmpeg's
    player-side autorotation shows; probe reports the same turned size."""
    source = make_frames(4)
    path = tmp_path / f"rot{rotation}.mp4"
    write_with_gop(path, source, gop=2, rotation=rotation)
    expected = np.rot90(source, rotation // 90, axes=(1, 2))
    info = probe(path)
    assert (info.height, info.width) == expected.shape[1:3]
    for frames in (read_frames(path), read_frames(path, [3, 1])):
        assert frames.shape[1:3] == expected.shape[1:3]
    frames = read_frames(path)
    assert nearest_source(frames, expected) == [0, 1, 2, 3]
    assert np.abs(frames.astype(np.int16) - expected).mean() < 4.0  # lossy; a wrong turn gives ~80
    np.testing.assert_array_equal(read_frames(path, [3, 1]), frames[[3, 1]])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"gone\.mp4"):
        probe(tmp_path / "gone.mp4")


def test_non_media_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a video")
    assert media_kind(path) is None
    with pytest.raises(ValueError, match=r"notes\.txt.*unsupported extension '\.txt'.*Supported: videos"):
        read_frames(path)


# ------------------------------------------------------------------------------------------------- GIF


def test_gif(videos: dict[str, Path]) -> None:
    path = videos[".gif"]
    # 8 fps -> 125 ms per frame, but GIF stores centiseconds: Pillow writes 12 cs (round half to even), so
    # the file's own rate is 100 / 12 frames per second.
    assert probe(path) == MediaInfo(str(path), "video", NUM_FRAMES, HEIGHT, WIDTH, fps=pytest.approx(100 / 12))
    frames = read_frames(path)
    source = make_frames()
    assert frames.shape == (NUM_FRAMES, HEIGHT, WIDTH, 3) and frames.dtype == np.uint8
    assert nearest_source(frames, source) == list(range(NUM_FRAMES))
    assert np.abs(frames.astype(np.int16) - source).mean() < MAX_MEAN_ERROR[".gif"]
    with pytest.raises(ValueError, match=r"valid indices are 0\.\.15"):
        read_frames(path, [16])


@pytest.mark.parametrize("fps", [24.0, 30000 / 1001])
def test_probe_reports_the_container_frame_rate(tmp_path: Path, fps: float) -> None:
    """The rate write_video stored (24, and NTSC's 30000/1001) comes back from the container header."""
    path = tmp_path / "rate.mp4"
    write_video(path, make_frames(4), fps=fps)
    assert probe(path).fps == pytest.approx(fps, rel=1e-9)
    Image.new("RGB", (2, 2)).save(tmp_path / "still.png")
    assert probe(tmp_path / "still.png").fps is None  # an image has no frame rate


def test_gif_merges_identical_consecutive_frames(tmp_path: Path) -> None:
    """Documented Pillow behaviour of write_video(.gif): repeats become one longer frame."""
    path = tmp_path / "static.gif"
    write_video(path, np.repeat(make_frames(1), 4, axis=0))
    assert probe(path).num_frames == 1


# ---------------------------------------------------------------------------------------- frame folders


@pytest.fixture
def frame_folder(tmp_path: Path) -> Path:
    """12 PNG frames named frame_1..frame_12, so that lexical order would be wrong."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(make_frames(12)):
        Image.fromarray(frame).save(folder / f"frame_{t + 1}.png")
    (folder / ".DS_Store").write_bytes(b"\0\1")
    return folder


def test_frame_folder(frame_folder: Path) -> None:
    # A frame folder has no frame rate (fps None).
    assert probe(frame_folder) == MediaInfo(str(frame_folder), "video", 12, HEIGHT, WIDTH)
    np.testing.assert_array_equal(read_frames(frame_folder), make_frames(12))  # natural order, lossless


def test_frame_folder_reads_only_selected_files(frame_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real_read_image = io._read_image

    def spy(path: Path) -> np.ndarray:
        opened.append(path.name)
        return real_read_image(path)

    monkeypatch.setattr(io, "_read_image", spy)
    frames = read_frames(frame_folder, [10, 2, 10])
    assert sorted(opened) == ["frame_11.png", "frame_3.png"]
    np.testing.assert_array_equal(frames, make_frames(12)[[10, 2, 10]])


def test_frame_folder_with_mixed_sizes(frame_folder: Path) -> None:
    Image.new("RGB", (32, 32)).save(frame_folder / "frame_13.png")
    with pytest.raises(
        DecodeError, match=r"frame 'frame_13\.png' is 32x32 but 'frame_1\.png' is 96x64.*Resize"
    ):
        read_frames(frame_folder)


def test_directory_that_is_not_a_frame_folder(frame_folder: Path) -> None:
    (frame_folder / "sub").mkdir()
    with pytest.raises(ValueError, match="not a frame folder.*no other files or subdirectories"):
        probe(frame_folder)


# ----------------------------------------------------------------------------------------------- images


def test_grayscale_image(tmp_path: Path) -> None:
    gray = np.arange(HEIGHT * WIDTH, dtype=np.uint8).reshape(HEIGHT, WIDTH)
    Image.fromarray(gray, mode="L").save(tmp_path / "gray.png")
    frames = read_frames(tmp_path / "gray.png")
    assert frames.shape == (1, HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(frames[0], np.repeat(gray[:, :, None], 3, axis=2))


def test_rgba_image_drops_alpha(tmp_path: Path) -> None:
    rgba = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
    rgba[..., :3] = make_frames(1)[0]
    rgba[..., 3] = np.arange(WIDTH, dtype=np.uint8)  # alpha must not leak into the colors
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_frames(tmp_path / "rgba.png")[0], rgba[..., :3])


def test_palette_image(tmp_path: Path) -> None:
    image = Image.new("P", (WIDTH, HEIGHT))
    image.putpalette([255, 0, 0, 0, 255, 0] + [0, 0, 0] * 254)
    image.paste(1, (0, 0, WIDTH // 2, HEIGHT))
    image.save(tmp_path / "palette.png")
    frame = read_frames(tmp_path / "palette.png")[0]
    assert frame[0, 0].tolist() == [0, 255, 0] and frame[0, -1].tolist() == [255, 0, 0]


def test_16_bit_image_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    image.save(tmp_path / "deep.png")
    frame = read_frames(tmp_path / "deep.png")[0]
    assert frame.dtype == np.uint8
    assert frame[0, :, 0].tolist() == [0, 100, 255]
    assert (frame == frame[..., :1]).all()  # gray in all channels


def test_tiny_and_large_images(tmp_path: Path) -> None:
    Image.new("RGB", (1, 1), (10, 20, 30)).save(tmp_path / "tiny.png")
    assert probe(tmp_path / "tiny.png") == MediaInfo(str(tmp_path / "tiny.png"), "image", 1, 1, 1)
    assert read_frames(tmp_path / "tiny.png").tolist() == [[[[10, 20, 30]]]]
    Image.new("RGB", (4000, 3000), (200, 100, 50)).save(tmp_path / "large.jpg")
    assert probe(tmp_path / "large.jpg") == MediaInfo(str(tmp_path / "large.jpg"), "image", 1, 3000, 4000)
    frames = read_frames(tmp_path / "large.jpg")
    assert frames.shape == (1, 3000, 4000, 3)
    assert np.abs(frames[0, 1500, 2000].astype(int) - [200, 100, 50]).max() <= 2


def test_image_indices(tmp_path: Path) -> None:
    Image.new("RGB", (8, 6), (1, 2, 3)).save(tmp_path / "x.jpg")
    assert read_frames(tmp_path / "x.jpg", [0, 0]).shape == (2, 6, 8, 3)
    with pytest.raises(ValueError, match=r"\[1\] are out of range.*1 frame\(s\).*valid indices are 0\.\.0"):
        read_frames(tmp_path / "x.jpg", [1])


def test_broken_images(tmp_path: Path) -> None:
    (tmp_path / "empty.png").touch()
    with pytest.raises(DecodeError, match=r"empty\.png.*empty \(0 bytes\)"):
        read_frames(tmp_path / "empty.png")
    (tmp_path / "noise.jpg").write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(DecodeError, match=r"noise\.jpg.*Pillow cannot open it.*Re-save it as PNG"):
        probe(tmp_path / "noise.jpg")
    Image.fromarray(make_frames(1)[0]).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    for call in (probe, read_frames):
        with pytest.raises(DecodeError, match=r"cut\.png.*damaged.*Re-save it as PNG"):
            call(tmp_path / "cut.png")


# ---------------------------------------------------------------------------------------------- writing


def test_write_video_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"even height and width, got 63x96"):
        write_video(tmp_path / "odd.mp4", make_frames(2)[:, :63])
    with pytest.raises(ValueError, match=r"uint8 numpy array of shape \[T, H, W, 3\], got float32"):
        write_video(tmp_path / "float.mp4", make_frames(2).astype(np.float32))
    with pytest.raises(ValueError, match=r"extension must be one of"):
        write_video(tmp_path / "clip.png", make_frames(2))
    with pytest.raises(ValueError, match=r"fps must be a positive finite number, got 0"):
        write_video(tmp_path / "clip.mp4", make_frames(2), fps=0)


def test_write_video_keeps_libx264_default_gop(tmp_path: Path) -> None:
    path = tmp_path / "long.mp4"
    write_video(path, make_frames(40), fps=8)
    with av.open(str(path)) as container:
        keyframes = [packet.is_keyframe for packet in container.demux(video=0) if packet.size]
    assert len(keyframes) == 40 and keyframes.count(True) == 1  # x264's default keyint is 250


# ------------------------------------------------------------------------- decode device and rows


def test_decode_device_cuda_is_a_clear_usage_error_without_support(videos: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """`score --decode-device cuda` where torchcodec or the GPU is missing: exit 2 with the reason."""
    import torch

    from rewardkit.cli import main

    if io._torchcodec_decoders() is not None and torch.cuda.is_available():
        pytest.skip("this machine can decode on the GPU")
    code = main(["score", str(videos[".mp4"]), "--reward", "temporal_flickering", "--decode-device", "cuda",
                 "--no-progress", "--workers", "0"])
    assert code == 2
    assert re.search(r"decoding on 'cuda' needs (a CUDA GPU|torchcodec)", capsys.readouterr().err)


def test_rows_record_the_backend(videos: dict[str, Path], tmp_path: Path) -> None:
    """Each row says which library decoded its file: the video backend for a video, Pillow for an image."""
    from rewardkit.scoring import score

    Image.fromarray(make_frames(1)[0]).save(tmp_path / "still.png")
    rows = score([videos[".mp4"], tmp_path / "still.png"], ["temporal_flickering"], workers=0, progress=False)
    backends = {Path(path).suffix: backend for path, backend in zip(rows["path"], rows["backend"], strict=True)}
    assert backends == {".mp4": video_backend(), ".png": "pillow"}
