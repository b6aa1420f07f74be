"""Online DPO (OnlineVPO, arXiv:2412.15159; no public code, REFERENCE §4): preference learning on the
policy's own fresh samples, ranked by a video reward.

Each step (``rollout``, no gradients, the model's dtype): ``group_size`` videos per prompt of the batch are
sampled from the CURRENT policy with the recipe's sampler (D steps, ``eta``, CFG) and scored by the
recipe's rewards (default ``dover``, OnlineVPO's video-quality reward stand-in; any weighted set; image
rewards see only the decoded frames their sampler picks). Pairs within each prompt's group:

- ``pairing = "best_worst"``: the highest- vs the lowest-reward video (one pair per group);
- ``pairing = "all"``: every pair of the group, the higher-reward video as the winner.

A pair whose reward margin is at most ``min_margin`` is dropped (weight 0), so a tied group never gives
an arbitrary pair (flow_grpo's DPO script pairs tied groups arbitrarily). Every pair is still computed
(weight 0 when dropped), so all processes run the same forward and backward passes.

Update: the DPO loss of ``rewardkit.finetune.objectives.losses.dpo_loss`` (Diffusion-DPO on epsilon / v
models, Flow-DPO on flow models: the same code as the offline ``dpo`` objective), winner and loser
sharing one noise and one level, averaged over the kept pairs. The reference is the learner's LoRA as it
was at the last refresh, taken every ``reference_refresh`` optimizer steps (OnlineVPO's "curriculum
preference update"); 0 keeps the initial model (the LoRA disabled) as the reference for the whole run,
i.e. DPO on fixed-reference on-policy data. A checkpoint holds the snapshot and the number of rollouts
(when the next refresh is due), so a resumed run has the same reference. Groups stay on their process (each process samples
its own prompts' groups); the logged statistics are gathered from all processes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import torch

from rewardkit.errors import UserInputError
from rewardkit.finetune.objectives import register_objective
from rewardkit.finetune.objectives.base import Gather, Objective, ObjectiveConfig, option
from rewardkit.finetune.objectives.losses import beta_at_levels, dpo_loss, per_sample_mse

__all__ = ["OnlineDPOConfig", "OnlineDPO", "preference_pairs"]


def preference_pairs(rewards: torch.Tensor, group_size: int, pairing: str, min_margin: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(winners, losers, weights)`` indices into ``rewards`` (consecutive groups of ``group_size``):
    best vs worst, or every pair with the higher reward as winner; weight 0 for a margin ``<= min_margin``
    (ties included), 1 otherwise. Within a group, equal rewards keep the earlier video as the winner."""
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    winners, losers = [], []
    for start in range(0, rewards.numel(), group_size):
        values = rewards[start : start + group_size].tolist()
        if pairing == "best_worst":
            order = sorted(range(group_size), key=lambda i: (-values[i], i))
            candidates = [(order[0], order[-1])]
        elif pairing == "all":
            candidates = [(i, j) if values[i] >= values[j] else (j, i) for i, j in combinations(range(group_size), 2)]
        else:
            raise ValueError(f"pairing must be 'best_worst' or 'all', got {pairing!r}")
        winners += [start + w for w, _ in candidates]
        losers += [start + loser for _, loser in candidates]
    winners_t, losers_t = torch.tensor(winners), torch.tensor(losers)
    margins = rewards.reshape(-1)[winners_t] - rewards.reshape(-1)[losers_t]
    return winners_t, losers_t, (margins > min_margin).float()


@dataclass
class OnlineDPOConfig(ObjectiveConfig):
    """``[objective] name = "online_dpo"``: prompts (data.prompts or data.csv) and the recipe's rewards
    (``dover`` when none are named)."""

    name: str = option("online_dpo", "The objective (registered name).")
    group_size: int = option(4, "K, videos sampled per prompt at each step from the current policy.")
    pairing: str = option("best_worst", "best_worst: highest vs lowest reward of each group; all: every pair of the group.")
    min_margin: float = option(0.0, "Pairs whose reward margin is at most this are dropped (tied groups never give a pair).")
    beta: float = option(500.0, "DPO beta (mean-over-elements errors): 5000 Diffusion-DPO (DDPM, offline), 100-2000 Flow-DPO LoRA; online K, beta and schedule are unpublished (OnlineVPO).")
    beta_schedule: str = option("constant", "constant, or one_minus_t_squared (beta (1 - t)^2).")
    reference_refresh: int = option(0, "Copy the learner into the reference every N optimizer steps; 0 = never (the initial model stays the reference).")

    def check(self, recipe) -> None:
        from rewardkit.parsing import did_you_mean

        super().check(recipe)
        if self.group_size < 2:
            raise UserInputError(f"objective.group_size must be at least 2 (a pair needs two videos of one prompt), got {self.group_size}")
        for key, value, allowed in (("pairing", self.pairing, ("best_worst", "all")), ("beta_schedule", self.beta_schedule, ("constant", "one_minus_t_squared"))):
            if value not in allowed:
                raise UserInputError(f"objective.{key} = {value!r} is not allowed; use one of {', '.join(map(repr, allowed))}.{did_you_mean(value, allowed)}")
        if self.beta <= 0:
            raise UserInputError(f"objective.beta must be positive, got {self.beta}")
        if self.min_margin < 0 or self.reference_refresh < 0:
            raise UserInputError("objective.min_margin and objective.reference_refresh must be at least 0")
        if not recipe.reward.rewards:
            recipe.reward.rewards = ["dover"]  # OnlineVPO ranks with a video-quality reward
        if not recipe.data.csv and not recipe.data.prompts:
            raise UserInputError("the recipe has no prompts: set data.prompts or data.csv")


