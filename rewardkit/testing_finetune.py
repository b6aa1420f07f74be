"""Fixture writer for the fine-tuning tests: a tiny random-weight text-to-video pipeline.

``write_tiny_t2v_pipeline(folder)`` saves a diffusers ``TextToVideoSDPipeline`` (the ModelScope T2V /
ZeroScope layout: ``unet`` UNet3DConditionModel, ``vae`` AutoencoderKL, ``text_encoder`` CLIPTextModel,
``tokenizer`` CLIPTokenizer, ``scheduler`` DDIMScheduler with ModelScope's scheduler settings) with
``save_pretrained``, so tests load it through ``from_pretrained`` exactly as a user loads the real
model. Weights are random; every component is a few layers wide, so it builds and runs in milliseconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

__all__ = ["TINY_T2V", "MODELSCOPE_SCHEDULER", "write_tiny_t2v_pipeline", "tiny_t2v_pipeline"]

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

# Sizes of the tiny model: 16x16 pixels -> 8x8 latents (the VAE halves once), 8 frames.
TINY_T2V = {"height": 16, "width": 16, "num_frames": 8, "text_width": 16}


def tiny_t2v_pipeline(seed: int = 0):
    """A tiny random ``TextToVideoSDPipeline`` in memory (see the module docstring)."""
    from diffusers import AutoencoderKL, DDIMScheduler, TextToVideoSDPipeline, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from rewardkit.testing import _clip_bpe_vocabulary

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
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=TINY_T2V["height"],
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=width, intermediate_size=32, num_attention_heads=2, num_hidden_layers=2,
            vocab_size=49408, max_position_embeddings=77, projection_dim=width,
        )
    )
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        vocabulary, merges = _clip_bpe_vocabulary()
        (Path(folder) / "vocab.json").write_text(json.dumps(vocabulary))
        (Path(folder) / "merges.txt").write_text("\n".join(["#version: 0.2", *merges]) + "\n")
        tokenizer = CLIPTokenizer(
            str(Path(folder) / "vocab.json"), str(Path(folder) / "merges.txt"), model_max_length=77
        )
    scheduler = DDIMScheduler(**MODELSCOPE_SCHEDULER)
    return TextToVideoSDPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)


def write_tiny_t2v_pipeline(folder: str | os.PathLike[str], seed: int = 0) -> Path:
    """Save the tiny pipeline with ``save_pretrained`` into ``folder`` (created) and return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tiny_t2v_pipeline(seed).save_pretrained(folder)
    return folder


if __name__ == "__main__":
    import sys

    print(write_tiny_t2v_pipeline(sys.argv[1] if len(sys.argv) > 1 else "tiny-t2v"))
