"""Per-step time and peak memory of each objective, as ratios against reward_backprop ``editing``:
InstructVideo ``editing`` (tau 0.6, D 20, K 1, decode 4 segmental frames) and ``full_chain`` (D 20, K 1,
decode all 16 frames) on one video; ``dpo`` on one pair (policy with graph + reference, 2 videos) and
``rwr`` on two videos (one denoising pass with graph) and ``gran_dpo`` on one pair (as ``dpo``, with 2x2
per-patch errors and patch weights), on the same small-but-not-trivial random UNet3D
config (16 frames, 32x32 pixels, 16x16 latents), CPU, one thread, no CFG. The Wan (flow-matching) family
runs editing, full_chain, dpo and rwr on the tiny random Wan 2.1 pipeline at 17 frames, 64x64 pixels
(5x8x8 latents; the causal VAE decodes the smallest latent window holding the sampled frames), its ratios
against Wan's own editing step.

Time: the benchmark times one step per round in this process. Memory: each mode runs in a fresh forked process: one warm-up
step (lazy initialisation), freed heap handed back (``malloc_trim``), then a second step while a thread
samples the resident set every 0.5 ms; the peak minus the resident set before the step is the step's
peak memory (large tensors are mmap-ed by glibc and returned when freed, so the sampled RSS follows
them). On a GPU the same comparison would use ``torch.cuda.max_memory_allocated``. The ratios go into
``extra_info``. Run: ``uv run pytest benchmarks/bench_finetune.py --benchmark-only`` (timings) or with
``--benchmark-disable`` (one pass).
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardkit.finetune.lora import add_lora
from rewardkit.finetune.models.base import VideoDiffusionAdapter
from rewardkit.finetune.models.unet3d import UNet3DAdapter
from rewardkit.finetune.objectives.reward_backprop import RewardBackprop, RewardFunction, RewardTerm
from rewardkit.testing.finetune import Brightness
from rewardkit.video.sampling import All, Segmental


def _adapter() -> UNet3DAdapter:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from rewardkit.testing.finetune import MODELSCOPE_SCHEDULER, tiny_t2v_pipeline

    torch.manual_seed(0)
    unet = UNet3DConditionModel(
        sample_size=16, down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels=(16, 32), layers_per_block=1, cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
    )
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(16, 32),
        layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=32,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=1, vocab_size=49408, max_position_embeddings=77))
    tokenizer = tiny_t2v_pipeline().tokenizer
    adapter = UNet3DAdapter(unet, vae, text_encoder, tokenizer, DDIMScheduler(**MODELSCOPE_SCHEDULER), num_frames=16, height=32, width=32)
    add_lora(unet, 4, 4, ["to_q", "to_k", "to_v", "to_out.0"])
    return adapter


def _wan_adapter() -> VideoDiffusionAdapter:
    from rewardkit.finetune.models.wan import WanAdapter
    from rewardkit.testing.wan import tiny_wan_pipeline

    torch.manual_seed(0)
    pipeline = tiny_wan_pipeline()
    adapter = WanAdapter(pipeline.transformer, pipeline.vae, pipeline.text_encoder, pipeline.tokenizer, pipeline.scheduler,
                         num_frames=17, height=64, width=64)
    add_lora(pipeline.transformer, 4, 4, ["to_q", "to_k", "to_v", "to_out.0"])
    return adapter


ADAPTERS = {"unet3d": _adapter, "wan": _wan_adapter}


def _one_step(adapter, mode: str, seed: int) -> float:
    if mode in ("dpo", "rwr", "gran_dpo"):
        return _denoising_step(adapter, mode, seed)
    if mode == "editing":
        objective = RewardBackprop(mode="editing", num_inference_steps=20, tau=0.6, backprop_steps=1, guidance_scale=1.0)
        reward = RewardFunction([RewardTerm("brightness", 1.0, Brightness(Segmental(4, "random")))])
        clean = torch.randn(adapter.latent_shape(1), generator=torch.Generator().manual_seed(seed))
    else:
        objective = RewardBackprop(mode="full_chain", num_inference_steps=20, backprop_steps=1, guidance_scale=1.0)
        reward = RewardFunction([RewardTerm("brightness", 1.0, Brightness(All()))])
        clean = None
    loss, _ = objective.loss(
        adapter, reward, ["a cat"], generator=torch.Generator().manual_seed(seed), rng=np.random.default_rng(seed),
        device=torch.device("cpu"), clean_latents=clean,
    )
    loss.backward()
    adapter.denoiser.zero_grad(set_to_none=True)
    return loss.item()


def _denoising_step(adapter, mode: str, seed: int) -> float:
    """dpo: one pair (winner + loser share noise and level), policy with graph + reference (LoRA off);
    rwr: two videos, one denoising pass with graph, softmax weights; gran_dpo: one pair as dpo with 2x2
    per-patch errors (policy with graph, reference LoRA off) and patch weights. The objectives' own functions."""
    from rewardkit.finetune.objectives.dpo import denoising_errors
    from rewardkit.finetune.objectives.gran_dpo import latent_patch_boxes
    from rewardkit.finetune.objectives.losses import (
        dpo_loss,
        gran_dpo_loss,
        patch_errors,
        patch_weights,
        per_sample_mse,
        rwr_weights,
        weighted_loss,
    )

    generator = torch.Generator().manual_seed(seed)
    x0 = torch.randn(adapter.latent_shape(2), generator=generator)
    noise = torch.randn(adapter.latent_shape(1), generator=generator)
    levels = adapter.sample_training_levels(1, generator)
    conditioning = adapter.encode_prompts(["a cat"], guidance=False)
    if mode == "dpo":
        policy, reference = denoising_errors(adapter, x0, torch.cat([noise, noise]), torch.cat([levels, levels]), conditioning.repeat(2))
        loss, _ = dpo_loss(policy[:1], reference[:1], policy[1:], reference[1:], 5000.0)
    elif mode == "gran_dpo":
        boxes, areas = latent_patch_boxes(x0.shape[-2], x0.shape[-1], (2, 2))
        both, both_noise = torch.cat([levels, levels]), torch.cat([noise, noise])
        noisy, target = adapter.add_noise(x0, both_noise, both), adapter.target(x0, both_noise, both)
        policy = patch_errors(adapter.predict(noisy, both, conditioning.repeat(2)), target, boxes)
        with adapter.reference():
            reference = patch_errors(adapter.predict(noisy, both, conditioning.repeat(2)), target, boxes)
        weights = patch_weights(torch.tensor([[[0.8, 0.6], [0.7, 0.5]]]), torch.tensor([[[0.3, 0.5], [0.4, 0.5]]]), areas, 1.0)
        loss, _ = gran_dpo_loss(policy[:1], reference[:1], policy[1:], reference[1:], weights, areas, 5000.0, 1.0)
    else:
        both = torch.cat([levels, levels])
        noisy = adapter.add_noise(x0, torch.cat([noise, noise]), both)
        errors = per_sample_mse(adapter.predict(noisy, both, conditioning.repeat(2)), adapter.target(x0, torch.cat([noise, noise]), both))
        loss = weighted_loss(errors, rwr_weights(torch.tensor([0.2, 0.3]), "exp", 0.1))
    loss.backward()
    adapter.denoiser.zero_grad(set_to_none=True)
    return loss.item()


