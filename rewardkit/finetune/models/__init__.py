"""Model adapters: each family of text-to-video models behind ``VideoDiffusionAdapter``, registered by
name and imported only when a recipe names it.

A family module registers a builder with ``@register_family("name")``; the builder takes the recipe's
``[model]`` table (``ModelConfig``) and a device and returns the adapter. ``FAMILY_MODULES`` says which
module registers which name, so ``load_model`` imports only the family a recipe uses. Tiny test models
are named ``path = "testing:<name>"`` and resolved by ``resolve_model_path``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch

from rewardkit.errors import UserInputError
from rewardkit.finetune.models.base import (
    Conditioning,
    DDIMLatentAdapter,
    VideoDiffusionAdapter,
    as_levels,
    ddim_timestep,
    ddim_timesteps,
)

__all__ = [
    "Conditioning",
    "VideoDiffusionAdapter",
    "DDIMLatentAdapter",
    "as_levels",
    "ddim_timestep",
    "ddim_timesteps",
    "register_family",
    "family_names",
    "get_family",
    "load_model",
    "FAMILY_MODULES",
]

# name -> the module whose import registers it
FAMILY_MODULES = {
    "unet3d": "rewardkit.finetune.models.unet3d",
    "animatediff": "rewardkit.finetune.models.animatediff",
    "wan": "rewardkit.finetune.models.wan",
}

Builder = Callable[..., VideoDiffusionAdapter]
_BUILDERS: dict[str, Builder] = {}


def register_family(name: str) -> Callable[[Builder], Builder]:
    """Decorator: ``builder(config: ModelConfig, device) -> adapter`` becomes family ``name``."""
    if name not in FAMILY_MODULES:
        raise ValueError(f"family {name!r} is not listed in rewardkit.finetune.models.FAMILY_MODULES; add it there")

    def decorate(builder: Builder) -> Builder:
        _BUILDERS[name] = builder
        return builder

    return decorate


def family_names() -> list[str]:
    return list(FAMILY_MODULES)


def get_family(name: str) -> Builder:
    """The builder of family ``name`` (its module is imported on first use)."""
    if name not in FAMILY_MODULES:
        from rewardkit.parsing import did_you_mean

        raise UserInputError(f"unknown model family {name!r}.{did_you_mean(name, family_names())} Families: {', '.join(family_names())}.")
    if name not in _BUILDERS:
        importlib.import_module(FAMILY_MODULES[name])
    return _BUILDERS[name]


def load_model(config, device: torch.device | str = "cpu") -> VideoDiffusionAdapter:
    """The adapter named by a recipe's ``[model]`` table (``family``, ``path``, sizes, dtype)."""
    return get_family(config.family)(config, device)
