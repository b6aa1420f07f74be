"""What an objective is: a config dataclass (the recipe's ``[objective]`` table) and a class that turns one
micro-batch into a loss and the metrics to log. The trainer only sequences (rollout) -> micro-batches
under gradient accumulation -> backward, clip, step -> log -> checkpoint, samples, plot.

Every config field is declared with ``option(default, help)``; the help text is what ``describe`` prints
and what recipe errors quote.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

if TYPE_CHECKING:
    from rewardkit.finetune.config import Recipe
    from rewardkit.finetune.models.base import VideoDiffusionAdapter
    from rewardkit.finetune.objectives.reward_backprop import RewardFunction

__all__ = ["option", "ObjectiveConfig", "Objective", "Gather", "Processes", "describe"]

Gather = Callable[[torch.Tensor], torch.Tensor]
"""Concatenate a tensor over all processes (``accelerator.gather``); identity on one process."""


def _same(value: Any) -> Any:
    return value


@dataclass
class Processes:
    """The processes of a run as an objective sees them (the trainer sets accelerate's): this process's
    rank, their count, and collectives concatenating tensors (``gather``) or lists (``gather_objects``)
    over all processes in rank order. One process by default."""

    rank: int = 0
    count: int = 1
    gather: Gather = _same
    gather_objects: Callable[[list], list] = _same


def option(default: Any, help: str) -> Any:  # noqa: A002 - the dataclasses/argparse word
    """A config field with its help text (lists get a fresh copy per instance)."""
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass
class ObjectiveConfig:
    """Fields every objective has: its name and the sampler of sample videos (and rollouts)."""

    name: str = option("reward_backprop", "The objective (registered name): reward_backprop, dpo, rwr, gran_dpo, online_dpo or grpo.")
    num_inference_steps: int = option(20, "D, the sampler's denoising steps (DDPM: DDIM step map d(i) = (T/D)(i-1)+1).")
    guidance_scale: float = option(3.0, "Classifier-free guidance scale of the sampler; 1 turns guidance off.")
    negative_prompt: str = option("", "Negative prompt of classifier-free guidance.")
    eta: float = option(0.0, "Sampler stochasticity: DDIM eta (0 = deterministic DDIM, 1 = DDPM-like).")

    def check(self, recipe: Recipe) -> None:
        """Cross-field checks against the whole recipe (before any model loads)."""
        if self.num_inference_steps < 1:
            raise ValueError(f"objective.num_inference_steps must be at least 1, got {self.num_inference_steps}")
        if self.eta < 0:
            raise ValueError(f"objective.eta must be at least 0, got {self.eta}")


def describe(config_class: type[ObjectiveConfig]) -> str:
    """One line per field: ``name = default  # help``."""
    lines = []
    for field in dataclasses.fields(config_class):
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        lines.append(f"{field.name} = {default!r}  # {field.metadata.get('help', '')}")
    return "\n".join(lines)


class Objective(ABC):
    """One training objective. Subclasses set ``Config`` and implement ``loss`` and ``metrics``."""

    Config: ClassVar[type[ObjectiveConfig]]
    reward_use: ClassVar[str] = "none"
    """How the recipe's ``[reward]`` is used: ``differentiable`` (backpropagated), ``score`` (rewards of
    rollouts, no gradient) or ``none`` (only to score sample videos, when rewards are given)."""
    plot: ClassVar[tuple[str, str]] = ("loss", "loss")
    """(metric, file stem) of the run's plot."""

    def __init__(self, recipe: Recipe, adapter: VideoDiffusionAdapter, reward: RewardFunction | None, device: torch.device) -> None:
        self.recipe, self.config, self.adapter, self.reward, self.device = recipe, recipe.objective, adapter, reward, device
        self.processes = Processes()

    @classmethod
    def parts_per_batch(cls, config: ObjectiveConfig) -> int:
        """How many backward passes one (rolled-out) batch takes (``micro_batches``); the trainer
        accumulates their gradients into one optimizer step per ``gradient_accumulation_steps`` batches."""
        return 1

    def micro_batches(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """The (rolled-out) batch as ``parts_per_batch`` parts, each one backward pass (e.g. GRPO: one
        per trained denoising step)."""
        return [batch]

    @classmethod
    def build_dataset(cls, recipe: Recipe) -> torch.utils.data.Dataset:
        """The training data (read and checked before any model loads): prompts, or the CSV's clips."""
        from rewardkit.finetune.data import build_prompt_dataset

        return build_prompt_dataset(recipe)

    @staticmethod
    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        from rewardkit.finetune.data import collate

        return collate(items)

    def announce(self) -> list[str]:
        """Lines printed at the start of a run (the settings a user should see, e.g. DPO's beta)."""
        return []

    def rollout(self, batch: dict[str, Any], generator: torch.Generator, rng: np.random.Generator) -> dict[str, Any]:
        """Online objectives sample (and score) here, without gradients; offline ones return ``batch``."""
        return batch

    @abstractmethod
    def loss(self, batch: dict[str, Any], generator: torch.Generator, rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        """The micro-batch's loss and its details (tensors the metrics are computed from)."""

    @abstractmethod
    def metrics(self, details: dict[str, Any], gather: Gather) -> dict[str, float]:
        """The row to log (every process calls this: ``gather`` is a collective)."""

    def sample(self, prompts: Sequence[str], generator: torch.Generator) -> torch.Tensor:
        """Clean latents of the current model, one video per entry of ``prompts`` (the recipe's sampler:
        ``rewardkit.finetune.sample.sample_latents``), no gradients; the noise comes from ``generator``."""
        from rewardkit.finetune.sample import sample_latents  # it imports the objectives' losses

        config = self.config
        return sample_latents(
            self.adapter, prompts, num_steps=config.num_inference_steps, guidance_scale=config.guidance_scale,
            negative_prompt=config.negative_prompt, eta=config.eta, generator=generator, device=self.device,
        ).latents

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must hold for this objective (this process's) to continue exactly: tensors,
        lists, dicts, numbers and strings (loaded with ``weights_only=True``); empty when nothing."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()``'s value (a resumed run)."""
        if state:
            raise ValueError(f"objective {self.config.name!r} keeps no state, but the checkpoint holds {sorted(state)}")
