"""Reward models, one model family per module. Each built-in reward's module is imported when the registry
first needs it: ``rewardkit.registry.BUILTIN_REWARDS`` maps every registered name to its module (VBench
dimensions keep VBench's names and sit with their model: ``imaging_quality`` in ``musiq``,
``subject_consistency`` in ``dino``, ``dynamic_degree`` in ``raft``, ``overall_consistency`` in ``viclip``, ``scene`` in ``tag2text``,
``background_consistency`` and ``appearance_style`` in ``clip``, ``aesthetic_quality`` in ``aesthetic``;
``consistency`` holds VBench's frame-consistency formula shared by ``dino`` and ``clip``). This package
exports the base classes and wrappers."""

from rewardkit.rewards.base import ImageScorer, TextFeatureCache, VideoScorer
from rewardkit.rewards.errors import NotApplicable
from rewardkit.rewards.wrappers import PatchReward, PerFrameReward

__all__ = ["ImageScorer", "NotApplicable", "PatchReward", "PerFrameReward", "TextFeatureCache", "VideoScorer"]
