"""Issue 13 §3's GPU benchmark of scoring: reward throughput per dtype, the score difference of bf16 / fp16
from fp32, and the engine end to end, written as JSON and a Markdown table.

Models have the real architectures and sizes with random weights, in the official file formats, loaded
through ``create_reward`` as a user's files are (nothing is downloaded):

- ``hpsv2``: open_clip ViT-H-14 in HPS's checkpoint format; images/s at batch ``--batch`` (64) in bf16,
  against the FLOP bound: ~0.33 TFLOP per 224 px image (ViT-H-14 image tower, 2 FLOP per multiply-add)
  at the GPU's dense bf16 peak (``--peak-tflops``, 790 for an H100/H200 SXM without sparsity);
- ``pickscore``: transformers CLIPModel at ViT-H-14's sizes; ``imagereward``: BLIP ViT-L/16 + BERT-base;
- ``dover``: DOVER's ConvNeXt-3D + Swin-3D, clips/s on 16x256x256 clips, in bf16 also with the weights in
  channels-last (``torch.channels_last_3d``), to see whether its 3D convolutions gain from it;
- ``decode``: torchcodec frames/s decoding whole 720p H.264 clips on the GPU (NVDEC) and on the CPU;
- ``engine``: ``rewardkit.score`` on ``--clips`` (256) generated 16x256x256 clips with hpsv2 in bf16 at
  ``batch_size="auto"``, files/s, and the time of its three parts measured alone on the same files (decode
  the 4 sampled frames, preprocess them, the model on the batches) as shares of their sum.

Per reward and dtype: the largest score difference from fp32 on the same batch. Timings: one warm-up
batch, then ``--repeats`` batches (CUDA synchronised); hpsv2 also in bf16 compiled (``torch.compile`` of the
modules it calls, the compile left out). The whole run keeps to ``--budget`` seconds (default 420, so that
``run.sh`` ends within 8 minutes): a case that would start past it is recorded as skipped. Run on a GPU
machine: ``bash benchmarks/gpu/run.sh``. ``--tiny`` runs the same code on the CPU with the tiny test models
and small sizes (tests/test_gpu_fast.py runs it so it cannot rot); its numbers are not speed.
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
    from rewardkit.testing.realsize import real_size_reward_options

    return (tiny_reward_options if tiny else real_size_reward_options)(name, folder / name)


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
            if name == "hpsv2" and dtype == "bf16" and not args.tiny:  # compiled: the compile (first calls) left out of the timing
                from rewardkit.scoring.engine import compile_called_modules

                started = time.perf_counter()
                compile_called_modules(reward, lambda reward=reward, pixel_values=pixel_values: reward.score_preprocessed(pixel_values, prompts))
                compiled = reward.score_preprocessed(pixel_values, prompts).float().cpu()
                row["compile_warmup_s"] = round(time.perf_counter() - started, 1)
                seconds = _timed(lambda reward=reward, pixel_values=pixel_values: reward.score_preprocessed(pixel_values, prompts),
                                 device, args.repeats)
                row["images_per_s_bf16_compiled"] = round(args.batch / seconds, 2)
                row["max_abs_diff_bf16_compiled"] = float((compiled - reference).abs().max())
        if reference is None:
            reference = scores
        else:
            row[f"max_abs_diff_{dtype}"] = float((scores - reference).abs().max())
        del reward
        if device == "cuda":
            torch.cuda.empty_cache()
    row["score_range"] = [float(reference.min()), float(reference.max())]
    if name == "hpsv2" and not args.tiny and f"images_per_s_{args.dtypes[0]}" in row:
        bound = args.peak_tflops / VIT_H_14_TFLOP_PER_IMAGE
        row["flop_bound_images_per_s"] = round(bound, 1)
        row["fraction_of_flop_bound"] = round(row[f"images_per_s_{args.dtypes[0]}"] / bound, 3)
        if "images_per_s_bf16_compiled" in row:
            row["fraction_of_flop_bound_compiled"] = round(row["images_per_s_bf16_compiled"] / bound, 3)
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
        if dtype == "bf16" and device == "cuda":  # its 3D convolutions in channels-last: does it help?
            reward.to(memory_format=torch.channels_last_3d)
            row["clips_per_s_bf16_channels_last"] = round(1 / _timed(step, device, args.repeats), 3)
            row["max_abs_diff_bf16_channels_last"] = abs(float(step()[0]) - reference)
        if reference is None:
            reference = score
        else:
            row[f"max_abs_diff_{dtype}"] = abs(score - reference)
    return row


def _write_clips(folder: Path, count: int, frames: int, height: int, width: int) -> list[Path]:
    from rewardkit.testing.dover import pattern_video
    from rewardkit.video.io import write_video

    folder.mkdir(exist_ok=True)
    paths = [folder / f"a moving pattern number {index}-0.mp4" for index in range(count)]
    for index, path in enumerate(paths):
        write_video(path, pattern_video(frames, height, width, seed=index))
    return paths


def decode_case(args: argparse.Namespace, device: str, folder: Path) -> dict[str, Any]:
    """torchcodec frames/s decoding every frame of ``--decode-clips`` H.264 clips, on the GPU and the CPU."""
    from rewardkit.video.io import open_media

    paths = _write_clips(folder / "decode", args.decode_clips, args.decode_frames, *args.decode_size)
    row: dict[str, Any] = {"case": "decode", "reward": "torchcodec", "clips": len(paths), "frames": args.decode_frames,
                           "size": f"{args.decode_size[1]}x{args.decode_size[0]}"}
    for where in ("cpu", "cuda") if device == "cuda" else ("cpu",):
        def decode_all(where: str = where) -> None:
            for path in paths:
                with open_media(path, device=where) as media:
                    media.read(None)

        try:
            seconds = _timed(decode_all, device, 1)
            row[f"frames_per_s_{where}"] = round(len(paths) * args.decode_frames / seconds, 1)
        except (ValueError, RuntimeError) as error:  # e.g. a torchcodec built without CUDA decoding
            row[f"frames_per_s_{where}"] = f"not run: {str(error).splitlines()[0][:100]}"
    if isinstance(row.get("frames_per_s_cuda"), float):
        row["cuda_over_cpu"] = round(row["frames_per_s_cuda"] / row["frames_per_s_cpu"], 2)
    return row


def engine_case(options: dict[str, Any], args: argparse.Namespace, device: str, folder: Path) -> dict[str, Any]:
    """``rewardkit.score`` end to end on ``--clips`` generated clips with hpsv2 (files/s), and its parts
    timed alone on the same files: decode (the 4 segmental frames, one process), preprocess, model."""
    from rewardkit import create_reward
    from rewardkit.scoring import score
    from rewardkit.video.io import open_media
    from rewardkit.video.sampling import parse_sampler

    paths = _write_clips(folder / "clips", args.clips, args.frames, args.clip_size, args.clip_size)
    spec = "hpsv2" + (f":architecture={options['architecture']}" if "architecture" in options else "")
    dtype = args.dtypes[0] if args.dtypes else "fp32"
    started = time.perf_counter()
    results = score(paths[0].parent, [spec], weights={"hpsv2": options["weights"]}, device=device, dtype=dtype,
                    batch_size="auto", out=folder / "engine.jsonl", progress=False)
    seconds = time.perf_counter() - started
    ok = results[results["status"] == "ok"]
    row: dict[str, Any] = {
        "case": "engine", "reward": "hpsv2", "dtype": dtype, "clips": args.clips, "batch_size": "auto",
        "files_per_s": round(len(ok) / seconds, 2), "seconds": round(seconds, 2), "failed": int((results["status"] != "ok").sum()),
    }
    # The parts alone, in this process, on the same files (the engine overlaps decoding with the model).
    reward = create_reward("hpsv2", device=device, dtype=dtype, **options)
    indices = parse_sampler("segmental:4").indices(args.frames, np.random.default_rng(0))
    parts = {"decode": 0.0, "preprocess": 0.0, "model": 0.0}
    batch: list[torch.Tensor] = []
    with torch.inference_mode():
        for path in paths:
            tick = time.perf_counter()
            with open_media(path) as media:
                frames = media.read(indices)
            parts["decode"] += time.perf_counter() - tick
            tick = time.perf_counter()
            batch.extend(reward.preprocessor(frame) for frame in frames)
            parts["preprocess"] += time.perf_counter() - tick
            if len(batch) >= args.batch or path == paths[-1]:
                tick = time.perf_counter()
                reward.score_preprocessed(torch.stack(batch).to(device), [PROMPT] * len(batch))
                _synchronize(device)
                parts["model"] += time.perf_counter() - tick
                batch = []
    total = sum(parts.values())
    for name, value in parts.items():
        row[f"{name}_s"] = round(value, 2)
        row[f"{name}_share"] = round(value / total, 3)
    return row


def markdown(results: dict[str, Any]) -> str:
    lines = ["| case | numbers |", "|---|---|"]
    for row in results["cases"]:
        name = row.get("reward", "") + (" (engine)" if row.get("case") == "engine" else "")
        numbers = ", ".join(f"{key} {value}" for key, value in row.items() if key not in ("reward", "case"))
        lines.append(f"| {name} | {numbers} |")
    return "\n".join(lines) + "\n"


# What each case needs at the real size on an H100/H200-class machine (seconds, mostly writing and loading
# the random checkpoints); a case starts only when that much of the budget is left.
CASE_SECONDS = {"hpsv2": 150, "pickscore": 90, "imagereward": 60, "dover": 30, "decode": 30, "engine": 90}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/gpu/scoring.json", help="JSON results (a .md table beside it)")
    parser.add_argument("--tiny", action="store_true", help="tiny models and sizes on the CPU (a smoke run)")
    parser.add_argument("--rewards", default="hpsv2,engine,pickscore,imagereward,dover,decode", help="cases, in order")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="the GPU's dense bf16 peak")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for the whole run; later cases are skipped past it")
    args = parser.parse_args(argv)
    device = "cpu" if args.tiny or not torch.cuda.is_available() else "cuda"
    args.image_size, args.frames, args.clip_size = 224, 16, 256
    args.dtypes = ["bf16", "fp16"] if device == "cuda" else ["bf16"]
    args.decode_clips, args.decode_frames, args.decode_size = 4, 96, (720, 1280)
    if args.tiny:
        args.batch, args.repeats, args.clips, args.clip_size = 4, 1, 4, 64
        args.decode_clips, args.decode_frames, args.decode_size = 1, 8, (64, 64)
    run_started = time.perf_counter()
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu",
        "tiny": args.tiny, "torch": torch.__version__, "cases": [],
    }
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        files: dict[str, dict[str, Any]] = {}
        for name in args.rewards.split(","):
            started = time.perf_counter()
            left = args.budget - (started - run_started)
            if not args.tiny and left < CASE_SECONDS.get(name, 60):
                row = {"reward": name, "skipped": f"{left:.0f} s of the {args.budget:.0f} s budget left"}
                print(json.dumps(row), flush=True)
                results["cases"].append(row)
                continue
            try:
                if name in ("hpsv2", "pickscore", "imagereward"):
                    files[name] = _files(name, folder, args.tiny)
                    row = image_reward_case(name, files[name], args, device)
                elif name == "dover":
                    row = dover_case(_files("dover", folder, args.tiny), args, device)
                elif name == "decode":
                    row = decode_case(args, device, folder)
                elif name == "engine":
                    row = engine_case(files.get("hpsv2") or _files("hpsv2", folder, args.tiny), args, device, folder)
                else:
                    raise ValueError(f"unknown case {name!r}")
            except torch.cuda.OutOfMemoryError:
                row = {"reward": name, "error": "oom"}
                torch.cuda.empty_cache()
            row["wall_s"] = round(time.perf_counter() - started, 1)
            if device == "cuda":
                row["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
                torch.cuda.reset_peak_memory_stats()
            print(json.dumps(row), flush=True)
            results["cases"].append(row)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=lambda value: None if isinstance(value, float) and math.isnan(value) else str(value)) + "\n")
    out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
