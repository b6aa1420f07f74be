"""Deliberately degraded copies of videos, to check that metrics and ``rewardkit regress`` catch real
damage: added flicker (alternating brightness), frozen frames (every frame held for several) and blur.

``python -m rewardkit.eval.degrade SRC DST [--kind flicker|freeze|blur|all]`` copies every video and frame
folder of SRC into DST degraded, each under its own name and container (a ``.webm`` stays VP9 in
``.webm``); still images and prompt files are copied as they are, so files still pair up by name.
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from rewardkit.errors import UserInputError
from rewardkit.parsing import natural_key
from rewardkit.scoring import collect_media
from rewardkit.video.io import media_kind, probe, read_frames, write_video

__all__ = ["add_flicker", "freeze_frames", "blur", "degrade_folder", "DEGRADATIONS"]


def add_flicker(frames: np.ndarray, amplitude: float = 40.0) -> np.ndarray:
    """Alternate frames brighter and darker by ``amplitude`` (0-255 scale)."""
    signs = np.where(np.arange(len(frames)) % 2 == 0, 1.0, -1.0)[:, None, None, None]
    return np.clip(frames.astype(np.float32) + amplitude * signs, 0, 255).astype(np.uint8)


def freeze_frames(frames: np.ndarray, hold: int = 4) -> np.ndarray:
    """Hold every ``hold``-th frame for ``hold`` frames (a stuttering, partly frozen video)."""
    return frames[(np.arange(len(frames)) // hold) * hold]


def blur(frames: np.ndarray, radius: int = 3) -> np.ndarray:
    """A box blur of ``2 * radius + 1`` pixels, per frame and channel."""
    import cv2

    size = 2 * radius + 1
    return np.stack([cv2.blur(frame, (size, size)) for frame in frames])


# Applied in this order whatever order they are asked in (flicker after freezing, so it survives).
DEGRADATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"freeze": freeze_frames, "flicker": add_flicker, "blur": blur}


def degrade_folder(source: str | os.PathLike[str], target: str | os.PathLike[str], kinds: list[str]) -> list[Path]:
    """Write degraded copies of the videos under ``source`` into ``target`` (same relative paths; sidecar
    prompt files and non-video media copied unchanged). Returns the written videos."""
    for kind in kinds:
        if kind not in DEGRADATIONS:
            raise UserInputError(f"unknown degradation {kind!r}; choose from {', '.join(DEGRADATIONS)}")
    source, target = Path(source), Path(target)
    media, _ = collect_media([source])
    written = []
    for item in sorted(source.rglob("*")):
        destination = target / item.relative_to(source)
        if item.is_file() and item.suffix == ".txt":
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(item, destination)
    for path in media:
        destination = target / Path(path).resolve().relative_to(source.resolve())
        destination.parent.mkdir(parents=True, exist_ok=True)
        if media_kind(path) != "video":
            shutil.copy2(path, destination)  # a still image has no time axis to damage
            continue
        frames = np.stack(read_frames(path, list(range(probe(path).num_frames))))
        for kind in DEGRADATIONS:
            if kind in kinds:
                frames = DEGRADATIONS[kind](frames)
        if Path(path).is_dir():  # a frame folder stays a frame folder, frames under their own names
            destination.mkdir(parents=True, exist_ok=True)
            names = sorted((item.name for item in Path(path).iterdir() if media_kind(item) == "image"), key=natural_key)
            for name, frame in zip(names, frames, strict=True):
                Image.fromarray(frame).save(destination / name)
        else:  # same name and container, so the degraded file pairs with its original
            write_video(destination, frames)
        written.append(destination)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rewardkit.eval.degrade", description=__doc__.split("\n\n")[0])
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--kind", action="append", choices=[*DEGRADATIONS, "all"], help="repeatable; default all")
    args = parser.parse_args(argv)
    kinds = list(DEGRADATIONS) if not args.kind or "all" in args.kind else args.kind
    written = degrade_folder(args.source, args.target, kinds)
    print(f"wrote {len(written)} degraded video(s) ({', '.join(kinds)}) to {args.target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
