"""Fixture writers for the fine-tuning tests: tiny random-weight text-to-video pipelines.

``write_tiny_t2v_pipeline(folder)`` saves a diffusers ``TextToVideoSDPipeline`` (the ModelScope T2V /
ZeroScope layout: ``unet`` UNet3DConditionModel, ``vae`` AutoencoderKL, ``text_encoder`` CLIPTextModel,
``tokenizer`` CLIPTokenizer, ``scheduler`` DDIMScheduler with ModelScope's scheduler settings), and
``write_tiny_animatediff_pipeline(folder)`` an ``AnimateDiffPipeline`` (``unet`` UNetMotionModel built from
a Stable Diffusion UNet2DConditionModel and a ``motion_adapter`` MotionAdapter, saved too; the same VAE,
text encoder and tokenizer; DDIMScheduler with AnimateDiff's settings), both with ``save_pretrained``, so
tests load them through ``from_pretrained`` exactly as a user loads the real models. Weights are random
except the VAE's, which is fitted to reconstruct colour (a few seconds, once per process) so that rewards on
decoded pixels respond to the latents; every component is a few layers wide, so it runs in milliseconds.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import torch

__all__ = [
    "Brightness",
    "TINY_T2V",
    "MODELSCOPE_SCHEDULER",
    "ANIMATEDIFF_SCHEDULER",
    "write_tiny_t2v_pipeline",
    "tiny_t2v_pipeline",
    "write_tiny_animatediff_pipeline",
    "tiny_animatediff_pipeline",
    "tiny_sd_unet_and_motion_adapter",
    "write_bright_dark_data",
]


class Brightness(torch.nn.Module):
    """A differentiable video reward in rewardkit's contract (``modality``, ``needs_prompt``, ``sampler``,
    ``score_sampled``): the mean pixel value of the sampled frames. The learning checks' and benchmarks'
    reward; ``sampler`` defaults to every frame."""

    modality, needs_prompt = "video", False

    def __init__(self, sampler=None) -> None:
        super().__init__()
        from rewardkit.video.sampling import All

        self.sampler = sampler if sampler is not None else All()

    def score_sampled(self, frames, indices, num_frames, prompts=None, rng=None) -> torch.Tensor:
        return frames.float().mean(dim=(1, 2, 3, 4))

# ModelScope T2V's scheduler_config.json (ali-vilab/text-to-video-ms-1.7b): VGen's "linear_sd" betas.
MODELSCOPE_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}

# AnimateDiff's DDIM settings (guoyww/AnimateDiff configs/inference: linear betas 0.00085..0.012,
# steps_offset 1, clip_sample off; diffusers' default set_alpha_to_one = True, as the official code uses).
ANIMATEDIFF_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "linear",
    "clip_sample": False,
    "set_alpha_to_one": True,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}

# Sizes of the tiny model: 16x16 pixels -> 8x8 latents (the VAE halves once), 8 frames.
TINY_T2V = {"height": 16, "width": 16, "num_frames": 8, "text_width": 16}


# The tiny per-frame AutoencoderKL (16 px -> 8 latent px). With random weights its decoder hardly responds
# to its latents (GroupNorm removes what is constant over the frame, and colour mostly is: +1 on one latent
# channel moved the mean decoded value by 1e-4..2e-3 against a 3e-3 spread over random latents), so no
# reward on decoded brightness could be learned. ``_fitted_vae`` therefore trains it as an autoencoder.
_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D", "DownEncoderBlock2D"),
    "up_block_types": ("UpDecoderBlock2D", "UpDecoderBlock2D"),
    "block_out_channels": (8, 16),
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "sample_size": TINY_T2V["height"],
}


def _colour_frames(count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` frames in [-1, 1]: half solid colours, half smooth gradients between 4 random corner colours."""
    corners = torch.rand((count, 3, 2, 2), generator=generator) * 2 - 1
    smooth = torch.nn.functional.interpolate(corners, size=(size, size), mode="bilinear", align_corners=True)
    solid = (torch.rand((count, 1, 1, 1), generator=generator) < 0.5).float()
    return solid * corners[:, :, :1, :1].expand(-1, -1, size, size) + (1 - solid) * smooth


# Bump when ``_fit_vae`` changes: the fitted weights kept in the rewardkit cache are then fitted again.
_FITTED_VAE_REVISION = 1


