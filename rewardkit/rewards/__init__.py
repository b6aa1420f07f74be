"""Reward models. Importing this package registers every built-in scorer."""

from rewardkit.rewards import (  # noqa: F401  (registration side effects)
    aesthetic,
    clip,
    dover,
    flicker,
    hpsv2,
    imagereward,
    motion,
    musiq,
    pickscore,
    vbench,
    vbench_semantic,
    videoreward,
    videoscore,
)
from rewardkit.rewards.base import ImageScorer, TextFeatureCache, VideoScorer
from rewardkit.rewards.errors import NotApplicable
from rewardkit.rewards.wrappers import PatchReward, PerFrameReward

__all__ = ["ImageScorer", "NotApplicable", "PatchReward", "PerFrameReward", "TextFeatureCache", "VideoScorer"]
