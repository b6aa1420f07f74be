"""The online objectives (issue 10): ``grpo`` (Flow-GRPO / DanceGRPO on the flow family, DDPO-style on the
epsilon family) and ``online_dpo`` (OnlineVPO). Hand values of the pure functions (REFERENCE §4), the
group statistics over processes, the on-policy ratio, pairing rules, recipes, learning checks on the tiny
models of both families with a brightness reward, smoke runs and two-process (gloo) runs."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardkit.finetune.config import load_recipe
from rewardkit.finetune.objectives.losses import clipped_surrogate, gaussian_log_prob, group_advantages, sde_kl

RECIPES = Path(__file__).resolve().parents[1] / "finetune"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Two shared cores: multi-threaded CPU kernels are many times slower here than one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------ hand values


def test_gaussian_log_prob_hand_value():
    """log N(0.3; 0.1, 0.5^2) = -0.04 / 0.5 - log 0.5 - log(2 pi) / 2 = -0.305791 (REFERENCE §4); a latent's
    log-prob is the MEAN over its elements (here two elements with that value and log N(0.1; 0.1, 0.5^2))."""
    value = gaussian_log_prob(torch.tensor(0.3), torch.tensor(0.1), torch.tensor(0.5))
    assert value.item() == pytest.approx(-0.305791, abs=1e-6)
    at_mean = -math.log(0.5) - 0.5 * math.log(2 * math.pi)
    latent = gaussian_log_prob(torch.tensor([[0.3, 0.1]]), torch.tensor([[0.1, 0.1]]), torch.tensor(0.5))
    assert latent.item() == pytest.approx((-0.305791 + at_mean) / 2, abs=1e-6)
    with pytest.raises(ValueError, match="deterministic step"):
        gaussian_log_prob(torch.tensor([[0.3]]), torch.tensor([[0.1]]), torch.tensor(0.0))


def test_group_advantages_hand_values():
    """Rewards [1, 2, 3, 4]: mean 2.5, POPULATION std sqrt(1.25) -> (r - 2.5) / (1.118034 + 1e-4) =
    [-1.341521, -0.447174, 0.447174, 1.341521] (the sample std, sqrt(5/3), would give -1.161827 first).
    Groups are normalised separately; a tied group gets 0; the clip at +-5 binds for one outlier in 30."""
    advantages = group_advantages(torch.tensor([1.0, 2, 3, 4, 7, 7]), torch.tensor([0, 0, 0, 0, 1, 1]))
    torch.testing.assert_close(advantages, torch.tensor([-1.341521, -0.447174, 0.447174, 1.341521, 0.0, 0.0]), atol=1e-6, rtol=0)
    outlier = group_advantages(torch.tensor([0.0] * 29 + [1.0]), torch.zeros(30))
    assert outlier[-1].item() == 5.0  # unclipped: (1 - 1/30) / sqrt(29)/30 = 5.385


def test_clipped_surrogate_and_kl_hand_values():
    """PPO: A 1, ratio 1.5, eps 0.2 -> max(-1.5, -1.2) = -1.2; A -1, ratio 0.5 -> max(0.5, 0.8) = 0.8.
    KL: beta 1, dmu 0.1, sigma 0.5 -> 0.01 / 0.5 = 0.02 (mean over elements)."""
    loss = clipped_surrogate(torch.tensor([1.0, -1.0]), torch.tensor([1.5, 0.5]), 0.2)
    torch.testing.assert_close(loss, torch.tensor([-1.2, 0.8]))
    kl = sde_kl(torch.full((1, 3), 0.1), torch.zeros(1, 3), torch.tensor(0.5))
    assert kl.item() == pytest.approx(0.02, abs=1e-7)


def test_preference_pairs_best_worst_all_and_ties():
    """Best vs worst per group; all pairs with the higher reward as winner; pairs at or under min_margin
    (a tied group) get weight 0 instead of an arbitrary winner."""
    from rewardkit.finetune.objectives.online_dpo import preference_pairs

    rewards = torch.tensor([0.2, 0.9, 0.5, 0.3, 0.3, 0.3])
    winners, losers, weights = preference_pairs(rewards, 3, "best_worst", 0.0)
    assert winners.tolist() == [1, 3] and losers.tolist() == [0, 5] and weights.tolist() == [1.0, 0.0]
    winners, losers, weights = preference_pairs(rewards, 3, "all", 0.35)
    assert list(zip(winners.tolist(), losers.tolist(), strict=True))[:3] == [(1, 0), (2, 0), (1, 2)]
    assert weights.tolist() == [1.0, 0.0, 1.0, 0.0, 0.0, 0.0]  # margins 0.7, 0.3, 0.4, then a tied group


def test_dpo_loss_weights_drop_pairs():
    """dpo_loss with weights (1, 0) equals the unweighted loss of the first pair alone."""
    from rewardkit.finetune.objectives.losses import dpo_loss

    errors = [torch.tensor([0.10, 0.3]), torch.tensor([0.12, 0.1]), torch.tensor([0.15, 0.2]), torch.tensor([0.14, 0.4])]
    weighted, _ = dpo_loss(*errors, 10.0, torch.tensor([1.0, 0.0]))
    alone, _ = dpo_loss(*(value[:1] for value in errors), 10.0)
    assert weighted.item() == pytest.approx(alone.item()) == pytest.approx(0.620957, abs=1e-6)


def test_groups_are_dealt_round_robin():
    """3 prompts x groups of 4 over 2 processes: process 0 gets the even videos, 1 the odd ones, so every
    group has members on both."""
    from rewardkit.finetune.objectives.grpo import deal_groups

    assert deal_groups(3, 4, 0, 2).tolist() == [0, 2, 4, 6, 8, 10]
    assert deal_groups(3, 4, 1, 2).tolist() == [1, 3, 5, 7, 9, 11]
    with pytest.raises(ValueError, match="shared evenly"):
        deal_groups(3, 3, 0, 2)


# ------------------------------------------------------------------------------------ recipes


def test_online_recipes_load():
    """The real recipes read and check (before any model loads) with the settings their headers state."""
    dpo = load_recipe(RECIPES / "online-dpo-wan.toml")
    assert (dpo.model.family, dpo.objective.name, dpo.reward.rewards) == ("wan", "online_dpo", ["dover"])
    grpo = load_recipe(RECIPES / "grpo-wan.toml")
    assert (grpo.model.family, grpo.objective.name, grpo.objective.group_size, grpo.objective.num_inference_steps) == ("wan", "grpo", 4, 20)
    assert (grpo.model.num_frames, grpo.model.height, grpo.model.width, grpo.objective.clip_range) == (33, 240, 416, 1e-3)
    ddpo = load_recipe(RECIPES / "grpo-modelscope.toml")
    assert (ddpo.model.family, ddpo.objective.name, ddpo.objective.noise_level) == ("unet3d", "grpo", 1.0)
    default = load_recipe(RECIPES / "smoke-tiny-online-dpo.toml", ["reward.rewards=[]"])
    assert default.reward.rewards == ["dover"]  # OnlineVPO's video-quality reward is the default


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("objective.group_size=1", "group_size must be at least 2"),
        ("objective.train_steps=windows", "Did you mean 'window'"),
        ("objective.window_size=9", "window_size must be in 1..num_inference_steps"),
        ("objective.noise_level=0", "noise_level must be positive"),
        ("reward.rewards=[]", "set reward.rewards"),
        ("objective.updates_per_rollout=5", "more than the 4 videos"),
    ],
)
def test_grpo_recipe_errors(override, message):
    with pytest.raises(ValueError, match=message):
        load_recipe(RECIPES / "smoke-tiny-grpo.toml", [override])


# ------------------------------------------------------------------------------------ objectives on tiny models


class Brightness(torch.nn.Module):
    """A video reward in the rewardkit contract: the mean decoded pixel value of every frame."""

    modality, needs_prompt = "video", False

    def __init__(self) -> None:
        super().__init__()
        from rewardkit.video.sampling import parse_sampler

        self.sampler = parse_sampler("all")

    def score_sampled(self, frames, indices, num_frames, prompts=None, rng=None):
        return frames.float().mean(dim=(1, 2, 3, 4))


def _objective(family: str, name: str, overrides=()):
    """The objective of the tiny smoke recipe (the family's tiny model from the rewardkit cache, LoRA added)
    with the brightness reward."""
    from rewardkit.finetune.lora import add_lora
    from rewardkit.finetune.models import load_model
    from rewardkit.finetune.objectives import get_objective
    from rewardkit.finetune.objectives.reward_backprop import RewardFunction, RewardTerm

    stem = f"smoke-tiny-{'wan-' if family == 'wan' else ''}{name.replace('_', '-')}"
    config = load_recipe(RECIPES / f"{stem}.toml", list(overrides))
    adapter = load_model(config.model)
    torch.manual_seed(0)
    parameters = add_lora(adapter.denoiser, config.lora.rank, config.lora.alpha or config.lora.rank, config.lora.target_modules)
    reward = RewardFunction([RewardTerm("brightness", 1.0, Brightness())])
    return get_objective(name)(config, adapter, reward, torch.device("cpu")), parameters


def _train(objective, parameters, learning_rate: float, steps: int, prompts: list[str]) -> list[float]:
    """The trainer's sequence (rollout -> parts -> backward -> one optimizer step); returns each step's
    mean reward of the fresh rollout."""
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.0)
    history = []
    for step in range(steps):
        generator, rng = torch.Generator().manual_seed(step), np.random.default_rng(step)
        batch = objective.rollout({"prompts": prompts}, generator, rng)
        history.append(batch["rewards"].mean().item())
        parts = objective.micro_batches(batch)
        for part in parts:
            loss, _ = objective.loss(part, generator, rng)
            (loss / len(parts)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return history


@pytest.mark.parametrize("family", ["unet3d", "wan"])
def test_grpo_ratio_is_exactly_one_on_policy(family):
    """The first update after a rollout is on-policy: the training log-probs, recomputed through the same
    sde_step on the stored transitions, equal the rollout's bit for bit (ratio exactly 1), also after an
    update has made the LoRA non-zero; every trained step of the rollout is one part."""
    objective, parameters = _objective(family, "grpo")
    _train(objective, parameters, 1e-2, 1, ["a cat"])
    assert max(parameter.abs().max().item() for parameter in parameters) > 0
    batch = objective.rollout({"prompts": ["a cat", "a dog"]}, torch.Generator().manual_seed(9), np.random.default_rng(9))
    parts = objective.micro_batches(batch)
    assert len(parts) == type(objective).parts_per_batch(objective.config) == 2
    for part in parts:
        _, details = objective.loss(part, torch.Generator(), np.random.default_rng(0))
        assert bool((details["ratio"] == 1).all()), details["ratio"]
    assert batch["advantages"].shape == (4,) and len(batch["prompts"]) == 4


def test_grpo_same_noise_within_a_group_and_window():
    """same_noise: a group's videos start from one noise (their chains differ only by the SDE noise);
    the window mode makes only window_size consecutive steps stochastic and trains exactly those."""
    objective, _ = _objective("wan", "grpo", ["objective.train_steps=\"window\"", "objective.window_size=2", "objective.window_shift_every=1"])
    batch = objective.rollout({"prompts": ["a cat", "a dog"]}, torch.Generator().manual_seed(1), np.random.default_rng(1))
    first = batch["chain"][0]
    torch.testing.assert_close(first[0], first[1], rtol=0, atol=0)
    assert not torch.equal(first[0], first[2])
    assert batch["steps"] == [0, 1]
    levels, chain = batch["levels"], batch["chain"]
    with torch.no_grad():
        ode = objective.adapter.sde_step(chain[2], levels[2], levels[3], batch["conditioning"], 1.0, noise_level=0.0)[0]
        sde = objective.adapter.sde_step(chain[1], levels[1], levels[2], batch["conditioning"], 1.0, noise_level=0.0)[0]
    torch.testing.assert_close(ode, chain[3])  # step 2 is outside the window: deterministic
    assert not torch.allclose(sde, chain[2])  # step 1 is inside: it added noise
    again = objective.rollout({"prompts": ["a cat", "a dog"]}, torch.Generator().manual_seed(2), np.random.default_rng(2))
    assert again["steps"] == [1, 2]  # the window moved one step
