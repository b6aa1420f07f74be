"""Summaries of a results table: per reward statistics and the failed rows."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pandas as pd

__all__ = ["iter_failures", "summarize"]


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Per reward and options: n scored, mean, std, min, max, failures, skipped, truncated prompts."""
    if results.empty:
        return pd.DataFrame(columns=["reward", "options", "n", "mean", "std", "min", "max", "failed", "skipped", "truncated"])
    rows = []
    for (reward, options), group in results.groupby(["reward", "options"], sort=False):
        ok = group[group["status"] == "ok"]["score"].astype(float)
        rows.append({
            "reward": reward,
            "options": options,
            "n": len(ok),
            "mean": ok.mean() if len(ok) else math.nan,
            "std": ok.std(ddof=1) if len(ok) > 1 else math.nan,
            "min": ok.min() if len(ok) else math.nan,
            "max": ok.max() if len(ok) else math.nan,
            "failed": int((group["status"] == "failed").sum()),
            "skipped": int((group["status"] == "skipped").sum()),
            "truncated": int(group["warning"].fillna("").str.contains("truncated").sum()),
        })
    return pd.DataFrame(rows)


def iter_failures(results: pd.DataFrame) -> Iterator[tuple[str, str, str]]:
    """(path, reward, error) of every failed row."""
    for row in results[results["status"] == "failed"].itertuples():
        yield row.path, row.reward, row.error
