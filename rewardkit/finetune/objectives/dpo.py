"""Diffusion-DPO (Wallace et al., arXiv:2311.12908; SalesforceAIResearch/DiffusionDPO train.py) on
epsilon / v models and Flow-DPO (VideoAlign, arXiv:2501.13918; flow_grpo scripts/train_sd3_dpo.py) on flow
models: ONE implementation over the adapter's ``target`` / ``predict`` (REFERENCE §4).

Per pair: one noise ``n`` and one level (``adapter.sample_training_levels``: uniform t for DDPM,
logit-normal sigma for flow) shared by winner and loser; ``e`` = per-sample mean squared error of the
policy's and the reference's prediction against ``adapter.target``; ``loss = -mean logsigmoid(-beta/2
[(e_w - e_ref,w) - (e_l - e_ref,l)])``. The reference is ``adapter.reference()``: the same denoiser with
its LoRA disabled, in the same dtype (a reference in another dtype would make the inside non-zero at
step 0). Logged: loss, implicit accuracy (inside > 0), the inside's mean and the four errors.

Latents of the pair videos are encoded once per video and kept (``LatentCache``), so epochs after the
first never run the VAE encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rewardkit.errors import UserInputError
from rewardkit.finetune.objectives import register_objective
from rewardkit.finetune.objectives.base import Gather, Objective, ObjectiveConfig, option
from rewardkit.finetune.objectives.losses import beta_at_levels, dpo_loss, per_sample_mse

__all__ = ["DPOConfig", "DPO", "LatentCache", "denoising_errors"]


class LatentCache:
    """Latents of videos by path, read and encoded once (so each video's clip window is drawn once, at
    first use); kept on the CPU."""

    def __init__(self, read: Callable[[str], torch.Tensor]) -> None:
        self.read = read
        self.latents: dict[str, torch.Tensor] = {}
        self.encoded = 0

    def get(self, adapter, paths: Sequence[str], device: torch.device) -> torch.Tensor:
        missing = [path for path in dict.fromkeys(paths) if path not in self.latents]
        if missing:
            fresh = adapter.encode_videos(torch.stack([self.read(path) for path in missing]).to(device))
            for path, latent in zip(missing, fresh, strict=True):
                self.latents[path] = latent.detach().cpu()
            self.encoded += len(missing)
        return torch.stack([self.latents[path] for path in paths]).to(device)


def denoising_errors(adapter, x0: torch.Tensor, noise: torch.Tensor, levels: torch.Tensor, conditioning) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample errors ``e`` of the policy (with gradient) and of the reference (LoRA off, no gradient)."""
    noisy = adapter.add_noise(x0, noise, levels)
    target = adapter.target(x0, noise, levels)
    policy = per_sample_mse(adapter.predict(noisy, levels, conditioning), target)
    with adapter.reference():
        reference = per_sample_mse(adapter.predict(noisy, levels, conditioning), target)
    return policy, reference


@dataclass
class DPOConfig(ObjectiveConfig):
    """``[objective] name = "dpo"``: preference pairs from ``data.pairs``."""

    name: str = option("dpo", "The objective (registered name).")
    beta: float = option(5000.0, "DPO beta (KL strength; larger = closer to the reference). 5000 for DDPM models (Diffusion-DPO, VideoDPO), 100-2000 for flow LoRA (VideoAlign / flow_grpo: 100; FLUX users ~2000).")
    beta_schedule: str = option("constant", "constant, or one_minus_t_squared: beta (1 - t)^2 with t the level's fraction (VideoAlign found constant better).")
    keep_ties: bool = option(False, "Train on tied pairs too (tie = true or |margin| <= min_margin); dropped by default, as Pick-a-Pic DPO does.")
    min_margin: float = option(0.0, "Pairs whose |margin| is at most this count as ties.")

    def check(self, recipe) -> None:
        super().check(recipe)
        if self.beta <= 0:
            raise UserInputError(f"objective.beta must be positive, got {self.beta}")
        if self.beta_schedule not in ("constant", "one_minus_t_squared"):
            from rewardkit.parsing import did_you_mean

            raise UserInputError(
                f"objective.beta_schedule = {self.beta_schedule!r} is not allowed; use 'constant' or 'one_minus_t_squared'."
                f"{did_you_mean(self.beta_schedule, ['constant', 'one_minus_t_squared'])}"
            )
        if not recipe.data.pairs:
            raise UserInputError(f"objective.name = {self.name!r} trains on preference pairs: set data.pairs (JSONL; `rewardkit pairs` writes one)")