@functools.cache
def _fitted_vae() -> tuple[dict[str, torch.Tensor], float]:
    """``_fit_vae``'s result, fitted once per machine: kept in the rewardkit cache
    (``tiny-vae-fit/r<revision>.pt``, written atomically; a process that finds another fitting waits for it
    under a file lock), since the fit takes about a minute of one core."""
    import fcntl
    import tempfile

    from rewardkit.weights import cache_root

    folder = cache_root() / "tiny-vae-fit"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"r{_FITTED_VAE_REVISION}.pt"
    with open(folder / "fit.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.is_file():
            try:
                saved = torch.load(path, map_location="cpu", weights_only=True)
                return saved["state"], float(saved["scaling_factor"])
            except Exception:  # a damaged copy: fit again and replace it
                pass
        state, scaling_factor = _fit_vae()
        handle, staging = tempfile.mkstemp(dir=folder, suffix=".tmp")
        os.close(handle)
        torch.save({"state": state, "scaling_factor": scaling_factor}, staging)
        os.replace(staging, path)
    return state, scaling_factor


def _fit_vae() -> tuple[dict[str, torch.Tensor], float]:
    """The tiny VAE's weights after 300 Adam steps (lr 1e-2, batch 16 of 8x8 colour frames, the usual
    reconstruction + 1e-3 KL loss) from a fixed seed, and its ``scaling_factor`` (1 / std of the latents of
    held-out 16 px frames, as Stable Diffusion's was chosen), so decoded colour follows the latents. One
    thread and private random state: the same weights in every process, whatever the thread count or the
    caller's seed."""
    from diffusers import AutoencoderKL

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            vae = AutoencoderKL(**_VAE)
        generator = torch.Generator().manual_seed(0)
        optimizer = torch.optim.Adam(vae.parameters(), lr=1e-2)
        for _ in range(300):
            frames = _colour_frames(16, 8, generator)
            posterior = vae.encode(frames).latent_dist
            latents = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
            kl = posterior.kl().mean() / posterior.mean[0].numel()
            loss = (vae.decode(latents).sample - frames).square().mean() + 1e-3 * kl
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            latents = vae.encode(_colour_frames(256, TINY_T2V["height"], generator)).latent_dist.mean
    finally:
        torch.set_num_threads(threads)
    return {key: value.detach().clone() for key, value in vae.state_dict().items()}, round(1 / latents.std().item(), 4)


def _tiny_vae_and_text():
    """The tiny per-frame VAE (fitted, see ``_fitted_vae``), CLIP text encoder and tokenizer both pipelines
    share."""
    import tempfile

    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from rewardkit.testing.clip import clip_bpe_vocabulary

    width = TINY_T2V["text_width"]
    state, scaling_factor = _fitted_vae()
    vae = AutoencoderKL(**_VAE, scaling_factor=scaling_factor)  # draws its random init as before: the text encoder's weights stay
    vae.load_state_dict(state)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=width, intermediate_size=32, num_attention_heads=2, num_hidden_layers=2,
            vocab_size=49408, max_position_embeddings=77, projection_dim=width,
        )
    )
    with tempfile.TemporaryDirectory() as folder:
        vocabulary, merges = clip_bpe_vocabulary()
        (Path(folder) / "vocab.json").write_text(json.dumps(vocabulary))
        (Path(folder) / "merges.txt").write_text("\n".join(["#version: 0.2", *merges]) + "\n")
        tokenizer = CLIPTokenizer(str(Path(folder) / "vocab.json"), str(Path(folder) / "merges.txt"), model_max_length=77)
    return vae, text_encoder, tokenizer


def tiny_t2v_pipeline(seed: int = 0):
    """A tiny random ``TextToVideoSDPipeline`` in memory (see the module docstring)."""
    from diffusers import DDIMScheduler, TextToVideoSDPipeline, UNet3DConditionModel

    torch.manual_seed(seed)
    width = TINY_T2V["text_width"]
    unet = UNet3DConditionModel(
        sample_size=TINY_T2V["height"] // 2,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        cross_attention_dim=width,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae, text_encoder, tokenizer = _tiny_vae_and_text()
    scheduler = DDIMScheduler(**MODELSCOPE_SCHEDULER)
    return TextToVideoSDPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)


