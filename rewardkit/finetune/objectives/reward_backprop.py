"""Reward backpropagation through the sampling chain, two modes (REFERENCE §4).

``editing`` (InstructVideo, arXiv:2312.12490; ali-vilab/VGen, tools/train/train_t2v_instructvideo_entrance.py
and ``DiffusionDDIMReward.ddim_sample_loop_partial`` in tools/modules/diffusions/diffusion_ddim.py): take
a clean latent (a dataset clip's, or a sample of the current model), noise it to ``t = d(tau * D)`` with
temporal offset noise ``randn + s * randn(b, c, f, 1, 1)``, run the ``tau * D`` DDIM steps (eta 0, CFG)
back to ``d(1)``; only the last K steps carry gradients, each under gradient checkpointing. With D = 20
and tau = 0.6 the chain starts at t = 551 and runs 12 steps, as in VGen.

``full_chain`` (DRaFT-K, arXiv:2309.17400; VADER, mihirp1998/VADER): from pure noise through all D steps,
gradients through the last K.

The reward sees only the frames its sampler picks, and only those frames are decoded by the VAE. Loss is
``mean(1 - R)`` with ``R = sum_j w_j r_j`` over the recipe's rewards (VGen's ``advantages = 1 - reward``).
Rewards are frozen: gradients reach the pixels and, through them, the LoRA weights only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rewardkit.errors import UserInputError
from rewardkit.finetune.models.base import VideoDiffusionAdapter
from rewardkit.finetune.objectives import register_objective
from rewardkit.finetune.objectives.base import Gather, Objective, ObjectiveConfig, option
from rewardkit.video.sampling import frame_indices

__all__ = [
    "RewardTerm",
    "RewardFunction",
    "build_reward_function",
    "RewardBackprop",
    "RewardBackpropConfig",
    "RewardBackpropObjective",
    "temporal_offset_noise",
    "check_reward_specs",
]


def temporal_offset_noise(shape: Sequence[int], strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``randn(b, c, f, h, w) + strength * randn(b, c, f, 1, 1)`` (VGen's temporal offset noise): one
    extra offset per video, channel and frame, shared by all pixels of that frame."""
    batch, channels, frames = shape[:3]
    noise = torch.randn(tuple(shape), generator=generator)
    if strength:
        noise = noise + strength * torch.randn(batch, channels, frames, 1, 1, generator=generator)
    return noise


@dataclass
class RewardTerm:
    """One reward of the sum: a video reward (``sampler`` + ``score_sampled``) and its weight."""

    name: str
    weight: float
    module: torch.nn.Module


