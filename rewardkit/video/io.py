"""Reading and writing images, videos and frame folders as uint8 RGB arrays.

This is the bottom layer of rewardkit: it imports nothing from the rest of the package.

Backends (:func:`video_backend` says which one is used here; the ``backend`` column of score rows records
it per file):

* video files (``.mp4 .webm .mov .avi .mkv``): torchcodec, PyTorch's decoder, wherever it loads (it needs
  FFmpeg's shared libraries, versions 4 to 8, installed on the system). It scans the packets once at open
  (exact frame count, every frame's position) and decodes exactly the frames asked for, from the keyframe
  before each; ``device="cuda"`` decodes on the GPU. PyAV (which bundles its own FFmpeg) is the fallback:
  where torchcodec does not load, and for any file torchcodec rejects. PyAV takes the frame count from the
  container's index where that indexes every frame inside the file (mp4, mov, avi; otherwise it counts
  packets, decoding nothing), seeks to the keyframe before each wanted frame and decodes forward.
  ``REWARDKIT_VIDEO_BACKEND=pyav`` (or ``torchcodec``) forces one. decord is not supported: it has had no
  release since 2021 and ships Linux x86_64 wheels only, and torchcodec does what it did.
* GIFs and still images: Pillow;
* frame folders (a directory holding only image files): Pillow, one file per frame, in natural order.

Frames come out as players show them: a video's display matrix rotation (a multiple of 90 degrees, e.g.
phone footage) is applied, and probe reports the rotated size. Flips in the display matrix are not applied.

Only the requested frames are converted to RGB. Every failure to read a file is reported as
:class:`DecodeError`.

Limits: a still image is its first frame (animated WebP/TIFF are not expanded) and EXIF orientation
is not applied. A truncated video raises DecodeError when FFmpeg cannot open it (an .mp4 cut before
its index, which FFmpeg writes last) or when fewer packets remain than its header declares (mp4, mov,
avi). mkv/webm declare no frame count, so a truncated one reads as a shorter video.
"""

from __future__ import annotations

import bisect
import importlib
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
    "BACKEND_ENV",
    "IMAGE_EXTENSIONS",
    "VIDEO_BACKENDS",
    "VIDEO_EXTENSIONS",
    "DecodeError",
    "Media",
    "MediaInfo",
    "check_decode_device",
    "iter_frames",
    "media_kind",
    "open_media",
    "probe",
    "read_frames",
    "video_backend",
    "write_video",
]

VIDEO_EXTENSIONS = frozenset({".mp4", ".webm", ".mov", ".avi", ".mkv", ".gif"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})

PathLike = str | os.PathLike[str]

# Video file backends in order of preference, and the environment variable that forces one.
VIDEO_BACKENDS = ("torchcodec", "pyav")
BACKEND_ENV = "REWARDKIT_VIDEO_BACKEND"

# torchcodec.decoders once imported, or why the import failed (None: not tried yet).
_torchcodec_state: ModuleType | str | None = None

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
    # Average frame rate from the container (frames per second); None for images and frame folders, and
    # for a video whose container declares no rate.
    fps: float | None = None


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
    return np.array(image.convert("RGB"), dtype=np.uint8)  # a writable copy, as every other source gives


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


def _probe_gif(path: Path) -> tuple[int, int, int, float | None]:
    """Frame count, size and average frame rate (frames over the summed frame durations, if any)."""
    with _open_image(path) as image:
        try:
            durations = [frame.info.get("duration", 0) for frame in ImageSequence.Iterator(image)]
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise _decode_error(path, f"the GIF is damaged or truncated ({exc})", _IMAGE_HINT) from exc
        width, height = image.size
    total_ms = sum(durations)
    return len(durations), height, width, 1000 * len(durations) / total_ms if total_ms > 0 else None


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


def _probe_folder(path: Path) -> tuple[int, int, int, float | None]:
    files = _frame_folder_or_raise(path)
    with _open_image(files[0]) as image:
        width, height = image.size
    return len(files), height, width, None


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


