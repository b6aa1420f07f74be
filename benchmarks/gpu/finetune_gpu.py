"""Issue 9's GPU benchmark: step time and peak memory of the fine-tuning objectives on real-size,
random-weight models in bf16, one GPU, written as JSON.

Models (the real architectures and sizes, random weights; nothing is downloaded):

- ``modelscope``: ModelScope T2V's UNet3DConditionModel and AutoencoderKL (ali-vilab/text-to-video-ms-1.7b
  configs), 16 x 256 x 256, DDIM (VGen's step map), LoRA r4 on q/k/v/out (InstructVideo);
- ``wan``: Wan2.1-T2V-1.3B's WanTransformer3DModel (30 blocks of width 1536) and AutoencoderKLWan (the
  default config is the released VAE), 33 x 480 x 832, UniPC flow schedule with shift 3, LoRA r32 alpha 64
  on q/k/v/out (flow_grpo's Wan setting).

The text encoders are frozen and run once per prompt, outside what is measured, so they are one-layer
random encoders at the real output width (CLIP 1024, UMT5 4096; 77 / 512 states) instead of 354M / 5.7B
parameter ones: peak memory is the step's with the denoiser, the VAE, the LoRA optimizer and the
activations, without a resident text encoder. Gradient checkpointing is on for both denoisers.

Cases per model: ``editing`` (InstructVideo reward fine-tuning as editing: D 20, tau 0.6, gradient
through the last step, CFG; reward = mean brightness of 4 segmental frames decoded with gradients) at
batch 2 and 8, ``dpo`` (pairs of clean latents: 4 denoiser passes, 2 with gradients) and ``rwr`` at batch
2 and 8. Each case: one warm-up step, then ``--steps`` timed steps (mean seconds; peak memory from
``torch.cuda.max_memory_allocated`` over the timed steps). A case that runs out of memory is recorded as
``"oom"`` and the rest continue.

Run on a GPU machine: ``bash benchmarks/gpu/run_finetune.sh`` (writes benchmarks/gpu/results.json). ``--tiny``
runs the same code on CPU with the tiny test models (tests/test_finetune_wan.py runs it so it cannot rot).
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

from rewardkit.testing.finetune import Brightness

CASES = [("editing", 2), ("editing", 8), ("dpo", 2), ("dpo", 8), ("rwr", 2), ("rwr", 8)]
TINY_CASES = [("editing", 2), ("dpo", 2), ("rwr", 2)]




def _text_encoders(kind: str, width: int):
    """A one-layer random text encoder at the real output width, with a small offline tokenizer."""
    if kind == "clip":
        from transformers import CLIPTextConfig, CLIPTextModel

        from rewardkit.testing.finetune import tiny_t2v_pipeline

        config = CLIPTextConfig(hidden_size=width, intermediate_size=width, num_attention_heads=8, num_hidden_layers=1,
                                vocab_size=49408, max_position_embeddings=77)
        return CLIPTextModel(config), tiny_t2v_pipeline().tokenizer
    from transformers import UMT5Config, UMT5EncoderModel

    from rewardkit.testing.wan import tiny_wan_tokenizer

    tokenizer = tiny_wan_tokenizer()
    config = UMT5Config(vocab_size=len(tokenizer), d_model=width, d_kv=64, d_ff=width, num_layers=1, num_heads=8,
                        feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return UMT5EncoderModel(config), tokenizer


def build_modelscope(tiny: bool, device, dtype):
    """(adapter, LoRA rank/alpha/targets) for ModelScope T2V (real configs) or the tiny test pipeline."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel

    from rewardkit.finetune.models.unet3d import UNet3DAdapter
    from rewardkit.testing.finetune import MODELSCOPE_SCHEDULER, TINY_T2V, tiny_t2v_pipeline

    if tiny:
        pipe = tiny_t2v_pipeline()
        unet, vae, text_encoder, tokenizer = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
        sizes = {key: TINY_T2V[key] for key in ("num_frames", "height", "width")}
    else:
        with torch.device(device):
            unet = UNet3DConditionModel(
                sample_size=32, in_channels=4, out_channels=4, layers_per_block=2, attention_head_dim=64, cross_attention_dim=1024,
                block_out_channels=(320, 640, 1280, 1280), norm_num_groups=32,
                down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
                up_block_types=("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
            )
            vae = AutoencoderKL(
                block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=256,
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, scaling_factor=0.18215,
            )
            text_encoder, tokenizer = _text_encoders("clip", 1024)
        sizes = {"num_frames": 16, "height": 256, "width": 256}
    for module in (unet, vae, text_encoder):
        module.to(device, dtype)
    adapter = UNet3DAdapter(unet, vae, text_encoder, tokenizer, DDIMScheduler(**MODELSCOPE_SCHEDULER), **sizes)
    return adapter, (4, 4, ["to_q", "to_k", "to_v", "to_out.0"])


def build_wan(tiny: bool, device, dtype):
    """(adapter, LoRA rank/alpha/targets) for Wan2.1-T2V-1.3B (real configs) or the tiny test pipeline."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel

    from rewardkit.finetune.models.wan import WanAdapter
    from rewardkit.testing.wan import TINY_WAN, WAN_SCHEDULER, tiny_wan_pipeline

    if tiny:
        pipe = tiny_wan_pipeline()
        transformer, vae, text_encoder, tokenizer = pipe.transformer, pipe.vae, pipe.text_encoder, pipe.tokenizer
        sizes = {key: TINY_WAN[key] for key in ("num_frames", "height", "width")}
    else:
        with torch.device(device):
            transformer = WanTransformer3DModel(
                patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
                text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                eps=1e-6, rope_max_seq_len=1024,
            )
            vae = AutoencoderKLWan()
            text_encoder, tokenizer = _text_encoders("umt5", 4096)
        sizes = {"num_frames": 33, "height": 480, "width": 832}
    for module in (transformer, vae, text_encoder):
        module.to(device, dtype)
    adapter = WanAdapter(transformer, vae, text_encoder, tokenizer, UniPCMultistepScheduler(**WAN_SCHEDULER), **sizes)
    return adapter, (32, 64, ["to_q", "to_k", "to_v", "to_out.0"])


BUILDERS = {"modelscope": build_modelscope, "wan": build_wan}


def _step_function(adapter, family: str, objective: str, batch: int, device):
    """A closure running one loss + backward of ``objective`` on ``batch`` videos (DPO: ``batch`` pairs)."""
    from rewardkit.finetune.config import load_recipe
    from rewardkit.finetune.objectives import get_objective
    from rewardkit.finetune.objectives.reward_backprop import RewardBackprop, RewardFunction, RewardTerm
    from rewardkit.video.sampling import Segmental

    prompts = ["a red car driving along a beach at night"] * batch
    generator, rng = torch.Generator().manual_seed(0), np.random.default_rng(0)
    clean = torch.randn(adapter.latent_shape(batch), generator=generator)
    guidance = 5.0 if family == "wan" else 3.0
    if objective == "editing":
        method = RewardBackprop(mode="editing", num_inference_steps=20, tau=0.6, backprop_steps=1, guidance_scale=guidance)
        reward = RewardFunction([RewardTerm("brightness", 1.0, Brightness(Segmental(4, "first")))])

        def run() -> float:
            loss, _ = method.loss(adapter, reward, prompts, generator=generator, rng=rng, device=device, clean_latents=clean)
            loss.backward()
            return loss.item()

        return run
    sizes = {"family": "wan" if family == "wan" else "unet3d", "num_frames": adapter.num_frames, "height": adapter.height, "width": adapter.width}
    if objective == "dpo":
        recipe = load_recipe({"model": sizes, "objective": {"name": "dpo", "beta": 100.0 if family == "wan" else 5000.0}, "data": {"pairs": "pairs.jsonl"}})
        batch_of = {"chosen_path": [f"w{i}" for i in range(batch)], "rejected_path": [f"l{i}" for i in range(batch)], "prompts": prompts}
        names = batch_of["chosen_path"] + batch_of["rejected_path"]
    elif objective == "rwr":
        recipe = load_recipe({"model": sizes, "objective": {"name": "rwr", "source": "data"}, "data": {"csv": "clips.csv"}})
        batch_of = {"path": [f"c{i}" for i in range(batch)], "prompts": prompts, "reward": torch.rand(batch, generator=generator)}
        names = batch_of["path"]
    else:
        raise ValueError(f"unknown objective {objective!r}")
    method = get_objective(objective)(recipe, adapter, None, device)
    for name in names:  # latents of the data, as the objective's cache holds them after the first epoch
        method.cache.latents[name] = torch.randn(adapter.latent_shape(1)[1:], generator=generator)

    def run() -> float:
        loss, _ = method.loss(batch_of, generator, rng)
        loss.backward()
        return loss.item()

    return run


def measure(family: str, tiny: bool, steps: int, cases, device, dtype) -> dict:
    """Build one family's model and time its cases; out-of-memory cases are recorded as "oom"."""
    from rewardkit.finetune.lora import add_lora, lora_parameters

    started = time.perf_counter()
    adapter, (rank, alpha, targets) = BUILDERS[family](tiny, device, dtype)
    add_lora(adapter.denoiser, rank, alpha, targets)
    adapter.enable_gradient_checkpointing()
    parameters = lora_parameters(adapter.denoiser)
    optimizer = torch.optim.AdamW(parameters, lr=1e-5)
    result = {
        "frames_height_width": [adapter.num_frames, adapter.height, adapter.width],
        "denoiser_parameters": sum(parameter.numel() for parameter in adapter.denoiser.parameters()),
        "lora_parameters": sum(parameter.numel() for parameter in parameters),
        "build_s": round(time.perf_counter() - started, 2),
        "cases": {},
    }
    for objective, batch in cases:
        name = f"{objective}_b{batch}"
        try:
            run = _step_function(adapter, family, objective, batch, device)
            run()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            times = []
            for _ in range(steps):
                begin = time.perf_counter()
                loss = run()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - begin)
            entry = {"step_s": round(sum(times) / len(times), 4), "loss": loss}
            if device.type == "cuda":
                entry["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        except torch.OutOfMemoryError:
            entry = "oom"
            optimizer.zero_grad(set_to_none=True)
        result["cases"][name] = entry
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(f"{family} {name}: {entry}", flush=True)
    reference = result["cases"].get("editing_b2")
    if isinstance(reference, dict):
        for entry in result["cases"].values():
            if isinstance(entry, dict):
                entry["time_vs_editing_b2"] = round(entry["step_s"] / reference["step_s"], 3)
                if "peak_gib" in entry:
                    entry["memory_vs_editing_b2"] = round(entry["peak_gib"] / reference["peak_gib"], 3)
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny test models on CPU in fp32 (a smoke run of this script)")
    parser.add_argument("--out", default="benchmarks/gpu/results.json", help="where the JSON results go")
    parser.add_argument("--families", default="modelscope,wan", help="comma-separated: modelscope, wan")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per case after one warm-up step")
    args = parser.parse_args(argv)
    families = [family.strip() for family in args.families.split(",") if family.strip()]
    unknown = [family for family in families if family not in BUILDERS]
    if unknown:
        parser.error(f"unknown families {unknown}; choose from {', '.join(BUILDERS)}")
    if args.tiny:
        device, dtype, cases = torch.device("cpu"), torch.float32, TINY_CASES
        torch.set_num_threads(1)
    elif torch.cuda.is_available():
        device, dtype, cases = torch.device("cuda"), torch.bfloat16, CASES
    else:
        parser.error("the real-size benchmark needs a CUDA GPU; --tiny runs the same code on CPU with tiny models")
    torch.manual_seed(0)
    report = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "dtype": str(dtype).removeprefix("torch."),
        "tiny": args.tiny,
        "torch": torch.__version__,
        "families": {},
    }
    for family in families:
        report["families"][family] = measure(family, args.tiny, args.steps, cases, device, dtype)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
