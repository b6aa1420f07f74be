"""Media I/O: images, videos and frame folders as uint8 RGB arrays."""

from rewardkit.video.io import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    DecodeError,
    MediaInfo,
    media_kind,
    probe,
    read_frames,
    write_video,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "DecodeError",
    "MediaInfo",
    "media_kind",
    "probe",
    "read_frames",
    "write_video",
]
