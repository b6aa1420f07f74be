"""Evaluation: suites of dimensions scored on folders of videos, VBench's aggregation, leaderboards and
the regression check for CI. The names load on first use (PEP 562), so the CLI's parser stays cheap."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "EvalRun": "rewardkit.eval.harness",
    "evaluate": "rewardkit.eval.harness",
    "aggregate": "rewardkit.eval.harness",
    "load_run": "rewardkit.eval.harness",
    "add_run": "rewardkit.eval.leaderboard",
    "render": "rewardkit.eval.leaderboard",
    "compare": "rewardkit.eval.regress",
    "load_scores": "rewardkit.eval.regress",
    "markdown_report": "rewardkit.eval.regress",
    "Dimension": "rewardkit.eval.suite",
    "Suite": "rewardkit.eval.suite",
    "load_suite": "rewardkit.eval.suite",
    "VBENCH_DIMENSIONS": "rewardkit.eval.vbench",
    "normalize": "rewardkit.eval.vbench",
    "vbench_totals": "rewardkit.eval.vbench",
}

__all__ = [
    "EvalRun", "evaluate", "aggregate", "load_run", "add_run", "render", "compare", "load_scores",
    "markdown_report", "Dimension", "Suite", "load_suite", "VBENCH_DIMENSIONS", "normalize", "vbench_totals",
]

if TYPE_CHECKING:
    from rewardkit.eval.harness import EvalRun, aggregate, evaluate, load_run
    from rewardkit.eval.leaderboard import add_run, render
    from rewardkit.eval.regress import compare, load_scores, markdown_report
    from rewardkit.eval.suite import Dimension, Suite, load_suite
    from rewardkit.eval.vbench import VBENCH_DIMENSIONS, normalize, vbench_totals


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rewardkit.eval' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
