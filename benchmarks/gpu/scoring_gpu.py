"""Issue 13 §3's GPU benchmark of scoring: reward throughput per dtype, the score difference of bf16 / fp16
from fp32, and the engine end to end, written as JSON and a Markdown table.

Models have the real architectures and sizes with random weights, in the official file formats, loaded
through ``create_reward`` as a user's files are (nothing is downloaded):

- ``hpsv2``: open_clip ViT-H-14 in HPS's checkpoint format; images/s at batch ``--batch`` (64) in bf16,
  against the FLOP bound: ~0.33 TFLOP per 224 px image (ViT-H-14 image tower, 2 FLOP per multiply-add)
  at the GPU's dense bf16 peak (``--peak-tflops``, 790 for an H100/H200 SXM without sparsity);
- ``pickscore``: transformers CLIPModel at ViT-H-14's sizes; ``imagereward``: BLIP ViT-L/16 + BERT-base;
- ``dover``: DOVER's ConvNeXt-3D + Swin-3D, clips/s on 16x256x256 clips;
- ``engine``: ``rewardkit.score`` on ``--clips`` (256) generated 16x256x256 clips with hpsv2 in bf16,
  files/s, and the shares of decode (DataLoader workers), preprocessing and model time.

Per reward and dtype: the largest score difference from fp32 on the same batch. Timings: one warm-up
batch, then ``--repeats`` batches (CUDA synchronised). Run on a GPU machine: ``bash benchmarks/gpu/run.sh``.
``--tiny`` runs the same code on the CPU with the tiny test models and small sizes (tests run it so it
cannot rot); its numbers are for the bf16/fp16 score differences on tiny weights, not speed.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

VIT_H_14_TFLOP_PER_IMAGE = 0.33
PROMPT = "a red fox sitting in a snowy birch forest at dawn"


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(step: Callable[[], Any], device: str, repeats: int) -> float:
    """Mean seconds of ``step`` after one warm-up call."""
    step()
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    _synchronize(device)
    return (time.perf_counter() - started) / repeats


def _files(name: str, folder: Path, tiny: bool) -> dict[str, Any]:
    """``create_reward`` options loading random weights of reward ``name`` (real size unless ``tiny``)."""
    from rewardkit.testing import tiny_reward_options

    if tiny:
        return tiny_reward_options(name, folder / name)
    folder = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    if name == "hpsv2":
        from rewardkit.testing.clip import write_hps_checkpoint

        return {"weights": str(write_hps_checkpoint(folder / "HPS_v2.1_compressed.pt", "ViT-H-14")), "architecture": "ViT-H-14"}
    if name == "pickscore":
        from transformers import CLIPConfig, CLIPModel

        from rewardkit.testing.clip import write_pickscore_folders

        model_dir, processor_dir = write_pickscore_folders(folder)
        config = CLIPConfig(  # laion/CLIP-ViT-H-14's sizes
            text_config={"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
                         "max_position_embeddings": 77, "vocab_size": 49408, "hidden_act": "gelu"},
            vision_config={"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32, "num_attention_heads": 16,
                           "image_size": 224, "patch_size": 14, "hidden_act": "gelu"},
            projection_dim=1024,
        )
        CLIPModel(config).save_pretrained(model_dir)
        return {"weights": {"model": str(model_dir), "processor": str(processor_dir)}}
    if name == "imagereward":
        from rewardkit.testing.imagereward import (
            REAL_MED_CONFIG,
            REAL_VISION,
            write_bert_vocab,
            write_imagereward_checkpoint,
        )

        checkpoint = write_imagereward_checkpoint(folder / "model", seed=0, med_config=REAL_MED_CONFIG, vision=REAL_VISION)
        return {"weights": {"model": str(checkpoint), "tokenizer": str(write_bert_vocab(folder / "tokenizer"))}}
    if name == "dover":
        from rewardkit.rewards.dover import DOVER_CONFIG
        from rewardkit.testing.dover import write_dover_checkpoint

        return {"weights": str(write_dover_checkpoint(folder / "DOVER.pth", DOVER_CONFIG, seed=0))}
    raise ValueError(f"no real-size files for {name!r}")


def image_reward_case(name: str, options: dict[str, Any], args: argparse.Namespace, device: str) -> dict[str, Any]:
    """Images/s per dtype at ``args.batch`` and the largest score difference from fp32."""
    from rewardkit import create_reward

    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.batch, 3, args.image_size, args.image_size), dtype=torch.uint8, generator=generator)
    prompts = [PROMPT] * args.batch
    row: dict[str, Any] = {"reward": name, "batch": args.batch}
    reference = None
    for dtype in ("fp32", *args.dtypes):
        reward = create_reward(name, device=device, dtype=dtype, **options)
        pixel_values = torch.stack([reward.preprocessor(image.permute(1, 2, 0).numpy()) for image in images]).to(device)
        with torch.inference_mode():
            scores = reward.score_preprocessed(pixel_values, prompts).float().cpu()
            seconds = _timed(lambda reward=reward, pixel_values=pixel_values: reward.score_preprocessed(pixel_values, prompts),
                             device, args.repeats)
            row[f"images_per_s_{dtype}"] = round(args.batch / seconds, 2)
        if reference is None:
            reference = scores
        else:
            row[f"max_abs_diff_{dtype}"] = float((scores - reference).abs().max())
    row["score_range"] = [float(reference.min()), float(reference.max())]
    if name == "hpsv2" and not args.tiny and f"images_per_s_{args.dtypes[0]}" in row:
        bound = args.peak_tflops / VIT_H_14_TFLOP_PER_IMAGE
        row["flop_bound_images_per_s"] = round(bound, 1)
        row["fraction_of_flop_bound"] = round(row[f"images_per_s_{args.dtypes[0]}"] / bound, 3)
    return row


def dover_case(options: dict[str, Any], args: argparse.Namespace, device: str) -> dict[str, Any]:
    """DOVER clips/s on one ``--frames`` x ``--clip-size`` clip per dtype, and the score difference from fp32."""
    from rewardkit import create_reward
    from rewardkit.testing.dover import pattern_video

    video = torch.from_numpy(pattern_video(args.frames, args.clip_size, args.clip_size, seed=0)).permute(0, 3, 1, 2)
    row: dict[str, Any] = {"reward": "dover", "frames": args.frames, "size": args.clip_size}
    reference = None
    for dtype in ("fp32", *args.dtypes):
        reward = create_reward("dover", device=device, dtype=dtype, **options)
        indices = reward.sampler.indices(args.frames, np.random.default_rng(0))
        frames = video[indices][None]

        def step(reward=reward, frames=frames, indices=indices) -> torch.Tensor:
            with torch.inference_mode():
                return reward.score_sampled(frames, torch.tensor([indices]), args.frames, rng=np.random.default_rng(0))

        score = float(step()[0])
        row[f"clips_per_s_{dtype}"] = round(1 / _timed(step, device, args.repeats), 3)
        if reference is None:
            reference = score
        else:
            row[f"max_abs_diff_{dtype}"] = abs(score - reference)
    return row


def engine_case(options: dict[str, Any], args: argparse.Namespace, device: str, folder: Path) -> dict[str, Any]:
    """``rewardkit.score`` end to end on ``--clips`` generated clips with hpsv2 (files/s and time shares)."""
    from rewardkit.scoring import score
    from rewardkit.testing.dover import pattern_video
    from rewardkit.video.io import write_video

    clips = folder / "clips"
    clips.mkdir(exist_ok=True)
    for index in range(args.clips):
        write_video(clips / f"a moving pattern number {index}-0.mp4", pattern_video(args.frames, args.clip_size, args.clip_size, seed=index))
    spec = "hpsv2" + (f":architecture={options['architecture']}" if "architecture" in options else "")
    dtype = args.dtypes[0] if args.dtypes else "fp32"
    started = time.perf_counter()
    results = score(clips, [spec], weights={"hpsv2": options["weights"]}, device=device, dtype=dtype,
                    batch_size=args.batch, out=folder / "engine.jsonl", progress=False)
    seconds = time.perf_counter() - started
    ok = results[results["status"] == "ok"]
    return {
        "case": "engine", "reward": spec.split(":")[0], "dtype": dtype, "clips": args.clips,
        "files_per_s": round(len(ok) / seconds, 2), "seconds": round(seconds, 2), "failed": int((results["status"] != "ok").sum()),
        # each row's seconds: its decode and preprocessing in a worker plus its share of the model's batches
        "row_seconds_sum": round(float(results["seconds"].sum()), 2),
    }


def markdown(results: dict[str, Any]) -> str:
    lines = ["| case | numbers |", "|---|---|"]
    for row in results["cases"]:
        name = row.get("reward", "") + (" (engine)" if row.get("case") == "engine" else "")
        numbers = ", ".join(f"{key} {value}" for key, value in row.items() if key not in ("reward", "case"))
        lines.append(f"| {name} | {numbers} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/gpu/scoring.json", help="JSON results (a .md table beside it)")
    parser.add_argument("--tiny", action="store_true", help="tiny models and sizes on the CPU (a smoke run)")
    parser.add_argument("--rewards", default="hpsv2,pickscore,imagereward,dover,engine")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="the GPU's dense bf16 peak")
    args = parser.parse_args()
    device = "cpu" if args.tiny or not torch.cuda.is_available() else "cuda"
    args.image_size, args.frames, args.clip_size = 224, 16, 256
    args.dtypes = ["bf16", "fp16"] if device == "cuda" else ["bf16"]
    if args.tiny:
        args.batch, args.repeats, args.clips, args.clip_size = 4, 1, 4, 64
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu",
        "tiny": args.tiny, "torch": torch.__version__, "cases": [],
    }
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        files: dict[str, dict[str, Any]] = {}
        for name in args.rewards.split(","):
            started = time.perf_counter()
            try:
                if name in ("hpsv2", "pickscore", "imagereward"):
                    files[name] = _files(name, folder, args.tiny)
                    row = image_reward_case(name, files[name], args, device)
                elif name == "dover":
                    row = dover_case(_files("dover", folder, args.tiny), args, device)
                elif name == "engine":
                    row = engine_case(files.get("hpsv2") or _files("hpsv2", folder, args.tiny), args, device, folder)
                else:
                    raise ValueError(f"unknown case {name!r}")
            except torch.cuda.OutOfMemoryError:
                row = {"reward": name, "error": "oom"}
                torch.cuda.empty_cache()
            row["wall_s"] = round(time.perf_counter() - started, 1)
            print(json.dumps(row), flush=True)
            results["cases"].append(row)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=lambda value: None if isinstance(value, float) and math.isnan(value) else str(value)) + "\n")
    out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
