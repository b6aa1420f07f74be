"""Adapter for diffusers' UNet3D text-to-video models: ModelScope T2V (``ali-vilab/text-to-video-ms-1.7b``)
and ZeroScope (``cerspense/zeroscope_v2_576w``), i.e. the components of ``TextToVideoSDPipeline``:
``unet`` (UNet3DConditionModel), ``vae`` (AutoencoderKL, per-frame 2D), ``text_encoder`` (CLIPTextModel),
``tokenizer`` and ``scheduler`` (DDIM, read for its betas, prediction type and final alpha).

Prompt encoding, VGen's DDIM step map and step, and per-frame decoding are ``DDIMLatentAdapter``'s
(rewardkit.finetune.models.base); the UNet3D takes one text state per video.
"""

from __future__ import annotations

import torch

from rewardkit.finetune.models import register_family
from rewardkit.finetune.models.base import (
    DDIMLatentAdapter,
    checkpoint_forwards,
    load_text_components,
    loader_options,
    missing_model_error,
    resolve_model_path,
)

__all__ = ["UNet3DAdapter", "load_unet3d", "build"]


class UNet3DAdapter(DDIMLatentAdapter):
    """UNet3D text-to-video components behind the adapter interface (see the module docstring)."""

    family = "unet3d"

    def enable_gradient_checkpointing(self) -> None:
        """diffusers 0.42's UNet3DConditionModel has ``_supports_gradient_checkpointing = False`` and its 3D
        blocks ignore their ``gradient_checkpointing`` flag, so each layer inside the blocks (resnets,
        temporal convolutions, spatial and temporal transformers) is checkpointed here instead, as VGen's
        ``use_checkpoint`` does inside its UNet."""
        blocks = [*self.unet.down_blocks, self.unet.mid_block, *self.unet.up_blocks]
        names = ("resnets", "temp_convs", "attentions", "temp_attentions")
        checkpoint_forwards([layer for block in blocks for name in names for layer in getattr(block, name, None) or ()])


def load_unet3d(
    path: str,
    *,
    num_frames: int,
    height: int,
    width: int,
    dtype: torch.dtype = torch.float32,
    revision: str = "",
    variant: str = "",
    device: torch.device | str = "cpu",
) -> UNet3DAdapter:
    """Load the components from a Hub repo id or a local ``save_pretrained`` folder.

    ``testing:tiny-t2v`` writes a tiny random pipeline into the rewardkit cache once and loads it from
    there (the smoke recipe). Offline without the weights is a ``MissingWeightsError`` saying what to do.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    source = resolve_model_path(path)
    options = {"revision": revision or None}
    weights = {"variant": variant or None, "torch_dtype": dtype}
    try:
        unet = UNet3DConditionModel.from_pretrained(source, subfolder="unet", **options, **weights)
        vae = AutoencoderKL.from_pretrained(source, subfolder="vae", **options, **weights)
        text_encoder, tokenizer = load_text_components(source, CLIPTextModel, CLIPTokenizer, revision=revision, dtype=dtype)
        scheduler = DDIMScheduler.from_pretrained(source, subfolder="scheduler", **options)
    except OSError as error:
        raise missing_model_error(path, error) from error
    return UNet3DAdapter(unet, vae, text_encoder, tokenizer, scheduler, num_frames=num_frames, height=height, width=width).to(device)


@register_family("unet3d")
def build(config, device: torch.device | str = "cpu") -> UNet3DAdapter:
    """The family's builder: a recipe's ``[model]`` table -> adapter."""
    return load_unet3d(config.path, **loader_options(config, device))