@register_objective("online_dpo")
class OnlineDPO(Objective):
    """Online DPO on fresh samples (see the module docstring)."""

    Config = OnlineDPOConfig
    reward_use = "score"
    plot = ("reward_mean", "reward")

    def __init__(self, recipe, adapter, reward, device) -> None:
        super().__init__(recipe, adapter, reward, device)
        from rewardkit.finetune.lora import lora_parameters

        self.lora = lora_parameters(adapter.denoiser)
        self.snapshot: list[torch.Tensor] | None = None
        self.rollouts = 0

    def announce(self) -> list[str]:
        config = self.config
        refresh = f"refreshed every {config.reference_refresh} steps" if config.reference_refresh else "the initial model (never refreshed)"
        return [
            f"online_dpo: {config.group_size} samples per prompt, {config.pairing} pairs past margin {config.min_margin:g}, "
            f"beta {config.beta:g}, reference = {refresh}"
        ]

    @contextlib.contextmanager
    def reference(self) -> Iterator[None]:
        """The reference model: LoRA disabled until the first refresh, then the LoRA snapshot (no grad)."""
        if self.snapshot is None:
            with self.adapter.reference():
                yield
            return
        current = [parameter.detach().clone() for parameter in self.lora]
        try:
            with torch.no_grad():
                for parameter, value in zip(self.lora, self.snapshot, strict=True):
                    parameter.copy_(value)
                yield
        finally:
            with torch.no_grad():
                for parameter, value in zip(self.lora, current, strict=True):
                    parameter.copy_(value)

    def state_dict(self) -> dict[str, Any]:
        """The rollouts so far (when the next refresh is due) and the reference's LoRA snapshot (None: the
        initial model)."""
        return {"rollouts": self.rollouts, "snapshot": self.snapshot}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        snapshot = state["snapshot"]
        if snapshot is not None and [value.shape for value in snapshot] != [parameter.shape for parameter in self.lora]:
            raise UserInputError("the checkpoint's reference snapshot does not fit this model's LoRA (lora.rank or target_modules changed?)")
        self.rollouts = state["rollouts"]
        self.snapshot = None if snapshot is None else [value.to(parameter) for value, parameter in zip(snapshot, self.lora, strict=True)]

    def rollout(self, batch: dict[str, Any], generator: torch.Generator, rng: np.random.Generator) -> dict[str, Any]:
        config = self.config
        refresh = config.reference_refresh * self.recipe.train.gradient_accumulation_steps
        if refresh and self.rollouts and self.rollouts % refresh == 0:
            self.snapshot = [parameter.detach().clone() for parameter in self.lora]
        self.rollouts += 1
        size = config.group_size
        prompts = [prompt for prompt in batch["prompts"] for _ in range(size)]
        with torch.no_grad():
            latents = self.sample(prompts, generator).float()
            rewards, details = self.reward(latents, self.adapter, prompts, rng)
        rewards = rewards.detach().float().cpu()
        winners, losers, weights = preference_pairs(rewards, size, config.pairing, config.min_margin)
        spread = rewards.view(-1, size)
        return {
            "prompts": [prompts[i] for i in winners.tolist()], "chosen": latents[winners], "rejected": latents[losers],
            "weights": weights, "rewards": rewards, "margins": rewards[winners] - rewards[losers],
            "spread": spread.max(1).values - spread.min(1).values,
            "reward_terms": {key: value for key, value in details.items() if key.startswith("reward_")},
        }

    def loss(self, batch, generator, rng):
        adapter, config = self.adapter, self.config
        chosen, rejected = batch["chosen"].to(self.device), batch["rejected"].to(self.device)
        pairs = chosen.shape[0]
        noise = torch.randn(chosen.shape, generator=generator).to(self.device)
        levels = adapter.sample_training_levels(pairs, generator)
        conditioning = adapter.encode_prompts(batch["prompts"], guidance=False).repeat(2)
        x0, noise2, levels2 = torch.cat([chosen, rejected]), torch.cat([noise, noise]), torch.cat([levels, levels])
        noisy, target = adapter.add_noise(x0, noise2, levels2), adapter.target(x0, noise2, levels2)
        with self.reference():  # first: a refreshed reference swaps the LoRA values, which the policy's graph must not see
            reference = per_sample_mse(adapter.predict(noisy, levels2, conditioning), target)
        policy = per_sample_mse(adapter.predict(noisy, levels2, conditioning), target)
        beta = beta_at_levels(config.beta, adapter.time_fraction(levels, pairs), config.beta_schedule).to(self.device)
        weights = batch["weights"].to(self.device)
        loss, inside = dpo_loss(policy[:pairs], reference[:pairs], policy[pairs:], reference[pairs:], beta, weights)
        return loss, {
            "inside": inside.detach(), "weights": weights, "rewards": batch["rewards"], "margins": batch["margins"],
            "spread": batch["spread"], **batch["reward_terms"],
        }

    def metrics(self, details, gather: Gather) -> dict[str, float]:
        put = lambda value: gather(value.reshape(-1).float().to(self.device))  # noqa: E731
        rewards, inside, weights = put(details["rewards"]), put(details["inside"]), put(details["weights"])
        kept = weights > 0
        row = {
            "reward_mean": rewards.mean().item(),
            "reward_std": rewards.std().item() if rewards.numel() > 1 else 0.0,
            "group_spread_mean": put(details["spread"]).mean().item(),
            "kept_pairs": kept.float().mean().item(),
            "margin_mean": put(details["margins"])[kept].mean().item() if bool(kept.any()) else 0.0,
            "implicit_acc": (inside[kept] > 0).float().mean().item() if bool(kept.any()) else 0.0,
            "inside_mean": inside.mean().item(),
        }
        for key, value in details.items():
            if key.startswith("reward_"):
                row[f"{key}_mean"] = put(value).mean().item()
        return row
