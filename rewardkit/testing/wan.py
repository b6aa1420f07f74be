"""Fixture writer for the Wan 2.1 tests: a tiny random-weight ``WanPipeline`` in the exact layout of
``Wan-AI/Wan2.1-T2V-1.3B-Diffusers``.

``write_tiny_wan_pipeline(folder)`` saves, with ``save_pretrained``:

- ``transformer``: ``WanTransformer3DModel`` (patch 1x2x2, 2 heads of 12, 2 blocks, text width 16),
- ``vae``: ``AutoencoderKLWan`` (the causal 3D VAE: x8 spatial, x4 temporal, 16 latent channels, with
  random per-channel ``latents_mean`` / ``latents_std`` so that latent normalisation is exercised),
- ``text_encoder``: ``UMT5EncoderModel`` (2 layers of width 16),
- ``tokenizer``: a T5 (SentencePiece-Unigram) tokenizer over letters, digits and a few words, written as
  ``tokenizer.json`` and loaded by ``AutoTokenizer`` exactly like umt5-xxl's; no Hub access,
- ``scheduler``: ``UniPCMultistepScheduler`` with the settings Wan 2.1 ships (flow prediction, flow
  sigmas, ``flow_shift`` 3.0; diffusers' Wan docs),

so tests load it through ``from_pretrained`` as a user loads the real model. Every component is a few
channels wide, so a 9x32x32 video (3 x 4 x 4 latents) runs in milliseconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

__all__ = ["TINY_WAN", "WAN_SCHEDULER", "tiny_wan_tokenizer", "tiny_wan_pipeline", "write_tiny_wan_pipeline"]

# The scheduler settings of Wan2.1-T2V-1.3B-Diffusers (diffusers' Wan docs: "By default, Wan uses the
# UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)").
WAN_SCHEDULER = {
    "num_train_timesteps": 1000,
    "prediction_type": "flow_prediction",
    "use_flow_sigmas": True,
    "flow_shift": 3.0,
    "solver_order": 2,
    "solver_type": "bh2",
    "predict_x0": True,
    "lower_order_final": True,
    "final_sigmas_type": "zero",
    "timestep_spacing": "linspace",
}

# Sizes of the tiny model: 9 frames of 32x32 pixels -> 3 latent frames of 4x4, 2x2 tokens per frame.
TINY_WAN = {"num_frames": 9, "height": 32, "width": 32, "text_width": 16, "latent_channels": 16}

_WORDS = ["a", "the", "cat", "dog", "car", "red", "blue", "on", "at", "of", "in", "and", "bright", "dark", "video", "beach", "night"]


def tiny_wan_tokenizer():
    """A T5 tokenizer (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2, then Unigram pieces): whole words from a short
    list score higher than their letters, so "a red car" is three tokens and unknown words fall back to
    letters."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(f"\u2581{word}", -1.0) for word in _WORDS]
    characters = "abcdefghijklmnopqrstuvwxyz0123456789.,'!?-"
    pieces += [(character, -5.0) for character in characters] + [(f"\u2581{character}", -4.0) for character in characters]
    # Each (piece, score) once, in order: single letters duplicate no word piece except "a".
    unique = list(dict.fromkeys(piece for piece, _ in pieces))
    scores = dict(pieces[::-1])
    return T5Tokenizer(vocab=[(piece, scores[piece]) for piece in unique], extra_ids=0, model_max_length=512)


def tiny_wan_pipeline(seed: int = 0):
    """A tiny random ``WanPipeline`` in memory (see the module docstring)."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    width, channels = TINY_WAN["text_width"], TINY_WAN["latent_channels"]
    tokenizer = tiny_wan_tokenizer()
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer), d_model=width, d_kv=8, d_ff=32, num_layers=2, num_heads=2,
            relative_attention_num_buckets=8, relative_attention_max_distance=16, feed_forward_proj="gated-gelu",
            pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        )
    )
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=channels, out_channels=channels,
        text_dim=width, freq_dim=32, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    generator = torch.Generator().manual_seed(seed + 1)
    vae = AutoencoderKLWan(
        base_dim=4, z_dim=channels, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True],
        latents_mean=(0.2 * torch.randn(channels, generator=generator)).tolist(),
        latents_std=(1.0 + 0.5 * torch.rand(channels, generator=generator)).tolist(),
    )
    scheduler = UniPCMultistepScheduler(**WAN_SCHEDULER)
    return WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler, transformer=transformer)


def write_tiny_wan_pipeline(folder: str | os.PathLike[str], seed: int = 0) -> Path:
    """Save the tiny pipeline with ``save_pretrained`` into ``folder`` (created) and return it. The
    tokenizer entry of ``model_index.json`` names ``T5TokenizerFast``, as the real Wan folder does."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tiny_wan_pipeline(seed).save_pretrained(folder)
    index_file = folder / "model_index.json"
    index = json.loads(index_file.read_text())
    index["tokenizer"] = ["transformers", "T5TokenizerFast"]
    index_file.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return folder


if __name__ == "__main__":
    import sys

    print(write_tiny_wan_pipeline(sys.argv[1] if len(sys.argv) > 1 else "tiny-wan"))
