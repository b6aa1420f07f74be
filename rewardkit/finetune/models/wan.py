"""Adapter for Wan 2.1 text-to-video (Wan-AI/Wan2.1-T2V-1.3B-Diffusers and -14B) on diffusers' ``WanPipeline``
components: ``transformer`` (WanTransformer3DModel, a flow-matching DiT predicting the velocity ``n - x0``),
``vae`` (AutoencoderKLWan: causal 3D VAE, x8 spatial and x4 temporal compression, latents normalised per
channel by the config's ``latents_mean`` / ``latents_std``), ``text_encoder`` (UMT5EncoderModel),
``tokenizer`` (umt5-xxl, loaded with AutoTokenizer) and ``scheduler`` (read for its sigmas only).

Flow conventions (rewardkit.finetune.models.flow): the level is the sigma ``s`` in [0, 1], final 0;
``x_s = (1 - s) x0 + s n``; target ``n - x0``; the transformer's timestep is ``1000 s`` as a float
(diffusers' UniPC pipeline feeds ``int(1000 s)``, within 1 of it); guidance in velocity space; ``step``
is Euler to the explicit next level, ``sde_step`` Flow-GRPO's SDE step. The schedule is the one the
model folder's scheduler names (Wan ships UniPC with flow shift 3).

Prompts are encoded by ``WanPipeline.encode_prompt`` itself (``prompt_clean``, padding to
``max_sequence_length`` = 512 and zeroing the states past each prompt's tokens), so conditioning is what
the pipeline feeds: ``{"encoder_hidden_states": [B, 512, 4096]}``.

Causal VAE: latent frame 0 holds pixel frame 0 and latent frame k >= 1 pixel frames 4k-3..4k, each
decoded from the latent frames up to it. ``decode_frames`` therefore decodes, per video, only the latent
window ``0..ceil(j_max / 4)`` that contains its last requested frame, and picks the frames from it: the
same pixels as decoding the whole video (tested), at ``(ceil(j_max / 4) + 1) / F_latent`` of the cost.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from rewardkit.errors import UserInputError
from rewardkit.finetune.models import register_family
from rewardkit.finetune.models.base import (
    Conditioning,
    VideoDiffusionAdapter,
    as_levels,
    load_text_components,
    loader_options,
    lora_disabled,
    missing_model_error,
    resolve_model_path,
)
from rewardkit.finetune.models.flow import (
    broadcast_level,
    flow_add_noise,
    flow_scheduler_settings,
    flow_sde_step,
    flow_sigmas,
    flow_target,
    logit_normal_levels,
)

__all__ = ["WanAdapter", "load_wan", "latent_window", "build"]

def latent_window(pixel_index: int, temporal_factor: int = 4) -> int:
    """How many leading latent frames a causal VAE needs to decode pixel frame ``pixel_index``:
    ``ceil(j / 4) + 1`` (frame 0 needs latent frame 0 alone)."""
    return -(-pixel_index // temporal_factor) + 1


class WanAdapter(VideoDiffusionAdapter):
    """Wan 2.1 components behind the adapter interface (see the module docstring)."""

    family = "wan"
    lora_prefix = "transformer"

    def __init__(
        self, transformer, vae, text_encoder, tokenizer, scheduler, *, num_frames: int, height: int, width: int,
        max_sequence_length: int = 512,
    ) -> None:
        from diffusers import WanPipeline

        self.temporal_factor = int(vae.config.get("scale_factor_temporal") or 4)
        self.spatial_factor = int(vae.config.get("scale_factor_spatial") or 8)
        patch = transformer.config.patch_size
        multiple = self.size_multiple = self.spatial_factor * int(patch[1])
        if num_frames < 1 or (num_frames - 1) % self.temporal_factor:
            raise UserInputError(
                f"model.num_frames = {num_frames}: Wan's causal VAE needs {self.temporal_factor}k + 1 frames "
                f"(e.g. 33 or 81); use {max(1, (num_frames - 1) // self.temporal_factor * self.temporal_factor + 1)}"
            )
        if height % multiple or width % multiple:
            raise UserInputError(
                f"model.height and model.width must be multiples of {multiple} for Wan (VAE x{self.spatial_factor}, "
                f"patch {patch[1]}), got {height}x{width}; e.g. 480x832"
            )
        self.denoiser = self.transformer = transformer
        # What the sampler calls: the transformer itself, or its accelerate-prepared (DDP, autocast) wrapper.
        self.denoiser_forward = transformer
        self.vae, self.text_encoder, self.tokenizer, self.scheduler = vae, text_encoder, tokenizer, scheduler
        self.scheduler_name, self.shift, self.num_train_timesteps = flow_scheduler_settings(scheduler)
        self.num_frames, self.height, self.width = num_frames, height, width
        self.max_sequence_length = max_sequence_length
        # The pipeline object only encodes prompts (its own encode_prompt) and is what LoRA files load into.
        self.pipeline = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler, transformer=transformer)
        channels = vae.config.z_dim
        self.latents_mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32).view(1, channels, 1, 1, 1)
        self.latents_std = torch.tensor(vae.config.latents_std, dtype=torch.float32).view(1, channels, 1, 1, 1)
        for module in (vae, text_encoder):
            module.requires_grad_(False).eval()
        transformer.requires_grad_(False)

    # -------------------------------------------------------------------------------- conditioning

    def encode_prompts(self, prompts: Sequence[str], negative_prompt: str = "", guidance: bool = True) -> Conditioning:
        prompts = list(prompts)
        with torch.no_grad():
            positive, negative = self.pipeline.encode_prompt(
                prompts, negative_prompt=[negative_prompt] * len(prompts), do_classifier_free_guidance=guidance,
                max_sequence_length=self.max_sequence_length, device=self.text_encoder.device,
            )
        return Conditioning(
            {"encoder_hidden_states": positive}, {"encoder_hidden_states": negative} if guidance else None
        )

    # -------------------------------------------------------------------------------- levels and sampling

    def latent_shape(self, batch: int) -> tuple[int, ...]:
        frames = (self.num_frames - 1) // self.temporal_factor + 1
        return (batch, self.vae.config.z_dim, frames, self.height // self.spatial_factor, self.width // self.spatial_factor)

    def schedule(self, num_steps: int) -> torch.Tensor:
        return flow_sigmas(num_steps, self.scheduler_name, self.shift, self.num_train_timesteps)

    def sample_training_levels(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return logit_normal_levels(batch, generator)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, level: torch.Tensor | float) -> torch.Tensor:
        return flow_add_noise(x0, noise, level)

    def target(self, x0: torch.Tensor, noise: torch.Tensor, level: torch.Tensor | float) -> torch.Tensor:
        return flow_target(x0, noise)

    def predict(self, x: torch.Tensor, level: torch.Tensor | float, conditioning: Conditioning, guidance_scale: float = 1.0) -> torch.Tensor:
        """The velocity (fp32), with classifier-free guidance when ``guidance_scale != 1`` and a negative."""
        timestep = (as_levels(level, x.shape[0]) * self.num_train_timesteps).to(x.device, torch.float32)
        return self.guided_forward(x, timestep, conditioning, guidance_scale)

    def denoised(self, x: torch.Tensor, level, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """From the velocity ``v = n - x0`` and ``x = (1 - s) x0 + s n``: ``x0 = x - s v``, ``n = x + (1 - s) v``."""
        s = broadcast_level(level, x)
        return x - s * output, x + (1 - s) * output

    def sde_step(
        self, x: torch.Tensor, level, next_level, conditioning: Conditioning, guidance_scale: float, *,
        noise_level: float, generator: torch.Generator | None = None, prev_sample: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        velocity = self.predict(x, level, conditioning, guidance_scale)
        return flow_sde_step(x, velocity, level, next_level, noise_level=noise_level, generator=generator, prev_sample=prev_sample)

    def reference(self) -> contextlib.AbstractContextManager:
        """The base transformer: LoRA layers off and no gradient."""
        return lora_disabled(self.transformer)

    # -------------------------------------------------------------------------------- pixels

    def encode_videos(self, videos: torch.Tensor) -> torch.Tensor:
        """Normalised latents ``(mu - mean) / std`` of videos ``[B, F, 3, H, W]`` in [0, 1] (F = 4k + 1)."""
        if videos.ndim != 5 or videos.shape[2] != 3:
            raise ValueError(f"videos must be [B, F, 3, H, W], got shape {tuple(videos.shape)}")
        frames, height, width = videos.shape[1], videos.shape[3], videos.shape[4]
        if (frames - 1) % self.temporal_factor:
            raise UserInputError(f"Wan encodes {self.temporal_factor}k + 1 frames; got {frames} (trim or pad the clip, e.g. to {self.num_frames})")
        if height % self.size_multiple or width % self.size_multiple:
            raise UserInputError(f"video sizes must be multiples of {self.size_multiple} for Wan (VAE x{self.spatial_factor}, patch 2), got {height}x{width}")
        pixels = (videos * 2 - 1).permute(0, 2, 1, 3, 4).to(self.vae.device, self.vae.dtype)
        with torch.no_grad():
            mu = self.vae.encode(pixels).latent_dist.mean.float()
        return (mu - self.latents_mean.to(mu.device)) / self.latents_std.to(mu.device)

    def decode_frames(self, latents: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Frames ``[B, K, 3, H, W]`` in [0, 1] at pixel ``indices`` ``[B, K]``; each video decodes only its
        smallest causal latent window (videos needing the same window share one VAE call)."""
        batch, count = indices.shape
        if int(indices.min()) < 0 or int(indices.max()) >= self.num_frames:
            raise ValueError(f"frame indices must be in 0..{self.num_frames - 1}, got {indices.tolist()}")
        windows = [latent_window(int(row.max()), self.temporal_factor) for row in indices]
        z = latents.float() * self.latents_std.to(latents.device) + self.latents_mean.to(latents.device)
        rows: list[torch.Tensor | None] = [None] * batch
        for window in sorted(set(windows)):
            members = [row for row in range(batch) if windows[row] == window]
            pixels = self.vae.decode(z[members, :, :window].to(self.vae.dtype), return_dict=False)[0].float()
            for position, row in enumerate(members):
                rows[row] = pixels[position][:, indices[row].to(pixels.device)].transpose(0, 1)
        return ((torch.stack(rows) + 1) / 2).clamp(0, 1)


