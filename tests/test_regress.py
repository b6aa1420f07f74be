"""`rewardkit regress` as a non-inferiority gate: the rules on hand-built tables (expected verdicts
worked out from the one-sided t bounds by hand), tolerances from suites and baselines, and the held-out
case that the earlier t-test passed (real clips in four containers/shapes, degraded by `degrade`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rewardkit.cli import main
from rewardkit.eval.degrade import degrade_folder
from rewardkit.eval.regress import compare, default_tolerance, load_scores, markdown_report, write_baseline
from rewardkit.video.io import write_video

BASE = np.random.default_rng(0).uniform(0.5, 0.6, size=200)


def table(metric: str, scores, files=None, status=None, reward=None) -> pd.DataFrame:
    files = files if files is not None else [f"v{index}.mp4" for index in range(len(scores))]
    return pd.DataFrame({
        "metric": metric, "file": files, "score": np.asarray(scores, float),
        "status": status or ["ok"] * len(files), "reward": reward or metric,
    })


def zero_mean_noise(count: int, scale: float, seed: int = 1) -> np.ndarray:
    """Noise whose sample mean is exactly 0 (antithetic halves): an unchanged model scored with noise."""
    half = np.random.default_rng(seed).normal(0, scale, size=count // 2)
    noise = np.concatenate([half, -half, np.zeros(count % 2)])
    return noise


def verdict(current, baseline, **options):
    (item,) = compare(current, baseline, **options)
    return item


def test_identical_results_pass_and_one_file_passes_only_within_tolerance():
    assert verdict(table("m", BASE[:8]), table("m", BASE[:8]), tolerances={"m": 1e-3}).verdict == "pass"
    one = table("m", BASE[:1])
    assert verdict(one, one, tolerances={"m": 0.0}).verdict == "pass"
    assert verdict(table("m", BASE[:1] - 5e-4), one, tolerances={"m": 1e-3}).verdict == "pass"
    assert verdict(table("m", BASE[:1] - 2e-3), one, tolerances={"m": 1e-3}).verdict == "regressed"


def test_three_noisy_unchanged_samples_are_inconclusive_and_say_how_many_files_would_settle_it():
    noise = np.array([0.01, -0.01, 0.0])  # mean 0, sample std 0.01
    item = verdict(table("m", BASE[:3] + noise), table("m", BASE[:3]), tolerances={"m": 1e-3})
    # By hand: half-width t(0.95, 2) * 0.01 / sqrt(3) = 2.920 * 0.00577 = 0.0169 > tolerance 0.001.
    assert item.lower == pytest.approx(-stats.t.ppf(0.95, 2) * 0.01 / math.sqrt(3))
    assert item.verdict == "inconclusive" and item.failed() and not item.failed("pass")
    # Files needed: the smallest n with t(0.95, n-1) * 0.01 / sqrt(n) < 0.001 (about (1.65 * 10)^2 = 272).
    needed = item.files_to_settle
    assert stats.t.ppf(0.95, needed - 1) * 0.01 / math.sqrt(needed) < 1e-3
    assert stats.t.ppf(0.95, needed - 2) * 0.01 / math.sqrt(needed - 1) >= 1e-3 or needed - 1 <= 3
    report = markdown_report([item], results="r", baseline="b", alpha=0.05)
    assert "FAIL" in report and f"about {needed} paired files" in report


def test_a_large_noisy_drop_on_three_pairs_is_not_passed_as_noise():
    """What the earlier rule got wrong: per-file changes (-0.3, -0.01, -0.05) have a one-sided t-test p of
    about 0.16 (t = -1.32, 2 dof), which it reported as 'within noise' and PASS. The bounds (-0.385,
    0.145) neither rule a drop beyond 1e-3 out nor in: inconclusive, which fails."""
    changes = np.array([-0.3, -0.01, -0.05])
    item = verdict(table("m", BASE[:3] + changes), table("m", BASE[:3]), tolerances={"m": 1e-3})
    assert item.p_value == pytest.approx(stats.ttest_1samp(changes, 0.0, alternative="less").pvalue)
    assert item.p_value > 0.05
    assert item.lower == pytest.approx(-0.12 - stats.t.ppf(0.95, 2) * changes.std(ddof=1) / math.sqrt(3))
    assert item.verdict == "inconclusive" and item.failed()
    # At this mean and spread, t(0.95, n-1) * 0.157 / sqrt(n) < 0.119 first holds at n = 7 (the README's figure).
    assert item.files_to_settle == 7


def test_two_hundred_noisy_unchanged_samples_pass_and_a_small_real_drop_fails():
    noise = zero_mean_noise(200, 0.005)
    baseline = table("m", BASE)
    # Half-width 1.653 * 0.005 / sqrt(200) = 5.8e-4 < 1e-3: unchanged passes.
    assert verdict(table("m", BASE + noise), baseline, tolerances={"m": 1e-3}).verdict == "pass"
    # A drop of 3e-3 (three tolerances): upper bound -3e-3 + 5.8e-4 < -1e-3.
    dropped = verdict(table("m", BASE + noise - 3e-3), baseline, tolerances={"m": 1e-3})
    assert dropped.verdict == "regressed" and dropped.upper < -1e-3
    # The same drop on 3 files only cannot be ruled out either way: inconclusive, which fails.
    few = verdict(table("m", BASE[:3] + np.array([0.01, -0.01, 0.0]) - 3e-3), table("m", BASE[:3]), tolerances={"m": 1e-3})
    assert few.verdict == "inconclusive" and few.failed()


def test_lower_is_better_metrics_and_improvements(monkeypatch):
    from types import SimpleNamespace

    from rewardkit.eval import regress

    baseline = table("m", BASE[:50])
    risen = table("m", BASE[:50] + 0.05 + zero_mean_noise(50, 1e-4))
    assert verdict(risen, baseline, tolerances={"m": 1e-3}).verdict == "improved"
    # For a lower-is-better metric the same rise is a drop in quality.
    monkeypatch.setattr(regress, "get_reward_info", lambda name: SimpleNamespace(higher_is_better=False, score_range_for=lambda options=None: (0.0, 1.0)))
    assert verdict(risen, baseline, tolerances={"m": 1e-3}).verdict == "regressed"


def test_unpaired_files_use_the_difference_of_means():
    """Files that do not pair (another set of videos): Welch bounds on the difference of means."""
    rng = np.random.default_rng(3)
    base = table("m", rng.normal(0.5, 0.01, 100), files=[f"a{i}" for i in range(100)])
    same = table("m", rng.normal(0.5, 0.01, 100), files=[f"b{i}" for i in range(100)])
    worse = table("m", rng.normal(0.45, 0.01, 100), files=[f"c{i}" for i in range(100)])
    assert verdict(worse, base, tolerances={"m": 1e-3}).verdict == "regressed"
    item = verdict(same, base, tolerances={"m": 1e-2})
    assert item.paired_files == 0 and item.verdict == "pass"


def test_missing_metrics_and_new_failures_regress():
    baseline = pd.concat([table("a", BASE[:8]), table("b", BASE[:8])])
    current = table("a", BASE[:8], status=["ok"] * 7 + ["failed"])
    verdicts = {item.metric: item.verdict for item in compare(current, baseline)}
    assert verdicts == {"a": "regressed", "b": "missing"}
    with pytest.raises(ValueError, match="not in the baseline"):
        compare(current, baseline, tolerances={"zz": 0.1})


def test_default_tolerance_follows_the_metric_scale():
    """0.1% of the declared score range: 1e-3 for a 0-1 metric, 0.1 for PickScore's 0-100, 1e-3
    absolute for an unknown (unbounded) one."""
    assert default_tolerance("temporal_flickering") == pytest.approx(1e-3)
    assert default_tolerance("pickscore") == pytest.approx(0.1)
    assert default_tolerance("clip:form=x100") == pytest.approx(0.1)  # max(100 cos, 0): 0-100
    assert default_tolerance("no_such_metric") == pytest.approx(1e-3)


def test_tolerances_travel_from_the_suite_through_the_baseline(tmp_path):
    """A suite's `tolerance` key reaches dimensions.csv, `--update` writes it into the baseline, and
    `compare` uses it when the command line gives none."""
    from rewardkit.eval.suite import load_suite

    examples = Path(__file__).resolve().parent.parent / "examples" / "videos"
    suite_file = tmp_path / "suite.toml"
    suite_file.write_text('name = "t"\n[[dimensions]]\nname = "temporal_flickering"\nreward = "temporal_flickering"\n'
                          'frames = "all"\ntolerance = 0.25\n')
    assert main(["eval", str(suite_file), "--videos", str(examples), "--out", str(tmp_path / "run"), "--no-progress", "--workers", "0"]) == 0
    baseline = write_baseline(tmp_path / "run", tmp_path / "baseline.csv")
    loaded = load_scores(baseline)
    assert set(loaded["tolerance"]) == {0.25}
    current = load_scores(tmp_path / "run").assign(score=lambda frame: frame["score"] - 0.2)
    (item,) = compare(current, loaded)
    assert item.tolerance == 0.25 and item.verdict == "pass"
    (item,) = compare(current, loaded, tolerances={"temporal_flickering": 0.01})
    assert item.verdict == "regressed"
    with pytest.raises(ValueError, match="tolerance must be a non-negative number"):
        suite_file.write_text(suite_file.read_text().replace("0.25", "-1.0"))
        load_suite(suite_file)


def _texture(frames: int, height: int, width: int, speed: float) -> np.ndarray:
    """A smoothly moving sinusoidal texture (uint8 RGB)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    clip = []
    for t in range(frames):
        phase = speed * t
        red = 127 + 100 * np.sin((x + phase) / 5.0) * np.cos(y / 7.0)
        green = 127 + 100 * np.sin((x - y + 0.5 * phase) / 9.0)
        blue = 127 + 100 * np.cos((y + phase) / 6.0)
        clip.append(np.stack([red, green, blue], axis=-1))
    return np.clip(np.stack(clip), 0, 255).astype(np.uint8)


