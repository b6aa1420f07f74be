"""Fine-tune text-to-video diffusion models against rewards: ``rewardkit finetune RECIPE.toml``.

``finetune(recipe, overrides=[...], resume=RUN_DIR)`` is the Python entry point; recipes live in the
top-level ``finetune/`` folder. See ``rewardkit.finetune.trainer`` for the run directory's layout.
"""

from rewardkit.finetune.config import Recipe, load_recipe
from rewardkit.finetune.monitor import RewardHackingStop, RewardHackingWarning
from rewardkit.finetune.sample import sample_videos
from rewardkit.finetune.trainer import NonFiniteLossError, finetune

__all__ = ["finetune", "sample_videos", "load_recipe", "Recipe", "NonFiniteLossError", "RewardHackingStop", "RewardHackingWarning"]
