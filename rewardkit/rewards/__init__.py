"""Reward models, one model family per module. Importing this package registers every built-in scorer.

Where each registered name lives (VBench dimensions keep VBench's names and sit with their model):

| registered name | module |
|---|---|
| ``aesthetic``, ``aesthetic_quality`` | ``aesthetic`` (LAION aesthetic predictor on CLIP ViT-L/14) |
| ``clip``, ``appearance_style``, ``background_consistency`` | ``clip`` (open_clip CLIP) |
| ``dover`` | ``dover`` |
| ``dynamic_degree`` | ``raft`` (RAFT optical flow) |
| ``dynamic_degree_flow``, ``motion_smoothness_flow`` | ``motion`` (OpenCV optical flow) |
| ``hpsv2`` | ``hpsv2`` |
| ``imagereward`` | ``imagereward`` |
| ``imaging_quality`` | ``musiq`` (MUSIQ) |
| ``overall_consistency`` | ``viclip`` (ViCLIP) |
| ``patch`` | ``wrappers`` |
| ``pickscore`` | ``pickscore`` |
| ``subject_consistency`` | ``dino`` (DINO ViT) |
| ``temporal_flickering`` | ``flicker`` (weight-free; RAFT with ``static_filter=raft``) |
| ``videoreward`` | ``videoreward`` |
| ``videoscore`` | ``videoscore`` |

``consistency`` holds VBench's frame-consistency formula shared by ``dino`` and ``clip``.
"""

from rewardkit.rewards import (  # noqa: F401  (registration side effects)
    aesthetic,
    clip,
    dino,
    dover,
    flicker,
    hpsv2,
    imagereward,
    motion,
    musiq,
    pickscore,
    raft,
    viclip,
    videoreward,
    videoscore,
)
from rewardkit.rewards.base import ImageReward, TextFeatureCache
from rewardkit.rewards.errors import NotApplicable
from rewardkit.rewards.wrappers import PatchReward, VideoReward

__all__ = ["ImageReward", "NotApplicable", "PatchReward", "TextFeatureCache", "VideoReward"]
