"""Write the small synthetic example media under examples/videos/ and examples/prompts.csv.

Run with ``uv run python examples/make_examples.py``. The output is deterministic (seeded numpy,
libx264 is deterministic for fixed settings) and stays well under 1 MB in total.

Naming follows VBench: a video's prompt is its file name without the ``-<index>`` suffix. The still
image and the frame folder carry their prompt in a ``.txt`` sidecar with the same stem instead.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from rewardkit.video.io import write_video

EXAMPLES = Path(__file__).resolve().parent
VIDEOS = EXAMPLES / "videos"
HEIGHT, WIDTH, NUM_FRAMES, FPS = 160, 256, 16, 8.0

YY, XX = np.mgrid[:HEIGHT, :WIDTH].astype(np.float64)


def disk(cx: float, cy: float, radius: float) -> np.ndarray:
    """Anti-aliased disk coverage in [0, 1], shape [H, W]."""
    return np.clip(radius + 0.5 - np.hypot(XX - cx, YY - cy), 0.0, 1.0)


def paint(canvas: np.ndarray, coverage: np.ndarray, color: tuple[int, int, int]) -> None:
    """Blend ``color`` into a float [H, W, 3] canvas where ``coverage`` is 1."""
    canvas += coverage[..., None] * (np.asarray(color, dtype=np.float64) - canvas)


def to_uint8(frames: list[np.ndarray]) -> np.ndarray:
    return np.clip(np.rint(np.stack(frames)), 0, 255).astype(np.uint8)


def moving_red_circle(rng: np.random.Generator) -> np.ndarray:
    wobble = rng.normal(0.0, 2.0, NUM_FRAMES)  # slight vertical jitter, fixed by the seed
    frames = []
    for t in range(NUM_FRAMES):
        canvas = np.empty((HEIGHT, WIDTH, 3))
        canvas[:] = (20, 50, 190)
        cx = 30 + t * (WIDTH - 60) / (NUM_FRAMES - 1)
        paint(canvas, disk(cx, HEIGHT / 2 + wobble[t], 24), (220, 30, 30))
        frames.append(canvas)
    return to_uint8(frames)


def flickering_light(rng: np.random.Generator) -> np.ndarray:
    glow = np.exp(-((XX - WIDTH / 2) ** 2 + (YY - 50) ** 2) / (2 * 40.0**2))
    frames = []
    for t in range(NUM_FRAMES):
        level = rng.uniform(0.85, 1.0) if t % 2 == 0 else rng.uniform(0.15, 0.3)  # bright / dim
        canvas = np.empty((HEIGHT, WIDTH, 3))
        canvas[:] = (12, 10, 8)
        canvas += level * glow[..., None] * np.array([240.0, 220.0, 160.0])
        paint(canvas, disk(WIDTH / 2, 50, 8), tuple(int(40 + 215 * level) for _ in range(3)))
        frames.append(canvas)
    return to_uint8(frames)


def static_green_square() -> np.ndarray:
    canvas = np.empty((HEIGHT, WIDTH, 3))
    canvas[:] = (235, 235, 230)
    canvas[40:120, 88:168] = (30, 160, 60)
    return to_uint8([canvas] * NUM_FRAMES)


def yellow_triangle() -> np.ndarray:
    canvas = np.empty((HEIGHT, WIDTH, 3))
    canvas[:] = (60, 60, 70)
    inside = (YY <= 130) & (np.abs(XX - WIDTH / 2) <= (YY - 30) * 0.6)
    canvas[inside] = (245, 210, 40)
    return to_uint8([canvas])[0]


def bouncing_ball(num_frames: int = 12) -> np.ndarray:
    floor_y, radius = HEIGHT - 30, 14
    frames = []
    for t in range(num_frames):
        height = abs(np.cos(np.pi * t / (num_frames / 2)))  # two bounces over the clip
        cy = floor_y - radius - height * 90
        canvas = np.empty((HEIGHT, WIDTH, 3))
        canvas[:] = (150, 180, 210)
        canvas[floor_y:] = (128, 128, 128)
        paint(canvas, disk(40 + t * 15, cy, radius), (250, 250, 250))
        frames.append(canvas)
    return to_uint8(frames)


def main() -> None:
    """Write every example and the prompts.csv index."""
    rng = np.random.default_rng(0)
    VIDEOS.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str]] = []

    videos = {
        "a red circle moving from left to right on a blue background": moving_red_circle(rng),
        "a flickering light in a dark room": flickering_light(rng),
        "a static photo of a green square": static_green_square(),
    }
    for prompt, frames in videos.items():
        path = VIDEOS / f"{prompt}-0.mp4"
        write_video(path, frames, fps=FPS)
        rows.append((path.relative_to(EXAMPLES).as_posix(), prompt))

    prompt = "a still image of a yellow triangle"
    image_path = VIDEOS / f"{prompt}.png"
    Image.fromarray(yellow_triangle()).save(image_path)
    (VIDEOS / f"{prompt}.txt").write_text(prompt + "\n", encoding="utf-8")
    rows.append((image_path.relative_to(EXAMPLES).as_posix(), prompt))

    prompt = "a white ball bouncing on a grey floor"
    folder = VIDEOS / "bouncing ball frames"
    folder.mkdir(exist_ok=True)
    for t, frame in enumerate(bouncing_ball()):
        Image.fromarray(frame).save(folder / f"frame_{t:03d}.png")
    (VIDEOS / "bouncing ball frames.txt").write_text(prompt + "\n", encoding="utf-8")
    rows.append((folder.relative_to(EXAMPLES).as_posix(), prompt))

    with open(EXAMPLES / "prompts.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "prompt"])
        writer.writerows(rows)


if __name__ == "__main__":
    main()
