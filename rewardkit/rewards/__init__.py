"""Reward models. Each built-in reward's module is imported when the registry first needs it
(``rewardkit.registry.BUILTIN_REWARDS``); this package exports the base classes and wrappers."""

from rewardkit.rewards.base import ImageScorer, TextFeatureCache, VideoScorer
from rewardkit.rewards.errors import NotApplicable
from rewardkit.rewards.wrappers import PatchReward, PerFrameReward

__all__ = ["ImageScorer", "NotApplicable", "PatchReward", "PerFrameReward", "TextFeatureCache", "VideoScorer"]
