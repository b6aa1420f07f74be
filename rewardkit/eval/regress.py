"""``rewardkit regress``: fail CI when reward or dimension scores drop against a committed baseline.

Both sides are per-file score tables: an eval run directory (its ``videos.csv``), a ``rewardkit score``
results file, or a baseline CSV written by ``--update`` (columns ``metric, file, score`` and optionally
``tolerance``). The gate is a non-inferiority test, per metric, with the change measured so that a gain is
positive (``current - baseline``, negated for lower-is-better metrics):

- files scored on both sides are paired: the bound is on the mean of the per-file changes; when nothing
  pairs, on the difference of the two means (Welch);
- ``pass`` when the one-sided lower confidence bound of the change (level ``1 - alpha``) is above
  ``-tolerance``: the data show that any drop is within the tolerance;
- ``regressed`` when the upper bound is below ``-tolerance``: the data show a drop beyond it;
- ``inconclusive`` otherwise (too few files for the spread): fails unless ``inconclusive="pass"``; the
  report says how many files at the observed spread would settle it;
- with no spread to estimate (one file, or identical changes) the observed change decides alone: within
  the tolerance passes, beyond it regresses;
- a metric missing from the results, or files that scored in the baseline and fail now, regress.
The paired t-test's p-value (drop vs no change) is kept in the report as information.

Tolerances: ``--tol METRIC=ABS``, else the baseline's ``tolerance`` column (written by ``--update`` from a
suite's ``tolerance`` keys), else ``DEFAULT_RELATIVE_TOLERANCE`` of the metric's declared score range
(1e-3 on a 0-1 metric, 0.1 on a 0-100 one), else 1e-3 absolute for unbounded metrics.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rewardkit.errors import UserInputError
from rewardkit.registry import get_reward_info, parse_reward_spec

__all__ = [
    "Comparison",
    "compare",
    "default_tolerance",
    "load_scores",
    "markdown_report",
    "write_baseline",
    "DEFAULT_TOLERANCE",
    "DEFAULT_RELATIVE_TOLERANCE",
    "VERDICTS",
]

DEFAULT_TOLERANCE = 1e-3  # absolute, for metrics without a bounded score range
DEFAULT_RELATIVE_TOLERANCE = 1e-3  # of the width of a bounded score range


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
        table = table.assign(status=table.get("status", "ok"), reward=table.get("reward", table["metric"]))
        columns = ["metric", "file", "score", "status", "reward"] + (["tolerance"] if "tolerance" in table.columns else [])
        return table[columns]
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


def write_baseline(
    source: str | os.PathLike[str], baseline: str | os.PathLike[str], tolerances: Mapping[str, float] | None = None
) -> Path:
    """Save the scored rows of ``source`` as a baseline CSV (``metric, file, score, reward, tolerance``).

    A metric's tolerance comes from ``tolerances``, else from the eval run's suite (its dimensions.csv),
    else it is left empty (``compare`` then uses the default for the metric's kind)."""
    scores = load_scores(source)
    scores = scores[scores["status"] == "ok"].sort_values(["metric", "file"])
    known = dict(_suite_tolerances(source))
    known.update(tolerances or {})
    scores = scores.assign(tolerance=scores["metric"].map(known))
    path = Path(baseline)
    path.parent.mkdir(parents=True, exist_ok=True)
    scores[["metric", "file", "score", "reward", "tolerance"]].to_csv(path, index=False, float_format="%.8g")
    return path


def _suite_tolerances(source: str | os.PathLike[str]) -> dict[str, float]:
    """The ``tolerance`` keys of the suite an eval run directory was made with (empty for other sources)."""
    table = Path(source) / "dimensions.csv"
    if not table.is_file():
        return {}
    dimensions = pd.read_csv(table, keep_default_na=False, na_values=[""])
    if "tolerance" not in dimensions.columns:
        return {}
    known = dimensions.dropna(subset=["tolerance"])
    return dict(zip(known["dimension"].astype(str), known["tolerance"].astype(float), strict=True))


VERDICTS = ("pass", "improved", "inconclusive", "regressed", "missing")


@dataclass(frozen=True)
class Comparison:
    """One metric, baseline against current; ``lower``/``upper`` bound the change (gain positive)."""

    metric: str
    baseline: float
    current: float
    tolerance: float
    higher_is_better: bool
    paired_files: int
    lower: float
    upper: float
    p_value: float
    new_failures: tuple[str, ...]
    verdict: str  # one of VERDICTS
    files_to_settle: int | None = None  # inconclusive: files (at the observed spread) that would settle it

    @property
    def change(self) -> float:
        return self.current - self.baseline

    def failed(self, inconclusive: str = "fail") -> bool:
        return self.verdict in ("regressed", "missing") or (self.verdict == "inconclusive" and inconclusive == "fail")


def _reward_info(reward: str):
    try:
        return get_reward_info(reward.split(":")[0])
    except ValueError:
        return None


def default_tolerance(reward: str) -> float:
    """``DEFAULT_RELATIVE_TOLERANCE`` times the width of the reward's declared score range; 1e-3 when the
    range is unbounded or the reward unknown."""
    info = _reward_info(reward)
    low, high = info.score_range_for(parse_reward_spec(reward)[1]) if info is not None else (-math.inf, math.inf)
    if math.isfinite(low) and math.isfinite(high) and high > low:
        return DEFAULT_RELATIVE_TOLERANCE * (high - low)
    return DEFAULT_TOLERANCE


def _bounds(mean: float, standard_error: float, dof: float, alpha: float) -> tuple[float, float, float]:
    """One-sided ``1 - alpha`` lower and upper bounds of a mean change, and the t quantile used."""
    from scipy import stats

    quantile = float(stats.t.ppf(1 - alpha, dof))
    return mean - quantile * standard_error, mean + quantile * standard_error, quantile


def _files_to_settle(mean: float, spread: float, tolerance: float, alpha: float, have: int) -> int | None:
    """The smallest number of paired files whose bound, at the observed mean and spread, would decide."""
    from scipy import stats

    margin = abs(mean + tolerance)  # distance of the observed change from the tolerance edge

    def decides(files: int) -> bool:
        return bool(stats.t.ppf(1 - alpha, files - 1) * spread / math.sqrt(files) < margin)

    if margin == 0 or spread == 0:
        return None
    low, high = max(have, 1), max(have + 1, 2)
    while not decides(high):  # the half-width shrinks with the number of files: double, then bisect
        low, high = high, high * 2
        if high > 10**9:
            return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if decides(middle) else (middle, high)
    return high


def compare(
    current: pd.DataFrame,
    baseline: pd.DataFrame,
    *,
    tolerances: Mapping[str, float] | None = None,
    default_tolerance_value: float | None = None,
    alpha: float = 0.05,
) -> list[Comparison]:
    """Compare every baseline metric; see the module docstring for the rules."""
    from scipy import stats

    if not 0 < alpha < 0.5:
        raise UserInputError(f"alpha must be in (0, 0.5), got {alpha}")
    tolerances = dict(tolerances or {})
    unknown = sorted(set(tolerances) - set(baseline["metric"]))
    if unknown:
        raise UserInputError(f"--tol names metric(s) not in the baseline: {', '.join(unknown)}; baseline metrics: {', '.join(sorted(set(baseline['metric'])))}")
    results = []
    for metric, base in baseline.groupby("metric", sort=True):
        reward = str(base["reward"].iloc[0])
        base_ok = base[base["status"] == "ok"].set_index("file")["score"].astype(float)
        if metric in tolerances:
            tolerance = tolerances[metric]
        elif "tolerance" in base.columns and pd.notna(base["tolerance"].iloc[0]):
            tolerance = float(base["tolerance"].iloc[0])
        elif default_tolerance_value is not None:
            tolerance = default_tolerance_value
        else:
            tolerance = default_tolerance(reward)
        info = _reward_info(reward)
        higher = info.higher_is_better if info is not None else True
        now = current[current["metric"] == metric]
        now_ok = now[now["status"] == "ok"].set_index("file")["score"].astype(float)
        if now_ok.empty:
            results.append(Comparison(metric, base_ok.mean(), math.nan, tolerance, higher, 0, math.nan, math.nan, math.nan, (), "missing"))
            continue
        failing = tuple(sorted(set(now[now["status"] == "failed"]["file"]) & set(base_ok.index)))
        common = base_ok.index.intersection(now_ok.index)
        sign = 1.0 if higher else -1.0
        p_value, to_settle = math.nan, None
        if len(common):
            changes = (sign * (now_ok[common] - base_ok[common])).to_numpy()
            mean, spread, count = float(changes.mean()), float(changes.std(ddof=1)) if len(changes) > 1 else 0.0, len(changes)
            if spread > 1e-12 * max(1.0, abs(mean)):
                lower, upper, _ = _bounds(mean, spread / math.sqrt(count), count - 1, alpha)
                p_value = float(stats.ttest_1samp(changes, 0.0, alternative="less").pvalue)
            else:  # no spread: the observed change is the whole evidence
                lower = upper = mean
        else:  # nothing pairs: difference of means, Welch
            mean = sign * (now_ok.mean() - base_ok.mean())
            spread, count = math.nan, 0
            if len(now_ok) > 1 and len(base_ok) > 1:
                variance_now, variance_base = now_ok.var(ddof=1) / len(now_ok), base_ok.var(ddof=1) / len(base_ok)
                error = math.sqrt(variance_now + variance_base)
                if error > 0:
                    dof = error**4 / (variance_now**2 / (len(now_ok) - 1) + variance_base**2 / (len(base_ok) - 1))
                    lower, upper, _ = _bounds(mean, error, dof, alpha)
                else:
                    lower = upper = mean
            else:
                lower = upper = mean
        if failing or upper < -tolerance:
            verdict = "regressed"
        elif lower >= -tolerance:
            verdict = "improved" if lower > tolerance else "pass"
        else:
            verdict = "inconclusive"
            if count:
                to_settle = _files_to_settle(mean, spread, tolerance, alpha, count)
        results.append(Comparison(
            metric, base_ok.mean(), now_ok.mean(), tolerance, higher, len(common), lower, upper, p_value, failing, verdict, to_settle
        ))
    return results


def _number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4g}"


