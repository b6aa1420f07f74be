"""Rectified-flow (flow-matching) math shared by the flow families (Wan 2.1 first), as pure functions.

Convention (REFERENCE §4): the noise level is the sigma ``s`` in [0, 1]; ``x_s = (1 - s) x0 + s n``; the
denoiser predicts the velocity ``v = n - x0``; its timestep input is ``1000 s``; sampling runs from
``s = 1`` down to ``s = 0`` and a step to the explicit next level is the Euler step
``x + (s_next - s) v``. Levels are float tensors ``[B]`` (one per video) or Python floats.

Schedules come from ONE named diffusers scheduler and are written out here (tested against the
scheduler's own ``sigmas``), because the two Wan users meet differ:

- ``unipc`` (``UniPCMultistepScheduler`` with ``use_flow_sigmas``; Wan 2.1's shipped scheduler):
  ``b = linspace(1, 1/T, D + 1)[:-1]``, shifted ``shift * b / (1 + (shift - 1) b)``, then 0.
  With shift 3 and D = 4: [1, 0.9001, 0.7504, 0.5010, 0]. (diffusers nudges the first sigma to 1 - 1e-6
  only to keep UniPC's ``log(alpha)`` finite; the Euler and SDE steps here need no nudge and use 1.)
- ``flow_match_euler`` (``FlowMatchEulerDiscreteScheduler``): the scheduler stores shifted training
  sigmas, so its inference grid ``linspace(1, shift(1/T), D)`` is shifted a second time, then 0.
  With shift 3 and D = 4: [1, 0.8577, 0.6022, 0.0089, 0].

Only the sigmas are taken from the scheduler; the sampler is the Euler step (or the Flow-GRPO SDE step)
on them, a pure differentiable function of the latents, not UniPC's multistep predictor-corrector.
"""

from __future__ import annotations

import torch

from rewardkit.errors import UserInputError
from rewardkit.finetune.models.base import as_levels

__all__ = [
    "FLOW_SCHEDULERS",
    "flow_scheduler_settings",
    "flow_sigmas",
    "broadcast_level",
    "flow_add_noise",
    "flow_target",
    "flow_euler_step",
    "flow_sde_step",
    "logit_normal_levels",
]

FLOW_SCHEDULERS = {"UniPCMultistepScheduler": "unipc", "FlowMatchEulerDiscreteScheduler": "flow_match_euler"}


def flow_scheduler_settings(scheduler) -> tuple[str, float, int]:
    """``(name, shift, T)`` of a diffusers flow scheduler, or a ValueError saying what is unsupported."""
    class_name = type(scheduler).__name__
    config = scheduler.config
    name = FLOW_SCHEDULERS.get(class_name)
    if name is None:
        raise UserInputError(f"unsupported flow scheduler {class_name}; supported: {', '.join(FLOW_SCHEDULERS)}")
    if config.get("use_dynamic_shifting", False):
        raise UserInputError(f"{class_name} with use_dynamic_shifting (resolution-dependent shift) is not supported; set a fixed shift")
    if name == "unipc":
        if not config.get("use_flow_sigmas", False) or config.get("prediction_type") != "flow_prediction":
            raise UserInputError("UniPCMultistepScheduler must have use_flow_sigmas = true and prediction_type = 'flow_prediction' for a flow model")
        shift = float(config.get("flow_shift", 1.0))
    else:
        shift = float(config.get("shift", 1.0))
    return name, shift, int(config.num_train_timesteps)


def _shift(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def flow_sigmas(num_steps: int, scheduler: str = "unipc", shift: float = 3.0, num_train_timesteps: int = 1000) -> torch.Tensor:
    """The ``num_steps + 1`` levels (float64) of a sampling chain, noisiest first, ending at 0 (see the
    module docstring)."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be at least 1, got {num_steps}")
    steps = torch.float64
    if scheduler == "unipc":
        sigmas = _shift(torch.linspace(1.0, 1.0 / num_train_timesteps, num_steps + 1, dtype=steps)[:-1], shift)
    elif scheduler == "flow_match_euler":
        smallest = _shift(torch.tensor(1.0 / num_train_timesteps, dtype=steps), shift)
        sigmas = _shift(torch.linspace(1.0, float(smallest), num_steps, dtype=steps), shift)
    else:
        raise ValueError(f"unknown flow scheduler {scheduler!r}; expected one of {', '.join(FLOW_SCHEDULERS.values())}")
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def broadcast_level(level: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """A level (float or ``[B]``) shaped ``[B, 1, ..., 1]`` to multiply ``like`` (``[B, ...]``) in fp32."""
    levels = as_levels(level, like.shape[0]).to(torch.float32)
    return levels.view(-1, *([1] * (like.ndim - 1))).to(like.device)


def flow_add_noise(x0: torch.Tensor, noise: torch.Tensor, level: torch.Tensor | float) -> torch.Tensor:
    """``(1 - s) x0 + s n``."""
    s = broadcast_level(level, x0)
    return (1 - s) * x0 + s * noise


def flow_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The velocity the denoiser is regressed on: ``n - x0`` (d x_s / d s)."""
    return noise - x0


def flow_euler_step(x: torch.Tensor, velocity: torch.Tensor, level: torch.Tensor | float, next_level: torch.Tensor | float) -> torch.Tensor:
    """``x + (s_next - s) v``: exact on the straight path when ``v`` is its velocity."""
    return x + (broadcast_level(next_level, x) - broadcast_level(level, x)) * velocity


def flow_sde_step(
    x: torch.Tensor,
    velocity: torch.Tensor,
    level: torch.Tensor | float,
    next_level: torch.Tensor | float,
    *,
    noise_level: float,
    generator: torch.Generator | None = None,
    prev_sample: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flow-GRPO's SDE step (arXiv 2505.05470, flow_grpo ``sde_step_with_logprob``): ``(x_next, mean, std)``.

    ``sigma_t = a sqrt(s / (1 - s))`` with ``a = noise_level`` (at ``s = 1`` the next level stands in
    for ``s`` under the root's denominator, as flow_grpo uses ``sigmas[1]``);
    ``mean = x + [v + sigma_t^2 / (2 s) (x + (1 - s) v)] dt`` with ``dt = s_next - s < 0``;
    ``std = sigma_t sqrt(-dt)``; ``x_next = mean + std eps``, or ``prev_sample`` when given (to evaluate
    a stored transition). ``noise_level = 0`` is the Euler step. ``std`` is shaped ``[B, 1, ..., 1]``.
    """
    if noise_level < 0:
        raise ValueError(f"noise_level must be >= 0, got {noise_level}")
    s = broadcast_level(level, x)
    s_next = broadcast_level(next_level, x)
    dt = s_next - s
    if bool((dt >= 0).any()):
        raise ValueError("the SDE step runs towards less noise: next_level must be below level")
    below_one = torch.where(s >= 1, s_next, s)
    sigma_t = noise_level * torch.sqrt(s / (1 - below_one))
    mean = x + (velocity + sigma_t**2 / (2 * s) * (x + (1 - s) * velocity)) * dt
    std = sigma_t * torch.sqrt(-dt)
    if prev_sample is None and noise_level == 0:
        prev_sample = mean
    elif prev_sample is None:
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device="cpu" if generator is None else generator.device)
        prev_sample = mean + std * noise.to(x.device)
    return prev_sample, mean, std


def logit_normal_levels(batch: int, generator: torch.Generator | None = None, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """Training levels ``sigmoid(N(mean, std^2))`` (SD3's logit-normal sampling; flow_grpo's DPO uses (0, 1))."""
    return torch.sigmoid(mean + std * torch.randn(batch, generator=generator))
