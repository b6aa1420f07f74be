"""The interface a text-to-video model offers the fine-tuning objectives.

An adapter hides a model family's differences: how prompts become conditioning (the denoiser's keyword
arguments, with the negative ones for classifier-free guidance), the latent shape, the noise levels and
the forward process, what the denoiser predicts and what it is regressed on (epsilon, v or the flow
velocity ``n - x0``), one sampler step (deterministic, or stochastic with its Gaussian's mean and std),
the reference model (LoRA disabled) and decoding ONLY chosen frames. Objectives are written against this
interface alone.

Noise levels are float tensors ``[B]`` (a Python float is broadcast to the batch):

- DDPM families (epsilon / v / sample prediction): the training timestep ``t`` as a float in
  ``[0, T - 1]``; the level after the last sampling step is ``-1.0`` (its alpha is the scheduler's final
  alpha: ``alphas_cumprod[0]``, or 1 with ``set_alpha_to_one``).
- flow families: the sigma ``s`` in [0, 1], ``x_s = (1 - s) x0 + s n``, model timestep ``1000 s``; final 0.

``DDIMLatentAdapter`` is the shared implementation of the latent-diffusion families with a CLIP text
encoder, a per-frame 2D ``AutoencoderKL`` and an epsilon/v/sample-predicting UNet (UNet3D text-to-video,
AnimateDiff): DDIM on VGen's step map (tools/modules/diffusions/diffusion_ddim.py, ``ddim_sample_loop``):
with T training steps and D sampling steps the levels are ``d(i) = (T / D)(i - 1) + 1`` for i = D..1, then
the final level (diffusers' DDIMScheduler with ``steps_offset = 1`` and ``leading`` spacing gives the same
list). The step (``eta`` > 0: DDIM's stochastic step, diffusers' ``DDIMScheduler.step`` formula) is written
out here, not taken from ``DDIMScheduler.step``, so that it is a pure differentiable function of the
latents. Only the scheduler's betas, prediction type and ``set_alpha_to_one`` are read.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from rewardkit.weights import MissingWeightsError, is_offline

__all__ = [
    "Conditioning",
    "VideoDiffusionAdapter",
    "DDIMLatentAdapter",
    "as_levels",
    "lora_disabled",
    "checkpoint_forwards",
    "ddim_timestep",
    "ddim_timesteps",
    "resolve_model_path",
    "missing_model_error",
    "classifier_free_guidance",
    "load_text_components",
    "loader_options",
]

Level = torch.Tensor | float


def as_levels(level: Level, batch: int) -> torch.Tensor:
    """Noise levels as a float64 CPU tensor ``[batch]`` (a float or a one-element tensor is broadcast)."""
    levels = torch.as_tensor(level, dtype=torch.float64).detach().cpu().reshape(-1)
    if levels.numel() == 1:
        return levels.expand(batch).clone()
    if levels.numel() != batch:
        raise ValueError(f"got {levels.numel()} noise levels for a batch of {batch}")
    return levels


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``[B]`` float64 -> ``[B, 1, ..., 1]`` in ``like``'s dtype and device (computed in float64 first)."""
    return values.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1))).to(like.device)


@dataclass
class Conditioning:
    """Prompt conditioning of a batch as the denoiser's keyword arguments (e.g. ``encoder_hidden_states``);
    ``negative`` is None when guidance is off."""

    positive: dict[str, torch.Tensor]
    negative: dict[str, torch.Tensor] | None

    def select(self, index) -> Conditioning:
        """Rows ``index`` (slice, list or index tensor) of every tensor, e.g. one micro-batch."""
        pick = lambda states: {key: value[index] for key, value in states.items()}  # noqa: E731
        return Conditioning(pick(self.positive), None if self.negative is None else pick(self.negative))

    def repeat(self, times: int) -> Conditioning:
        """The batch ``times`` times over (``[c; c; ...]``), e.g. winner and loser sharing a prompt."""
        tile = lambda states: {key: torch.cat([value] * times) for key, value in states.items()}  # noqa: E731
        return Conditioning(tile(self.positive), None if self.negative is None else tile(self.negative))


