"""The objectives' losses as small pure functions of tensors (REFERENCE §4), unit-tested on hand values.

Notation: ``e`` is a per-sample MEAN over latent elements of the squared error between the denoiser's
output and its target (``adapter.target``: epsilon, v or ``n - x0``), as every public DPO code has it (a
sum would need beta / (C F H W)). ``w`` winner, ``l`` loser, ``ref`` the reference model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "per_sample_mse",
    "dpo_inside",
    "dpo_loss",
    "beta_at_levels",
    "rwr_weights",
    "weighted_loss",
    "patch_errors",
    "patch_weights",
    "gran_dpo_loss",
    "gaussian_log_prob",
    "group_advantages",
    "clipped_surrogate",
    "sde_kl",
]


def per_sample_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``e``: mean over every element of a sample of ``(prediction - target)^2``, in float32, ``[B]``."""
    return (prediction.float() - target.float()).square().flatten(1).mean(1)


def dpo_inside(policy_w: torch.Tensor, ref_w: torch.Tensor, policy_l: torch.Tensor, ref_l: torch.Tensor, beta) -> torch.Tensor:
    """``-beta / 2 * ((e_w - e_ref,w) - (e_l - e_ref,l))`` per pair (Diffusion-DPO train.py; Flow-DPO
    the same on the velocity errors). ``beta`` a number or a per-pair tensor."""
    return -0.5 * beta * ((policy_w - ref_w) - (policy_l - ref_l))


