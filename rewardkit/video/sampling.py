"""Frame samplers: choose which frame indices a video reward looks at, before anything is decoded.

``Segmental`` is InstructVideo's segmental video reward sampling (after TSN): F frames are cut into S
equal segments of F // S frames and one frame is taken from each, ``g(s) = s * (F // S) + offset``, with a
uniformly random offset per segment and per video (training), the first frame (InstructVideo's
evaluation variant) or the middle one.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch

from rewardkit.errors import UserInputError

__all__ = ["FrameSampler", "Segmental", "Uniform", "All", "assumed_frame_rate", "frame_indices", "parse_sampler"]

_WARNED_FRAME_RATES: set[tuple[str, float]] = set()


class FrameSampler(Protocol):
    """Anything that maps a frame count (and the container's frame rate, None when unknown) to the frame
    indices to score."""

    def indices(self, num_frames: int, rng: np.random.Generator | None = None, *, fps: float | None = None) -> list[int]: ...

    @property
    def spec(self) -> str:
        """The ``--frames`` text that reads back as this sampler (recorded in results rows)."""


def _check_num_frames(num_frames: int, needed: int, what: str) -> None:
    if num_frames < needed:
        raise UserInputError(
            f"{what} needs at least {needed} frame(s) but the video has {num_frames}; "
            f"use fewer segments or --frames all"
        )


@dataclass(frozen=True)
class Segmental:
    """One frame from each of ``segments`` equal segments (InstructVideo, REFERENCE §3).

    ``mode``: ``random`` draws ``randint(F // S)`` per segment from ``rng`` (or from a generator seeded
    with ``seed``); ``first`` takes each segment's first frame; ``middle`` its centre frame.
    Frames past ``S * (F // S)`` are never chosen, as in the paper.
    """

    segments: int
    mode: Literal["random", "first", "middle"] = "random"
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.segments < 1:
            raise UserInputError(f"Segmental needs at least 1 segment, got {self.segments}")
        if self.mode not in ("random", "first", "middle"):
            raise UserInputError(f"Segmental mode must be 'random', 'first' or 'middle', got {self.mode!r}")

    @property
    def spec(self) -> str:
        return f"segmental:{self.segments}:{self.mode}"

    def indices(self, num_frames: int, rng: np.random.Generator | None = None, *, fps: float | None = None) -> list[int]:
        _check_num_frames(num_frames, self.segments, f"segmental sampling with {self.segments} segments")
        length = num_frames // self.segments
        starts = np.arange(self.segments) * length
        if self.mode == "first":
            offsets = np.zeros(self.segments, dtype=np.int64)
        elif self.mode == "middle":
            offsets = np.full(self.segments, (length - 1) // 2, dtype=np.int64)
        else:
            generator = rng if rng is not None else np.random.default_rng(self.seed)
            offsets = generator.integers(0, length, size=self.segments)
        return [int(index) for index in starts + offsets]


@dataclass(frozen=True)
class Uniform:
    """``n`` frames evenly spaced from the first to the last (rounded to the nearest frame)."""

    n: int

    def __post_init__(self) -> None:
        if self.n < 1:
            raise UserInputError(f"Uniform needs n >= 1, got {self.n}")

    @property
    def spec(self) -> str:
        return f"uniform:{self.n}"

    def indices(self, num_frames: int, rng: np.random.Generator | None = None, *, fps: float | None = None) -> list[int]:
        _check_num_frames(num_frames, 1, "uniform sampling")
        return [int(index) for index in np.linspace(0, num_frames - 1, self.n).round()]


@dataclass(frozen=True)
class All:
    """Every frame, in order."""

    spec = "all"

    def indices(self, num_frames: int, rng: np.random.Generator | None = None, *, fps: float | None = None) -> list[int]:
        _check_num_frames(num_frames, 1, "reading all frames")
        return list(range(num_frames))


def assumed_frame_rate(fps: float | None, fallback: float, reward: str, option: str) -> float:
    """``fps`` (the container's frame rate), or ``fallback`` (the reward's ``option``) when it is unknown, with a
    warning once per process and reward: frame folders, GIFs, files that record no rate and tensors."""
    if fps is not None and fps > 0:
        return fps
    if (reward, fallback) not in _WARNED_FRAME_RATES:
        _WARNED_FRAME_RATES.add((reward, fallback))
        warnings.warn(
            f"{reward}: a video without a frame rate (frame folder, GIF, tensor or a file that records none) is taken "
            f"as {fallback:g} fps, the option {option}; set {option}=RATE if that is wrong",
            stacklevel=3,
        )
    return fallback


def frame_indices(
    sampler: FrameSampler, num_frames: int, batch: int = 1, rng: np.random.Generator | None = None, fps: float | None = None
) -> torch.Tensor:
    """Indices ``[batch, K]`` to decode from ``num_frames``-frame videos at ``fps`` frames per second (None:
    unknown), drawn independently per video (random samplers use ``rng``): the one place every video
    reward and the trainer sample frames."""
    return torch.tensor([sampler.indices(num_frames, rng, fps=fps) for _ in range(batch)], dtype=torch.long)


def parse_sampler(spec: str) -> FrameSampler:
    """Read ``segmental:S[:first|middle|random]``, ``uniform:N`` or ``all`` (the CLI's ``--frames``)."""
    name, *arguments = spec.strip().lower().split(":")
    try:
        if name == "segmental" and 1 <= len(arguments) <= 2:
            return Segmental(int(arguments[0]), *(arguments[1:] or ["first"]))  # type: ignore[arg-type]
        if name == "uniform" and len(arguments) == 1:
            return Uniform(int(arguments[0]))
        if name == "all" and not arguments:
            return All()
    except ValueError as error:
        raise UserInputError(f"cannot read frame sampler {spec!r}: {error}") from None
    raise UserInputError(
        f"cannot read frame sampler {spec!r}; write segmental:S[:first|middle|random] "
        f"(e.g. segmental:4), uniform:N (e.g. uniform:8) or all"
    )
