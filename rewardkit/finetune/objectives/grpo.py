"""GRPO on video diffusion models (REFERENCE §4): Flow-GRPO (arXiv:2505.05470, yifan123/flow_grpo) and
DanceGRPO (arXiv:2505.07818) on flow models, DDPO-style (arXiv:2305.13301; DDIM with eta > 0) on
epsilon / v models: ONE implementation over the adapter's ``sde_step``.

Rollout (no gradients, the model's dtype; the periodic sample videos keep the recipe's ODE sampler):

1. The prompts of every process's batch are gathered; each prompt gets a group of ``group_size`` videos
   and the group's members are dealt round-robin over the processes, so a group may span processes.
2. Initial noise is drawn from a seed shared by all processes: one noise per group (``same_noise``,
   DanceGRPO) or one per video; the chain runs ``sde_step`` (flow: Flow-GRPO's SDE with ``a =
   noise_level``; DDPM: DDIM with ``eta = noise_level``) and stores each step's latents and, for the
   trained steps, the Gaussian log-probability of the step taken (mean over latent elements, float32).
   ``train_steps = "random"``: every step is stochastic and a random ``train_fraction`` of them is
   trained (DanceGRPO: 60%); ``"window"``: MixGRPO's sliding window: only ``window_size`` consecutive steps
   are stochastic (and trained), the others are ODE steps; the window moves one step every
   ``window_shift_every`` rollouts and wraps around.
3. The final latents are scored by the recipe's rewards (image rewards see only the decoded frames their
   sampler picks); rewards are gathered from every process and the advantages ``(r - mean) / (std + 1e-4)``
   (population std) clipped to ``+-advantage_clip`` are computed over each WHOLE group, then each process
   keeps its own videos' advantages. A tied group has advantages 0 (no preference is invented for it).

Update: one backward pass per trained step (the trainer accumulates them; DDP averages the gradients of
all processes at the last one), loss ``mean_i max(-A_i rho_i, -A_i clip(rho_i, 1 - eps, 1 + eps))`` with
``rho = exp(log p_theta - log p_rollout)`` recomputed through the same ``sde_step`` on the stored
transition, plus ``kl_beta * mean((mu_theta - mu_ref)^2) / (2 sigma^2)`` against the reference (LoRA
disabled) when ``kl_beta > 0``. Classifier-free guidance in rollouts and training is off by default
(``rollout_guidance_scale = 1``, DanceGRPO); when on, the training log-probs use the same guided velocity.
The first update of a rollout is on-policy: its ratio is exactly 1. With ``updates_per_rollout = N`` the
rollout's videos are split into N chunks, one optimizer step each (the later chunks are off-policy and
the clip bounds their ratio); the batches drawn while a rollout's chunks are trained are not rolled out.
A checkpoint holds each process's chunks not yet trained and the number of rollouts so far (the window's
position), so a resumed run continues with the same updates as an uninterrupted one.

The rollout is ``rewardkit.finetune.sample.sample_latents`` with ``record=True``, the loop every sampler
of the project runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rewardkit.errors import UserInputError
from rewardkit.finetune.models.base import Conditioning
from rewardkit.finetune.objectives import register_objective
from rewardkit.finetune.objectives.base import Gather, Objective, ObjectiveConfig, Processes, option
from rewardkit.finetune.objectives.losses import (
    clipped_surrogate,
    gaussian_log_prob,
    group_advantages,
    sde_kl,
)
from rewardkit.finetune.sample import sample_latents, seeded_noise

__all__ = ["GRPOConfig", "GRPO", "deal_groups", "gathered_advantages"]


def deal_groups(prompts: int, group_size: int, rank: int, count: int) -> torch.Tensor:
    """Global indices ``j`` (video ``j`` is member ``j % group_size`` of prompt ``j // group_size``'s group)
    of the videos process ``rank`` of ``count`` samples: every ``count``-th one, so groups span processes."""
    total = prompts * group_size
    if total % count:
        raise UserInputError(f"{prompts} prompts x group_size {group_size} videos cannot be shared evenly by {count} processes")
    return torch.arange(rank, total, count)


def gathered_advantages(rewards: torch.Tensor, prompts: int, group_size: int, processes: Processes, clip: float = 5.0) -> tuple[torch.Tensor, torch.Tensor]:
    """This process's advantages and every video's reward in global order, from this process's rewards
    (its videos as ``deal_groups`` deals them): the rewards of all processes are gathered, so each group's
    mean and std use all of its members wherever they were sampled."""
    gathered = processes.gather(rewards).cpu()
    order = torch.cat([deal_groups(prompts, group_size, rank, processes.count) for rank in range(processes.count)])
    every = torch.empty_like(gathered)
    every[order] = gathered
    advantages = group_advantages(every, torch.arange(len(every)) // group_size, clip=clip)
    return advantages[deal_groups(prompts, group_size, processes.rank, processes.count)], every


@dataclass
class GRPOConfig(ObjectiveConfig):
    """``[objective] name = "grpo"``: prompts (data.prompts or data.csv) and the recipe's rewards."""

    name: str = option("grpo", "The objective (registered name).")
    group_size: int = option(4, "Videos per prompt (the group the advantages are normalised over; Flow-GRPO Wan 4, DanceGRPO 24).")
    noise_level: float = option(0.7, "Rollout stochasticity: flow: Flow-GRPO's a in sigma_t = a sqrt(s / (1 - s)); DDPM: DDIM eta (DDPO 1.0).")
    same_noise: bool = option(True, "One initial noise per group (DanceGRPO); false: one per video (Flow-GRPO).")
    train_steps: str = option("random", "random: all steps stochastic, a random train_fraction of them trained; window: MixGRPO's sliding SDE window.")
    train_fraction: float = option(0.6, "random: fraction of the D steps trained per rollout (DanceGRPO 0.6; Flow-GRPO-Fast trains 1-2 steps).")
    window_size: int = option(4, "window: consecutive stochastic (and trained) steps (MixGRPO: 4 of 25).")
    window_shift_every: int = option(25, "window: rollouts between moves of the window by one step (it wraps around).")
    clip_range: float = option(1e-3, "PPO ratio clip epsilon (log-probs are means over latent elements, so it is tiny: Flow-GRPO 1e-4, Wan 1e-3).")
    advantage_clip: float = option(5.0, "Advantages are clipped to +-this.")
    kl_beta: float = option(0.0, "KL to the reference (LoRA disabled): beta mean(dmu^2) / (2 sigma^2); Flow-GRPO 0.04, Wan 0.004, DanceGRPO 0.")
    rollout_guidance_scale: float = option(1.0, "Classifier-free guidance in rollouts and their log-probs (1 = off, DanceGRPO; Flow-GRPO 4.5).")
    updates_per_rollout: int = option(1, "Optimizer steps per rollout (its videos split into this many chunks; the first is on-policy).")

    def trained_step_count(self) -> int:
        if self.train_steps == "window":
            return self.window_size
        return max(1, round(self.train_fraction * self.num_inference_steps))

    def check(self, recipe) -> None:
        from rewardkit.parsing import did_you_mean

        super().check(recipe)
        if self.train_steps not in ("random", "window"):
            raise UserInputError(f"objective.train_steps = {self.train_steps!r} is not allowed; use 'random' or 'window'.{did_you_mean(self.train_steps, ['random', 'window'])}")
        if self.group_size < 2:
            raise UserInputError(f"objective.group_size must be at least 2 (advantages compare videos of one prompt), got {self.group_size}")
        if self.noise_level <= 0:
            raise UserInputError(f"objective.noise_level must be positive (the rollout needs stochastic steps), got {self.noise_level}")
        if not 0 < self.train_fraction <= 1:
            raise UserInputError(f"objective.train_fraction must be in (0, 1], got {self.train_fraction}")
        if not 1 <= self.window_size <= self.num_inference_steps:
            raise UserInputError(f"objective.window_size must be in 1..num_inference_steps ({self.num_inference_steps}), got {self.window_size}")
        for key in ("window_shift_every", "updates_per_rollout"):
            if getattr(self, key) < 1:
                raise UserInputError(f"objective.{key} must be at least 1, got {getattr(self, key)}")
        if self.clip_range <= 0 or self.advantage_clip <= 0 or self.kl_beta < 0:
            raise UserInputError("objective.clip_range and objective.advantage_clip must be positive and objective.kl_beta at least 0")
        if self.updates_per_rollout > recipe.train.batch_size * self.group_size:
            raise UserInputError(
                f"objective.updates_per_rollout = {self.updates_per_rollout} is more than the {recipe.train.batch_size * self.group_size} "
                "videos a process rolls out (train.batch_size x group_size); lower it"
            )
        if not recipe.reward.rewards:
            raise UserInputError("grpo scores its rollouts with the recipe's rewards: set reward.rewards, e.g. [\"videoreward\"]")
        if not recipe.data.csv and not recipe.data.prompts:
            raise UserInputError("the recipe has no prompts: set data.prompts or data.csv")


@register_objective("grpo")
class GRPO(Objective):
    """Group-relative policy optimisation on SDE rollouts (see the module docstring)."""

    Config = GRPOConfig
    reward_use = "score"
    plot = ("reward_mean", "reward")

    def __init__(self, recipe, adapter, reward, device) -> None:
        super().__init__(recipe, adapter, reward, device)
        self.rollouts = 0
        self.pending: list[dict[str, Any]] = []

    @classmethod
    def parts_per_batch(cls, config: GRPOConfig) -> int:
        return config.trained_step_count()

    def announce(self) -> list[str]:
        config = self.config
        steps = f"random {config.trained_step_count()} of {config.num_inference_steps}" if config.train_steps == "random" else f"window of {config.window_size}"
        return [
            f"grpo: group {config.group_size}, noise level {config.noise_level:g}, trained steps {steps}, clip {config.clip_range:g}, "
            f"kl beta {config.kl_beta:g}, rollout CFG {config.rollout_guidance_scale:g}"
        ]

    def _stochastic_steps(self, count: int) -> list[int]:
        config = self.config
        if config.train_steps == "random":
            return list(range(count))
        start = (self.rollouts // config.window_shift_every) % (count - config.window_size + 1)
        return list(range(start, start + config.window_size))

    def rollout(self, batch: dict[str, Any], generator: torch.Generator, rng: np.random.Generator) -> dict[str, Any]:
        """SDE rollouts of every prompt's group, scored; advantages over whole (gathered) groups."""
        if self.pending:
            return self.pending.pop(0)
        config, adapter, processes = self.config, self.adapter, self.processes
        size = config.group_size
        every_prompt = processes.gather_objects(list(batch["prompts"]))
        mine = deal_groups(len(every_prompt), size, processes.rank, processes.count)
        prompts = [every_prompt[j // size] for j in mine.tolist()]
        # A seed every process agrees on (rank 0's draw), so a group's shared noise is the same everywhere.
        seed = int(processes.gather(torch.randint(0, 2**62, (1,), generator=generator).to(self.device))[0])
        keys = [j // size if config.same_noise else len(every_prompt) + j for j in mine.tolist()]
        samples = sample_latents(
            adapter, prompts, num_steps=config.num_inference_steps, guidance_scale=config.rollout_guidance_scale,
            negative_prompt=config.negative_prompt, noise=seeded_noise(adapter, [seed + key for key in keys]), device=self.device,
            generator=generator, eta=config.noise_level, sde_steps=self._stochastic_steps(config.num_inference_steps), record=True,
        )
        with torch.no_grad():
            rewards, reward_details = self.reward(samples.latents, adapter, prompts, rng)
        trainable, wanted = sorted(samples.log_probs), config.trained_step_count()
        if len(trainable) < wanted:
            raise UserInputError(
                f"only {len(trainable)} of the {config.num_inference_steps} rollout steps are stochastic; lower objective.train_fraction / window_size"
            )
        chosen = sorted(rng.choice(trainable, wanted, replace=False).tolist()) if config.train_steps == "random" else trainable
        rewards = rewards.detach().float()
        advantages, global_rewards = gathered_advantages(rewards.to(self.device), len(every_prompt), size, processes, config.advantage_clip)
        self.rollouts += 1
        rollout = {
            "prompts": prompts, "conditioning": samples.conditioning, "levels": samples.levels, "chain": samples.chain, "steps": chosen,
            "log_probs": {index: samples.log_probs[index] for index in chosen}, "rewards": rewards, "advantages": advantages,
            "group_std": global_rewards.view(-1, size).std(1, unbiased=False),
            "reward_terms": {key: value for key, value in reward_details.items() if key.startswith("reward_")},
        }
        chunks = self._split(rollout, config.updates_per_rollout)
        self.pending = chunks[1:]
        return chunks[0]

    def state_dict(self) -> dict[str, Any]:
        """The rollouts so far (the window's position) and this process's chunks not yet trained."""
        plain = lambda c: {"positive": c.positive, "negative": c.negative}  # noqa: E731 - loadable with weights_only
        return {"rollouts": self.rollouts, "pending": [{**chunk, "conditioning": plain(chunk["conditioning"])} for chunk in self.pending]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rollouts = state["rollouts"]
        self.pending = [{**chunk, "conditioning": Conditioning(**chunk["conditioning"])} for chunk in state["pending"]]

    @staticmethod
    def _split(rollout: dict[str, Any], chunks: int) -> list[dict[str, Any]]:
        if chunks == 1:
            return [rollout]
        parts = []
        for rows in torch.arange(len(rollout["prompts"])).tensor_split(chunks):
            part = dict(rollout)
            part.update(
                prompts=[rollout["prompts"][i] for i in rows.tolist()], conditioning=rollout["conditioning"].select(rows),
                chain=[latents[rows] for latents in rollout["chain"]], log_probs={k: v[rows] for k, v in rollout["log_probs"].items()},
                rewards=rollout["rewards"][rows], advantages=rollout["advantages"][rows],
                reward_terms={k: v[rows] for k, v in rollout["reward_terms"].items()},
            )
            parts.append(part)
        return parts

    def micro_batches(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        return [{**batch, "step": index} for index in batch["steps"]]

    def loss(self, batch, generator, rng):
        config, adapter = self.config, self.adapter
        index = batch["step"]
        levels, chain = batch["levels"], batch["chain"]
        x, taken = chain[index].to(self.device), chain[index + 1].to(self.device)
        arguments = (x, levels[index], levels[index + 1], batch["conditioning"], config.rollout_guidance_scale)
        _, mean, std = adapter.sde_step(*arguments, noise_level=config.noise_level, prev_sample=taken)
        log_prob = gaussian_log_prob(taken, mean, std)
        ratio = torch.exp(log_prob - batch["log_probs"][index].to(log_prob))
        advantages = batch["advantages"].to(log_prob)
        policy = clipped_surrogate(advantages, ratio, config.clip_range)
        kl = torch.zeros_like(policy)
        if config.kl_beta > 0:
            with adapter.reference():
                _, reference_mean, _ = adapter.sde_step(*arguments, noise_level=config.noise_level, prev_sample=taken)
            kl = sde_kl(mean, reference_mean, std, config.kl_beta)
        loss = (policy + kl).mean()
        clipped = (ratio - 1).abs() > config.clip_range
        return loss, {
            "rewards": batch["rewards"], "advantages": advantages.detach(), "ratio": ratio.detach(), "clipped": clipped.float(),
            "kl": kl.detach(), "group_std": batch["group_std"], **batch["reward_terms"],
        }

    def metrics(self, details, gather: Gather) -> dict[str, float]:
        rewards = gather(details["rewards"].reshape(-1).to(self.device)).float()
        ratio = gather(details["ratio"].reshape(-1)).float()
        row = {
            "reward_mean": rewards.mean().item(),
            "reward_std": rewards.std().item() if rewards.numel() > 1 else 0.0,
            "advantage_abs_mean": gather(details["advantages"].reshape(-1)).abs().mean().item(),
            "tied_groups": (details["group_std"] == 0).float().mean().item(),
            "ratio_mean": ratio.mean().item(),
            "ratio_max_deviation": (ratio - 1).abs().max().item(),
            "clip_fraction": gather(details["clipped"].reshape(-1)).mean().item(),
            "kl_mean": gather(details["kl"].reshape(-1)).mean().item(),
        }
        for key, value in details.items():
            if key.startswith("reward_"):
                row[f"{key}_mean"] = gather(value.reshape(-1).float().to(self.device)).mean().item()
        return row
