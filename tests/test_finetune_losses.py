"""The objectives' functional losses against REFERENCE §4's hand values and identities, plus the
objective registry and recipe checks (help on every config field, did-you-mean, rejected values)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from rewardkit.finetune.config import load_recipe
from rewardkit.finetune.objectives import get_objective, objective_names
from rewardkit.finetune.objectives.losses import (
    beta_at_levels,
    dpo_inside,
    dpo_loss,
    gran_dpo_loss,
    patch_errors,
    patch_weights,
    per_sample_mse,
    rwr_weights,
    weighted_loss,
)

RECIPES = Path(__file__).resolve().parents[1] / "finetune"
ERRORS = torch.tensor([0.10]), torch.tensor([0.12]), torch.tensor([0.15]), torch.tensor([0.14])


@pytest.mark.parametrize(("beta", "inside", "loss"), [(10.0, 0.15, 0.620957), (100.0, 1.5, 0.201413)])
def test_dpo_hand_values(beta, inside, loss):
    """REFERENCE §4: errors (e_w, e_ref_w, e_l, e_ref_l) = (0.10, 0.12, 0.15, 0.14): beta 10 -> inside 0.15,
    loss 0.620957; beta 100 -> inside 1.5, loss 0.201413 (= -log sigmoid(inside), computed by hand)."""
    value, computed = dpo_loss(*ERRORS, beta)
    assert computed.item() == pytest.approx(inside, abs=1e-6)
    assert value.item() == pytest.approx(loss, abs=1e-6)
    assert value.item() == pytest.approx(math.log1p(math.exp(-inside)), abs=1e-6)


def test_dpo_at_reference_is_ln2_with_gradient_beta_over_4():
    """theta = ref: loss ln 2 and dL/de_w = +beta/4, dL/de_l = -beta/4 (REFERENCE §4)."""
    beta = 50.0
    policy_w, policy_l = torch.tensor([0.3], requires_grad=True), torch.tensor([0.2], requires_grad=True)
    loss, _ = dpo_loss(policy_w, torch.tensor([0.3]), policy_l, torch.tensor([0.2]), beta)
    loss.backward()
    assert loss.item() == pytest.approx(math.log(2), abs=1e-7)
    assert policy_w.grad.item() == pytest.approx(beta / 4) and policy_l.grad.item() == pytest.approx(-beta / 4)


def test_swapping_winner_and_loser_negates_the_inside():
    policy_w, ref_w, policy_l, ref_l = (torch.rand(5, generator=torch.Generator().manual_seed(i)) for i in range(4))
    torch.testing.assert_close(dpo_inside(policy_l, ref_l, policy_w, ref_w, 7.0), -dpo_inside(policy_w, ref_w, policy_l, ref_l, 7.0))


def test_dpo_loss_is_mean_of_logsigmoids_not_logsigmoid_of_mean():
    """diffusers #6702: the loss averages per-pair log-sigmoids."""
    inside_values = torch.tensor([3.0, -1.0])
    zeros = torch.zeros(2)
    loss, inside = dpo_loss(-2 * inside_values, zeros, zeros, zeros, 1.0)
    torch.testing.assert_close(inside, inside_values)
    assert loss.item() == pytest.approx(sum(math.log1p(math.exp(-v)) for v in (3.0, -1.0)) / 2, abs=1e-6)


def test_beta_schedules():
    times = torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(beta_at_levels(100.0, times, "constant"), torch.full((3,), 100.0))
    torch.testing.assert_close(beta_at_levels(100.0, times, "one_minus_t_squared"), torch.tensor([100.0, 25.0, 0.0]))
    with pytest.raises(ValueError, match="constant"):
        beta_at_levels(1.0, times, "cosine")


def test_rwr_weights_sum_to_one_and_reduce_to_the_plain_loss_on_ties():
    """exp = softmax(r / tau) by hand; sparse keeps the top fraction; both sum to 1 (per group 1/G); tied
    rewards give uniform weights, so the weighted loss is the plain mean loss."""
    rewards = torch.tensor([0.1, 0.4, 0.2, 0.3])
    exp = rwr_weights(rewards, "exp", temperature=0.1)
    by_hand = torch.exp(rewards / 0.1) / torch.exp(rewards / 0.1).sum()
    torch.testing.assert_close(exp, by_hand)
    sparse = rwr_weights(rewards, "sparse", top_fraction=0.5)
    torch.testing.assert_close(sparse, torch.tensor([0.0, 0.5, 0.0, 0.5]))
    grouped = rwr_weights(rewards, "exp", temperature=0.1, groups=torch.tensor([0, 0, 1, 1]))
    assert grouped.sum().item() == pytest.approx(1.0) and grouped[:2].sum().item() == pytest.approx(0.5)
    errors = torch.tensor([1.0, 2.0, 3.0, 6.0])
    for variant in ("exp", "sparse"):
        weights = rwr_weights(torch.full((4,), 0.7), variant)
        assert weights.sum().item() == pytest.approx(1.0)
        assert weighted_loss(errors, weights).item() == pytest.approx(errors.mean().item())
    torch.testing.assert_close(rwr_weights(rewards, "raw"), rewards / 4)  # VGen: raw reward x loss, averaged