def load_wan(
    path: str,
    *,
    num_frames: int,
    height: int,
    width: int,
    dtype: torch.dtype = torch.float32,
    revision: str = "",
    variant: str = "",
    device: torch.device | str = "cpu",
) -> WanAdapter:
    """Load the components from a Hub repo id (e.g. ``Wan-AI/Wan2.1-T2V-1.3B-Diffusers``) or a local
    ``save_pretrained`` folder, all in ``dtype`` (the VAE too: the reward's gradient runs through it).

    ``testing:tiny-wan`` writes a tiny random pipeline into the rewardkit cache once and loads it from
    there (the smoke recipes). Offline without the weights is a ``MissingWeightsError`` saying what to do.
    """
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from diffusers.schedulers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
    from transformers import AutoTokenizer, UMT5EncoderModel

    source = resolve_model_path(path)
    options = {"revision": revision or None}
    weights = {"variant": variant or None, "torch_dtype": dtype}
    try:
        scheduler_class = UniPCMultistepScheduler.load_config(source, subfolder="scheduler", **options).get("_class_name")
        schedulers = {"UniPCMultistepScheduler": UniPCMultistepScheduler, "FlowMatchEulerDiscreteScheduler": FlowMatchEulerDiscreteScheduler}
        if scheduler_class not in schedulers:
            raise UserInputError(f"{path!r} has a {scheduler_class} scheduler; Wan needs one of {', '.join(schedulers)}")
        scheduler = schedulers[scheduler_class].from_pretrained(source, subfolder="scheduler", **options)
        transformer = WanTransformer3DModel.from_pretrained(source, subfolder="transformer", **options, **weights)
        vae = AutoencoderKLWan.from_pretrained(source, subfolder="vae", **options, **weights)
        text_encoder, tokenizer = load_text_components(source, UMT5EncoderModel, AutoTokenizer, revision=revision, dtype=dtype)
    except OSError as error:
        raise missing_model_error(path, error) from error
    return WanAdapter(transformer, vae, text_encoder, tokenizer, scheduler, num_frames=num_frames, height=height, width=width).to(device)


@register_family("wan")
def build(config, device: torch.device | str = "cpu") -> WanAdapter:
    """The family's builder: a recipe's ``[model]`` table -> adapter."""
    return load_wan(config.path, **loader_options(config, device))
