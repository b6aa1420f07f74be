"""Gran-DPO: patch-aware DPO in the spirit of HALO (arXiv:2502.06812). HALO's formula is not public; this
is OUR formalisation, written so that it is plain DPO when the patch rewards carry no local information.

Setting: pairs as for ``dpo`` plus a per-patch reward of each video on a ``rows x cols`` grid, from a
``patch:`` reward (``objective.patch_reward = "patch:base=hpsv2,grid=3x3"``; scored once per video on
``patch_frames`` evenly spaced frames of its clip, averaged) or given in the pairs file
(``chosen_patches`` / ``rejected_patches``). The pixel grid maps onto the latent grid (the VAE keeps the
layout: patch p covers the same fraction of the latent's ``h x w``, all channels and frames).

For patch p with latent area share ``a_p`` and reward difference ``d_p = r_w,p - r_l,p``:

- per-patch DPO errors ``Delta_p = (e_w,p - e_ref,w,p) - (e_l,p - e_ref,l,p)`` (``e_.,p`` the mean squared
  error over the patch's latent region, same noise and level as ``dpo``);
- patch weights ``omega_p = a_p exp(d_p / tau) / sum_q a_q exp(d_q / tau)`` (``tau = patch_temperature``):
  the pair's preference is attributed to the regions where the winner is locally better;
- ``inside_patch = -beta/2 sum_p omega_p Delta_p`` and ``inside_video = -beta/2 sum_p a_p Delta_p`` (= the
  ``dpo`` inside: the area-weighted mean of the patch errors is the whole-latent error);
- ``loss = -mean[logsigmoid(inside_patch) + lambda logsigmoid(inside_video)] / (1 + lambda)``
  (``lambda = video_weight``: HALO's video-level term).

Equal patch differences (or ``tau`` -> infinity) give ``omega = a``, so both insides equal DPO's and the
loss is exactly ``dpo``'s (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rewardkit.errors import UserInputError
from rewardkit.finetune.objectives import register_objective
from rewardkit.finetune.objectives.base import Gather, option
from rewardkit.finetune.objectives.dpo import DPO, DPOConfig
from rewardkit.finetune.objectives.losses import beta_at_levels, gran_dpo_loss, patch_errors, patch_weights

__all__ = ["GranDPOConfig", "GranDPO", "latent_patch_boxes"]


def latent_patch_boxes(height: int, width: int, grid: tuple[int, int]) -> tuple[list[tuple[int, int, int, int]], torch.Tensor]:
    """The patch grid on a ``height x width`` latent (rewardkit.rewards.wrappers.patch_boxes, no overlap)
    and each patch's share of the latent area."""
    from rewardkit.rewards.wrappers import patch_boxes

    boxes = patch_boxes(height, width, grid, 0.0)
    areas = torch.tensor([(bottom - top) * (right - left) for top, left, bottom, right in boxes], dtype=torch.float32)
    return boxes, areas / (height * width)


@dataclass
class GranDPOConfig(DPOConfig):
    """``[objective] name = "gran_dpo"``: DPO pairs with per-patch rewards."""

    name: str = option("gran_dpo", "The objective (registered name).")
    patch_reward: str = option("", "A patch reward spec (e.g. patch:base=hpsv2,grid=3x3) scoring every pair video once; empty: the pairs file carries chosen_patches / rejected_patches.")
    patch_frames: int = option(4, "patch_reward: evenly spaced frames of each clip it scores (averaged).")
    patch_temperature: float = option(1.0, "tau of the patch weights a_p exp(d_p / tau) (reward units; large = uniform = DPO).")
    video_weight: float = option(1.0, "lambda: weight of the video-level DPO term next to the patch-weighted one.")

    def check(self, recipe) -> None:
        super().check(recipe)
        if self.patch_temperature <= 0:
            raise UserInputError(f"objective.patch_temperature must be positive, got {self.patch_temperature}")
        if self.video_weight < 0:
            raise UserInputError(f"objective.video_weight must be at least 0, got {self.video_weight}")
        if self.patch_frames < 1:
            raise UserInputError(f"objective.patch_frames must be at least 1, got {self.patch_frames}")
        if self.patch_reward:
            from rewardkit.registry import parse_reward_spec

            name, _ = parse_reward_spec(self.patch_reward)
            if name != "patch":
                raise UserInputError(f"objective.patch_reward must be a patch reward spec (patch:base=NAME,grid=RxC), got {self.patch_reward!r}")


