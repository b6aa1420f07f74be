"""The reward-hacking alarm: the rule on synthetic series (hand-worked), the monitor file, and one tiny
trainer run with a held-out reward."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from rewardkit.finetune.config import load_recipe
from rewardkit.finetune.monitor import RewardHackingStop, RewardHackingWarning, RewardMonitor, hacking_alarm

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "finetune" / "smoke-tiny.toml"


def test_fires_when_training_rises_and_a_monitor_falls():
    """A constructed run: training reward 0.20 -> 0.25 -> 0.30, DOVER 0.60 -> 0.58 -> 0.50 (window 2:
    rise 0.10, drop 0.10 > 0.05), flicker steady. Only DOVER fires, at the last evaluation only."""
    training = [0.20, 0.25, 0.30]
    monitors = {"dover": [0.60, 0.58, 0.50], "temporal_flickering": [0.95, 0.95, 0.96]}
    assert hacking_alarm(training[:2], {k: v[:2] for k, v in monitors.items()}, window=2) == []  # k < window
    messages = hacking_alarm(training, monitors, window=2, thresholds={"dover": 0.05})
    assert len(messages) == 1 and messages[0].startswith("dover fell by 0.1 (> 0.05)")
    assert hacking_alarm(training, monitors, window=2, thresholds={"dover": 0.11}) == []  # within the threshold
    # window 1 at k = 2: training +0.05, dover -0.08
    assert hacking_alarm(training, monitors, window=1, thresholds={"dover": 0.05})[0].startswith("dover fell by 0.08")


def test_quiet_when_both_rise_or_the_training_reward_does_not():
    """Both rising is quiet; a falling (or flat) training reward with a falling monitor is not hacking."""
    assert hacking_alarm([0.2, 0.3], {"dover": [0.5, 0.6]}, window=1) == []
    assert hacking_alarm([0.3, 0.2], {"dover": [0.6, 0.5]}, window=1) == []
    assert hacking_alarm([0.3, 0.3], {"dover": [0.6, 0.5]}, window=1) == []


def test_monitor_file_orientation_and_warning(tmp_path, monkeypatch):
    """RewardMonitor.record on constructed means: lower-is-better rewards are negated before the rule, each
    evaluation is a monitor.csv row, a firing alarm is a RewardHackingWarning and is kept in the row, and a
    resumed run keeps only the rows up to its checkpoint."""
    from types import SimpleNamespace

    import rewardkit.registry as registry

    real = registry.get_reward_info
    monkeypatch.setattr(registry, "get_reward_info", lambda name: SimpleNamespace(higher_is_better=False) if name == "lower_better" else real(name))
    recipe = load_recipe(SMOKE, ['train.monitor_rewards=["temporal_flickering", "lower_better"]', "train.monitor_window=1"])
    monitor = RewardMonitor(recipe, tmp_path, "cpu")
    assert monitor.record(0, 0.5, {"temporal_flickering": 0.9, "lower_better": 1.0}) == ""
    # training up, flicker up, the lower-is-better reward up by 0.5 = worse: fires for it alone
    with pytest.warns(RewardHackingWarning, match="lower_better fell by 0.5"):
        message = monitor.record(2, 0.6, {"temporal_flickering": 0.95, "lower_better": 1.5})
    assert "temporal_flickering" not in message
    rows = list(csv.DictReader((tmp_path / "monitor.csv").open()))
    assert [row["step"] for row in rows] == ["0", "2"] and rows[1]["alarm"] == message and rows[0]["alarm"] == ""
    assert len(RewardMonitor(recipe, tmp_path, "cpu", resume_step=1).rows) == 1


def test_recipe_checks():
    """Monitor rewards need a training reward and samples; thresholds one per reward."""
    with pytest.raises(ValueError, match="needs a training reward"):
        load_recipe(SMOKE, ['train.monitor_rewards=["temporal_flickering"]', "reward.rewards=[]"])
    with pytest.raises(ValueError, match="needs a training reward"):
        load_recipe(SMOKE, ['train.monitor_rewards=["temporal_flickering"]', "train.sample_every=0"])
    with pytest.raises(ValueError, match="one per reward"):
        load_recipe(SMOKE, ['train.monitor_rewards=["temporal_flickering"]', "train.monitor_thresholds=[0.1, 0.2]"])


@pytest.mark.slow
def test_trainer_run_with_a_monitor_reward(tmp_path, monkeypatch):
    """A tiny run with a held-out reward: the base model is evaluated at step 0, then at step 2; the values
    are the scoring engine's on the written sample videos (rewardkit.score on the same mp4s); reward.png gets
    the panel. The alarm's rule is tested above on synthetic series; here it is forced to fire at step 2
    to check that train.monitor_stop stops every step after it with the checkpoint and LoRA of step 2."""
    import rewardkit
    from rewardkit.finetune import finetune, monitor

    monkeypatch.setattr(monitor, "hacking_alarm", lambda training, monitors, **_: ["forced"] if len(training) == 2 else [])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run = tmp_path / "run"
    overrides = [f'train.output_dir="{run}"', "train.progress=false", "train.max_steps=4", "train.sample_every=2",
                 "train.checkpoint_every=0", 'train.monitor_rewards=["temporal_flickering"]', "train.monitor_window=1",
                 "train.monitor_stop=true", "objective.num_inference_steps=2", 'data.prompts=["a cat", "a dog"]']
    try:
        with pytest.raises(RewardHackingStop, match="stopped at step 2"), pytest.warns(RewardHackingWarning, match="forced"):
            finetune(SMOKE, overrides=overrides)
    finally:
        torch.set_num_threads(threads)
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(reset_partial_state=True)
    rows = list(csv.DictReader((run / "monitor.csv").open()))
    assert [row["step"] for row in rows] == ["0", "2"] and rows[1]["alarm"] == "forced"
    videos = sorted((run / "samples" / "step-000002").glob("*.mp4"))
    expected = rewardkit.score([str(path) for path in videos], ["temporal_flickering"], progress=False, workers=0)["score"].mean()
    assert float(rows[1]["temporal_flickering"]) == pytest.approx(expected, abs=1e-9)
    metrics = list(csv.DictReader((run / "metrics.csv").open()))
    assert [row["step"] for row in metrics] == ["1", "2"]  # stopped: no step 3
    assert (run / "checkpoints" / "step-000002" / "trainer_state.json").is_file() and (run / "lora").is_dir()
    assert (run / "reward.png").is_file()