class RewardFunction:
    """``R = sum_j w_j r_j`` of video rewards; decodes each distinct sampler's frames once."""

    def __init__(self, terms: Sequence[RewardTerm]) -> None:
        if not terms:
            raise UserInputError("a reward function needs at least one reward")
        self.terms = list(terms)
        for term in self.terms:
            term.module.requires_grad_(False).eval()

    @property
    def needs_prompt(self) -> bool:
        return any(getattr(term.module, "needs_prompt", False) for term in self.terms)

    def __call__(
        self, latents: torch.Tensor, adapter: VideoDiffusionAdapter, prompts: Sequence[str], rng: np.random.Generator
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Total reward ``[B]`` and details: each term's rewards and the frame weights of weighted terms."""
        batch, num_frames = latents.shape[0], adapter.num_frames
        decoded: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        total = torch.zeros(batch, device=latents.device)
        details: dict[str, Any] = {"decoded_frames": 0}
        for term in self.terms:
            sampler = term.module.sampler
            if id(sampler) not in decoded:
                indices = frame_indices(sampler, num_frames, batch, rng)
                decoded[id(sampler)] = (adapter.decode_frames(latents, indices), indices)
                details["decoded_frames"] += indices.numel()
            frames, indices = decoded[id(sampler)]
            scores = term.module.score_sampled(frames, indices, num_frames, list(prompts)).float().to(total.device)
            total = total + term.weight * scores
            details[f"reward_{term.name}"] = scores.detach()
            weighting = getattr(term.module, "weighting", None)
            if weighting is not None and "frame_weights" not in details:
                details["frame_weights"] = weighting.weights(indices, num_frames).detach()
        return total, details


def check_reward_specs(specs: Sequence[str], differentiable: bool = True) -> list[tuple[str, dict[str, str]]]:
    """Parse and check ``NAME[:key=value]`` specs against the registry without building anything."""
    from rewardkit.registry import get_reward_info, parse_reward_spec, validate_options

    parsed = []
    for spec in specs:
        name, options = parse_reward_spec(spec)
        info = get_reward_info(name)
        if differentiable and not info.differentiable:
            raise UserInputError(f"reward {name!r} is not differentiable, so it cannot be backpropagated; see `rewardkit list`")
        validate_options(info, options)
        parsed.append((name, options))
    return parsed


def build_reward_function(
    specs: Sequence[str],
    weights: Sequence[float] = (),
    *,
    frames: str = "segmental:4:random",
    weighting: str = "tar:1.0",
    weight_files: Sequence[str] = (),
    device: torch.device | str = "cpu",
    dtype: str | torch.dtype = "fp32",
    differentiable: bool = True,
) -> RewardFunction:
    """Build the recipe's rewards from the registry, in differentiable mode where a reward has one (with
    ``differentiable`` every reward must). Image rewards become video rewards with one shared sampler
    (``frames``) and weighting, so their frames are decoded once."""
    from rewardkit.registry import get_reward_info
    from rewardkit.rewards import PerFrameReward
    from rewardkit.video.sampling import parse_sampler
    from rewardkit.video.weighting import parse_weighting

    parsed = check_reward_specs(specs, differentiable)
    paths: dict[str, str] = {}
    for item in weight_files:
        name, sep, path = item.partition("=")
        if not sep:
            raise UserInputError(f"reward.weight_files entry {item!r}: write NAME=PATH")
        paths[name.strip()] = path.strip()
    sampler, frame_weighting = parse_sampler(frames), parse_weighting(weighting)
    from rewardkit.registry import create_reward

    terms = []
    for index, (name, options) in enumerate(parsed):
        info = get_reward_info(name)
        if "mode" in info.options and info.differentiable:
            options = {**options, "mode": "differentiable"}
        module = create_reward(name, device=device, dtype=dtype, weights=paths.get(name), **options)
        if info.modality == "image":
            module = PerFrameReward(module, sampler, frame_weighting)
        weight = float(weights[index]) if weights else 1.0
        terms.append(RewardTerm(name if name not in [term.name for term in terms] else f"{name}{index}", weight, module))
    return RewardFunction(terms)


@dataclass
class RewardBackprop:
    """The objective's settings (recipe ``[objective]``); ``loss`` computes one batch's loss."""

    mode: str = "editing"
    num_inference_steps: int = 20
    tau: float = 0.6
    backprop_steps: int = 1
    guidance_scale: float = 3.0
    offset_noise: float = 0.1
    negative_prompt: str = ""
    eta: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in ("editing", "full_chain"):
            raise UserInputError(f"reward_backprop mode must be 'editing' or 'full_chain', got {self.mode!r}")
        if len(self.chain_indices()) < self.backprop_steps or self.backprop_steps < 1:
            raise UserInputError(
                f"backprop_steps = {self.backprop_steps} must be in 1..{len(self.chain_indices())} (the steps the chain runs)"
            )

    def chain_indices(self) -> list[int]:
        """The 1-based DDIM step indices the chain runs, noisiest first: D..1, or tau*D..1 for editing."""
        from rewardkit.finetune.config import start_step_count

        start = self.num_inference_steps if self.mode == "full_chain" else start_step_count(self.tau, self.num_inference_steps)
        if start < 1:
            raise UserInputError(f"tau * D = {self.tau} * {self.num_inference_steps} is below one step; raise tau or D")
        return list(range(start, 0, -1))

    def chain(self, adapter: VideoDiffusionAdapter) -> torch.Tensor:
        """The levels the chain runs, then the final level (e.g. 551, 501, ..., 1, -1 for editing with
        D = 20, tau = 0.6 on a DDPM family)."""
        levels = adapter.schedule(self.num_inference_steps)
        return levels[len(levels) - 1 - len(self.chain_indices()):]

    @property
    def guided(self) -> bool:
        return self.guidance_scale != 1.0

    def sample(
        self, adapter: VideoDiffusionAdapter, prompts: Sequence[str], generator: torch.Generator, device: torch.device
    ) -> torch.Tensor:
        """A clean sample of the current model (full chain, no gradients; ``rewardkit.finetune.sample``)."""
        from rewardkit.finetune.sample import sample_latents

        return sample_latents(
            adapter, prompts, num_steps=self.num_inference_steps, guidance_scale=self.guidance_scale,
            negative_prompt=self.negative_prompt, eta=self.eta, generator=generator, device=device,
        ).latents

    def run_chain(self, adapter: VideoDiffusionAdapter, latents: torch.Tensor, conditioning, levels: torch.Tensor, generator=None) -> torch.Tensor:
        """Denoise through ``levels`` (the last one is where the chain ends); only the last K steps build a
        graph (the denoiser recomputes its blocks in backward when gradient checkpointing is on)."""
        steps = len(levels) - 1
        first_grad = steps - self.backprop_steps
        for position in range(steps):
            args = (latents, levels[position], levels[position + 1], conditioning, self.guidance_scale)
            with torch.set_grad_enabled(torch.is_grad_enabled() and position >= first_grad):
                latents = adapter.step(*args, eta=self.eta, generator=generator)
        return latents

    def loss(
        self,
        adapter: VideoDiffusionAdapter,
        reward: RewardFunction,
        prompts: Sequence[str],
        *,
        generator: torch.Generator,
        rng: np.random.Generator,
        device: torch.device,
        clean_latents: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """``mean(1 - R)`` of one batch and its statistics. ``clean_latents``: the clips to edit (editing
        from data); None in editing mode means "edit a sample of the current model"."""
        levels = self.chain(adapter)
        if self.mode == "editing":
            if clean_latents is None:
                clean_latents = self.sample(adapter, prompts, generator, device)
            noise = temporal_offset_noise(clean_latents.shape, self.offset_noise, generator).to(device)
            latents = adapter.add_noise(clean_latents.to(device), noise, levels[0])
        else:
            latents = torch.randn(adapter.latent_shape(len(prompts)), generator=generator).to(device)
        conditioning = adapter.encode_prompts(prompts, self.negative_prompt, self.guided)
        final = self.run_chain(adapter, latents, conditioning, levels, generator)
        rewards, details = reward(final, adapter, prompts, rng)
        loss = (1.0 - rewards).mean()
        details.update(rewards=rewards.detach(), latents=final.detach(), start_level=float(levels[0]), steps=len(levels) - 1)
        return loss, details


@dataclass
class RewardBackpropConfig(ObjectiveConfig):
    """``[objective] name = "reward_backprop"``: a differentiable reward through the sampling chain."""

    name: str = option("reward_backprop", "The objective (registered name).")
    mode: str = option("editing", "editing: InstructVideo (partial chain from a noised clip); full_chain: DRaFT-K / VADER.")
    tau: float = option(0.6, "editing: the chain starts at t = d(tau*D) and runs tau*D steps.")
    backprop_steps: int = option(1, "K: gradients flow through the last K denoising steps only.")
    offset_noise: float = option(0.1, "editing: temporal offset noise, noise = randn + offset_noise * randn(b, c, f, 1, 1).")
    start: str = option("data", "editing: start from a dataset clip's latent (data) or from a sample of the current model (sample).")

    def check(self, recipe) -> None:
        from rewardkit.finetune.config import start_step_count

        super().check(recipe)
        for key, value, allowed in (("mode", self.mode, ("editing", "full_chain")), ("start", self.start, ("data", "sample"))):
            if value not in allowed:
                from rewardkit.parsing import did_you_mean

                raise UserInputError(f"objective.{key} = {value!r} is not allowed; use one of {', '.join(map(repr, allowed))}.{did_you_mean(value, allowed)}")
        if not 0.0 < self.tau <= 1.0:
            raise UserInputError(f"objective.tau must be in (0, 1], got {self.tau}")
        if self.backprop_steps < 1:
            raise UserInputError(f"objective.backprop_steps must be at least 1, got {self.backprop_steps}")
        chain = self.num_inference_steps if self.mode == "full_chain" else start_step_count(self.tau, self.num_inference_steps)
        if self.backprop_steps > chain:
            raise UserInputError(
                f"objective.backprop_steps = {self.backprop_steps} is more than the {chain} denoising steps "
                f"the chain runs ({self.mode}, D = {self.num_inference_steps}, tau = {self.tau}); lower it"
            )
        if not recipe.reward.rewards:
            raise UserInputError("reward.rewards is empty; name at least one reward, e.g. rewards = [\"hpsv2:version=v2.0\"]")
        if not recipe.data.csv and not recipe.data.prompts:
            raise UserInputError("the recipe has no data: set data.csv (columns path,prompt) or data.prompts")
        if self.mode == "editing" and self.start == "data" and not recipe.data.csv:
            raise UserInputError(
                "objective.start = \"data\" edits dataset clips and needs data.csv (path,prompt); "
                "or set objective.start = \"sample\" to edit samples of the current model"
            )


@register_objective("reward_backprop")
class RewardBackpropObjective(Objective):
    """The seam's reward_backprop: ``RewardBackprop`` on the recipe's rewards; loss ``mean(1 - R)``."""

    Config = RewardBackpropConfig
    reward_use = "differentiable"
    plot = ("reward_mean", "reward")

    def __init__(self, recipe, adapter, reward, device) -> None:
        super().__init__(recipe, adapter, reward, device)
        config = self.config
        self.engine = RewardBackprop(
            mode=config.mode, num_inference_steps=config.num_inference_steps, tau=config.tau, backprop_steps=config.backprop_steps,
            guidance_scale=config.guidance_scale, offset_noise=config.offset_noise, negative_prompt=config.negative_prompt, eta=config.eta,
        )

    @classmethod
    def build_dataset(cls, recipe):
        from rewardkit.finetune.data import build_prompt_dataset

        config = recipe.objective
        return build_prompt_dataset(recipe, clips=config.mode == "editing" and config.start == "data")

    def loss(self, batch, generator, rng):
        clean = None
        if batch.get("videos") is not None:
            clean = self.adapter.encode_videos(batch["videos"].to(self.device))
        return self.engine.loss(self.adapter, self.reward, batch["prompts"], generator=generator, rng=rng, device=self.device, clean_latents=clean)

    def metrics(self, details, gather: Gather) -> dict[str, float]:
        rewards = gather(details["rewards"].reshape(-1)).float()
        row = {"reward_mean": rewards.mean().item(), "reward_std": rewards.std().item() if rewards.numel() > 1 else 0.0}
        for key, value in details.items():
            if key.startswith("reward_"):
                row[f"{key}_mean"] = gather(value.reshape(-1)).float().mean().item()
        weights = details.get("frame_weights")
        if weights is not None:
            row.update(frame_weight_mean=weights.mean().item(), frame_weight_min=weights.min().item(), frame_weight_max=weights.max().item())
        row["decoded_frames"] = details["decoded_frames"]
        return row