def test_held_out_clips_degraded_fail_the_gate(tmp_path, capsys):
    """The case the earlier paired t-test passed as 'within noise': four held-out clips (H.264, VP9 in
    .webm, a portrait clip, a 300-frame clip) and their copies degraded by `degrade` (freeze, flicker,
    blur). The degraded set must FAIL, each file must keep its name and container (before, the .webm was
    written as .mp4 and lost its pair), and an identical rerun must PASS."""
    clean = tmp_path / "clean"
    clean.mkdir()
    write_video(clean / "h264_texture.mp4", _texture(24, 48, 64, 1.5))
    write_video(clean / "vp9_texture.webm", _texture(24, 48, 64, 2.0))
    write_video(clean / "portrait_texture.mp4", _texture(24, 64, 32, 1.0))
    write_video(clean / "long_texture.mp4", _texture(300, 32, 48, 0.8))
    degraded = tmp_path / "degraded"
    degrade_folder(clean, degraded, ["freeze", "flicker", "blur"])
    assert sorted(path.name for path in degraded.iterdir()) == sorted(path.name for path in clean.iterdir())
    arguments = ["--dimensions", "temporal_flickering,motion_smoothness_flow", "--no-progress", "--workers", "0"]
    suite = str(Path(__file__).resolve().parent.parent / "eval" / "quick.toml")
    assert main(["eval", suite, "--videos", str(clean), "--out", str(tmp_path / "clean-run"), *arguments]) == 0
    assert main(["eval", suite, "--videos", str(degraded), "--out", str(tmp_path / "degraded-run"), *arguments]) == 0
    baseline = tmp_path / "baseline.csv"
    assert main(["regress", str(tmp_path / "clean-run"), "--baseline", str(baseline), "--update"]) == 0
    capsys.readouterr()
    assert main(["regress", str(tmp_path / "clean-run"), "--baseline", str(baseline)]) == 0
    assert "rewardkit regress: PASS" in capsys.readouterr().out
    assert main(["regress", str(tmp_path / "degraded-run"), "--baseline", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert "rewardkit regress: FAIL" in out
    for metric in ("temporal_flickering", "motion_smoothness_flow"):
        row = next(line for line in out.splitlines() if line.startswith(f"| {metric} |"))
        assert "**regressed**" in row or "**inconclusive**" in row, row
        assert "| 4 |" in row  # all four files paired, the .webm included