def dpo_loss(
    policy_w: torch.Tensor, ref_w: torch.Tensor, policy_l: torch.Tensor, ref_l: torch.Tensor, beta, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(-mean logsigmoid(inside), inside)``: the mean of the per-pair log-sigmoids (not the logsigmoid of
    the mean, diffusers #6702). ``weights`` (per pair, e.g. 0 for a dropped pair): the weighted mean
    ``-sum w logsigmoid(inside) / max(sum w, 1)`` instead."""
    inside = dpo_inside(policy_w, ref_w, policy_l, ref_l, beta)
    if weights is None:
        return -F.logsigmoid(inside).mean(), inside
    weights = weights.to(inside)
    return -(weights * F.logsigmoid(inside)).sum() / weights.sum().clamp(min=1.0), inside


def beta_at_levels(beta: float, times: torch.Tensor, schedule: str) -> torch.Tensor:
    """Per-pair beta: ``constant``, or ``one_minus_t_squared`` = ``beta (1 - t)^2`` with ``t`` the noise
    level normalised to [0, 1] (flow: sigma; DDPM: timestep / T). Diffusion-DPO written in velocity space
    has this weight (eps_hat - eps = (1 - t)(v_hat - v)); VideoAlign reports constant beta worked better."""
    times = times.float()
    if schedule == "constant":
        return torch.full_like(times, float(beta))
    if schedule == "one_minus_t_squared":
        return beta * (1 - times) ** 2
    raise ValueError(f"beta_schedule must be 'constant' or 'one_minus_t_squared', got {schedule!r}")


def rwr_weights(
    rewards: torch.Tensor, variant: str = "exp", temperature: float = 1.0, top_fraction: float = 0.25, groups: torch.Tensor | None = None
) -> torch.Tensor:
    """Reward-weighted-regression weights ``[B]``, normalised within each group (all one group when
    ``groups`` is None), each group's weights summing to 1 / (number of groups):

    - ``exp``: ``softmax(r / temperature)`` (DDPO's ``exp(beta r) / Z``, beta = 1 / temperature);
    - ``sparse``: uniform over the samples whose reward is at least the group's ``top_fraction`` quantile
      (DDPO's ``1[r >= C]``, C chosen per group);
    - ``raw``: ``r / B`` (VGen's RWR baseline: the raw reward times the per-sample loss, not normalised:
      the reward's scale then acts as a learning rate).
    """
    rewards = rewards.float().reshape(-1)
    if variant == "raw":
        return rewards / rewards.numel()
    if variant not in ("exp", "sparse"):
        raise ValueError(f"rwr variant must be 'exp', 'sparse' or 'raw', got {variant!r}")
    if temperature <= 0:
        raise ValueError(f"rwr temperature must be positive, got {temperature}")
    if not 0 < top_fraction <= 1:
        raise ValueError(f"rwr top_fraction must be in (0, 1], got {top_fraction}")
    groups = torch.zeros_like(rewards, dtype=torch.long) if groups is None else groups.reshape(-1)
    names = groups.unique()
    weights = torch.zeros_like(rewards)
    for name in names:
        member = groups == name
        values = rewards[member]
        if variant == "exp":
            part = torch.softmax(values / temperature, dim=0)
        else:
            keep = max(1, round(top_fraction * values.numel()))
            threshold = values.sort(descending=True).values[keep - 1]
            chosen = (values >= threshold).float()
            part = chosen / chosen.sum()
        weights[member] = part / len(names)
    return weights


def weighted_loss(errors: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_i w_i e_i`` (with weights summing to 1 this is a weighted mean of the per-sample losses)."""
    return (weights.to(errors) * errors).sum()


def patch_errors(prediction: torch.Tensor, target: torch.Tensor, boxes: list[tuple[int, int, int, int]]) -> torch.Tensor:
    """Per-patch ``e``: ``[B, P]`` means of the squared error over each latent box ``(top, left, bottom,
    right)`` (all channels and frames; latents ``[B, C, F, h, w]`` or any layout ending in ``h, w``)."""
    squared = (prediction.float() - target.float()).square()
    return torch.stack([squared[..., top:bottom, left:right].flatten(1).mean(1) for top, left, bottom, right in boxes], dim=1)


def patch_weights(winner: torch.Tensor, loser: torch.Tensor, areas: torch.Tensor, temperature: float) -> torch.Tensor:
    """Gran-DPO patch weights ``[B, P]``: ``omega_p = a_p exp(d_p / tau) / sum_q a_q exp(d_q / tau)`` with
    ``d_p`` the winner's minus the loser's reward on patch p and ``a_p`` the patch's share of the latent
    area. Equal differences give ``omega_p = a_p``: the area-weighted mean of per-patch errors is then the
    whole-video error, so Gran-DPO reduces to DPO."""
    if temperature <= 0:
        raise ValueError(f"gran_dpo patch_temperature must be positive, got {temperature}")
    differences = (winner.float() - loser.float()).flatten(1)
    logits = differences / temperature + areas.float().to(differences.device).log()
    return torch.softmax(logits, dim=1)


def gran_dpo_loss(
    policy_w: torch.Tensor,
    ref_w: torch.Tensor,
    policy_l: torch.Tensor,
    ref_l: torch.Tensor,
    weights: torch.Tensor,
    areas: torch.Tensor,
    beta,
    video_weight: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gran-DPO (our formalisation of HALO, arXiv:2502.06812, whose formula is not public). Inputs are
    per-patch errors ``[B, P]``, patch weights ``[B, P]`` (rows sum to 1, ``patch_weights``) and the
    patches' area shares ``[P]``:

    ``inside_patch = -beta/2 sum_p omega_p [(e_w,p - e_ref,w,p) - (e_l,p - e_ref,l,p)]``,
    ``inside_video`` the same with ``omega = a`` (area shares: the plain DPO inside), and
    ``loss = -mean[logsigmoid(inside_patch) + lambda logsigmoid(inside_video)] / (1 + lambda)``.

    Returns ``(loss, inside_patch)``. With uniform patch rewards it is the DPO loss."""
    inside = dpo_inside(policy_w, ref_w, policy_l, ref_l, beta.unsqueeze(-1) if torch.is_tensor(beta) else beta)
    patch_inside = (weights * inside).sum(1)
    video_inside = (areas.to(inside) * inside).sum(1)
    loss = -(F.logsigmoid(patch_inside) + video_weight * F.logsigmoid(video_inside)).mean() / (1 + video_weight)
    return loss, patch_inside


def gaussian_log_prob(sample: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Per-sample ``log N(sample; mean, std^2)`` as the MEAN over every latent element (Flow-GRPO, DDPO),
    in float32, ``[B]``. ``std`` broadcasts against ``sample`` and must be positive."""
    sample, mean, std = sample.float(), mean.float(), std.float()
    if bool((std <= 0).any()):
        raise ValueError("the step's std is 0 (a deterministic step has no Gaussian log-probability); train on stochastic steps only")
    log_prob = -((sample - mean) ** 2) / (2 * std**2) - torch.log(std) - 0.5 * math.log(2 * math.pi)
    return log_prob.flatten(1).mean(1) if log_prob.dim() > 1 else log_prob


def group_advantages(rewards: torch.Tensor, groups: torch.Tensor, clip: float = 5.0, eps: float = 1e-4) -> torch.Tensor:
    """GRPO advantages ``(r - mean_g) / (std_g + eps)`` clipped to ``+-clip``, mean and POPULATION std
    (``unbiased=False``, as flow_grpo's ``np.std``) over each sample's group ``g`` (``groups``: one group
    id per sample). A tied group gets advantages 0 (it carries no preference)."""
    rewards = rewards.double().reshape(-1)
    groups = groups.reshape(-1).to(rewards.device)
    advantages = torch.zeros_like(rewards)
    for name in groups.unique():
        member = groups == name
        values = rewards[member]
        advantages[member] = (values - values.mean()) / (values.std(unbiased=False) + eps)
    return advantages.clamp(-clip, clip).float()


def clipped_surrogate(advantages: torch.Tensor, ratio: torch.Tensor, clip_range: float) -> torch.Tensor:
    """PPO's clipped surrogate loss per sample: ``max(-A ratio, -A clip(ratio, 1 - eps, 1 + eps))``."""
    advantages = advantages.to(ratio)
    return torch.maximum(-advantages * ratio, -advantages * ratio.clamp(1 - clip_range, 1 + clip_range))


def sde_kl(mean: torch.Tensor, reference_mean: torch.Tensor, std: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """KL between the policy's and the reference's Gaussian step (same std) per sample, scaled by beta:
    ``beta * mean((mu - mu_ref)^2) / (2 sigma^2)`` (Flow-GRPO; mean over latent elements), ``[B]``."""
    squared = (mean.float() - reference_mean.float()) ** 2 / (2 * std.float() ** 2)
    return beta * (squared.flatten(1).mean(1) if squared.dim() > 1 else squared)
