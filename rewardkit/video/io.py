"""Reading and writing images, videos and frame folders as uint8 RGB arrays.

This is the bottom layer of rewardkit: it imports nothing from the rest of the package.

Backends:

* videos (``.mp4 .webm .mov .avi .mkv``): decord when it is importable (it only ships Linux x86_64
  wheels), PyAV otherwise or whenever decord fails on a file;
* GIFs and still images: Pillow;
* frame folders (a directory holding only image files): Pillow, one file per frame, in natural order.

Only the requested frames are converted to RGB; the PyAV backend stops decoding after the largest
requested index. Every failure to read a file is reported as :class:`DecodeError`.

Limits: a still image is its first frame (animated WebP/TIFF are not expanded) and EXIF orientation
is not applied. A truncated video raises DecodeError when FFmpeg cannot open it (an .mp4 cut before
its index, which FFmpeg writes last) or when fewer packets remain than its header declares (mp4/mov;
avi only on the PyAV path, as decord returns the readable prefix). mkv/webm declare no frame count,
so a truncated one reads as a shorter video with either backend.

Private switch: set ``rewardkit.video.io._FORCE_PYAV = True`` (e.g. with ``monkeypatch.setattr``) to
bypass decord and exercise the PyAV backend; tests and benchmarks use it to compare backends.
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image, ImageSequence

from rewardkit.parsing import natural_key

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "DecodeError",
    "MediaInfo",
    "iter_frames",
    "media_kind",
    "probe",
    "read_frames",
    "video_backend",
    "write_video",
]

VIDEO_EXTENSIONS = frozenset({".mp4", ".webm", ".mov", ".avi", ".mkv", ".gif"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})

PathLike = str | os.PathLike[str]

# Private switch: True makes every video go through PyAV even when decord is installed.
_FORCE_PYAV = False
# Lazily imported decord module; False means "import attempted and failed". decord is imported only
# after av (imported above): decord loads its bundled FFmpeg/libvpx with RTLD_GLOBAL, and when that
# happens before PyAV is loaded, PyAV's libvpx encoders bind to decord's older libvpx and fail to open.
_decord_module: ModuleType | None | bool = None

_REENCODE_HINT = (
    "If it plays in a media player, re-encode it with `ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p OUT.mp4`; "
    "otherwise regenerate or re-download it"
)
_IMAGE_HINT = "Re-save it as PNG (e.g. `PIL.Image.open(IN).convert('RGB').save(OUT.png)`) or regenerate it"


class DecodeError(Exception):
    """A media file exists but cannot be read; the message names the file, the cause and a fix."""


@dataclass(frozen=True)
class MediaInfo:
    """Header information about an image, a video or a frame folder."""

    path: str
    kind: str  # "image" or "video"
    num_frames: int
    height: int
    width: int
    fps: float | None = None  # the container's average frame rate; None for images, frame folders, GIFs


def _decode_error(path: Path, cause: str, hint: str) -> DecodeError:
    return DecodeError(f"Cannot read {str(path)!r}: {cause}. {hint}.")


def _ffmpeg_reason(exc: av.FFmpegError) -> str:
    return exc.strerror or str(exc)


def _is_hidden(entry: os.DirEntry[str]) -> bool:
    return entry.name.startswith(".")


def _frame_folder_files(path: Path) -> list[Path] | None:
    """The frames of a frame folder in natural order, or None when ``path`` is not a frame folder."""
    try:
        entries = [e for e in os.scandir(path) if not _is_hidden(e)]
    except OSError:
        return None
    if not entries:
        return None
    for entry in entries:
        if not entry.is_file() or Path(entry.name).suffix.lower() not in IMAGE_EXTENSIONS:
            return None
    return [path / name for name in sorted((e.name for e in entries), key=natural_key)]


def media_kind(path: PathLike) -> str | None:
    """Classify ``path`` as ``"video"``, ``"image"`` or None (not a supported media file).

    Files are classified by extension (case-insensitive; the file need not exist). A directory is a
    "video" (a frame folder) when it directly holds at least one image file and nothing else except
    hidden entries (names starting with ".", e.g. ``.DS_Store``).
    """
    p = Path(path)
    if p.is_dir():
        return "video" if _frame_folder_files(p) is not None else None
    suffix = p.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    return None


def _frame_folder_or_raise(path: Path) -> list[Path]:
    files = _frame_folder_files(path)
    if files is None:
        raise ValueError(
            f"{str(path)!r} is a directory but not a frame folder: a frame folder must directly contain "
            f"at least one image file ({', '.join(sorted(IMAGE_EXTENSIONS))}) and no other files or "
            "subdirectories (hidden entries are ignored). Move the other entries out."
        )
    return files


def _check_readable(path: PathLike) -> tuple[Path, str]:
    """Return ``(path, kind)`` after checking that ``path`` exists, is supported and is not empty."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"No such file or directory: {str(p)!r}. Check the path.")
    if p.is_dir():
        _frame_folder_or_raise(p)
        return p, "video"
    kind = media_kind(p)
    if kind is None:
        raise ValueError(
            f"{str(p)!r} has an unsupported extension {p.suffix!r}. Supported: videos "
            f"{', '.join(sorted(VIDEO_EXTENSIONS))}; images {', '.join(sorted(IMAGE_EXTENSIONS))}; "
            "or a directory of image frames."
        )
    if p.stat().st_size == 0:
        raise _decode_error(p, "the file is empty (0 bytes)", "Regenerate or re-download it")
    return p, kind


