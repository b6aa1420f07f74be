"""Fine-tuning objectives: losses computed from a model adapter's outputs."""

from rewardkit.finetune.objectives.reward_backprop import (
    RewardBackprop,
    RewardFunction,
    build_reward_function,
    temporal_offset_noise,
)

__all__ = ["RewardBackprop", "RewardFunction", "build_reward_function", "temporal_offset_noise"]
