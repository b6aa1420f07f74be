"""The reward-hacking alarm: held-out rewards (``train.monitor_rewards``) watched on the run's sample videos.

With monitor rewards the trainer also samples before the first step (step 0, the base model) and then
every ``train.sample_every`` steps, always from the same noise and prompts. The sample videos (mp4) are
scored by the scoring engine (``rewardkit.scoring.score``, reference mode, as ``rewardkit score`` would
score them) with each monitor reward, and by the training reward (``reward.rewards``, as in
``samples.csv``). ``monitor.csv`` holds one row per evaluation: the step, the mean training reward, the
mean of each monitor reward and the alarm's message (empty when quiet).

The rule, at evaluation ``k`` (0 = step 0) with window ``W = train.monitor_window`` evaluations:
``T_k`` is the mean training reward of the sample videos and ``M_k`` a monitor reward's mean (negated
when the reward is lower-is-better, so that up is better). For ``k >= W`` the alarm fires for that
monitor when ``T_k - T_{k-W} > 0`` (the training reward rose) and ``M_k - M_{k-W} < -threshold``
(``train.monitor_thresholds``, one per monitor reward in its own score units; default 0). A firing
alarm is a ``RewardHackingWarning``; with ``train.monitor_stop = true`` the run also stops there
(checkpoint and LoRA of that step saved) with ``RewardHackingStop``.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from rewardkit.errors import UserInputError

__all__ = ["RewardHackingWarning", "RewardHackingStop", "hacking_alarm", "RewardMonitor", "MONITOR_FILE"]

MONITOR_FILE = "monitor.csv"


class RewardHackingWarning(UserWarning):
    """The training reward rose while a held-out reward fell by more than its threshold."""


class RewardHackingStop(RuntimeError):
    """``train.monitor_stop``: the run stopped at the alarm; the message names the step and the LoRA."""


def hacking_alarm(
    training: Sequence[float], monitors: Mapping[str, Sequence[float]], *, window: int, thresholds: Mapping[str, float] | None = None
) -> list[str]:
    """The alarm at the latest evaluation ``k = len(training) - 1`` (see the module docstring): one message
    per monitor reward that fell by more than its threshold over the last ``window`` evaluations while the
    training reward rose. Values are higher-is-better; empty when quiet or ``k < window``."""
    if window < 1:
        raise UserInputError(f"train.monitor_window must be at least 1, got {window}")
    k = len(training) - 1
    if k < window:
        return []
    rise = training[k] - training[k - window]
    if not rise > 0:
        return []
    messages = []
    for name, values in monitors.items():
        if len(values) != len(training):
            raise ValueError(f"monitor {name!r} has {len(values)} values for {len(training)} evaluations")
        drop = values[k - window] - values[k]
        limit = (thresholds or {}).get(name, 0.0)
        if drop > limit:
            messages.append(
                f"{name} fell by {drop:.4g} (> {limit:g}) over the last {window} evaluation(s) while the training reward rose by {rise:.4g}"
            )
    return messages


class RewardMonitor:
    """Scores each evaluation's sample videos with the monitor rewards and keeps ``monitor.csv``."""

    def __init__(self, recipe, run_dir: str | os.PathLike[str], device: str, resume_step: int = 0) -> None:
        from rewardkit.registry import get_reward_info, parse_reward_spec

        train = recipe.train
        self.specs = list(train.monitor_rewards)
        self.window, self.stop = train.monitor_window, train.monitor_stop
        thresholds = train.monitor_thresholds or [0.0] * len(self.specs)
        self.thresholds = dict(zip(self.specs, thresholds, strict=True))
        self.signs = {spec: 1.0 if get_reward_info(parse_reward_spec(spec)[0]).higher_is_better else -1.0 for spec in self.specs}
        self.weights = dict(item.split("=", 1) for item in recipe.reward.weight_files)
        self.device = device
        self.path = Path(run_dir) / MONITOR_FILE
        self.rows = self._read(resume_step)

    def _read(self, resume_step: int) -> list[dict[str, str]]:
        """Earlier evaluations (a resumed run keeps those up to its checkpoint)."""
        if not self.path.exists():
            return []
        with self.path.open(newline="") as handle:
            return [row for row in csv.DictReader(handle) if int(row["step"]) <= resume_step]

    def score(self, paths: Sequence[Path], prompts: Sequence[str]) -> dict[str, float]:
        """Mean of each monitor reward over the videos (every process calls this: scoring may be shared)."""
        from rewardkit.scoring import score

        table = {str(path): prompt for path, prompt in zip(paths, prompts, strict=True)}
        means = {}
        for spec in self.specs:
            results = score([str(path) for path in paths], [spec], prompts=table, device=self.device, weights=self.weights, progress=False, workers=0)
            ok = results[results["status"] == "ok"]["score"].astype(float)
            means[spec] = float(ok.mean()) if len(ok) else math.nan
        return means

    def record(self, step: int, training_reward: float, means: Mapping[str, float]) -> str:
        """Append the evaluation to ``monitor.csv`` and return the alarm's message ("" when quiet)."""
        row = {"step": str(step), "training_reward": repr(training_reward), **{spec: repr(means[spec]) for spec in self.specs}, "alarm": ""}
        history = [*self.rows, row]
        training = [float(item["training_reward"]) for item in history]
        monitors = {spec: [self.signs[spec] * float(item[spec]) for item in history] for spec in self.specs}
        messages = hacking_alarm(training, monitors, window=self.window, thresholds={spec: self.thresholds[spec] for spec in self.specs})
        row["alarm"] = "; ".join(messages)
        self.rows = history
        with self.path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            writer.writeheader()
            writer.writerows(self.rows)
        if row["alarm"]:
            warnings.warn(f"reward-hacking alarm at step {step}: {row['alarm']}", RewardHackingWarning, stacklevel=2)
        return row["alarm"]

    def plot(self, axis) -> None:
        """Each series' change since the first evaluation (higher is better), alarms as red lines."""
        if not self.rows:
            return
        steps = [int(row["step"]) for row in self.rows]
        series = {"training reward": [float(row["training_reward"]) for row in self.rows]}
        series.update({f"{spec} (held out)": [self.signs[spec] * float(row[spec]) for row in self.rows] for spec in self.specs})
        for label, values in series.items():
            axis.plot(steps, [value - values[0] for value in values], marker="o", label=label)
        for step, row in zip(steps, self.rows, strict=True):
            if row["alarm"]:
                axis.axvline(step, color="red", linestyle="--", linewidth=1)
        axis.axhline(0.0, color="grey", linewidth=0.5)
        axis.set_xlabel("step")
        axis.set_ylabel("change since step 0")
        axis.set_title("sample videos: training vs held-out rewards (red: reward-hacking alarm)", fontsize=9)
        axis.legend(fontsize=7)
