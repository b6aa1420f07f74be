"""The scoring engine behind ``rewardkit score`` and ``rewardkit.score``, in four rooms: ``inputs``
(discovery, prompts), ``results`` (columns, the writer and its journal, resume), ``engine`` (reward slots,
decoding workers, batches) and ``summary``."""

from rewardkit.scoring.engine import WEIGHT_FREE_REWARDS, score
from rewardkit.scoring.inputs import InputWarning, collect_media, find_prompt, load_prompt_table
from rewardkit.scoring.results import COLUMNS, ResultsWriteError
from rewardkit.scoring.summary import iter_failures, summarize

__all__ = [
    "COLUMNS", "InputWarning", "ResultsWriteError", "WEIGHT_FREE_REWARDS", "collect_media", "find_prompt",
    "iter_failures", "load_prompt_table", "score", "summarize",
]