def markdown_report(
    comparisons: list[Comparison], *, results: str, baseline: str, alpha: float, inconclusive: str = "fail"
) -> str:
    """A readable report: PASS or FAIL, the rule, then one row per metric."""
    failed = [item for item in comparisons if item.failed(inconclusive)]
    confidence = f"{100 * (1 - alpha):g}%"
    lines = [
        f"## rewardkit regress: {'FAIL' if failed else 'PASS'}",
        "",
        f"Results `{results}` against baseline `{baseline}`: {len(failed)} of {len(comparisons)} metric(s) fail. "
        f"A metric passes when the {confidence} lower bound of its change (gain positive) is above -tolerance, "
        f"regresses when the upper bound is below it, and is otherwise inconclusive ({inconclusive}s). "
        "p: one-sided paired t-test of a drop, for information.",
        "",
        "| metric | baseline | current | change | bound (lower, upper) | tolerance | paired files | p | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for item in comparisons:
        verdict = f"**{item.verdict}**" if item.failed(inconclusive) else item.verdict
        bound = "-" if math.isnan(item.lower) else f"{_number(item.lower)}, {_number(item.upper)}"
        lines.append(
            f"| {item.metric} | {_number(item.baseline)} | {_number(item.current)} | {_number(item.change)} | {bound} | "
            f"{item.tolerance:g} | {item.paired_files} | {_number(item.p_value)} | {verdict} |"
        )
    for item in comparisons:
        if item.new_failures:
            lines += ["", f"{item.metric}: files scored in the baseline fail now: {', '.join(item.new_failures)}"]
        if item.verdict == "inconclusive":
            settle = (
                f"about {item.files_to_settle} paired files at the observed spread would settle it"
                if item.files_to_settle else "more files are needed to settle it"
            )
            lines += ["", f"{item.metric}: inconclusive with {item.paired_files} paired file(s): {settle}."]
    return "\n".join(lines) + "\n"