@register_objective("dpo")
class DPO(Objective):
    """Diffusion-DPO / Flow-DPO (see the module docstring)."""

    Config = DPOConfig
    plot = ("implicit_acc", "implicit_acc")

    def __init__(self, recipe, adapter, reward, device) -> None:
        super().__init__(recipe, adapter, reward, device)
        from rewardkit.finetune.data import read_clip

        model, fps = recipe.model, recipe.data.sample_fps
        self.cache = LatentCache(lambda path: read_clip(path, model.num_frames, model.height, model.width, fps))

    def announce(self) -> list[str]:
        return [f"{self.config.name}: beta = {self.config.beta:g} ({self.config.beta_schedule}), reference = base model (LoRA disabled)"]

    @classmethod
    def build_dataset(cls, recipe):
        from rewardkit.finetune.data import PairDataset

        data, model, config = recipe.data, recipe.model, recipe.objective
        return PairDataset(
            data.pairs, model.num_frames, model.height, model.width, data.sample_fps, data.invalid_rows,
            keep_ties=config.keep_ties, min_margin=config.min_margin,
        )

    def pair_latents(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        chosen = self.cache.get(self.adapter, batch["chosen_path"], self.device)
        rejected = self.cache.get(self.adapter, batch["rejected_path"], self.device)
        return chosen, rejected

    def pair_errors(self, batch: dict[str, Any], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Shared noise and level per pair; winner and loser through the policy and the reference."""
        adapter = self.adapter
        chosen, rejected = self.pair_latents(batch)
        pairs = chosen.shape[0]
        noise = torch.randn(chosen.shape, generator=generator).to(self.device)
        levels = adapter.sample_training_levels(pairs, generator)
        conditioning = adapter.encode_prompts(batch["prompts"], guidance=False).repeat(2)
        policy, reference = denoising_errors(
            adapter, torch.cat([chosen, rejected]), torch.cat([noise, noise]), torch.cat([levels, levels]), conditioning
        )
        beta = beta_at_levels(self.config.beta, adapter.time_fraction(levels, pairs), self.config.beta_schedule).to(self.device)
        return {
            "policy_w": policy[:pairs], "ref_w": reference[:pairs], "policy_l": policy[pairs:], "ref_l": reference[pairs:],
            "beta": beta, "levels": levels, "noise": noise, "chosen": chosen, "rejected": rejected,
        }

    def loss(self, batch, generator, rng: np.random.Generator):
        errors = self.pair_errors(batch, generator)
        loss, inside = dpo_loss(errors["policy_w"], errors["ref_w"], errors["policy_l"], errors["ref_l"], errors["beta"])
        return loss, {"inside": inside.detach(), **{key: value.detach() for key, value in errors.items()}}

    def metrics(self, details, gather: Gather) -> dict[str, float]:
        inside = gather(details["inside"].reshape(-1)).float()
        row = {"implicit_acc": (inside > 0).float().mean().item(), "inside_mean": inside.mean().item()}
        for key in ("policy_w", "ref_w", "policy_l", "ref_l"):
            row[f"e_{key}"] = gather(details[key].reshape(-1)).float().mean().item()
        row["beta_mean"] = gather(details["beta"].reshape(-1)).float().mean().item()
        return row
