"""Reward-weighted regression (RWR; DDPO's RWR baseline, arXiv:2305.13301; VideoAlign's Flow-RWR,
arXiv:2501.13918; InstructVideo's RWR baseline): the denoising loss (epsilon / v) or the flow loss
(``n - x0``) of each video, weighted by its reward normalised within the batch or group:

``loss = sum_i w_i e_i``, ``e_i`` the per-sample mean squared error against ``adapter.target`` at an
independent noise and level per video, ``w = softmax(r / temperature)`` (``exp``), uniform over the top
fraction (``sparse``) or ``r / B`` (``raw``, VGen's unnormalised baseline whose reward scale acts as a
learning rate). With tied rewards ``exp`` and ``sparse`` give the plain denoising loss.

Videos come from the data (``source = "data"``: a CSV with ``path,prompt,reward``; latents encoded once
per video) or from rollouts (``source = "rollout"``: ``group_size`` samples of the current model per
prompt, scored by the recipe's reward without gradients, weights normalised within each prompt's group).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rewardkit.errors import UserInputError
from rewardkit.finetune.objectives import register_objective
from rewardkit.finetune.objectives.base import Gather, Objective, ObjectiveConfig, option
from rewardkit.finetune.objectives.losses import per_sample_mse, rwr_weights, weighted_loss

__all__ = ["RWRConfig", "RWR"]


@dataclass
class RWRConfig(ObjectiveConfig):
    """``[objective] name = "rwr"``."""

    name: str = option("rwr", "The objective (registered name).")
    variant: str = option("exp", "Weights: exp = softmax(r / temperature); sparse = uniform over the top_fraction; raw = r / B (VGen, unnormalised).")
    temperature: float = option(1.0, "exp: softmax temperature, in reward units (small = greedier; a reward spread of ~0.01, as HPSv2's, needs ~0.01).")
    top_fraction: float = option(0.25, "sparse: the fraction of each group (highest rewards) that is trained on.")
    source: str = option("rollout", "rollout: sample group_size videos per prompt from the current model and score them; data: clips and rewards from data.csv (path,prompt,reward).")
    group_size: int = option(4, "rollout: videos per prompt; weights are normalised within each prompt's group.")

    def check(self, recipe) -> None:
        from rewardkit.parsing import did_you_mean

        super().check(recipe)
        for key, value, allowed in (("variant", self.variant, ("exp", "sparse", "raw")), ("source", self.source, ("rollout", "data"))):
            if value not in allowed:
                raise UserInputError(f"objective.{key} = {value!r} is not allowed; use one of {', '.join(map(repr, allowed))}.{did_you_mean(value, allowed)}")
        if self.temperature <= 0:
            raise UserInputError(f"objective.temperature must be positive, got {self.temperature}")
        if not 0 < self.top_fraction <= 1:
            raise UserInputError(f"objective.top_fraction must be in (0, 1], got {self.top_fraction}")
        if self.group_size < 1:
            raise UserInputError(f"objective.group_size must be at least 1, got {self.group_size}")
        if self.source == "data" and not recipe.data.csv:
            raise UserInputError("objective.source = \"data\" reads clips and rewards from data.csv (columns path,prompt,reward); set data.csv")
        if self.source == "rollout":
            if not recipe.reward.rewards:
                raise UserInputError("objective.source = \"rollout\" scores samples with the recipe's reward: set reward.rewards")
            if not recipe.data.csv and not recipe.data.prompts:
                raise UserInputError("the recipe has no prompts: set data.prompts or data.csv")


@register_objective("rwr")
class RWR(Objective):
    """Reward-weighted regression (see the module docstring)."""

    Config = RWRConfig
    reward_use = "score"
    plot = ("reward_mean", "reward")

    def __init__(self, recipe, adapter, reward, device) -> None:
        super().__init__(recipe, adapter, reward, device)
        from rewardkit.finetune.data import read_clip
        from rewardkit.finetune.objectives.dpo import LatentCache

        model, fps = recipe.model, recipe.data.sample_fps
        self.cache = LatentCache(lambda path: read_clip(path, model.num_frames, model.height, model.width, fps))

    @classmethod
    def build_dataset(cls, recipe):
        from rewardkit.finetune.data import ClipDataset, build_prompt_dataset

        if recipe.objective.source == "rollout":
            return build_prompt_dataset(recipe)
        data, model = recipe.data, recipe.model
        return ClipDataset(data.csv, model.num_frames, model.height, model.width, data.sample_fps, data.invalid_rows, need_reward=True, read_videos=False)

    def rollout(self, batch: dict[str, Any], generator: torch.Generator, rng: np.random.Generator) -> dict[str, Any]:
        """source = rollout: ``group_size`` samples per prompt from the current model, scored (no gradients)."""
        if self.config.source != "rollout":
            return batch
        size = self.config.group_size
        prompts = [prompt for prompt in batch["prompts"] for _ in range(size)]
        with torch.no_grad():
            latents = self.sample(prompts, generator)
            rewards, _ = self.reward(latents, self.adapter, prompts, rng)
        groups = torch.arange(len(batch["prompts"])).repeat_interleave(size)
        return {"prompts": prompts, "latents": latents.detach(), "reward": rewards.detach().float().cpu(), "groups": groups}

    def loss(self, batch, generator, rng):
        adapter = self.adapter
        if "latents" in batch:
            x0 = batch["latents"].to(self.device)
        else:
            x0 = self.cache.get(adapter, batch["path"], self.device)
        count = x0.shape[0]
        noise = torch.randn(x0.shape, generator=generator).to(self.device)
        levels = adapter.sample_training_levels(count, generator)
        conditioning = adapter.encode_prompts(batch["prompts"], guidance=False)
        prediction = adapter.predict(adapter.add_noise(x0, noise, levels), levels, conditioning)
        errors = per_sample_mse(prediction, adapter.target(x0, noise, levels))
        rewards = batch["reward"].float().to(self.device)
        config = self.config
        weights = rwr_weights(rewards, config.variant, config.temperature, config.top_fraction, batch.get("groups"))
        loss = weighted_loss(errors, weights)
        return loss, {"rewards": rewards, "weights": weights.detach(), "errors": errors.detach()}

    def metrics(self, details, gather: Gather) -> dict[str, float]:
        rewards = gather(details["rewards"].reshape(-1)).float()
        weights = details["weights"]
        return {
            "reward_mean": rewards.mean().item(),
            "reward_std": rewards.std().item() if rewards.numel() > 1 else 0.0,
            "weight_max": gather(weights.max().reshape(1)).max().item(),
            "effective_samples": gather((weights.sum() ** 2 / weights.square().sum().clamp_min(1e-12)).reshape(1)).mean().item(),
            "e_mean": gather(details["errors"].reshape(-1)).mean().item(),
        }