def test_per_sample_mse_is_a_mean_over_elements():
    prediction = torch.zeros(2, 3, 4)
    target = torch.ones(2, 3, 4) * torch.tensor([1.0, 2.0]).view(2, 1, 1)
    torch.testing.assert_close(per_sample_mse(prediction, target), torch.tensor([1.0, 4.0]))


@pytest.mark.parametrize("grid", [(2, 2), (3, 3), (2, 3)])
def test_gran_dpo_with_uniform_patch_rewards_equals_dpo(grid):
    """Equal patch reward differences: the area-weighted patch errors are the whole-latent errors, so
    Gran-DPO's loss equals dpo_loss on per_sample_mse (also for a 3x3 grid on 8 latent pixels, whose
    patches differ in size). Independent path: DPO from full-tensor MSEs."""
    from rewardkit.finetune.objectives.gran_dpo import latent_patch_boxes

    generator = torch.Generator().manual_seed(0)
    target = torch.randn(2, 2, 4, 3, 8, 8, generator=generator)  # [winner/loser, B, C, F, h, w]
    policy, reference = (target + 0.3 * torch.randn(target.shape, generator=generator) for _ in range(2))
    boxes, areas = latent_patch_boxes(8, 8, grid)
    per_patch = {name: patch_errors(values.flatten(0, 1), target.flatten(0, 1), boxes) for name, values in (("policy", policy), ("ref", reference))}
    full = {name: per_sample_mse(values.flatten(0, 1), target.flatten(0, 1)) for name, values in (("policy", policy), ("ref", reference))}
    rewards = torch.full((2, *grid), 0.4)
    weights = patch_weights(rewards + 0.1, rewards, areas, temperature=0.05)
    torch.testing.assert_close(weights, areas.expand(2, -1))
    for lam in (0.0, 1.0):
        ours, _ = gran_dpo_loss(per_patch["policy"][:2], per_patch["ref"][:2], per_patch["policy"][2:], per_patch["ref"][2:], weights, areas, 30.0, lam)
        expected, _ = dpo_loss(full["policy"][:2], full["ref"][:2], full["policy"][2:], full["ref"][2:], 30.0)
        torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)


def test_gran_dpo_weights_follow_local_reward_differences():
    """A patch where the winner is locally much better gets most of the weight (small tau)."""
    areas = torch.full((4,), 0.25)
    winner, loser = torch.tensor([[[0.5, 0.2], [0.2, 0.2]]]), torch.full((1, 2, 2), 0.2)
    weights = patch_weights(winner, loser, areas, temperature=0.05)
    assert weights[0, 0] > 0.99 and weights.sum().item() == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------ registry


def test_every_objective_config_field_has_help():
    for name in objective_names():
        config = get_objective(name).Config
        for field in dataclasses.fields(config):
            assert field.metadata.get("help"), f"{name}.{field.name} has no help text"


@pytest.mark.parametrize(
    ("recipe", "overrides", "message"),
    [
        ("smoke-tiny-dpo", ["objective.name=dpp"], "Did you mean 'dpo'"),
        ("smoke-tiny-dpo", ["objective.bta=5"], "Did you mean 'beta'"),
        ("smoke-tiny-dpo", ['data.pairs=""'], "set data.pairs"),
        ("smoke-tiny-dpo", ["objective.beta_schedule=one_minus_t"], "Did you mean 'one_minus_t_squared'"),
        ("smoke-tiny-rwr", ["objective.variant=expo"], "Did you mean 'exp'"),
        ("smoke-tiny-rwr", ['reward.rewards=[]'], "set reward.rewards"),
        ("smoke-tiny-gran-dpo", ["objective.patch_reward=hpsv2"], "must be a patch reward spec"),
        ("smoke-tiny", ["train.log_every=0"], "train.log_every must be at least 1"),
        ("smoke-tiny", ["train.warmup_steps=-5"], "train.warmup_steps must be at least 0"),
        ("smoke-tiny", ["train.max_grad_norm=-1"], "train.max_grad_norm must be at least 0"),
        ("smoke-tiny", ["objective.mode=edit"], "'editing', 'full_chain'"),
        ("smoke-tiny", ["objective.backprop_steps=4"], "more than the 3 denoising steps"),
    ],
)
def test_recipe_errors_before_any_model_loads(recipe, overrides, message):
    """Bad objective names, keys and values are ValueErrors with the close match, raised while reading."""
    with pytest.raises(ValueError, match=message):
        load_recipe(RECIPES / f"{recipe}.toml", overrides)