def _resident_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _step_peak_in_child(family: str, mode: str, results: multiprocessing.Queue) -> None:
    torch.set_num_threads(1)
    adapter = ADAPTERS[family]()
    _one_step(adapter, mode, 0)  # lazy initialisation (kernels, autograd) out of the way
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap memory back so the baseline is honest
    before = peak = _resident_bytes()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _resident_bytes())
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _one_step(adapter, mode, 1)
    done.set()
    sampler.join()
    results.put(peak - before)


def _step_peak_bytes(family: str, mode: str) -> int:
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_step_peak_in_child, args=(family, mode, results))
    child.start()
    peak = results.get(timeout=600)
    child.join()
    return peak


@pytest.fixture(scope="module")
def adapters() -> dict[str, VideoDiffusionAdapter]:
    return {}


@pytest.fixture(scope="module")
def peak_mb() -> dict[tuple[str, str], float]:
    """Step peak memory per case, measured (in a forked child) when a case first needs it."""
    if not Path("/proc/self/statm").exists():
        pytest.skip("step memory is read from /proc (Linux)")
    return {}


CASES = [("unet3d", mode) for mode in ("editing", "full_chain", "dpo", "rwr", "gran_dpo")]
CASES += [("wan", mode) for mode in ("editing", "full_chain", "dpo", "rwr")]