@register_objective("gran_dpo")
class GranDPO(DPO):
    """Gran-DPO (see the module docstring)."""

    Config = GranDPOConfig

    def __init__(self, recipe, adapter, reward, device) -> None:
        super().__init__(recipe, adapter, reward, device)
        self.patch_scores: dict[str, torch.Tensor] = {}
        self.patch_module = None
        if self.config.patch_reward:
            from rewardkit.registry import create_reward, parse_reward_spec

            name, options = parse_reward_spec(self.config.patch_reward)
            files = dict(item.split("=", 1) for item in recipe.reward.weight_files)
            self.patch_module = create_reward(name, device=device, dtype=recipe.reward.dtype, weights=files.get(name), **options).eval()

    def announce(self) -> list[str]:
        config = self.config
        source = config.patch_reward or "per-patch rewards in the pairs file"
        return [*super().announce(), f"gran_dpo: patches from {source}, tau = {config.patch_temperature:g}, lambda = {config.video_weight:g}"]

    def patches_of(self, paths: list[str], prompts: list[str]) -> torch.Tensor:
        """Per-patch rewards ``[B, rows, cols]`` of videos, scored once per video."""
        from rewardkit.finetune.data import read_clip
        from rewardkit.video.sampling import Uniform

        model = self.recipe.model
        for path, prompt in zip(paths, prompts, strict=True):
            if path not in self.patch_scores:
                clip = read_clip(path, model.num_frames, model.height, model.width, self.recipe.data.sample_fps)
                frames = clip[Uniform(self.config.patch_frames).indices(clip.shape[0])]
                with torch.no_grad():
                    scores = self.patch_module.patches(frames.unsqueeze(0).to(self.device), [prompt])
                self.patch_scores[path] = scores.patches[0].float().mean(0).cpu()
        return torch.stack([self.patch_scores[path] for path in paths])

    def loss(self, batch: dict[str, Any], generator, rng):
        adapter, config = self.adapter, self.config
        if self.patch_module is not None:
            winner = self.patches_of(batch["chosen_path"], batch["prompts"])
            loser = self.patches_of(batch["rejected_path"], batch["prompts"])
        elif "chosen_patches" in batch and "rejected_patches" in batch:
            winner, loser = batch["chosen_patches"], batch["rejected_patches"]
        else:
            raise UserInputError("gran_dpo needs per-patch rewards: set objective.patch_reward, or give chosen_patches and rejected_patches in data.pairs")
        if winner.shape != loser.shape or winner.dim() != 3:
            raise UserInputError(f"per-patch rewards must be rows x cols grids of the same shape, got {tuple(winner.shape[1:])} and {tuple(loser.shape[1:])}")
        chosen, rejected = self.pair_latents(batch)
        pairs = chosen.shape[0]
        boxes, areas = latent_patch_boxes(chosen.shape[-2], chosen.shape[-1], tuple(winner.shape[1:]))
        noise = torch.randn(chosen.shape, generator=generator).to(self.device)
        levels = adapter.sample_training_levels(pairs, generator)
        conditioning = adapter.encode_prompts(batch["prompts"], guidance=False).repeat(2)
        x0, both_noise, both_levels = torch.cat([chosen, rejected]), torch.cat([noise, noise]), torch.cat([levels, levels])
        noisy, target = adapter.add_noise(x0, both_noise, both_levels), adapter.target(x0, both_noise, both_levels)
        policy = patch_errors(adapter.predict(noisy, both_levels, conditioning), target, boxes)
        with adapter.reference():
            reference = patch_errors(adapter.predict(noisy, both_levels, conditioning), target, boxes)
        beta = beta_at_levels(config.beta, adapter.time_fraction(levels, pairs), config.beta_schedule).to(self.device)
        weights = patch_weights(winner.to(self.device), loser.to(self.device), areas, config.patch_temperature)
        loss, inside = gran_dpo_loss(
            policy[:pairs], reference[:pairs], policy[pairs:], reference[pairs:], weights, areas, beta, config.video_weight
        )
        video = {key: (areas.to(values) * values).sum(1).detach() for key, values in
                 (("policy_w", policy[:pairs]), ("ref_w", reference[:pairs]), ("policy_l", policy[pairs:]), ("ref_l", reference[pairs:]))}
        return loss, {"inside": inside.detach(), "beta": beta, "patch_weight_max": weights.max(1).values.detach(), **video}

    def metrics(self, details, gather: Gather) -> dict[str, float]:
        row = super().metrics(details, gather)
        row["patch_weight_max"] = gather(details["patch_weight_max"].reshape(-1)).mean().item()
        return row
