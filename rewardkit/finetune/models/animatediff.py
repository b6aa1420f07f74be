"""Adapter for AnimateDiff (Guo et al., arXiv:2307.04725; guoyww/AnimateDiff) on diffusers'
``AnimateDiffPipeline`` components: ``unet`` (UNetMotionModel = a Stable Diffusion 1.5
UNet2DConditionModel with the temporal modules of a MotionAdapter), ``vae`` (AutoencoderKL, per frame),
``text_encoder`` (CLIPTextModel), ``tokenizer`` and ``scheduler`` (read for its betas, prediction type and
final alpha).

Prompt encoding, VGen's DDIM step map and step, and per-frame decoding are ``DDIMLatentAdapter``'s
(rewardkit.finetune.models.base), exactly as for UNet3D. The difference: UNetMotionModel folds the frames
into the batch, so it takes the text states once per frame (``[B * F, L, D]``, each video's repeated F
times, as ``AnimateDiffPipeline.__call__`` does), and its temporal position encoding caps the frame count
at the motion adapter's ``motion_max_seq_length`` (32 for guoyww/animatediff-motion-adapter-v1-5-2).

The base model comes in the two ways diffusers users load AnimateDiff:

- ``model.path`` = an AnimateDiff pipeline saved with ``save_pretrained`` (local folder or Hub id): its
  ``unet`` already is a UNetMotionModel; its ``scheduler`` config is used as saved.
- ``model.path`` = a Stable Diffusion 1.5 model (e.g. ``emilianJR/epiCRealism``) and
  ``model.motion_adapter`` = a MotionAdapter (e.g. ``guoyww/animatediff-motion-adapter-v1-5-2``), as in
  ``AnimateDiffPipeline.from_pretrained(path, motion_adapter=MotionAdapter.from_pretrained(id))``. The
  scheduler is the base's with AnimateDiff's DDIM settings (linear betas, ``steps_offset = 1``,
  ``clip_sample = False``, ``set_alpha_to_one = True`` so the chain ends at alpha 1; guoyww/AnimateDiff configs/inference and the diffusers AnimateDiff docs), not
  SD's scaled-linear PNDM default.
"""

from __future__ import annotations

import torch

from rewardkit.finetune.models import register_family
from rewardkit.finetune.models.base import (
    DDIMLatentAdapter,
    load_text_components,
    loader_options,
    missing_model_error,
    resolve_model_path,
)

__all__ = ["AnimateDiffAdapter", "load_animatediff", "build", "ANIMATEDIFF_DDIM"]

# What AnimateDiff's official inference configs change in the base model's scheduler config: linear
# betas, steps_offset 1, no clipping, and DDIM's own default set_alpha_to_one = True (an SD 1.5 PNDM
# config says False, which would end the chain on alphas_cumprod[0] = 0.99915 instead of 1).
ANIMATEDIFF_DDIM = {"beta_schedule": "linear", "steps_offset": 1, "clip_sample": False, "set_alpha_to_one": True}


class AnimateDiffAdapter(DDIMLatentAdapter):
    """AnimateDiff components behind the adapter interface (see the module docstring)."""

    family = "animatediff"

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler, *, num_frames: int, height: int, width: int) -> None:
        limit = unet.config.get("motion_max_seq_length")
        if limit is not None and num_frames > limit:
            raise ValueError(
                f"model.num_frames = {num_frames} is more than this motion adapter's {limit} frames "
                f"(motion_max_seq_length, its temporal position encoding); lower model.num_frames"
            )
        super().__init__(unet, vae, text_encoder, tokenizer, scheduler, num_frames=num_frames, height=height, width=width)

    def unet_text_states(self, states: torch.Tensor) -> torch.Tensor:
        """UNetMotionModel runs the frames as batch items: one copy of the text states per frame."""
        return states.repeat_interleave(self.num_frames, dim=0)


def load_animatediff(
    path: str,
    *,
    motion_adapter: str = "",
    num_frames: int,
    height: int,
    width: int,
    dtype: torch.dtype = torch.float32,
    revision: str = "",
    variant: str = "",
    device: torch.device | str = "cpu",
) -> AnimateDiffAdapter:
    """Load an AnimateDiff pipeline folder / Hub id, or a Stable Diffusion 1.5 base plus ``motion_adapter``
    (a MotionAdapter Hub id or folder; its default branch). ``revision`` and ``variant`` apply to ``path``.

    ``testing:tiny-animatediff`` writes a tiny random pipeline into the rewardkit cache once and loads it
    from there (the smoke recipe). Offline without the weights is a ``MissingWeightsError`` saying what to do.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    source = resolve_model_path(path)
    adapter_source = resolve_model_path(motion_adapter, key="model.motion_adapter") if motion_adapter else ""
    options = {"revision": revision or None}
    weights = {"variant": variant or None, "torch_dtype": dtype}
    try:
        unet_class = UNetMotionModel.load_config(source, subfolder="unet", **options).get("_class_name")
    except OSError as error:
        raise missing_model_error(path, error) from error
    if unet_class not in ("UNetMotionModel", "UNet2DConditionModel"):
        raise ValueError(f"{path!r} is not an AnimateDiff or Stable Diffusion model: its unet is a {unet_class}")
    if unet_class == "UNet2DConditionModel" and not adapter_source:
        raise ValueError(
            f"{path!r} is a Stable Diffusion model (its unet is a UNet2DConditionModel); AnimateDiff needs its "
            "motion modules: set model.motion_adapter, e.g. --set model.motion_adapter=guoyww/animatediff-motion-adapter-v1-5-2"
        )
    if unet_class == "UNetMotionModel" and adapter_source:
        raise ValueError(
            f"{path!r} is already an AnimateDiff pipeline (its unet is a UNetMotionModel with motion modules); "
            "leave model.motion_adapter empty, or give the Stable Diffusion base model as model.path"
        )
    try:
        if adapter_source:
            try:
                motion = MotionAdapter.from_pretrained(adapter_source, torch_dtype=dtype)
            except OSError as error:
                raise missing_model_error(motion_adapter, error, key="model.motion_adapter") from error
            base = UNet2DConditionModel.from_pretrained(source, subfolder="unet", **options, **weights)
            unet = UNetMotionModel.from_unet2d(base, motion).to(dtype)
            scheduler = DDIMScheduler.from_pretrained(source, subfolder="scheduler", **options, **ANIMATEDIFF_DDIM)
        else:
            unet = UNetMotionModel.from_pretrained(source, subfolder="unet", **options, **weights)
            scheduler = DDIMScheduler.from_pretrained(source, subfolder="scheduler", **options)
        vae = AutoencoderKL.from_pretrained(source, subfolder="vae", **options, **weights)
        text_encoder, tokenizer = load_text_components(source, CLIPTextModel, CLIPTokenizer, revision=revision, dtype=dtype)
    except OSError as error:
        raise missing_model_error(path, error) from error
    adapter = AnimateDiffAdapter(unet, vae, text_encoder, tokenizer, scheduler, num_frames=num_frames, height=height, width=width)
    return adapter.to(device)


@register_family("animatediff")
def build(config, device: torch.device | str = "cpu") -> AnimateDiffAdapter:
    """The family's builder: a recipe's ``[model]`` table -> adapter."""
    return load_animatediff(config.path, motion_adapter=config.motion_adapter, **loader_options(config, device))