STEP_SECONDS: dict[tuple[str, str], float] = {}


@pytest.mark.parametrize(("family", "mode"), CASES)
def test_objective_step(benchmark, adapters, peak_mb, family, mode):
    if family not in adapters:
        adapters[family] = ADAPTERS[family]()
    for case in ((family, "editing"), (family, mode)):
        if case not in peak_mb:
            peak_mb[case] = _step_peak_bytes(*case) / 2**20
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        benchmark.group = f"objective step, {family}, CPU 1 thread"
        started = time.perf_counter()
        loss = benchmark.pedantic(_one_step, args=(adapters[family], mode, 1), rounds=2, iterations=1)
        STEP_SECONDS[family, mode] = benchmark.stats["mean"] if benchmark.stats is not None else time.perf_counter() - started
    finally:
        torch.set_num_threads(threads)
    assert np.isfinite(loss)
    editing = (family, "editing")
    benchmark.extra_info |= {"step_s": STEP_SECONDS[family, mode], "peak_mb": peak_mb[family, mode]}
    benchmark.extra_info["memory_ratio_vs_editing"] = peak_mb[family, mode] / peak_mb[editing]
    if editing in STEP_SECONDS:
        benchmark.extra_info["time_ratio_vs_editing"] = STEP_SECONDS[family, mode] / STEP_SECONDS[editing]
    if editing in STEP_SECONDS:
        print(f"\n{family} {mode}: step {STEP_SECONDS[family, mode]:.2f} s ({STEP_SECONDS[family, mode] / STEP_SECONDS[editing]:.2f}x "
              f"reward_backprop editing), peak {peak_mb[family, mode]:.0f} MB ({peak_mb[family, mode] / peak_mb[editing]:.2f}x)")
    assert peak_mb[family, mode] > 0


# ------------------------------------------------------------------------------------------ online objectives
#
# One online_dpo step and one grpo step on the same UNet3D config (16 frames, 32x32, CPU, one thread), 2
# prompts x a group of 4, D = 10 rollout steps, VBench temporal flickering (weight-free, every frame) as
# the reward, split into sampling (the denoiser chain), decoding (the VAE, only the frames the reward's
# sampler picks), scoring (the reward on those frames) and update (the objective's loss and backward over
# every part). Sampling dominates. What rewardkit does about it: each group's videos go through the
# denoiser as ONE batch per step (not one video at a time; ``rollout_batched_vs_per_video`` below measures
# the ratio), rollouts run under no_grad, CFG is off in GRPO rollouts by default (one forward per step,
# not two), and GRPO trains on a fraction of the steps (the update is 2 x 5 passes with graph, not 2 x 10).

ONLINE_MODES = ("online_dpo", "grpo")


@pytest.fixture(scope="module")
def unet3d(adapters) -> VideoDiffusionAdapter:
    if "unet3d" not in adapters:
        adapters["unet3d"] = _adapter()
    return adapters["unet3d"]


