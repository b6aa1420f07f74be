"""rewardkit: reward models, reward fine-tuning and evaluation for text-to-video diffusion.

The public names load on first use (PEP 562), so ``import rewardkit`` and ``rewardkit --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "create_reward": "rewardkit.registry",
    "list_rewards": "rewardkit.registry",
    "register_reward": "rewardkit.registry",
    "score": "rewardkit.scoring",
    "PerFrameReward": "rewardkit.rewards",
    "Segmental": "rewardkit.video.sampling",
    "Uniform": "rewardkit.video.sampling",
    "All": "rewardkit.video.sampling",
    "TemporalAttenuation": "rewardkit.video.weighting",
    "Mean": "rewardkit.video.weighting",
    "UserInputError": "rewardkit.errors",
}

__all__ = [
    "__version__",
    "create_reward",
    "list_rewards",
    "register_reward",
    "score",
    "PerFrameReward",
    "Segmental",
    "Uniform",
    "All",
    "TemporalAttenuation",
    "Mean",
    "UserInputError",
]

if TYPE_CHECKING:
    from rewardkit.errors import UserInputError
    from rewardkit.registry import create_reward, list_rewards, register_reward
    from rewardkit.rewards import PerFrameReward
    from rewardkit.scoring import score
    from rewardkit.video.sampling import All, Segmental, Uniform
    from rewardkit.video.weighting import Mean, TemporalAttenuation


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rewardkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
