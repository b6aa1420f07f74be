"""Evaluation: suites of dimensions scored on folders of videos, VBench's aggregation, leaderboards and
the regression check for CI."""

from rewardkit.eval.harness import EvalRun, aggregate, evaluate, load_run
from rewardkit.eval.leaderboard import add_run, render
from rewardkit.eval.regress import compare, load_scores, markdown_report
from rewardkit.eval.suite import Dimension, Suite, load_suite
from rewardkit.eval.vbench import VBENCH_DIMENSIONS, normalize, vbench_totals

__all__ = [
    "EvalRun", "evaluate", "aggregate", "load_run", "add_run", "render", "compare", "load_scores",
    "markdown_report", "Dimension", "Suite", "load_suite", "VBENCH_DIMENSIONS", "normalize", "vbench_totals",
]
