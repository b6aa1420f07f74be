"""VBench's normalisation and totals (Huang et al., arXiv:2311.17982; https://github.com/Vchitect/VBench,
``scripts/constant.py`` and ``scripts/cal_final_score.py``).

Each dimension's raw score (0-1) is min-max normalised with VBench's fixed bounds and weighted
(``dynamic_degree`` 0.5, every other dimension 1): ``norm_d = (raw_d - Min_d) / (Max_d - Min_d) * w_d``.
Quality is the sum of the normalised quality dimensions over the sum of their weights, Semantic likewise,
and ``Total = (4 * Quality + Semantic) / 5``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rewardkit.errors import UserInputError
from rewardkit.parsing import did_you_mean

__all__ = ["VBENCH_DIMENSIONS", "QUALITY", "SEMANTIC", "VBenchTotals", "normalize", "vbench_totals"]

# name: (Min, Max, weight), from scripts/constant.py (NORMALIZE_DIC, DIM_WEIGHT).
VBENCH_DIMENSIONS: dict[str, tuple[float, float, float]] = {
    "subject_consistency": (0.1462, 1.0, 1.0),
    "background_consistency": (0.2615, 1.0, 1.0),
    "temporal_flickering": (0.6293, 1.0, 1.0),
    "motion_smoothness": (0.706, 0.9975, 1.0),
    "dynamic_degree": (0.0, 1.0, 0.5),
    "aesthetic_quality": (0.0, 1.0, 1.0),
    "imaging_quality": (0.0, 1.0, 1.0),
    "object_class": (0.0, 1.0, 1.0),
    "multiple_objects": (0.0, 1.0, 1.0),
    "human_action": (0.0, 1.0, 1.0),
    "color": (0.0, 1.0, 1.0),
    "spatial_relationship": (0.0, 1.0, 1.0),
    "scene": (0.0, 0.8222, 1.0),
    "appearance_style": (0.0009, 0.2855, 1.0),
    "temporal_style": (0.0, 0.364, 1.0),
    "overall_consistency": (0.0, 0.364, 1.0),
}
QUALITY = (
    "subject_consistency", "background_consistency", "temporal_flickering", "motion_smoothness",
    "aesthetic_quality", "imaging_quality", "dynamic_degree",
)
SEMANTIC = (
    "object_class", "multiple_objects", "human_action", "color", "spatial_relationship", "scene",
    "appearance_style", "temporal_style", "overall_consistency",
)
QUALITY_WEIGHT, SEMANTIC_WEIGHT = 4.0, 1.0


def _check_dimension(name: str) -> None:
    if name not in VBENCH_DIMENSIONS:
        raise UserInputError(f"{name!r} is not a VBench dimension.{did_you_mean(name, VBENCH_DIMENSIONS)} They are: {', '.join(VBENCH_DIMENSIONS)}")


def normalize(name: str, raw: float) -> float:
    """VBench's weighted min-max normalisation of one dimension's raw score (0-1 scale)."""
    _check_dimension(name)
    low, high, weight = VBENCH_DIMENSIONS[name]
    return (raw - low) / (high - low) * weight


@dataclass(frozen=True)
class VBenchTotals:
    """Quality, Semantic and Total on VBench's 0-1 scale; a group is None when any of its dimensions is
    missing (VBench scores a missing dimension as 0; rewardkit refuses to), and so is Total."""

    quality: float | None
    semantic: float | None
    total: float | None
    missing: tuple[str, ...]


def _group(scores: Mapping[str, float], names: tuple[str, ...]) -> float | None:
    if any(name not in scores for name in names):
        return None
    return sum(normalize(name, scores[name]) for name in names) / sum(VBENCH_DIMENSIONS[name][2] for name in names)


def vbench_totals(scores: Mapping[str, float]) -> VBenchTotals:
    """Totals from raw per-dimension scores on the 0-1 scale (divide published percentages by 100)."""
    for name in scores:
        _check_dimension(name)
    quality, semantic = _group(scores, QUALITY), _group(scores, SEMANTIC)
    total = None
    if quality is not None and semantic is not None:
        total = (QUALITY_WEIGHT * quality + SEMANTIC_WEIGHT * semantic) / (QUALITY_WEIGHT + SEMANTIC_WEIGHT)
    missing = tuple(name for name in VBENCH_DIMENSIONS if name not in scores)
    return VBenchTotals(quality, semantic, total, missing)
