"""Fine-tuning objectives, registered by name (the recipe's ``[objective] name = ...``) and imported only
when a recipe names one. Each has its own config dataclass (``Objective.Config``); the losses themselves
are pure functions in ``rewardkit.finetune.objectives.losses``.

| name | what it optimises | data |
|---|---|---|
| ``reward_backprop`` | a differentiable reward through the sampling chain (InstructVideo editing, DRaFT/VADER) | prompts, or clips to edit |
| ``dpo`` | Diffusion-DPO (epsilon / v models) and Flow-DPO (flow models) on preference pairs | pairs JSONL |
| ``rwr`` | reward-weighted regression of the denoising / flow loss | clips with rewards, or prompts + a reward (rollouts) |
| ``gran_dpo`` | patch-aware DPO (HALO-style) | pairs JSONL + a patch reward or per-patch rewards in the pairs |
| ``online_dpo`` | DPO on pairs of fresh samples of the current policy ranked by rewards (OnlineVPO) | prompts + rewards |
| ``grpo`` | group-relative policy optimisation on SDE rollouts (Flow-GRPO, DanceGRPO; DDPO-style on DDPM) | prompts + rewards |
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from rewardkit.errors import UserInputError
from rewardkit.finetune.objectives.base import Objective, ObjectiveConfig, describe, option

__all__ = ["Objective", "ObjectiveConfig", "option", "describe", "register_objective", "get_objective", "objective_names", "OBJECTIVE_MODULES"]

# name -> the module whose import registers it
OBJECTIVE_MODULES = {
    "reward_backprop": "rewardkit.finetune.objectives.reward_backprop",
    "dpo": "rewardkit.finetune.objectives.dpo",
    "rwr": "rewardkit.finetune.objectives.rwr",
    "gran_dpo": "rewardkit.finetune.objectives.gran_dpo",
    "online_dpo": "rewardkit.finetune.objectives.online_dpo",
    "grpo": "rewardkit.finetune.objectives.grpo",
}

_OBJECTIVES: dict[str, type[Objective]] = {}


def register_objective(name: str) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator: the objective class (with its ``Config``) becomes ``[objective] name = "<name>"``."""
    if name not in OBJECTIVE_MODULES:
        raise ValueError(f"objective {name!r} is not listed in rewardkit.finetune.objectives.OBJECTIVE_MODULES; add it there")

    def decorate(cls: type[Objective]) -> type[Objective]:
        _OBJECTIVES[name] = cls
        return cls

    return decorate


def objective_names() -> list[str]:
    return list(OBJECTIVE_MODULES)


def get_objective(name: str) -> type[Objective]:
    """The objective class registered as ``name`` (its module is imported on first use)."""
    if name not in OBJECTIVE_MODULES:
        from rewardkit.parsing import did_you_mean

        raise UserInputError(
            f"objective.name = {name!r} is not allowed; use one of {', '.join(map(repr, objective_names()))}.{did_you_mean(name, objective_names())}"
        )
    if name not in _OBJECTIVES:
        importlib.import_module(OBJECTIVE_MODULES[name])
    return _OBJECTIVES[name]