def video_backend() -> str:
    """The library that decodes video files here: ``decord`` when it imports, else ``PyAV``."""
    return "decord" if _decord() else "PyAV"


def _decord() -> ModuleType | None:
    """The decord module, or None when it is disabled or cannot be imported."""
    global _decord_module
    if _FORCE_PYAV:
        return None
    if _decord_module is None:
        try:
            import decord
        except (ImportError, OSError):
            _decord_module = False
        else:
            # decord logs every file it cannot open from C++; rewardkit reports those as DecodeError.
            decord.logging.set_level(decord.logging.QUIET)
            _decord_module = decord
    return _decord_module or None


def _is_gif(path: Path) -> bool:
    return path.suffix.lower() == ".gif"


# --------------------------------------------------------------------------------------------- images


def _open_image(path: Path) -> Image.Image:
    try:
        return Image.open(path)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise _decode_error(path, f"Pillow cannot open it as an image ({exc})", _IMAGE_HINT) from exc


def _image_to_rgb(image: Image.Image) -> np.ndarray:
    """Convert one Pillow frame of any mode to a uint8 ``[H, W, 3]`` RGB array."""
    if image.mode.startswith("I;16") or image.mode == "I":
        # 16-bit grayscale ("I" is how older Pillow opens 16-bit PNGs): scale 0..65535 to 0..255,
        # where Pillow's own convert("RGB") would clip everything above 255 to white.
        gray = np.asarray(image, dtype=np.float64)
        gray = np.clip(np.rint(gray / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _probe_image(path: Path) -> tuple[int, int, int]:
    with _open_image(path) as image:
        width, height = image.size
        try:
            image.verify()
        except Exception as exc:  # Pillow plugins raise assorted types for damaged files
            raise _decode_error(path, f"the image data is damaged ({exc})", _IMAGE_HINT) from exc
    return 1, height, width


def _read_image(path: Path) -> np.ndarray:
    with _open_image(path) as image:
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise _decode_error(path, f"the image data is damaged or truncated ({exc})", _IMAGE_HINT) from exc
        return _image_to_rgb(image)


# ----------------------------------------------------------------------------------------------- GIFs


def _probe_gif(path: Path) -> tuple[int, int, int]:
    with _open_image(path) as image:
        try:
            num_frames = image.n_frames
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise _decode_error(path, f"the GIF is damaged or truncated ({exc})", _IMAGE_HINT) from exc
        width, height = image.size
    return num_frames, height, width


def _read_gif(path: Path, wanted: list[int] | None) -> np.ndarray:
    """Frames of a GIF (all when ``wanted`` is None, else the sorted unique indices ``wanted``)."""
    frames = []
    with _open_image(path) as image:
        try:
            if wanted is None:
                frames = [_image_to_rgb(frame) for frame in ImageSequence.Iterator(image)]
            else:
                for index in wanted:
                    image.seek(index)
                    frames.append(_image_to_rgb(image))
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise _decode_error(path, f"the GIF is damaged or truncated ({exc})", _IMAGE_HINT) from exc
    return np.stack(frames)


# -------------------------------------------------------------------------------------- frame folders


def _probe_folder(path: Path) -> tuple[int, int, int]:
    files = _frame_folder_or_raise(path)
    with _open_image(files[0]) as image:
        width, height = image.size
    return len(files), height, width


def _read_folder(path: Path, wanted: list[int] | None) -> np.ndarray:
    files = _frame_folder_or_raise(path)
    selected = files if wanted is None else [files[i] for i in wanted]
    frames = []
    for file in selected:
        if file.stat().st_size == 0:
            raise _decode_error(file, "the frame file is empty (0 bytes)", "Regenerate the frame folder")
        frames.append(_read_image(file))
    first = frames[0].shape
    for file, frame in zip(selected, frames, strict=True):
        if frame.shape != first:
            raise _decode_error(
                path,
                f"frame {file.name!r} is {frame.shape[1]}x{frame.shape[0]} but {selected[0].name!r} is "
                f"{first[1]}x{first[0]}",
                "Resize all frames of the folder to the same size",
            )
    return np.stack(frames)


# ----------------------------------------------------------------------------------------- video: PyAV


def _av_open(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        raise _decode_error(
            path,
            f"FFmpeg cannot open it as a video ({_ffmpeg_reason(exc)}); it is corrupt, not a video, or "
            "truncated (e.g. an .mp4 cut off before its index was written)",
            _REENCODE_HINT,
        ) from exc
    if not container.streams.video:
        container.close()
        raise _decode_error(
            path, "it contains no video frames (no video stream, or an empty one)", "Regenerate it"
        )
    return container


def _probe_pyav(path: Path) -> tuple[int, int, int]:
    """Frame count and size from the header, checked by a demux pass (reads packets, decodes nothing)."""
    with _av_open(path) as container:
        stream = container.streams.video[0]
        height, width = stream.codec_context.height, stream.codec_context.width
        declared = stream.frames  # 0 when the container stores no frame count (webm, mkv)
        try:
            num_frames = sum(1 for packet in container.demux(stream) if packet.size > 0)
        except av.FFmpegError as exc:
            raise _decode_error(
                path,
                f"reading its packets failed ({_ffmpeg_reason(exc)}); it is probably truncated or corrupt",
                _REENCODE_HINT,
            ) from exc
    if num_frames < declared:
        raise _decode_error(
            path,
            f"its header declares {declared} frames but only {num_frames} are present; it is probably truncated",
            _REENCODE_HINT,
        )
    if width <= 0 or height <= 0:
        raise _decode_error(path, "the video stream has no frame size in its header", _REENCODE_HINT)
    return num_frames, height, width


def _read_pyav(path: Path, wanted: list[int] | None, expected: int) -> np.ndarray:
    """Decode sequentially, converting only the frames in ``wanted`` (sorted, unique; None = all)."""
    frames: list[np.ndarray] = []
    decoded = 0
    # One reformatter for all frames: frame.to_ndarray(format=...) builds a new SwsContext per frame,
    # which made the RGB conversion several times slower than decoding (PyAV 18 / FFmpeg 8).
    to_rgb = VideoReformatter()
    with _av_open(path) as container:
        stream = container.streams.video[0]
        wanted_set = None if wanted is None else set(wanted)
        last = None if wanted is None else wanted[-1]
        try:
            for index, frame in enumerate(container.decode(stream)):
                decoded = index + 1
                if wanted_set is None or index in wanted_set:
                    frames.append(to_rgb.reformat(frame, format="rgb24").to_ndarray())
                if last is not None and index >= last:
                    break
        except av.FFmpegError as exc:
            raise _decode_error(
                path, f"decoding failed after {decoded} frame(s) ({_ffmpeg_reason(exc)})", _REENCODE_HINT
            ) from exc
    if len(frames) < (expected if wanted is None else len(wanted)):
        raise _decode_error(
            path,
            f"only {decoded} of its {expected} frame(s) could be decoded; the file is probably truncated",
            _REENCODE_HINT,
        )
    return np.stack(frames)


# --------------------------------------------------------------------------------------- video: decord


def _probe_decord(decord: ModuleType, path: Path) -> tuple[int, int, int]:
    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    height, width, _ = reader[0].shape
    return len(reader), height, width


def _read_decord(decord: ModuleType, path: Path, wanted: list[int] | None) -> np.ndarray | None:
    """Read with decord; None when decord cannot handle the file (the caller falls back to PyAV)."""
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        num_frames = len(reader)
    except Exception:  # decord raises assorted types (DECORDError, AssertionError, RuntimeError)
        return None
    if wanted is not None:
        _check_indices(wanted, num_frames)
    try:
        batch = reader.get_batch(list(range(num_frames)) if wanted is None else wanted)
    except Exception:  # e.g. late frames of a truncated file whose header promises more
        return None
    # decord returns its own NDArray, or a framework tensor if someone called decord.bridge.set_bridge.
    frames = batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)
    return np.ascontiguousarray(frames, dtype=np.uint8)


def _read_video_file(path: Path, wanted: list[int] | None) -> np.ndarray:
    decord = _decord()
    if decord is not None:
        frames = _read_decord(decord, path, wanted)
        if frames is not None:
            return frames
    num_frames = _probe_pyav(path)[0]
    if num_frames == 0:
        raise _decode_error(path, "it contains no video frames", "Regenerate it")
    if wanted is not None:
        _check_indices(wanted, num_frames)
    return _read_pyav(path, wanted, num_frames)


# -------------------------------------------------------------------------------------------- public


def _check_indices(indices: Sequence[int], num_frames: int) -> None:
    bad = [i for i in indices if not 0 <= i < num_frames]
    if bad:
        raise ValueError(
            f"frame indices {bad[:5]} are out of range: this media has {num_frames} frame(s), "
            f"so valid indices are 0..{num_frames - 1}"
        )


def _probe_video(path: Path) -> tuple[int, int, int]:
    if path.is_dir():
        return _probe_folder(path)
    if _is_gif(path):
        return _probe_gif(path)
    decord = _decord()
    if decord is not None:
        try:
            return _probe_decord(decord, path)
        except Exception:  # decord raises assorted types (DECORDError, AssertionError, RuntimeError)
            pass  # PyAV either succeeds or gives a clearer diagnosis
    return _probe_pyav(path)


def probe(path: PathLike) -> MediaInfo:
    """Return the kind, frame count and frame size of a media file without decoding every frame.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not a supported image, video or frame folder.
        DecodeError: the file is empty, corrupt, truncated or has no frames.
    """
    p, kind = _check_readable(path)
    num_frames, height, width = _probe_image(p) if kind == "image" else _probe_video(p)
    if num_frames <= 0:
        raise _decode_error(p, "it contains no video frames", "Regenerate it")
    fps = None if kind == "image" or p.is_dir() or _is_gif(p) else _container_fps(p)
    return MediaInfo(path=str(path), kind=kind, num_frames=num_frames, height=height, width=width, fps=fps)


def _container_fps(path: Path) -> float | None:
    """The video stream's average frame rate as the container records it (None when it records none)."""
    with _av_open(path) as container:
        rate = container.streams.video[0].average_rate
    return float(rate) if rate and rate > 0 else None


def _normalize_indices(indices: Sequence[int]) -> list[int]:
    result = []
    for i in indices:
        if isinstance(i, (bool, np.bool_)):
            raise TypeError("indices must be frame positions such as [0, 8, 16], not a boolean mask")
        try:
            result.append(operator.index(i))
        except TypeError as exc:
            raise TypeError(f"indices must be integers, got {i!r} ({type(i).__name__})") from exc
    return result


def read_frames(path: PathLike, indices: Sequence[int] | None = None) -> np.ndarray:
    """Read frames as a uint8 ``[N, H, W, 3]`` RGB array, decoding only what is asked.

    Args:
        path: an image, a video file (including GIF) or a frame folder.
        indices: frame positions (0-based, duplicates and any order allowed; the output follows this
            order). None reads every frame. An image has exactly one frame, index 0.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unsupported path, or an index outside ``0..num_frames-1``.
        DecodeError: the file is empty, corrupt or truncated.
    """
    p, kind = _check_readable(path)
    order = None if indices is None else _normalize_indices(indices)
    if order is not None and not order:
        info = probe(p)
        return np.empty((0, info.height, info.width, 3), dtype=np.uint8)
    wanted = None if order is None else sorted(set(order))
    if kind == "image":
        if wanted is not None:
            _check_indices(wanted, 1)
        frames = _read_image(p)[None]
    elif p.is_dir() or _is_gif(p):
        if wanted is not None:
            _check_indices(wanted, _probe_video(p)[0])
        frames = _read_folder(p, wanted) if p.is_dir() else _read_gif(p, wanted)
    else:
        frames = _read_video_file(p, wanted)
    if order is None:
        return frames
    row = {index: position for position, index in enumerate(wanted)}
    return frames[[row[i] for i in order]]


def iter_frames(path: PathLike, indices: Sequence[int] | None = None, chunk: int = 16) -> Iterator[np.ndarray]:
    """Yield the frames at ``indices`` (strictly increasing; None = every frame) as uint8 ``[k, H, W, 3]``
    RGB arrays of at most ``chunk`` frames, in order, holding no more than one chunk at a time.

    Video files are decoded sequentially with PyAV, converting only the wanted frames; frame folders and
    GIFs are read ``chunk`` frames at a time. Raises as :func:`read_frames` does, and ValueError for
    indices that are not strictly increasing or a ``chunk`` below 1.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 frame, got {chunk}")
    p, kind = _check_readable(path)
    wanted = None if indices is None else _normalize_indices(indices)
    if wanted is not None and any(b <= a for a, b in zip(wanted[:-1], wanted[1:], strict=True)):
        raise ValueError("iter_frames reads frames in order: indices must be strictly increasing")
    if kind == "image" or p.is_dir() or _is_gif(p):
        num_frames = 1 if kind == "image" else _probe_video(p)[0]
        wanted = list(range(num_frames)) if wanted is None else wanted
        _check_indices(wanted, num_frames)
        for start in range(0, len(wanted), chunk):
            part = wanted[start : start + chunk]
            yield _read_image(p)[None] if kind == "image" else _read_folder(p, part) if p.is_dir() else _read_gif(p, part)
        return
    expected = _probe_pyav(p)[0]
    if expected == 0:
        raise _decode_error(p, "it contains no video frames", "Regenerate it")
    if wanted is not None:
        _check_indices(wanted, expected)
    last = expected - 1 if wanted is None else wanted[-1]
    wanted_set = None if wanted is None else set(wanted)
    to_rgb, frames, decoded, converted = VideoReformatter(), [], 0, 0
    with _av_open(p) as container:
        stream = container.streams.video[0]
        try:
            for index, frame in enumerate(container.decode(stream)):
                decoded = index + 1
                if wanted_set is None or index in wanted_set:
                    frames.append(to_rgb.reformat(frame, format="rgb24").to_ndarray())
                    converted += 1
                if len(frames) == chunk or (index >= last and frames):
                    yield np.stack(frames)
                    frames = []
                if index >= last:
                    break
        except av.FFmpegError as exc:
            raise _decode_error(
                p, f"decoding failed after {decoded} frame(s) ({_ffmpeg_reason(exc)})", _REENCODE_HINT
            ) from exc
    if frames:
        yield np.stack(frames)
    if converted < (expected if wanted is None else len(wanted)):
        raise _decode_error(
            p, f"only {decoded} of its {expected} frame(s) could be decoded; the file is probably truncated", _REENCODE_HINT
        )


# ------------------------------------------------------------------------------------------- writing

# extension -> (PyAV codec, encoder options)
_VIDEO_CODECS: dict[str, tuple[str, dict[str, str]]] = {
    ".mp4": ("libx264", {"crf": "18", "preset": "fast"}),
    ".mov": ("libx264", {"crf": "18", "preset": "fast"}),
    ".mkv": ("libx264", {"crf": "18", "preset": "fast"}),
    ".webm": ("libvpx-vp9", {"crf": "30", "b": "0", "deadline": "good", "cpu-used": "5"}),
    # MPEG-4 Part 2 at fixed quantizer 3 (global_quality is in lambda units: qscale * FF_QP2LAMBDA=118).
    ".avi": ("mpeg4", {"flags": "+qscale", "global_quality": str(3 * 118)}),
}


def write_video(path: PathLike, frames: np.ndarray, fps: float = 8.0) -> None:
    """Write uint8 ``[T, H, W, 3]`` RGB frames to a video file chosen by the extension of ``path``.

    ``.mp4``/``.mov``/``.mkv``: libx264, yuv420p, crf 18, preset fast, libx264's default keyframe
    interval. ``.webm``: VP9 (libvpx-vp9). ``.avi``: MPEG-4 Part 2. ``.gif``: Pillow, looping forever,
    one frame every ``1000 / fps`` ms; note that Pillow merges identical consecutive frames into one
    longer frame, so such a GIF reads back with fewer frames.

    The yuv420p formats need an even height and width; odd sizes raise ValueError rather than being
    padded silently (crop or pad the frames yourself).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in VIDEO_EXTENSIONS:
        raise ValueError(
            f"Cannot write {str(p)!r}: the extension must be one of {', '.join(sorted(VIDEO_EXTENSIONS))}"
        )
    if (
        not isinstance(frames, np.ndarray)
        or frames.dtype != np.uint8
        or frames.ndim != 4
        or frames.shape[-1] != 3
    ):
        got = (
            f"{type(frames).__name__}"
            if not isinstance(frames, np.ndarray)
            else f"{frames.dtype} {frames.shape}"
        )
        raise ValueError(
            f"frames must be a uint8 numpy array of shape [T, H, W, 3], got {got}; "
            "convert with `np.clip(x, 0, 255).astype(np.uint8)`"
        )
    num_frames, height, width, _ = frames.shape
    if num_frames == 0 or height == 0 or width == 0:
        raise ValueError(f"frames must not be empty, got shape {frames.shape}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive finite number, got {fps}")
    if suffix == ".gif":
        images = [Image.fromarray(frame) for frame in frames]
        images[0].save(p, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        return
    if height % 2 or width % 2:
        raise ValueError(
            f"{suffix} is written as yuv420p, which needs an even height and width, got {height}x{width}; "
            "crop with `frames[:, : h // 2 * 2, : w // 2 * 2]` or pad by one pixel"
        )
    codec, options = _VIDEO_CODECS[suffix]
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(p), mode="w") as container:
        stream = container.add_stream(codec, rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = 1 / rate
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
