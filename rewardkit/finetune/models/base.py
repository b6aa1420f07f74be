"""The interface a text-to-video model offers the fine-tuning objectives.

An adapter hides a model family's differences: how prompts become conditioning (with the negative
conditioning for classifier-free guidance), the latent shape, what the denoiser predicts (epsilon, v,
flow velocity), the sampler's timesteps and one sampler step, and decoding ONLY chosen frames. The
objectives are written against this interface alone, so a flow-matching model (Wan 2.1: timesteps are
sigmas, ``add_noise`` is ``(1 - s) x + s n``, ``step`` an Euler step on the velocity) plugs in by
implementing the same methods.

``DDIMLatentAdapter`` is the shared implementation of the latent-diffusion families with a CLIP text
encoder, a per-frame 2D ``AutoencoderKL`` and an epsilon/v/sample-predicting UNet (UNet3D text-to-video,
AnimateDiff): DDIM with eta = 0 on VGen's step map (tools/modules/diffusions/diffusion_ddim.py,
``ddim_sample_loop``): with T training steps and D sampling steps the timesteps are
``d(i) = (T / D)(i - 1) + 1`` for i = D..1, each step going to ``t - T / D`` (diffusers' DDIMScheduler
with ``steps_offset = 1`` and ``leading`` spacing gives the same list); the last step's "previous" alpha
is ``alphas_cumprod[0]`` (VGen clamps ``t - stride`` to 0; diffusers' ``set_alpha_to_one = False`` does
the same) or 1 when the scheduler sets ``set_alpha_to_one``. The step is written out here, not taken from
``DDIMScheduler.step``, so that it is a pure differentiable function of the latents. Only the scheduler's
betas, prediction type and ``set_alpha_to_one`` are read; its class and ``timestep_spacing`` are not.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from rewardkit.weights import MissingWeightsError, cache_root, is_offline

__all__ = [
    "Conditioning",
    "VideoDiffusionAdapter",
    "DDIMLatentAdapter",
    "ddim_timestep",
    "ddim_timesteps",
    "resolve_model_path",
    "missing_model_error",
]


@dataclass
class Conditioning:
    """Prompt conditioning of a batch; ``negative`` is None when guidance is off."""

    positive: torch.Tensor
    negative: torch.Tensor | None


class VideoDiffusionAdapter(ABC):
    """A text-to-video diffusion model seen by the trainer; ``denoiser`` is the module LoRA adapts."""

    denoiser: torch.nn.Module
    num_frames: int
    height: int
    width: int

    @abstractmethod
    def encode_prompts(self, prompts: Sequence[str], negative_prompt: str = "", guidance: bool = True) -> Conditioning:
        """Frozen text conditioning for ``prompts`` (and the negative prompt when ``guidance``)."""

    @abstractmethod
    def latent_shape(self, batch: int) -> tuple[int, ...]:
        """Shape of the latents of ``batch`` videos."""

    @abstractmethod
    def timesteps(self, num_steps: int) -> list[int]:
        """The sampler's timesteps of a ``num_steps`` chain, noisiest first."""

    @abstractmethod
    def add_noise(self, latents: torch.Tensor, noise: torch.Tensor, timestep: int) -> torch.Tensor:
        """The forward process: clean ``latents`` noised to ``timestep``."""

    @abstractmethod
    def step(
        self, latents: torch.Tensor, timestep: int, num_steps: int, conditioning: Conditioning, guidance_scale: float
    ) -> torch.Tensor:
        """One deterministic sampler step from ``timestep`` to the next one of a ``num_steps`` chain."""

    @abstractmethod
    def encode_videos(self, videos: torch.Tensor) -> torch.Tensor:
        """Latents of videos ``[B, F, 3, H, W]`` in [0, 1]."""

    @abstractmethod
    def decode_frames(self, latents: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Frames ``[B, K, 3, H, W]`` in [0, 1] at ``indices`` ``[B, K]``; only those frames are decoded."""

    def decode_all(self, latents: torch.Tensor) -> torch.Tensor:
        """Every frame (for sample videos)."""
        batch = latents.shape[0]
        indices = torch.arange(self.num_frames).expand(batch, -1)
        return self.decode_frames(latents, indices)


def ddim_timestep(index: int, num_steps: int, num_train_timesteps: int = 1000) -> int:
    """``d(i) = (T / D)(i - 1) + 1``: the timestep of DDIM step ``i`` (1-based) of a D-step chain."""
    if not 1 <= index <= num_steps:
        raise ValueError(f"DDIM step index must be in 1..{num_steps}, got {index}")
    return (num_train_timesteps // num_steps) * (index - 1) + 1


def ddim_timesteps(num_steps: int, num_train_timesteps: int = 1000, start: int | None = None) -> list[int]:
    """Timesteps ``d(start), d(start - 1), ..., d(1)`` (``start`` defaults to D: the full chain)."""
    start = num_steps if start is None else start
    return [ddim_timestep(index, num_steps, num_train_timesteps) for index in range(start, 0, -1)]


class DDIMLatentAdapter(VideoDiffusionAdapter):
    """CLIP text encoder + video UNet on ``[B, C, F, h, w]`` latents + per-frame 2D VAE, sampled with DDIM
    (see the module docstring). Subclasses say how the UNet takes the text states (``unet_text_states``)."""

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler, *, num_frames: int, height: int, width: int) -> None:
        self.denoiser = self.unet = unet
        # What the sampler calls: the UNet itself, or its accelerate-prepared (DDP, autocast) wrapper.
        self.denoiser_forward = unet
        self.vae, self.text_encoder, self.tokenizer = vae, text_encoder, tokenizer
        self.scheduler = scheduler
        self.num_frames, self.height, self.width = num_frames, height, width
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise ValueError(f"height and width must be multiples of {self.vae_scale_factor} for this VAE, got {height}x{width}")
        config = scheduler.config
        self.num_train_timesteps = int(config.num_train_timesteps)
        self.prediction_type = config.get("prediction_type", "epsilon")
        if self.prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"unsupported prediction type {self.prediction_type!r}; expected epsilon, v_prediction or sample")
        self.alphas_cumprod = scheduler.alphas_cumprod.to(torch.float64)
        self.final_alpha = 1.0 if config.get("set_alpha_to_one", False) else float(self.alphas_cumprod[0])
        for module in (vae, text_encoder):
            module.requires_grad_(False).eval()
        unet.requires_grad_(False)

    # -------------------------------------------------------------------------------- conditioning

    def _embed(self, prompts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(
            list(prompts), padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids.to(self.text_encoder.device)
        with torch.no_grad():
            return self.text_encoder(tokens)[0]

    def encode_prompts(self, prompts: Sequence[str], negative_prompt: str = "", guidance: bool = True) -> Conditioning:
        positive = self._embed(prompts)
        negative = self._embed([negative_prompt] * len(prompts)) if guidance else None
        return Conditioning(positive, negative)

    def unet_text_states(self, states: torch.Tensor) -> torch.Tensor:
        """The ``encoder_hidden_states`` the UNet takes for per-video text states ``[B, L, D]``."""
        return states

    # -------------------------------------------------------------------------------- sampling

    def latent_shape(self, batch: int) -> tuple[int, ...]:
        channels = self.unet.config.in_channels
        return (batch, channels, self.num_frames, self.height // self.vae_scale_factor, self.width // self.vae_scale_factor)

    def timesteps(self, num_steps: int) -> list[int]:
        return ddim_timesteps(num_steps, self.num_train_timesteps)

    def _alpha(self, timestep: int) -> float:
        return float(self.alphas_cumprod[timestep]) if timestep >= 0 else self.final_alpha

    def add_noise(self, latents: torch.Tensor, noise: torch.Tensor, timestep: int) -> torch.Tensor:
        alpha = self._alpha(timestep)
        return alpha**0.5 * latents + (1 - alpha) ** 0.5 * noise

    def predict(self, latents: torch.Tensor, timestep: int, conditioning: Conditioning, guidance_scale: float) -> torch.Tensor:
        """The denoiser's raw output (of its prediction type), with classifier-free guidance."""
        guided = conditioning.negative is not None and guidance_scale != 1.0
        inputs = torch.cat([latents, latents]) if guided else latents
        states = torch.cat([conditioning.negative, conditioning.positive]) if guided else conditioning.positive
        dtype = self.unet.dtype
        states = self.unet_text_states(states.to(dtype))
        output = self.denoiser_forward(inputs.to(dtype), timestep, encoder_hidden_states=states, return_dict=False)[0].float()
        if guided:
            unconditional, conditional = output.chunk(2)
            output = unconditional + guidance_scale * (conditional - unconditional)
        return output

    def step(
        self, latents: torch.Tensor, timestep: int, num_steps: int, conditioning: Conditioning, guidance_scale: float
    ) -> torch.Tensor:
        """DDIM (eta 0) from ``timestep`` to ``timestep - T / D``."""
        output = self.predict(latents, timestep, conditioning, guidance_scale)
        alpha = self._alpha(timestep)
        alpha_prev = self._alpha(timestep - self.num_train_timesteps // num_steps)
        if self.prediction_type == "epsilon":
            eps = output
            x0 = (latents - (1 - alpha) ** 0.5 * eps) / alpha**0.5
        elif self.prediction_type == "v_prediction":
            x0 = alpha**0.5 * latents - (1 - alpha) ** 0.5 * output
            eps = alpha**0.5 * output + (1 - alpha) ** 0.5 * latents
        else:
            x0 = output
            eps = (latents - alpha**0.5 * x0) / (1 - alpha) ** 0.5
        return alpha_prev**0.5 * x0 + (1 - alpha_prev) ** 0.5 * eps

    # -------------------------------------------------------------------------------- pixels

    def encode_videos(self, videos: torch.Tensor) -> torch.Tensor:
        batch, frames = videos.shape[:2]
        pixels = (videos.flatten(0, 1) * 2 - 1).to(self.vae.device, self.vae.dtype)
        with torch.no_grad():
            latents = self.vae.encode(pixels).latent_dist.mean * self.vae.config.scaling_factor
        latents = latents.float().unflatten(0, (batch, frames))
        return latents.permute(0, 2, 1, 3, 4).contiguous()

    def decode_frames(self, latents: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """The VAE is per-frame 2D, so only ``latents[b, :, indices[b]]`` go through it."""
        batch, count = indices.shape
        index = indices.to(latents.device)
        # [B, C, F, h, w] -> [B, K, C, h, w] at the chosen frames
        chosen = torch.stack([latents[row, :, index[row]].transpose(0, 1) for row in range(batch)])
        z = (chosen.flatten(0, 1) / self.vae.config.scaling_factor).to(self.vae.dtype)
        pixels = self.vae.decode(z, return_dict=False)[0].float()
        return ((pixels + 1) / 2).clamp(0, 1).unflatten(0, (batch, count))


def resolve_model_path(path: str, key: str = "model.path") -> str:
    """What ``from_pretrained`` gets for ``path``: ``testing:<name>`` is a tiny random pipeline of
    ``rewardkit.testing.TINY_MODELS`` written once into the rewardkit cache; a path-like value must be an
    existing folder, anything else (``owner/name``) goes to ``from_pretrained`` as a Hub repo id."""
    if path.startswith("testing:"):
        from rewardkit.testing import write_tiny_model

        name = path.removeprefix("testing:")
        folder = cache_root() / name
        if not (folder / "model_index.json").is_file():
            write_tiny_model(name, folder)
        return str(folder)
    # A Hub id is "owner/name"; anything else with a separator (absolute, relative, deeper) is a folder.
    looks_local = path.startswith(("/", ".", "~")) or path.count("/") > 1 or (os.sep != "/" and os.sep in path)
    if looks_local and not Path(path).expanduser().is_dir():
        raise MissingWeightsError(f"{key} {path!r} is not a folder; give a save_pretrained folder or a Hub repo id with --set {key}=...")
    return path


def missing_model_error(path: str, error: Exception, key: str = "model.path") -> MissingWeightsError:
    """The error for base weights that cannot be loaded (offline and not cached, or not on the Hub)."""
    where = "offline (HF_HUB_OFFLINE=1) and not in the Hugging Face cache" if is_offline() else f"unavailable ({error})"
    return MissingWeightsError(
        f"cannot load the base model {path!r}: {where}. Download it on a connected machine "
        f"(`huggingface-cli download {path}`, then copy the cache), or point the recipe at a local "
        f"save_pretrained folder with --set {key}=/path/to/folder"
    )