def _online_objective(adapter, name: str):
    from rewardkit.finetune.config import load_recipe
    from rewardkit.finetune.objectives import get_objective
    from rewardkit.finetune.objectives.reward_backprop import build_reward_function

    recipe = Path(__file__).resolve().parents[1] / "finetune" / f"smoke-tiny-{name.replace('_', '-')}.toml"
    config = load_recipe(recipe, ["objective.group_size=4", "objective.num_inference_steps=10", "model.num_frames=16", "model.height=32", "model.width=32"])
    reward = build_reward_function(["temporal_flickering"], differentiable=False)
    return get_objective(name)(config, adapter, reward, torch.device("cpu"))


def _online_step(adapter, name: str, seed: int) -> dict[str, float]:
    """Seconds of each phase of one step (decoding and scoring timed inside the rollout by wrapping the
    adapter's decode_frames and the reward's score_sampled; sampling = the rest of the rollout)."""
    objective = _online_objective(adapter, name)
    spent = {"decoding": 0.0, "scoring": 0.0}

    def timed(function, key):
        def run(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - started
        return run

    term = objective.reward.terms[0].module
    adapter.decode_frames, term.score_sampled = timed(adapter.decode_frames, "decoding"), timed(term.score_sampled, "scoring")
    try:
        generator, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
        started = time.perf_counter()
        batch = objective.rollout({"prompts": ["a cat", "a dog"]}, generator, rng)
        rollout = time.perf_counter() - started
        started = time.perf_counter()
        parts = objective.micro_batches(batch)
        for part in parts:
            loss, _ = objective.loss(part, generator, rng)
            (loss / len(parts)).backward()
        update = time.perf_counter() - started
        adapter.denoiser.zero_grad(set_to_none=True)
    finally:
        del adapter.decode_frames, term.score_sampled  # back to the class methods
    return {"sampling": rollout - spent["decoding"] - spent["scoring"], **spent, "update": update}


def _rollout_seconds(adapter, per_video: bool) -> float:
    """The 8 videos of 2 groups through a D = 10 chain: one batch of 8, or one video at a time."""
    conditioning = adapter.encode_prompts(["a cat"] * 8, guidance=False)
    latents = torch.randn(adapter.latent_shape(8), generator=torch.Generator().manual_seed(0))
    levels = adapter.schedule(10)
    started = time.perf_counter()
    with torch.no_grad():
        for rows in ([slice(i, i + 1) for i in range(8)] if per_video else [slice(0, 8)]):
            x = latents[rows]
            for level, next_level in zip(levels[:-1], levels[1:], strict=True):
                x = adapter.sde_step(x, level, next_level, conditioning.select(rows), 1.0, noise_level=1.0)[0]
    return time.perf_counter() - started


@pytest.mark.parametrize("name", ONLINE_MODES)
def test_online_step_split(benchmark, unet3d, name):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        benchmark.group = "online step split, 16 frames 32x32, K 4, D 10, CPU 1 thread"
        phases = benchmark.pedantic(_online_step, args=(unet3d, name, 1), rounds=1, iterations=1)
    finally:
        torch.set_num_threads(threads)
    total = sum(phases.values())
    benchmark.extra_info |= {f"{key}_s": value for key, value in phases.items()}
    benchmark.extra_info |= {f"{key}_share": value / total for key, value in phases.items()}
    print(f"\n{name}: " + ", ".join(f"{key} {value:.2f} s ({value / total:.0%})" for key, value in phases.items()))
    assert all(value >= 0 for value in phases.values()) and phases["sampling"] > 0 and phases["update"] > 0


def test_rollout_batched_vs_per_video(benchmark, unet3d):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        benchmark.group = "rollout of 8 videos, D 10, CPU 1 thread"
        batched = benchmark.pedantic(_rollout_seconds, args=(unet3d, False), rounds=1, iterations=1)
        per_video = _rollout_seconds(unet3d, True)
    finally:
        torch.set_num_threads(threads)
    benchmark.extra_info |= {"batched_s": batched, "per_video_s": per_video, "speedup": per_video / batched}
    print(f"\nrollout of 8 videos: batched {batched:.2f} s, one at a time {per_video:.2f} s ({per_video / batched:.2f}x)")
    assert batched > 0