class _SeekMissed(Exception):
    """A seek did not land at or before the wanted frame (the caller decodes from the start instead)."""


class _PyAVVideo:
    """A video file opened with PyAV: counts frames from the container's index where it is complete, seeks
    to the keyframe before each wanted frame and decodes forward from there."""

    backend = "pyav"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._container = _av_open(path)
        self._stream = self._container.streams.video[0]
        # One reformatter for all frames: frame.to_ndarray(format=...) builds a new SwsContext per frame,
        # which made the RGB conversion several times slower than decoding (PyAV 18 / FFmpeg 8).
        self._to_rgb = VideoReformatter()
        self._frame_pts: list[int] | None = None  # presentation timestamps in display order
        self._keyframes: list[int] = []  # display positions of the keyframes
        self._indexed = False  # whether the packets were scanned (then _frame_pts is set if usable)
        try:
            self.num_frames = self._count_from_index() or self._count_by_demux()
            self.rotation = self._rotation() if self.num_frames else 0
        except BaseException:
            self._container.close()
            raise
        height, width = self._stream.codec_context.height, self._stream.codec_context.width
        if width <= 0 or height <= 0:
            self._container.close()
            raise _decode_error(path, "the video stream has no frame size in its header", _REENCODE_HINT)
        self.height, self.width = (width, height) if self.rotation in (90, 270) else (height, width)
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else None

    def close(self) -> None:
        self._container.close()

    def _count_from_index(self) -> int | None:
        """The declared frame count when the container indexes every frame inside the file (mp4, mov,
        avi), else None (mkv/webm index keyframes only; a truncated file's index points past its end)."""
        declared, entries = self._stream.frames, getattr(self._stream, "index_entries", [])  # PyAV >= 17
        if declared <= 0 or len(entries) != declared:
            return None
        end = max(entry.pos + entry.size for entry in entries)
        return declared if end <= self.path.stat().st_size else None

    def _count_by_demux(self) -> int:
        """Count the packets (decoding nothing), recording their timestamps; a shortfall against the
        header's count means a truncated file."""
        declared = self._stream.frames  # 0 when the container stores no frame count (webm, mkv)
        pts: list[int | None] = []
        keys: list[int | None] = []
        try:
            for packet in self._container.demux(self._stream):
                if packet.size > 0:
                    pts.append(packet.pts)
                    if packet.is_keyframe:
                        keys.append(packet.pts)
        except av.FFmpegError as exc:
            raise _decode_error(
                self.path,
                f"reading its packets failed ({_ffmpeg_reason(exc)}); it is probably truncated or corrupt",
                _REENCODE_HINT,
            ) from exc
        self._indexed = True
        if len(pts) < declared:
            raise _decode_error(
                self.path,
                f"its header declares {declared} frames but only {len(pts)} are present; it is probably truncated",
                _REENCODE_HINT,
            )
        if None not in pts and None not in keys and len(set(pts)) == len(pts):
            self._frame_pts = sorted(pts)  # type: ignore[arg-type]
            position = {value: index for index, value in enumerate(self._frame_pts)}
            self._keyframes = sorted(position[value] for value in keys)  # type: ignore[index]
        self._rewind()
        return len(pts)

    def _rewind(self) -> None:
        self._container.seek(0, backward=True, any_frame=False)

    def _rotation(self) -> int:
        """The display matrix's rotation (counter-clockwise degrees, a multiple of 90), read from the first
        decoded frame, where FFmpeg attaches the stream's display matrix."""
        try:
            first = next(self._container.decode(self._stream), None)
        except av.FFmpegError as exc:
            raise _decode_error(
                self.path, f"decoding its first frame failed ({_ffmpeg_reason(exc)})", _REENCODE_HINT
            ) from exc
        self._rewind()
        return 0 if first is None else round(first.rotation / 90) % 4 * 90

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        array = self._to_rgb.reformat(frame, format="rgb24").to_ndarray()
        return np.ascontiguousarray(np.rot90(array, self.rotation // 90)) if self.rotation else array

    def _decoded(self) -> Iterator[av.VideoFrame]:
        """Frames in display order from the container's current position to the end."""
        for packet in self._container.demux(self._stream):
            yield from packet.decode()  # the final empty packet flushes the decoder

    def read(self, wanted: list[int] | None) -> np.ndarray:
        try:
            if wanted is not None and not self._indexed:
                self._count_by_demux()  # builds the timestamp index (reads packets, decodes nothing)
            if wanted is None or self._frame_pts is None:
                return self._read_sequentially(wanted)
            try:
                return self._read_seeking(wanted)
            except _SeekMissed:
                self._rewind()
                return self._read_sequentially(wanted)
        except av.FFmpegError as exc:
            raise _decode_error(self.path, f"decoding failed ({_ffmpeg_reason(exc)})", _REENCODE_HINT) from exc

    def _read_sequentially(self, wanted: list[int] | None) -> np.ndarray:
        """Decode from the first frame, converting only the frames in ``wanted`` (None = all)."""
        frames: list[np.ndarray] = []
        wanted_set = None if wanted is None else set(wanted)
        last = self.num_frames - 1 if wanted is None else wanted[-1]
        decoded = 0
        for index, frame in enumerate(self._decoded()):
            decoded = index + 1
            if wanted_set is None or index in wanted_set:
                frames.append(self._rgb(frame))
            if index >= last:
                break
        self._rewind()
        if len(frames) < (self.num_frames if wanted is None else len(wanted)):
            raise self._short(decoded)
        return np.stack(frames)

    def _read_seeking(self, wanted: list[int]) -> np.ndarray:
        """Seek to the keyframe before a wanted frame only when that keyframe lies beyond the frames already
        decoded; otherwise keep decoding forward. Frames are matched by presentation timestamp."""
        assert self._frame_pts is not None
        frames: list[np.ndarray] = []
        decoder: Iterator[av.VideoFrame] | None = None
        position = 0  # display position of the next frame the running decoder yields
        for target in wanted:
            keyframe = self._keyframes[max(bisect.bisect_right(self._keyframes, target) - 1, 0)]
            if decoder is None or position > target or keyframe > position:
                self._container.seek(self._frame_pts[keyframe], backward=True, any_frame=False, stream=self._stream)
                decoder, position = self._decoded(), keyframe
            target_pts = self._frame_pts[target]
            for frame in decoder:
                if frame.pts is None or frame.pts > target_pts:
                    raise _SeekMissed
                if frame.pts == target_pts:
                    frames.append(self._rgb(frame))
                    position = target + 1
                    break
            else:
                self._rewind()
                raise self._short(len(frames))
        self._rewind()
        return np.stack(frames)

    def _short(self, decoded: int) -> DecodeError:
        return _decode_error(
            self.path,
            f"only {decoded} of its {self.num_frames} frame(s) could be decoded; the file is probably truncated",
            _REENCODE_HINT,
        )


# ----------------------------------------------------------------------------------- video: torchcodec


class _Unusable(Exception):
    """torchcodec cannot read this file (the caller falls back to PyAV, which diagnoses it)."""


def _torchcodec_decoders() -> ModuleType | None:
    """``torchcodec.decoders``, or None when torchcodec or FFmpeg's shared libraries are missing."""
    global _torchcodec_state
    if _torchcodec_state is None:
        try:
            _torchcodec_state = _import_torchcodec_decoders()
        except Exception as exc:  # ImportError, or RuntimeError/OSError when FFmpeg's libraries are absent
            _torchcodec_state = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return _torchcodec_state if isinstance(_torchcodec_state, ModuleType) else None


def _import_torchcodec_decoders() -> ModuleType:
    """Import ``torchcodec.decoders`` without importing ``torch._dynamo``.

    At import, torchcodec marks three factory ops with ``torch._dynamo.disallow_in_graph`` (so that
    ``torch.compile`` does not constant-fold them); that one attribute access imports all of
    ``torch._dynamo``, which costs about as much again as ``import torch`` (``bench_startup.py``). Decoding
    is never compiled here, so while torchcodec imports, ``torch._dynamo`` is a stand-in whose
    ``disallow_in_graph`` returns the op unchanged; the stand-in is then removed, and ``torch._dynamo``
    imports as usual when something (``--compile``) uses it. Where ``torch._dynamo`` is already imported, or
    a torchcodec version needs more of it at import, torchcodec is imported as it is."""
    import sys

    import torch

    if "torch._dynamo" in sys.modules:
        return importlib.import_module("torchcodec.decoders")
    torch._dynamo = _DynamoStandIn()  # type: ignore[attr-defined]
    try:
        return importlib.import_module("torchcodec.decoders")
    except AttributeError:  # this torchcodec uses more of torch._dynamo: forget the half-done import
        for name in [name for name in sys.modules if name == "torchcodec" or name.startswith("torchcodec.")]:
            del sys.modules[name]
    finally:
        del torch._dynamo  # type: ignore[attr-defined]
    return importlib.import_module("torchcodec.decoders")


class _DynamoStandIn:
    """What torchcodec's import uses of ``torch._dynamo`` (see ``_import_torchcodec_decoders``)."""

    @staticmethod
    def disallow_in_graph(op: object) -> object:
        return op


class _TorchcodecVideo:
    """A video file opened with torchcodec in exact mode (one scan of the packets at open gives the frame
    count and every frame's position); frames come out rotated as the display matrix says."""

    backend = "torchcodec"

    def __init__(self, path: Path, decoders: ModuleType, device: str) -> None:
        self.path = path
        try:
            self._decoder = decoders.VideoDecoder(
                str(path), seek_mode="exact", device=device, dimension_order="NHWC"
            )
            metadata = self._decoder.metadata
        except Exception as exc:  # torchcodec raises RuntimeError/ValueError for files FFmpeg rejects
            raise _Unusable(str(exc)) from exc
        declared, present = metadata.num_frames_from_header or 0, metadata.num_frames_from_content or 0
        if present == 0 or present < declared or not metadata.height or not metadata.width:
            raise _Unusable(f"{present} frame(s) present, {declared} declared")
        self.num_frames, self.height, self.width = present, metadata.height, metadata.width
        self.fps = metadata.average_fps or None

    def close(self) -> None:
        del self._decoder

    def read(self, wanted: list[int] | None) -> np.ndarray:
        try:
            if wanted is None:
                batch = self._decoder.get_frames_in_range(0, self.num_frames)
            else:
                batch = self._decoder.get_frames_at(wanted)
        except Exception as exc:  # torchcodec raises RuntimeError for undecodable packets
            raise _decode_error(self.path, f"decoding failed ({exc})", _REENCODE_HINT) from exc
        return batch.data.cpu().numpy()


# -------------------------------------------------------------------- images, GIFs and folders as sources


class _StillSource:
    backend = "pillow"

    def __init__(self, path: Path, kind: str) -> None:
        self.path, self.kind = path, kind
        if kind == "image":
            self.num_frames, self.height, self.width = _probe_image(path)
            self.fps = None
        elif path.is_dir():
            self.num_frames, self.height, self.width, self.fps = _probe_folder(path)
        else:
            self.num_frames, self.height, self.width, self.fps = _probe_gif(path)

    def close(self) -> None:
        pass

    def read(self, wanted: list[int] | None) -> np.ndarray:
        if self.kind == "image":
            return _read_image(self.path)[None]
        return _read_folder(self.path, wanted) if self.path.is_dir() else _read_gif(self.path, wanted)


# -------------------------------------------------------------------------------------------- public


def _check_indices(indices: Sequence[int], num_frames: int) -> None:
    bad = [i for i in indices if not 0 <= i < num_frames]
    if bad:
        raise ValueError(
            f"frame indices {bad[:5]} are out of range: this media has {num_frames} frame(s), "
            f"so valid indices are 0..{num_frames - 1}"
        )


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


def _chosen_backend() -> str:
    """The video backend to use: ``$REWARDKIT_VIDEO_BACKEND`` if set, else torchcodec when it loads, else PyAV."""
    requested = os.environ.get(BACKEND_ENV, "").strip().lower()
    if requested not in ("", *VIDEO_BACKENDS):
        raise ValueError(
            f"{BACKEND_ENV}={requested!r} is not a video backend; use one of {', '.join(VIDEO_BACKENDS)}, "
            "or unset it to pick the first one available"
        )
    if requested == "pyav":
        return "pyav"
    if _torchcodec_decoders() is not None:
        return "torchcodec"
    if requested == "torchcodec":
        raise ValueError(f"{BACKEND_ENV}=torchcodec, but torchcodec cannot be loaded here: {_TORCHCODEC_FIX}")
    return "pyav"


_TORCHCODEC_FIX = (
    "install it (`pip install torchcodec`) and FFmpeg's shared libraries (Debian/Ubuntu: "
    "`apt-get install libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavfilter-dev "
    "libavdevice-dev`), or decode on the CPU with PyAV"
)


def video_backend() -> str:
    """The library that decodes video files here: ``torchcodec`` when it loads (it needs FFmpeg's shared
    libraries), else ``pyav``; ``$REWARDKIT_VIDEO_BACKEND`` (``torchcodec`` or ``pyav``) forces one."""
    return _chosen_backend()


def check_decode_device(device: str) -> str:
    """Return ``device`` if video files can be decoded there (``cpu``, or ``cuda[:N]`` with torchcodec and a
    GPU), else raise ValueError saying why and what to do."""
    if device == "cpu":
        return device
    if not (device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ValueError(f"decode device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if _torchcodec_decoders() is None:
        raise ValueError(
            f"decoding on {device!r} needs torchcodec, which cannot be loaded here ({_torchcodec_state}): "
            f"{_TORCHCODEC_FIX}"
        )
    import torch  # torchcodec loaded, so torch is importable

    if not torch.cuda.is_available():
        raise ValueError(f"decoding on {device!r} needs a CUDA GPU, but torch sees none; use 'cpu'")
    return device


class Media:
    """An open image, video or frame folder: its :class:`MediaInfo`, the ``backend`` that reads it
    (``torchcodec``, ``pyav`` or ``pillow``) and :meth:`read`. Probing and reading share this one open.
    Use it as a context manager (or call :meth:`close`)."""

    def __init__(self, path: PathLike, source: _PyAVVideo | _TorchcodecVideo | _StillSource, kind: str) -> None:
        self._source = source
        self.backend: str = source.backend
        self.info = MediaInfo(
            path=str(path), kind=kind, num_frames=source.num_frames, height=source.height,
            width=source.width, fps=source.fps,
        )

    def read(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """Frames as a uint8 ``[N, H, W, 3]`` RGB array, decoding only what is asked (see read_frames)."""
        order = None if indices is None else _normalize_indices(indices)
        if order is not None and not order:
            return np.empty((0, self.info.height, self.info.width, 3), dtype=np.uint8)
        wanted = None if order is None else sorted(set(order))
        if wanted is not None:
            _check_indices(wanted, self.info.num_frames)
        frames = self._source.read(wanted)
        if order is None or order == wanted:  # in order, no repeats: as decoded, without a copy
            return frames
        row = {index: position for position, index in enumerate(wanted)}
        return frames[[row[i] for i in order]]

    def iter_frames(self, indices: Sequence[int] | None = None, chunk: int = 16) -> Iterator[np.ndarray]:
        """Frames at ``indices`` (strictly increasing; None = every frame) as uint8 ``[k, H, W, 3]`` arrays of
        at most ``chunk`` frames, in order (see :func:`iter_frames`); with PyAV decoded sequentially from the
        first frame, converting only the wanted frames; other backends read ``chunk`` frames per call."""
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1 frame, got {chunk}")
        wanted = list(range(self.info.num_frames)) if indices is None else _normalize_indices(indices)
        if any(b <= a for a, b in zip(wanted[:-1], wanted[1:], strict=True)):
            raise ValueError("iter_frames reads frames in order: indices must be strictly increasing")
        _check_indices(wanted, self.info.num_frames)
        if isinstance(self._source, _PyAVVideo):
            yield from _pyav_chunks(self._source, wanted, chunk)
        else:
            for start in range(0, len(wanted), chunk):
                yield self.read(wanted[start : start + chunk])

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> Media:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_media(path: PathLike, *, device: str = "cpu") -> Media:
    """Open an image, video file (including GIF) or frame folder for probing and reading.

    Video files go through torchcodec where it loads, else PyAV (also for any file torchcodec rejects;
    PyAV then reads it or explains what is wrong). ``device="cuda"`` decodes video files on the GPU with
    torchcodec (NVDEC) and raises ValueError where that is not possible; frames still come back as numpy.
    Images, GIFs and frame folders are read with Pillow.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not a supported image, video or frame folder; or a bad ``device``.
        DecodeError: the file is empty, corrupt, truncated or has no frames.
    """
    device = check_decode_device(device)
    p, kind = _check_readable(path)
    source: _PyAVVideo | _TorchcodecVideo | _StillSource
    if kind == "image" or p.is_dir() or _is_gif(p):
        source = _StillSource(p, kind)
    else:
        decoders = _torchcodec_decoders() if _chosen_backend() == "torchcodec" else None
        try:
            if decoders is None:
                raise _Unusable("not chosen")
            source = _TorchcodecVideo(p, decoders, device)
        except _Unusable:
            source = _PyAVVideo(p)
    if source.num_frames <= 0:
        source.close()
        raise _decode_error(p, "it contains no video frames", "Regenerate it")
    return Media(path, source, kind)


def probe(path: PathLike) -> MediaInfo:
    """Return the kind, frame count, frame size and frame rate of a media file without decoding every frame.

    Sizes are as players show the frames (after the display matrix's rotation). ``fps`` is the
    container's average frame rate (a GIF's: frames over the summed frame durations); None for images,
    frame folders and files that declare no rate.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not a supported image, video or frame folder.
        DecodeError: the file is empty, corrupt, truncated or has no frames.
    """
    with open_media(path) as media:
        return media.info


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
    with open_media(path) as media:
        return media.read(indices)


def iter_frames(path: PathLike, indices: Sequence[int] | None = None, chunk: int = 16) -> Iterator[np.ndarray]:
    """Yield the frames at ``indices`` (strictly increasing; None = every frame) as uint8 ``[k, H, W, 3]``
    RGB arrays of at most ``chunk`` frames, in order, holding no more than one chunk at a time.

    The file is opened once (:func:`open_media`), then read by :meth:`Media.iter_frames`. Raises as
    :func:`read_frames` does, and ValueError for indices that are not strictly increasing or a ``chunk``
    below 1.
    """
    with open_media(path) as media:
        yield from media.iter_frames(indices, chunk)


def _pyav_chunks(video: _PyAVVideo, wanted: list[int], chunk: int) -> Iterator[np.ndarray]:
    """``wanted`` (sorted) frames of a PyAV video in chunks, decoding forward from the first frame once."""
    frames: list[np.ndarray] = []
    wanted_set, last, decoded, converted = set(wanted), wanted[-1], 0, 0
    try:
        video._rewind()  # the file may have been read before through the same open
        for index, frame in enumerate(video._decoded()):
            decoded = index + 1
            if index in wanted_set:
                frames.append(video._rgb(frame))
                converted += 1
            if frames and (len(frames) == chunk or index >= last):
                yield np.stack(frames)
                frames = []
            if index >= last:
                break
    except av.FFmpegError as exc:
        raise _decode_error(video.path, f"decoding failed ({_ffmpeg_reason(exc)})", _REENCODE_HINT) from exc
    if converted < len(wanted):
        raise video._short(decoded)


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
