"""Reward guidance at sampling time (the idea of VideoAlign's Flow-NRG, with pixel-space rewards).

At a guided step from level ``t`` to ``t'`` the adapter's prediction (classifier-free guidance applied)
gives the clean latent and the noise it implies, ``(x0_hat, n_hat) = adapter.denoised(x_t, t, output)``.
The VAE decodes only the frames the reward's sampler picks from ``x0_hat``, the reward ``R`` scores
them, and its gradient moves the clean latent before the (deterministic) step re-noises it::

    g       = dR(decode_frames(x0_hat)) / d x0_hat          (per video; the denoiser is not differentiated)
    u       = g / rms(g)                                    (rms over the video's latent elements; u = 0 if g = 0)
    x0'     = x0_hat + W u
    x_{t'}  = add_noise(x0', n_hat, t')  =  x_{t'}(unguided) + c(t') W u

with ``c(t') = sqrt(alpha_bar(t'))`` for DDPM families (DDIM eta 0) and ``1 - s'`` for flow families
(Euler), so early (noisy) steps move little and the last step moves the clean latent by the full ``W u``.
The gradient is normalised so that ``W`` means the same for every reward: the root-mean-square change of
the clean latent per guided step, in latent units (latents have unit scale). With ``W = 0`` it is exactly
the unguided sampler. Cost per guided step and video: one VAE decode of
the sampled frames (Wan: the causal latent window up to the last picked frame) with a graph, one reward
forward and one backward through the reward and the decoder; no extra denoiser pass and no denoiser
backward (VideoAlign's NRG needs a latent reward model; differentiating through the denoiser instead
would add a denoiser backward per step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from rewardkit.errors import UserInputError
from rewardkit.finetune.models.base import Conditioning, VideoDiffusionAdapter
from rewardkit.finetune.objectives.reward_backprop import RewardFunction

__all__ = ["RewardGuidance", "guided_step_indices"]


def guided_step_indices(spec: str, num_steps: int) -> list[int]:
    """0-based indices of the guided steps of a ``num_steps`` chain: ``all``, ``first:N`` or ``last:N``."""
    name, _, count = spec.strip().lower().partition(":")
    if name == "all" and not count:
        return list(range(num_steps))
    if name in ("first", "last") and count.isdigit() and int(count) >= 1:
        chosen = min(int(count), num_steps)
        return list(range(chosen)) if name == "first" else list(range(num_steps - chosen, num_steps))
    raise UserInputError(f"cannot read --guidance-steps {spec!r}; write all, first:N or last:N (e.g. last:5)")


@dataclass
class RewardGuidance:
    """Move each guided step's clean latent along the reward's gradient (see the module docstring)."""

    reward: RewardFunction
    scale: float
    steps: str = "all"
    decoded_frames: int = field(default=0, init=False)
    """Frames decoded with a graph so far (the cost: each one also takes a backward pass through the VAE)."""
    backward_passes: int = field(default=0, init=False)
    """Reward backward passes so far (one per guided step and video)."""

    def __post_init__(self) -> None:
        guided_step_indices(self.steps, 1)  # the spec's syntax, before any model loads

    def step_indices(self, num_steps: int) -> list[int]:
        """The guided steps of a ``num_steps`` chain (``rewardkit.finetune.sample.sample_latents`` runs them)."""
        return guided_step_indices(self.steps, num_steps)

    def step(
        self,
        adapter: VideoDiffusionAdapter,
        x: torch.Tensor,
        level: torch.Tensor,
        next_level: torch.Tensor,
        conditioning: Conditioning,
        guidance_scale: float,
        prompts: Sequence[str],
        rngs: Sequence[np.random.Generator],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One guided deterministic step; returns ``(x_next, R(x0_hat))`` (the reward before the move)."""
        with torch.no_grad():
            output = adapter.predict(x, level, conditioning, guidance_scale)
            clean, noise = adapter.denoised(x, level, output)
        gradients, rewards = [], []
        for row in range(x.shape[0]):  # one video at a time: its own frame draw, a small graph
            latent = clean[row : row + 1].detach().requires_grad_(True)
            with torch.enable_grad():
                value, details = self.reward(latent, adapter, [prompts[row]], rngs[row])
                (gradient,) = torch.autograd.grad(value.sum(), latent)
            self.decoded_frames += details["decoded_frames"]
            self.backward_passes += 1
            rms = gradient.pow(2).mean().sqrt()
            gradients.append(gradient / rms if rms > 0 else gradient)
            rewards.append(value.detach())
        moved = clean + self.scale * torch.cat(gradients)
        return adapter.add_noise(moved, noise, next_level), torch.cat(rewards)

