"""Issue 10's GPU benchmark: one GRPO step on Wan2.1-T2V-1.3B (real architecture, random weights; nothing
is downloaded) at Flow-GRPO's Wan setting: 33 x 240 x 416, a group of K = 4 videos of one prompt, 20 SDE
rollout steps (a = 0.7, no CFG), a random 60% (12) of the steps trained, LoRA r32 alpha 64 on q/k/v/out,
bf16 weights, gradient checkpointing. The reward is the mean brightness of 4 segmental frames (the real
rewards' weights are not on the machine): decoding only those frames costs what an image reward's
decoding costs.

Measured (one warm-up step first, then ``--steps`` steps, means): ``rollout_s`` (sampling + decoding +
scoring under no_grad, with ``sampling_s`` / ``decoding_s`` split out), ``update_s`` (the 12 parts'
loss + backward and the optimizer step), ``rollout_peak_gib`` and ``update_peak_gib``
(``torch.cuda.max_memory_allocated`` over each phase). The text encoder is a one-layer random UMT5 at the
real width (it runs once per prompt, outside what is measured); see finetune_gpu.py.

Run on a GPU machine: ``bash benchmarks/gpu/run_finetune.sh`` runs issue 9's cases, then this (writes
benchmarks/gpu/grpo_results.json). ``--tiny`` runs the same code on CPU with the tiny test Wan
(tests/test_finetune_online.py runs it so it cannot rot).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_gpu import Brightness, build_wan  # noqa: E402  (the sibling script's model builder)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak(device: torch.device) -> float:
    return round(torch.cuda.max_memory_allocated() / 2**30, 3) if device.type == "cuda" else float("nan")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny test Wan on CPU in fp32 (a smoke run of this script)")
    parser.add_argument("--out", default="benchmarks/gpu/grpo_results.json", help="where the JSON results go")
    parser.add_argument("--steps", type=int, default=1, help="measured GRPO steps after one warm-up step")
    args = parser.parse_args(argv)
    if args.tiny:
        device, dtype = torch.device("cpu"), torch.float32
        torch.set_num_threads(1)
    elif torch.cuda.is_available():
        device, dtype = torch.device("cuda"), torch.bfloat16
    else:
        parser.error("the real-size benchmark needs a CUDA GPU; --tiny runs the same code on CPU with the tiny Wan")
    from diffusers import UniPCMultistepScheduler

    from rewardkit.finetune.config import load_recipe
    from rewardkit.finetune.lora import add_lora, lora_parameters
    from rewardkit.finetune.models.wan import WanAdapter
    from rewardkit.finetune.objectives import get_objective
    from rewardkit.finetune.objectives.reward_backprop import RewardFunction, RewardTerm
    from rewardkit.testing.wan import WAN_SCHEDULER
    from rewardkit.video.sampling import Segmental

    torch.manual_seed(0)
    built, (rank, alpha, targets) = build_wan(args.tiny, device, dtype)
    sizes = {"num_frames": built.num_frames, "height": built.height, "width": built.width} if args.tiny else {"num_frames": 33, "height": 240, "width": 416}
    adapter = WanAdapter(built.transformer, built.vae, built.text_encoder, built.tokenizer, UniPCMultistepScheduler(**WAN_SCHEDULER), **sizes)
    add_lora(adapter.denoiser, rank, alpha, targets)
    adapter.enable_gradient_checkpointing()
    steps = 4 if args.tiny else 20
    recipe = load_recipe({
        "model": {"family": "wan", **sizes},
        "objective": {"name": "grpo", "group_size": 4, "num_inference_steps": steps, "noise_level": 0.7, "train_fraction": 0.6, "kl_beta": 0.0},
        "reward": {"rewards": ["temporal_flickering"]},  # checked only; the brightness reward below is used
        "data": {"prompts": ["a red car driving along a beach at night"]},
        "train": {"batch_size": 1},
    })
    reward = RewardFunction([RewardTerm("brightness", 1.0, Brightness(Segmental(4, "random")))])
    objective = get_objective("grpo")(recipe, adapter, reward, device)
    optimizer = torch.optim.AdamW(lora_parameters(adapter.denoiser), lr=1e-4)
    decode, spent = adapter.decode_frames, {"decoding": 0.0}

    def timed_decode(*args, **kwargs):
        _synchronize(device)
        begin = time.perf_counter()
        frames = decode(*args, **kwargs)
        _synchronize(device)
        spent["decoding"] += time.perf_counter() - begin
        return frames

    adapter.decode_frames = timed_decode
    rows = []
    for step in range(args.steps + 1):
        generator, rng = torch.Generator().manual_seed(step), np.random.default_rng(step)
        spent["decoding"] = 0.0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        _synchronize(device)
        begin = time.perf_counter()
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            batch = objective.rollout({"prompts": recipe.data.prompts}, generator, rng)
        _synchronize(device)
        rollout = time.perf_counter() - begin
        rollout_peak = _peak(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        begin = time.perf_counter()
        parts = objective.micro_batches(batch)
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            for part in parts:
                loss, details = objective.loss(part, generator, rng)
                (loss / len(parts)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _synchronize(device)
        update = time.perf_counter() - begin
        rows.append({
            "rollout_s": rollout, "sampling_s": rollout - spent["decoding"], "decoding_s": spent["decoding"], "update_s": update,
            "rollout_peak_gib": rollout_peak, "update_peak_gib": _peak(device), "trained_steps": len(parts),
            "ratio_max_deviation": float((details["ratio"] - 1).abs().max()),
        })
        print(f"step {step}{' (warm-up)' if step == 0 else ''}: {rows[-1]}", flush=True)
    measured = rows[1:]
    report = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "dtype": str(dtype).removeprefix("torch."), "tiny": args.tiny, "torch": torch.__version__,
        "frames_height_width": [adapter.num_frames, adapter.height, adapter.width], "group_size": 4, "rollout_steps": steps,
        **{key: round(float(np.mean([row[key] for row in measured])), 4) for key in measured[0]},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
