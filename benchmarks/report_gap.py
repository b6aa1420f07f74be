"""Measure the reference-vs-differentiable preprocessing gap of every model reward.

Run: ``uv run python benchmarks/report_gap.py``. Prints a Markdown table for the README.

Fixed image set (15 images): frames 0 and 8 of every example video and frame folder, the example still
image, and six smooth synthetic 8-bit images of sizes 1x1, 7x301, 480x640, 720x1280, 300x200, 224x224. For
each reward, both modes get the same uint8 pixels; reported are the mean and max |difference| of the
model inputs (weight-free: a property of the two pipelines) and of the scores, on the tiny random-weight
checkpoints the tests use (so score gaps are indicative; input gaps are exact).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rewardkit import create_reward  # noqa: E402
from rewardkit.scoring import collect_media  # noqa: E402
from rewardkit.testing.clip import (  # noqa: E402
    TINY_OPEN_CLIP,
    write_aesthetic_head,
    write_hps_checkpoint,
    write_open_clip_config,
    write_open_clip_safetensors,
    write_pickscore_folders,
)
from rewardkit.testing.imagereward import write_bert_vocab, write_imagereward_checkpoint  # noqa: E402
from rewardkit.video.io import probe, read_frames  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "videos"


def image_set() -> list[np.ndarray]:
    frames = []
    for path in collect_media([EXAMPLES])[0]:
        info = probe(path)
        frames.extend(read_frames(path, sorted({0, min(8, info.num_frames - 1)})))
    rng = np.random.default_rng(0)
    for height, width in [(1, 1), (7, 301), (480, 640), (720, 1280), (300, 200), (224, 224)]:
        smooth = rng.integers(0, 256, (max(1, height // 16), max(1, width // 16), 3)).astype(np.float32)
        image = torch.nn.functional.interpolate(torch.from_numpy(smooth).permute(2, 0, 1)[None], size=(height, width), mode="bilinear")
        frames.append(image[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy())
    return frames


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="rewardkit-gap-"))
    config = write_open_clip_config(folder)
    model_dir, processor_dir = write_pickscore_folders(folder)
    clip_weights = str(write_open_clip_safetensors(folder / "clip.safetensors", str(config)))
    width = TINY_OPEN_CLIP["embed_dim"]
    setups = {
        "hpsv2": {"weights": str(write_hps_checkpoint(folder / "hps.pt", str(config))), "architecture": str(config)},
        "clip": {"weights": clip_weights, "architecture": str(config)},
        "pickscore": {"weights": {"model": str(model_dir), "processor": str(processor_dir)}},
        "aesthetic": {"weights": {"head": str(write_aesthetic_head(folder / "laion.pth", "laion", embed_dim=width)),
                                  "backbone": clip_weights}, "architecture": str(config)},
        "aesthetic:head=vbench": {"weights": {"head": str(write_aesthetic_head(folder / "vbench.pth", "vbench", embed_dim=width)),
                                              "backbone": clip_weights}, "architecture": str(config), "head": "vbench"},
        "imagereward": {"weights": {"model": str(write_imagereward_checkpoint(folder / "ir").parent),
                                    "tokenizer": str(write_bert_vocab(folder / "bert"))}},
    }
    frames = image_set()
    prompt = "a red circle moving from left to right on a blue background"
    print(f"{len(frames)} images\n")
    print("| reward | input mean abs diff | input max abs diff | score mean abs diff | score max abs diff | score scale |")
    print("|---|---|---|---|---|---|")
    for label, options in setups.items():
        name = label.split(":")[0]
        reference = create_reward(name, mode="reference", **options)
        differentiable = create_reward(name, mode="differentiable", **options)
        input_gaps, score_gaps, scores = [], [], []
        with torch.no_grad():
            for frame in frames:
                pixels = torch.from_numpy(frame).permute(2, 0, 1)[None]
                a = reference.reference_preprocess(frame)
                b = differentiable.torch_preprocess.batch(pixels.float() / 255)[0]
                input_gaps.append((a - b).abs())
                r, d = reference(pixels, [prompt]), differentiable(pixels.float() / 255, [prompt])
                score_gaps.append((r - d).abs().item())
                scores.append(abs(r.item()))
        inputs = torch.cat([gap.flatten() for gap in input_gaps])
        print(f"| {label} | {inputs.mean():.2e} | {inputs.max():.2e} | {np.mean(score_gaps):.2e} | {np.max(score_gaps):.2e} | {np.mean(scores):.3g} |")


if __name__ == "__main__":
    main()
