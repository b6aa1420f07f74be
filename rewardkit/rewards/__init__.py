"""Reward models. Importing this package registers every built-in scorer."""

from rewardkit.rewards import aesthetic, clip, flicker, hpsv2, imagereward, pickscore  # noqa: F401  (registration side effects)
from rewardkit.rewards.base import ImageReward, TextFeatureCache
from rewardkit.rewards.wrappers import VideoReward

__all__ = ["ImageReward", "TextFeatureCache", "VideoReward"]
