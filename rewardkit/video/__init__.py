"""Media I/O: images, videos and frame folders as uint8 RGB arrays.

The I/O names load on first use (PEP 562): importing ``rewardkit.video.sampling`` does not load PyAV.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "DecodeError",
    "Media",
    "MediaInfo",
    "media_kind",
    "open_media",
    "probe",
    "read_frames",
    "write_video",
]

if TYPE_CHECKING:
    from rewardkit.video.io import (
        IMAGE_EXTENSIONS,
        VIDEO_EXTENSIONS,
        DecodeError,
        Media,
        MediaInfo,
        media_kind,
        open_media,
        probe,
        read_frames,
        write_video,
    )


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'rewardkit.video' has no attribute {name!r}")
    value = getattr(importlib.import_module("rewardkit.video.io"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
