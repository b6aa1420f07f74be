"""Per-step time and peak memory of reward backprop: InstructVideo ``editing`` (tau 0.6, D 20, K 1, decode
4 segmental frames) vs ``full_chain`` (D 20, K 1, decode all 16 frames), on the same small-but-not-trivial
random UNet3D config (16 frames, 32x32 pixels, 16x16 latents), CPU, one thread, no CFG in either mode.

Memory is the peak of CPU tensor allocations during one training step, measured with
``torch.profiler`` (``profile_memory=True``: the largest running total of allocated minus freed bytes
over the leaf operators' allocation events, so nested operators are not counted twice), not process RSS. Ratios go into ``extra_info``.
Run: ``uv run pytest benchmarks/bench_finetune.py --benchmark-disable`` (or with timings).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from rewardkit.finetune.lora import add_lora
from rewardkit.finetune.models import UNet3DAdapter
from rewardkit.finetune.objectives import RewardBackprop, RewardFunction
from rewardkit.finetune.objectives.reward_backprop import RewardTerm
from rewardkit.video.sampling import All, Segmental


class Brightness(torch.nn.Module):
    modality, needs_prompt = "video", False

    def __init__(self, sampler) -> None:
        super().__init__()
        self.sampler = sampler

    def score_sampled(self, frames, indices, num_frames, prompts=None, rng=None):
        return frames.mean(dim=(1, 2, 3, 4))


def _adapter() -> UNet3DAdapter:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from rewardkit.testing_finetune import MODELSCOPE_SCHEDULER, tiny_t2v_pipeline

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


def _one_step(adapter, mode: str, seed: int) -> float:
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
    adapter.unet.zero_grad(set_to_none=True)
    return loss.item()


def _peak_bytes(function) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        function()
    events = sorted((event for event in profiler.events() if event.cpu_memory_usage and not event.cpu_children), key=lambda event: event.time_range.start)
    running = peak = 0
    for event in events:
        running += event.cpu_memory_usage
        peak = max(peak, running)
    return peak


@pytest.fixture(scope="module")
def measured() -> dict[str, dict[str, float]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        adapter = _adapter()
        results = {}
        for mode in ("editing", "full_chain"):
            _one_step(adapter, mode, 0)  # warm-up
            started = time.perf_counter()
            _one_step(adapter, mode, 1)
            seconds = time.perf_counter() - started
            results[mode] = {"step_s": seconds, "peak_mb": _peak_bytes(lambda mode=mode: _one_step(adapter, mode, 2)) / 2**20}
        return results
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("mode", ["editing", "full_chain"])
def test_reward_backprop_step(benchmark, measured, mode):
    benchmark.extra_info.update(measured[mode])
    benchmark.extra_info["memory"] = "torch.profiler CPU allocation peak during one step"
    editing, full = measured["editing"], measured["full_chain"]
    benchmark.extra_info["speedup_editing_vs_full_chain"] = full["step_s"] / editing["step_s"]
    benchmark.extra_info["memory_ratio_full_chain_vs_editing"] = full["peak_mb"] / editing["peak_mb"]
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\n{mode}: {measured[mode]}; speedup {full['step_s'] / editing['step_s']:.2f}x, memory {full['peak_mb'] / editing['peak_mb']:.2f}x")
    assert editing["peak_mb"] > 0 and full["peak_mb"] > 0
    # 12 vs 20 UNet calls and 4 vs 16 decoded frames: editing must be the faster mode
    assert full["step_s"] > editing["step_s"]