class VideoDiffusionAdapter(ABC):
    """A text-to-video diffusion model seen by the trainer; ``denoiser`` is the module LoRA adapts."""

    family: str
    """The registered family name (``unet3d``, ``animatediff``, ``wan``)."""
    denoiser: torch.nn.Module
    denoiser_forward: Callable
    """What ``predict`` calls: ``denoiser`` itself, or the trainer's accelerate-prepared (DDP, autocast)
    wrapper of it, which the trainer assigns here (and swaps back to the bare module for sampling)."""
    lora_prefix: str
    """Key prefix of the saved LoRA file (``unet``, ``transformer``), as diffusers' loaders expect."""
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
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
    def schedule(self, num_steps: int) -> torch.Tensor:
        """The sampler's ``num_steps + 1`` levels (float64), noisiest first, ending at the final level."""

    @abstractmethod
    def sample_training_levels(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Levels for a denoising loss: DDPM uniform integer t in [0, T - 1]; flow logit-normal(0, 1) sigma."""

    @abstractmethod
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, level: Level) -> torch.Tensor:
        """The forward process: clean ``x0`` noised to ``level`` with ``noise``."""

    @abstractmethod
    def target(self, x0: torch.Tensor, noise: torch.Tensor, level: Level) -> torch.Tensor:
        """What ``predict`` is regressed on: epsilon, v or ``n - x0``."""

    @abstractmethod
    def predict(self, x: torch.Tensor, level: Level, conditioning: Conditioning, guidance_scale: float = 1.0) -> torch.Tensor:
        """The denoiser's raw output (same kind as ``target``), classifier-free guidance applied, float32."""

    @abstractmethod
    def sde_step(
        self,
        x: torch.Tensor,
        level: Level,
        next_level: Level,
        conditioning: Conditioning,
        guidance_scale: float,
        *,
        noise_level: float,
        generator: torch.Generator | None = None,
        prev_sample: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One stochastic step ``(x_next, mean, std)``, ``x_next = mean + std * n`` (or ``prev_sample`` when
        given, for log-probabilities of a recorded chain); ``std`` broadcasts against ``x``. DDPM: DDIM
        with ``eta = noise_level``; flow: the Flow-GRPO SDE with ``a = noise_level`` (REFERENCE §4)."""

    @abstractmethod
    def denoised(self, x: torch.Tensor, level: Level, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x0_hat, noise_hat)`` implied by the prediction ``output`` at ``level``, with
        ``x = add_noise(x0_hat, noise_hat, level)``; the deterministic step to a level ``l`` is
        ``add_noise(x0_hat, noise_hat, l)`` (DDIM eta 0, flow Euler)."""

    def step(
        self,
        x: torch.Tensor,
        level: Level,
        next_level: Level,
        conditioning: Conditioning,
        guidance_scale: float,
        *,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One sampler step from ``level`` to ``next_level`` (deterministic when ``eta`` is 0)."""
        return self.sde_step(x, level, next_level, conditioning, guidance_scale, noise_level=eta, generator=generator)[0]

    @abstractmethod
    def reference(self) -> contextlib.AbstractContextManager:
        """A context within which the denoiser is the base model: LoRA disabled, no gradients."""

    @abstractmethod
    def encode_videos(self, videos: torch.Tensor) -> torch.Tensor:
        """Latents of videos ``[B, F, 3, H, W]`` in [0, 1] (no gradients)."""

    @abstractmethod
    def decode_frames(self, latents: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Frames ``[B, K, 3, H, W]`` in [0, 1] at ``indices`` ``[B, K]``; decodes only what those frames
        need (a per-frame VAE: those frames; a temporal VAE: the smallest latent window)."""

    def time_fraction(self, level: Level, batch: int) -> torch.Tensor:
        """Levels as a fraction of the noisiest, ``[batch]`` float64 (flow: sigma itself; DDPM: t / T)."""
        return as_levels(level, batch)

    def enable_gradient_checkpointing(self) -> None:
        """Recompute the denoiser's activations block by block during backward."""
        self.denoiser.enable_gradient_checkpointing()

    def decode_all(self, latents: torch.Tensor) -> torch.Tensor:
        """Every frame (for sample videos)."""
        batch = latents.shape[0]
        indices = torch.arange(self.num_frames).expand(batch, -1)
        return self.decode_frames(latents, indices)

    def to(self, device: torch.device | str) -> VideoDiffusionAdapter:
        """Move the denoiser, VAE and text encoder to ``device`` (in place); returns the adapter."""
        for module in (self.denoiser, self.vae, self.text_encoder):
            module.to(device)
        return self

    def denoiser_states(self, states: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
        """The denoiser's keyword arguments for conditioning tensors ``states``: here each tensor on
        ``device`` in the denoiser's dtype."""
        return {key: value.to(device, self.denoiser.dtype) for key, value in states.items()}

    def guided_forward(self, x: torch.Tensor, timesteps: torch.Tensor, conditioning: Conditioning, guidance_scale: float) -> torch.Tensor:
        """``denoiser_forward`` on ``x`` (in the denoiser's dtype) at the model's ``timesteps`` ``[B]`` (on
        ``x``'s device), float32; with a negative and ``guidance_scale != 1`` the unconditional and
        conditional passes run as one batch and are combined by ``classifier_free_guidance``."""
        guided = conditioning.negative is not None and guidance_scale != 1.0
        if guided:
            x, timesteps = torch.cat([x, x]), torch.cat([timesteps, timesteps])
            states = {key: torch.cat([conditioning.negative[key], value]) for key, value in conditioning.positive.items()}
        else:
            states = dict(conditioning.positive)
        kwargs = self.denoiser_states(states, x.device)
        output = self.denoiser_forward(x.to(self.denoiser.dtype), timesteps, return_dict=False, **kwargs)[0].float()
        if guided:
            unconditional, conditional = output.chunk(2)
            output = classifier_free_guidance(unconditional, conditional, guidance_scale)
        return output


def classifier_free_guidance(unconditional: torch.Tensor, conditional: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance ``u + w (c - u)`` on the denoiser's outputs (epsilon, v or velocity alike:
    the diffusers pipelines' rule)."""
    return unconditional + guidance_scale * (conditional - unconditional)


@contextlib.contextmanager
def lora_disabled(module: torch.nn.Module) -> Iterator[None]:
    """Run ``module`` as its base model: every peft LoRA layer disabled and no gradients; restored after
    (the ``requires_grad`` flags too, which peft's ``enable_adapters`` would otherwise reset)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [layer for layer in module.modules() if isinstance(layer, BaseTunerLayer)]
    flags = [(parameter, parameter.requires_grad) for parameter in module.parameters()]
    try:
        for layer in layers:
            layer.enable_adapters(False)
        with torch.no_grad():
            yield
    finally:
        for layer in layers:
            layer.enable_adapters(True)
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def _checkpointed(forward: Callable, *args, **kwargs):
    if torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(forward, *args, use_reentrant=False, **kwargs)
    return forward(*args, **kwargs)


def checkpoint_forwards(layers: Sequence[torch.nn.Module]) -> None:
    """Gradient checkpointing for modules whose class has none: each layer's ``forward`` is wrapped (on the
    instance, so parameter names and LoRA keys do not change) to keep only its inputs and recompute it
    during backward."""
    for layer in layers:
        layer.forward = partial(_checkpointed, layer.forward)


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

    lora_prefix = "unet"

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
        positive = {"encoder_hidden_states": self._embed(prompts)}
        negative = {"encoder_hidden_states": self._embed([negative_prompt] * len(prompts))} if guidance else None
        return Conditioning(positive, negative)

    def unet_text_states(self, states: torch.Tensor) -> torch.Tensor:
        """The ``encoder_hidden_states`` the UNet takes for per-video text states ``[B, L, D]``."""
        return states

    # -------------------------------------------------------------------------------- noise levels

    def latent_shape(self, batch: int) -> tuple[int, ...]:
        channels = self.unet.config.in_channels
        return (batch, channels, self.num_frames, self.height // self.vae_scale_factor, self.width // self.vae_scale_factor)

    def schedule(self, num_steps: int) -> torch.Tensor:
        return torch.tensor([*ddim_timesteps(num_steps, self.num_train_timesteps), -1.0], dtype=torch.float64)

    def sample_training_levels(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(0, self.num_train_timesteps, (batch,), generator=generator).to(torch.float64)

    def time_fraction(self, level: Level, batch: int) -> torch.Tensor:
        return as_levels(level, batch).clamp(min=0) / self.num_train_timesteps

    def alphas(self, level: Level, batch: int) -> torch.Tensor:
        """``alphas_cumprod`` at integer levels ``[batch]`` (float64); the final alpha at negative levels."""
        levels = as_levels(level, batch)
        if (levels >= self.num_train_timesteps).any() or (levels != levels.round()).any():
            raise ValueError(f"DDPM levels are integer timesteps in 0..{self.num_train_timesteps - 1} (or -1), got {levels.tolist()}")
        picked = self.alphas_cumprod[levels.clamp(min=0).long()]
        return torch.where(levels >= 0, picked, torch.full_like(picked, self.final_alpha))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, level: Level) -> torch.Tensor:
        alpha = self.alphas(level, x0.shape[0])
        return _per_sample(alpha**0.5, x0) * x0 + _per_sample((1 - alpha) ** 0.5, noise) * noise

    def target(self, x0: torch.Tensor, noise: torch.Tensor, level: Level) -> torch.Tensor:
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "sample":
            return x0
        alpha = self.alphas(level, x0.shape[0])
        return _per_sample(alpha**0.5, noise) * noise - _per_sample((1 - alpha) ** 0.5, x0) * x0

    def predict(self, x: torch.Tensor, level: Level, conditioning: Conditioning, guidance_scale: float = 1.0) -> torch.Tensor:
        timesteps = as_levels(level, x.shape[0]).to(torch.float32).to(x.device)
        return self.guided_forward(x, timesteps, conditioning, guidance_scale)

    def denoiser_states(self, states: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
        """The text states in the UNet's dtype, as ``unet_text_states`` shapes them."""
        states["encoder_hidden_states"] = self.unet_text_states(states["encoder_hidden_states"].to(self.unet.dtype))
        return states

    def denoised(self, x: torch.Tensor, level: Level, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """epsilon: ``x0 = (x - sqrt(1 - a) eps) / sqrt(a)``; v: ``x0 = sqrt(a) x - sqrt(1 - a) v``,
        ``eps = sqrt(a) v + sqrt(1 - a) x``; sample: ``eps = (x - sqrt(a) x0) / sqrt(1 - a)``."""
        alpha = self.alphas(level, x.shape[0])
        a, b = _per_sample(alpha**0.5, x), _per_sample((1 - alpha) ** 0.5, x)
        if self.prediction_type == "epsilon":
            return (x - b * output) / a, output
        if self.prediction_type == "v_prediction":
            return a * x - b * output, a * output + b * x
        return output, (x - a * output) / b

    def sde_step(
        self,
        x: torch.Tensor,
        level: Level,
        next_level: Level,
        conditioning: Conditioning,
        guidance_scale: float,
        *,
        noise_level: float,
        generator: torch.Generator | None = None,
        prev_sample: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """DDIM from ``level`` to ``next_level`` with ``eta = noise_level``: ``std = eta * sqrt((1 - a') /
        (1 - a) * (1 - a / a'))`` and ``mean = sqrt(a') x0 + sqrt(1 - a' - std^2) eps`` (diffusers'
        DDIMScheduler.step); eta 0 is the deterministic DDIM step."""
        if noise_level < 0:
            raise ValueError(f"eta must be at least 0, got {noise_level}")
        batch = x.shape[0]
        x0, eps = self.denoised(x, level, self.predict(x, level, conditioning, guidance_scale))
        alpha, alpha_prev = self.alphas(level, batch), self.alphas(next_level, batch)
        if noise_level == 0:
            std = torch.zeros_like(alpha)
            mean = _per_sample(alpha_prev**0.5, x) * x0 + _per_sample((1 - alpha_prev) ** 0.5, x) * eps
        else:
            std = noise_level * ((1 - alpha_prev) / (1 - alpha) * (1 - alpha / alpha_prev)) ** 0.5
            direction = (1 - alpha_prev - std**2).clamp(min=0) ** 0.5
            mean = _per_sample(alpha_prev**0.5, x) * x0 + _per_sample(direction, x) * eps
        std = _per_sample(std, x)
        if prev_sample is not None:
            return prev_sample, mean, std
        if noise_level == 0:
            return mean, mean, std
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        return mean + std * noise, mean, std

    def reference(self) -> contextlib.AbstractContextManager:
        return lora_disabled(self.denoiser)

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


def load_text_components(source: str, encoder_class: type, tokenizer_class: type, *, revision: str, dtype: torch.dtype) -> tuple:
    """``(text_encoder, tokenizer)`` of the pipeline folder or Hub id ``source``: transformers classes, so
    an empty ``revision`` is the default branch ``main``; the encoder's weights load in ``dtype``."""
    text_encoder = encoder_class.from_pretrained(source, subfolder="text_encoder", revision=revision or "main", dtype=dtype)
    tokenizer = tokenizer_class.from_pretrained(source, subfolder="tokenizer", revision=revision or "main")
    return text_encoder, tokenizer


def loader_options(config, device: torch.device | str) -> dict:
    """The keyword arguments every family's loader takes from a recipe's ``[model]`` table (``ModelConfig``):
    sizes, dtype, revision, variant and ``device``."""
    from rewardkit.registry import parse_dtype

    return {
        "num_frames": config.num_frames, "height": config.height, "width": config.width, "dtype": parse_dtype(config.dtype),
        "revision": config.revision, "variant": config.variant, "device": device,
    }


def resolve_model_path(path: str, key: str = "model.path") -> str:
    """What ``from_pretrained`` gets for ``path``: ``testing:<name>`` is a tiny random pipeline of
    ``rewardkit.testing.TINY_MODELS`` written once into the rewardkit cache; a path-like value must be an
    existing folder, anything else (``owner/name``) goes to ``from_pretrained`` as a Hub repo id."""
    if path.startswith("testing:"):
        from rewardkit.testing import cached_tiny_model

        return str(cached_tiny_model(path.removeprefix("testing:"), "model_index.json"))
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
