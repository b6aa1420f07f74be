"""rewardkit: reward models, reward fine-tuning and evaluation for text-to-video diffusion."""

__version__ = "0.1.0"

from rewardkit.registry import create_reward, list_rewards, register_reward  # noqa: E402
from rewardkit.rewards import PerFrameReward  # noqa: E402
from rewardkit.scoring import score  # noqa: E402
from rewardkit.video.sampling import All, Segmental, Uniform  # noqa: E402
from rewardkit.video.weighting import Mean, TemporalAttenuation  # noqa: E402

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
]