def write_tiny_t2v_pipeline(folder: str | os.PathLike[str], seed: int = 0) -> Path:
    """Save the tiny pipeline with ``save_pretrained`` into ``folder`` (created) and return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tiny_t2v_pipeline(seed).save_pretrained(folder)
    return folder


def tiny_sd_unet_and_motion_adapter(seed: int = 0):
    """The tiny Stable Diffusion ``UNet2DConditionModel`` and ``MotionAdapter`` AnimateDiff combines."""
    from diffusers import MotionAdapter, UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=TINY_T2V["height"] // 2,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        cross_attention_dim=TINY_T2V["text_width"],
        attention_head_dim=4,
        norm_num_groups=8,
    )
    motion_adapter = MotionAdapter(
        block_out_channels=(16, 32),
        motion_layers_per_block=1,
        motion_num_attention_heads=2,
        motion_norm_num_groups=8,
        motion_max_seq_length=32,
        use_motion_mid_block=True,
    )
    return unet, motion_adapter


def tiny_animatediff_pipeline(seed: int = 0):
    """A tiny random ``AnimateDiffPipeline`` in memory (see the module docstring)."""
    from diffusers import AnimateDiffPipeline, DDIMScheduler

    unet, motion_adapter = tiny_sd_unet_and_motion_adapter(seed)
    vae, text_encoder, tokenizer = _tiny_vae_and_text()
    scheduler = DDIMScheduler(**ANIMATEDIFF_SCHEDULER)
    # The pipeline turns the 2D UNet + motion adapter into a UNetMotionModel (``unet``) and keeps the adapter.
    return AnimateDiffPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, motion_adapter=motion_adapter, scheduler=scheduler
    )


def write_tiny_animatediff_pipeline(folder: str | os.PathLike[str], seed: int = 0) -> Path:
    """Save the tiny AnimateDiff pipeline with ``save_pretrained`` into ``folder`` (created) and return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tiny_animatediff_pipeline(seed).save_pretrained(folder)
    return folder


def write_bright_dark_data(folder: str | os.PathLike[str], count: int = 6, seed: int = 0, size: int = 16, frames: int = 8) -> Path:
    """Synthetic preference data for the tiny models (the learning checks and smoke recipes): for each of
    ``count`` prompts a bright clip (pixels ~0.75) and a dark one (~0.25) with a little noise, written as
    mp4 (8 fps). ``pairs.jsonl``: chosen = bright, rejected = dark, margin = brightness difference, and
    2x2 per-patch rewards (each patch's mean brightness); ``clips.csv``: path,prompt,reward (reward =
    mean brightness) for reward-weighted regression from data. Returns ``folder``."""
    import csv

    import numpy as np

    from rewardkit.video.io import write_video

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    subjects = ["a cat", "a dog", "a red car", "a tree", "a boat", "a house", "a bird", "a horse", "a lamp", "a chair"]
    pairs, rows = [], []
    for index in range(count):
        prompt = f"{subjects[index % len(subjects)]} number {index}"
        names = {}
        for kind, level in (("bright", 0.75), ("dark", 0.25)):
            video = np.clip(level + 0.08 * rng.standard_normal((frames, size, size, 3)), 0, 1)
            name = f"{index:03d}-{kind}.mp4"
            write_video(folder / name, (video * 255).round().astype(np.uint8))
            half = size // 2
            patches = [[float(video[:, r * half:(r + 1) * half, c * half:(c + 1) * half].mean()) for c in range(2)] for r in range(2)]
            names[kind] = (name, float(video.mean()), patches)
            rows.append({"path": name, "prompt": prompt, "reward": f"{video.mean():.6f}"})
        (chosen, bright, chosen_patches), (rejected, dark, rejected_patches) = names["bright"], names["dark"]
        pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "margin": round(bright - dark, 6), "tie": False,
                      "chosen_patches": chosen_patches, "rejected_patches": rejected_patches})
    (folder / "pairs.jsonl").write_text("".join(json.dumps(pair) + "\n" for pair in pairs))
    with (folder / "clips.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "prompt", "reward"])
        writer.writeheader()
        writer.writerows(rows)
    return folder


if __name__ == "__main__":
    import sys

    print(write_tiny_t2v_pipeline(sys.argv[1] if len(sys.argv) > 1 else "tiny-t2v"))
