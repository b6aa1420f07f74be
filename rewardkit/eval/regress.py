"""``rewardkit regress``: fail CI when reward or dimension scores drop against a committed baseline.

Both sides are per-file score tables: an eval run directory (its ``videos.csv``), a ``rewardkit score``
results file, or a baseline CSV written by ``--update`` (columns ``metric, file, score``). Per metric the
means are compared within an absolute tolerance; when both sides scored the same files, a one-sided
paired t-test (scipy) decides whether a drop beyond the tolerance is more than noise. A metric missing
from the results, or files that scored in the baseline and fail now, are regressions too.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rewardkit.errors import UserInputError
from rewardkit.registry import get_reward_info

__all__ = ["Comparison", "compare", "load_scores", "markdown_report", "write_baseline", "DEFAULT_TOLERANCE"]

DEFAULT_TOLERANCE = 1e-3


def _file_keys(paths: pd.Series) -> pd.Series:
    """Paths relative to their common folder, so a baseline made elsewhere (or the same files degraded
    into another folder) pairs file by file."""
    unique = sorted(set(paths.astype(str)))
    if len(unique) <= 1:
        return paths.astype(str).map(lambda path: Path(path).name)
    root = os.path.commonpath([str(Path(path).parent) for path in unique])
    return paths.astype(str).map(lambda path: os.path.relpath(path, root))


def load_scores(source: str | os.PathLike[str]) -> pd.DataFrame:
    """Long table ``metric, file, score, status, reward`` from a run directory, a results file or a
    baseline CSV."""
    path = Path(source)
    if path.is_dir():
        if not (path / "videos.csv").is_file():
            raise UserInputError(f"{str(path)!r} has no videos.csv; pass an eval run directory or a results file")
        path = path / "videos.csv"
    if not path.is_file():
        raise UserInputError(f"{str(path)!r} not found; pass an eval run directory, a results file or a baseline CSV")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        table = pd.read_parquet(path)
    elif suffix == ".jsonl":
        table = pd.read_json(path, lines=True)
    else:
        table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    if {"metric", "file", "score"} <= set(table.columns):  # a baseline written by --update
        table = table.assign(status=table.get("status", "ok"))
        return table[["metric", "file", "score", "status"]].assign(reward=table.get("reward", table["metric"]))
    if not {"path", "reward", "score", "status"} <= set(table.columns):
        raise UserInputError(f"{path} is not a results table: it needs the columns path, reward, score and status")
    if "dimension" in table.columns:
        metric = table["dimension"].astype(str)
    else:
        several = table.groupby("reward")["options"].transform("nunique") > 1 if "options" in table.columns else False
        metric = table["reward"].astype(str).where(~several, table["reward"].astype(str) + " " + table.get("options", ""))
    return pd.DataFrame({
        "metric": metric,
        "file": _file_keys(table["path"]),
        "score": pd.to_numeric(table["score"], errors="coerce"),
        "status": table["status"].astype(str),
        "reward": table["reward"].astype(str),
    })


def write_baseline(source: str | os.PathLike[str], baseline: str | os.PathLike[str]) -> Path:
    """Save the scored rows of ``source`` as a baseline CSV (``metric, file, score, reward``)."""
    scores = load_scores(source)
    scores = scores[scores["status"] == "ok"].sort_values(["metric", "file"])
    path = Path(baseline)
    path.parent.mkdir(parents=True, exist_ok=True)
    scores[["metric", "file", "score", "reward"]].to_csv(path, index=False, float_format="%.8g")
    return path


@dataclass(frozen=True)
class Comparison:
    """One metric, baseline against current."""

    metric: str
    baseline: float
    current: float
    tolerance: float
    higher_is_better: bool
    paired_files: int
    p_value: float
    new_failures: tuple[str, ...]
    verdict: str  # ok | improved | within noise | regressed | missing

    @property
    def change(self) -> float:
        return self.current - self.baseline

    @property
    def failed(self) -> bool:
        return self.verdict in ("regressed", "missing")


def _higher_is_better(reward: str) -> bool:
    try:
        return get_reward_info(reward.split(":")[0]).higher_is_better
    except ValueError:
        return True


def compare(
    current: pd.DataFrame,
    baseline: pd.DataFrame,
    *,
    tolerances: Mapping[str, float] | None = None,
    default_tolerance: float = DEFAULT_TOLERANCE,
    alpha: float = 0.05,
) -> list[Comparison]:
    """Compare every baseline metric; see the module docstring for the rules."""
    from scipy import stats

    tolerances = dict(tolerances or {})
    unknown = sorted(set(tolerances) - set(baseline["metric"]))
    if unknown:
        raise UserInputError(f"--tol names metric(s) not in the baseline: {', '.join(unknown)}; baseline metrics: {', '.join(sorted(set(baseline['metric'])))}")
    results = []
    for metric, base in baseline.groupby("metric", sort=True):
        base_ok = base[base["status"] == "ok"].set_index("file")["score"].astype(float)
        tolerance = tolerances.get(metric, default_tolerance)
        higher = _higher_is_better(str(base["reward"].iloc[0]))
        now = current[current["metric"] == metric]
        now_ok = now[now["status"] == "ok"].set_index("file")["score"].astype(float)
        if now_ok.empty:
            results.append(Comparison(metric, base_ok.mean(), math.nan, tolerance, higher, 0, math.nan, (), "missing"))
            continue
        failing = tuple(sorted(set(now[now["status"] == "failed"]["file"]) & set(base_ok.index)))
        common = base_ok.index.intersection(now_ok.index)
        sign = 1.0 if higher else -1.0
        drop = sign * (base_ok.mean() - now_ok.mean())
        p_value = math.nan
        if len(common) >= 3:
            differences = sign * (now_ok[common] - base_ok[common])
            if differences.max() - differences.min() < 1e-12:  # no spread: the test is degenerate
                p_value = 0.0 if differences.mean() < 0 else 1.0
            else:
                p_value = float(stats.ttest_1samp(differences, 0.0, alternative="less").pvalue)
        if failing:
            verdict = "regressed"
        elif drop > tolerance:
            verdict = "within noise" if not math.isnan(p_value) and p_value >= alpha else "regressed"
        elif -drop > tolerance:
            verdict = "improved"
        else:
            verdict = "ok"
        results.append(Comparison(metric, base_ok.mean(), now_ok.mean(), tolerance, higher, len(common), p_value, failing, verdict))
    return results


def _number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4g}"


def markdown_report(comparisons: list[Comparison], *, results: str, baseline: str, alpha: float) -> str:
    """A readable report: PASS or FAIL, then one row per metric."""
    failed = [item for item in comparisons if item.failed]
    lines = [
        f"## rewardkit regress: {'FAIL' if failed else 'PASS'}",
        "",
        f"Results `{results}` against baseline `{baseline}`: {len(failed)} of {len(comparisons)} metric(s) regressed "
        f"(paired one-sided t-test, alpha {alpha}, when both sides scored the same files).",
        "",
        "| metric | baseline | current | change | tolerance | paired files | p | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for item in comparisons:
        verdict = f"**{item.verdict}**" if item.failed else item.verdict
        lines.append(
            f"| {item.metric} | {_number(item.baseline)} | {_number(item.current)} | {_number(item.change)} | "
            f"{item.tolerance:g} | {item.paired_files} | {_number(item.p_value)} | {verdict} |"
        )
    for item in comparisons:
        if item.new_failures:
            lines += ["", f"{item.metric}: files scored in the baseline fail now: {', '.join(item.new_failures)}"]
    return "\n".join(lines) + "\n"
