"""The online objectives (issue 10): ``grpo`` (Flow-GRPO / DanceGRPO on the flow family, DDPO-style on the
epsilon family) and ``online_dpo`` (OnlineVPO). Hand values of the pure functions (REFERENCE §4), the
group statistics over processes, the on-policy ratio, pairing rules, recipes, learning checks on the tiny
models of both families with a brightness reward and smoke runs (their two-process torchrun runs are in
tests/test_finetune_wan.py)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardkit.finetune.config import load_recipe
from rewardkit.finetune.objectives.losses import (
    clipped_surrogate,
    gaussian_log_prob,
    group_advantages,
    sde_kl,
)
from rewardkit.testing.finetune import Brightness
from tests.distributed import free_port
from tests.online_training import train_recording_rewards

RECIPES = Path(__file__).resolve().parents[1] / "finetune"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ------------------------------------------------------------------------------------ hand values


def test_gaussian_log_prob_hand_value():
    """log N(0.3; 0.1, 0.5^2) = -0.04 / 0.5 - log 0.5 - log(2 pi) / 2 = -0.305791 (REFERENCE §4); a latent's
    log-prob is the MEAN over its elements (here two elements with that value and log N(0.1; 0.1, 0.5^2))."""
    value = gaussian_log_prob(torch.tensor(0.3), torch.tensor(0.1), torch.tensor(0.5))
    assert value.item() == pytest.approx(-0.305791, abs=1e-6)
    at_mean = -math.log(0.5) - 0.5 * math.log(2 * math.pi)
    latent = gaussian_log_prob(torch.tensor([[0.3, 0.1]]), torch.tensor([[0.1, 0.1]]), torch.tensor(0.5))
    assert latent.item() == pytest.approx((-0.305791 + at_mean) / 2, abs=1e-6)
    with pytest.raises(ValueError, match="deterministic step"):
        gaussian_log_prob(torch.tensor([[0.3]]), torch.tensor([[0.1]]), torch.tensor(0.0))


def test_group_advantages_hand_values():
    """Rewards [1, 2, 3, 4]: mean 2.5, POPULATION std sqrt(1.25) -> (r - 2.5) / (1.118034 + 1e-4) =
    [-1.341521, -0.447174, 0.447174, 1.341521] (the sample std, sqrt(5/3), would give -1.161827 first).
    Groups are normalised separately; a tied group gets 0; the clip at +-5 binds for one outlier in 30."""
    advantages = group_advantages(torch.tensor([1.0, 2, 3, 4, 7, 7]), torch.tensor([0, 0, 0, 0, 1, 1]))
    torch.testing.assert_close(advantages, torch.tensor([-1.341521, -0.447174, 0.447174, 1.341521, 0.0, 0.0]), atol=1e-6, rtol=0)
    outlier = group_advantages(torch.tensor([0.0] * 29 + [1.0]), torch.zeros(30))
    assert outlier[-1].item() == 5.0  # unclipped: (1 - 1/30) / sqrt(29)/30 = 5.385


def test_clipped_surrogate_and_kl_hand_values():
    """PPO: A 1, ratio 1.5, eps 0.2 -> max(-1.5, -1.2) = -1.2; A -1, ratio 0.5 -> max(0.5, 0.8) = 0.8.
    KL: beta 1, dmu 0.1, sigma 0.5 -> 0.01 / 0.5 = 0.02 (mean over elements)."""
    loss = clipped_surrogate(torch.tensor([1.0, -1.0]), torch.tensor([1.5, 0.5]), 0.2)
    torch.testing.assert_close(loss, torch.tensor([-1.2, 0.8]))
    kl = sde_kl(torch.full((1, 3), 0.1), torch.zeros(1, 3), torch.tensor(0.5))
    assert kl.item() == pytest.approx(0.02, abs=1e-7)


def test_preference_pairs_best_worst_all_and_ties():
    """Best vs worst per group; all pairs with the higher reward as winner; pairs at or under min_margin
    (a tied group) get weight 0 instead of an arbitrary winner."""
    from rewardkit.finetune.objectives.online_dpo import preference_pairs

    rewards = torch.tensor([0.2, 0.9, 0.5, 0.3, 0.3, 0.3])
    winners, losers, weights = preference_pairs(rewards, 3, "best_worst", 0.0)
    assert winners.tolist() == [1, 3] and losers.tolist() == [0, 5] and weights.tolist() == [1.0, 0.0]
    winners, losers, weights = preference_pairs(rewards, 3, "all", 0.35)
    assert list(zip(winners.tolist(), losers.tolist(), strict=True))[:3] == [(1, 0), (2, 0), (1, 2)]
    assert weights.tolist() == [1.0, 0.0, 1.0, 0.0, 0.0, 0.0]  # margins 0.7, 0.3, 0.4, then a tied group


def test_dpo_loss_weights_drop_pairs():
    """dpo_loss with weights (1, 0) equals the unweighted loss of the first pair alone."""
    from rewardkit.finetune.objectives.losses import dpo_loss

    errors = [torch.tensor([0.10, 0.3]), torch.tensor([0.12, 0.1]), torch.tensor([0.15, 0.2]), torch.tensor([0.14, 0.4])]
    weighted, _ = dpo_loss(*errors, 10.0, torch.tensor([1.0, 0.0]))
    alone, _ = dpo_loss(*(value[:1] for value in errors), 10.0)
    assert weighted.item() == pytest.approx(alone.item()) == pytest.approx(0.620957, abs=1e-6)


def test_groups_are_dealt_round_robin():
    """3 prompts x groups of 4 over 2 processes: process 0 gets the even videos, 1 the odd ones, so every
    group has members on both."""
    from rewardkit.finetune.objectives.grpo import deal_groups

    assert deal_groups(3, 4, 0, 2).tolist() == [0, 2, 4, 6, 8, 10]
    assert deal_groups(3, 4, 1, 2).tolist() == [1, 3, 5, 7, 9, 11]
    with pytest.raises(ValueError, match="shared evenly"):
        deal_groups(3, 3, 0, 2)


# ------------------------------------------------------------------------------------ recipes


def test_online_recipes_load():
    """The real recipes read and check (before any model loads) with the settings their headers state."""
    dpo = load_recipe(RECIPES / "online-dpo-wan.toml")
    assert (dpo.model.family, dpo.objective.name, dpo.reward.rewards) == ("wan", "online_dpo", ["dover"])
    grpo = load_recipe(RECIPES / "grpo-wan.toml")
    assert (grpo.model.family, grpo.objective.name, grpo.objective.group_size, grpo.objective.num_inference_steps) == ("wan", "grpo", 4, 20)
    assert (grpo.model.num_frames, grpo.model.height, grpo.model.width, grpo.objective.clip_range) == (33, 240, 416, 1e-3)
    ddpo = load_recipe(RECIPES / "grpo-modelscope.toml")
    assert (ddpo.model.family, ddpo.objective.name, ddpo.objective.noise_level) == ("unet3d", "grpo", 1.0)
    default = load_recipe(RECIPES / "smoke-tiny-online-dpo.toml", ["reward.rewards=[]"])
    assert default.reward.rewards == ["dover"]  # OnlineVPO's video-quality reward is the default


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("objective.group_size=1", "group_size must be at least 2"),
        ("objective.train_steps=windows", "Did you mean 'window'"),
        ("objective.window_size=9", "window_size must be in 1..num_inference_steps"),
        ("objective.noise_level=0", "noise_level must be positive"),
        ("reward.rewards=[]", "set reward.rewards"),
        ("objective.updates_per_rollout=5", "more than the 4 videos"),
    ],
)
def test_grpo_recipe_errors(override, message):
    with pytest.raises(ValueError, match=message):
        load_recipe(RECIPES / "smoke-tiny-grpo.toml", [override])


# ------------------------------------------------------------------------------------ objectives on tiny models




def _objective(family: str, name: str, overrides=()):
    """The objective of the tiny smoke recipe (the family's tiny model from the rewardkit cache, LoRA added)
    with the brightness reward."""
    from rewardkit.finetune.lora import add_lora
    from rewardkit.finetune.models import load_model
    from rewardkit.finetune.objectives import get_objective
    from rewardkit.finetune.objectives.reward_backprop import RewardFunction, RewardTerm

    stem = f"smoke-tiny-{'wan-' if family == 'wan' else ''}{name.replace('_', '-')}"
    config = load_recipe(RECIPES / f"{stem}.toml", list(overrides))
    adapter = load_model(config.model)
    torch.manual_seed(0)
    parameters = add_lora(adapter.denoiser, config.lora.rank, config.lora.alpha or config.lora.rank, config.lora.target_modules)
    reward = RewardFunction([RewardTerm("brightness", 1.0, Brightness())])
    return get_objective(name)(config, adapter, reward, torch.device("cpu")), parameters


@pytest.mark.parametrize("family", [pytest.param("unet3d", marks=pytest.mark.slow), "wan"])
def test_grpo_ratio_is_exactly_one_on_policy(family):
    """The first update after a rollout is on-policy: the training log-probs, recomputed through the same
    sde_step on the stored transitions, equal the rollout's bit for bit (ratio exactly 1), also after an
    update has made the LoRA non-zero; every trained step of the rollout is one part."""
    objective, parameters = _objective(family, "grpo")
    train_recording_rewards(objective, parameters, 1e-2, 1, ["a cat"])
    assert max(parameter.abs().max().item() for parameter in parameters) > 0
    batch = objective.rollout({"prompts": ["a cat", "a dog"]}, torch.Generator().manual_seed(9), np.random.default_rng(9))
    parts = objective.micro_batches(batch)
    assert len(parts) == type(objective).parts_per_batch(objective.config) == 2
    for part in parts:
        _, details = objective.loss(part, torch.Generator(), np.random.default_rng(0))
        assert bool((details["ratio"] == 1).all()), details["ratio"]
    assert batch["advantages"].shape == (4,) and len(batch["prompts"]) == 4


def test_grpo_same_noise_within_a_group_and_window():
    """same_noise: a group's videos start from one noise (their chains differ only by the SDE noise);
    the window mode makes only window_size consecutive steps stochastic and trains exactly those."""
    objective, _ = _objective("wan", "grpo", ["objective.train_steps=\"window\"", "objective.window_size=2", "objective.window_shift_every=1"])
    batch = objective.rollout({"prompts": ["a cat", "a dog"]}, torch.Generator().manual_seed(1), np.random.default_rng(1))
    first = batch["chain"][0]
    torch.testing.assert_close(first[0], first[1], rtol=0, atol=0)
    assert not torch.equal(first[0], first[2])
    assert batch["steps"] == [0, 1]
    levels, chain = batch["levels"], batch["chain"]
    with torch.no_grad():
        ode = objective.adapter.sde_step(chain[2], levels[2], levels[3], batch["conditioning"], 1.0, noise_level=0.0)[0]
        sde = objective.adapter.sde_step(chain[1], levels[1], levels[2], batch["conditioning"], 1.0, noise_level=0.0)[0]
    torch.testing.assert_close(ode, chain[3])  # step 2 is outside the window: deterministic
    assert not torch.allclose(sde, chain[2])  # step 1 is inside: it added noise
    again = objective.rollout({"prompts": ["a cat", "a dog"]}, torch.Generator().manual_seed(2), np.random.default_rng(2))
    assert again["steps"] == [1, 2]  # the window moved one step


# ------------------------------------------------------------------------------------ learning checks
#
# The reward is the mean decoded brightness of every frame of the fresh samples. The control is the same
# run at learning rate 0: the same seeds give the same rollouts step by step, so the difference of the
# last steps' fresh-sample rewards is what learning did (the tiny random models' samples drift in
# brightness from step to step by ~0.003 whatever the policy; the margin is above that drift).


def _learning_gain(family: str, name: str, overrides: list[str], learning_rate: float, steps: int) -> float:
    learned, parameters = _objective(family, name, overrides)
    history = train_recording_rewards(learned, parameters, learning_rate, steps, ["a cat walking on grass"])
    control, parameters = _objective(family, name, overrides)
    baseline = train_recording_rewards(control, parameters, 0.0, steps, ["a cat walking on grass"])
    assert history[0] == baseline[0]  # the first rollout precedes any update: identical
    return float(np.mean(history[-4:]) - np.mean(baseline[-4:]))


@pytest.mark.slow
def test_grpo_raises_fresh_sample_brightness_wan():
    """Flow-GRPO on tiny Wan (group 8, a = 0.7, half of the 4 steps trained, lr 5e-2, 10 rollouts): the
    fresh samples' brightness over the last 4 rollouts beats the learning-rate-0 control by > 0.003
    (measured +0.0065)."""
    gain = _learning_gain("wan", "grpo", ["objective.group_size=8", "objective.train_fraction=0.5"], 5e-2, 10)
    assert gain > 0.003, gain


# online_dpo's brightness checks (both families) are in tests/test_finetune_learning.py.


# ------------------------------------------------------------------------------------ runs


def _metrics(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["smoke-tiny-grpo", "smoke-tiny-online-dpo", "smoke-tiny-wan-grpo", "smoke-tiny-wan-online-dpo"])
def test_online_smoke_recipes(recipe, tmp_path):
    """Each smoke recipe runs 2 steps through the trainer: finite losses; GRPO's logged ratio is exactly 1
    (every update is on-policy); online DPO with reference_refresh = 1 starts each step with the reference
    equal to the learner, so its loss is ln 2 at both steps (an independent check of the refresh)."""
    from rewardkit.finetune import finetune

    run = finetune(RECIPES / f"{recipe}.toml", [f'train.output_dir="{tmp_path / "run"}"', "train.progress=false"])
    rows = _metrics(run)
    assert [int(row["step"]) for row in rows] == [1, 2] and all(math.isfinite(float(row["loss"])) for row in rows)
    if "grpo" in recipe:
        assert all(float(row["ratio_max_deviation"]) == 0.0 for row in rows)
    else:
        assert all(float(row["loss"]) == pytest.approx(math.log(2), abs=1e-6) for row in rows)
    assert (run / "samples" / "step-000002" / "00.mp4").exists()


def _resume_rows(recipe: str, overrides: list[str], tmp_path: Path, break_checkpoints, match: str, monkeypatch, objective_class):
    """A run with a checkpoint every step; ``break_checkpoints(run)`` makes the last ones incomplete; it is
    resumed (warning ``match``) and, as a control, resumed again from a copy with the objective's saved
    state ignored. Returns (uninterrupted, resumed, control) rows without the timing columns."""
    import shutil

    from rewardkit.finetune import finetune

    common = ["train.progress=false", "train.sample_every=0", "train.checkpoint_every=1", "train.learning_rate=1e-2", *overrides]
    run = finetune(RECIPES / f"{recipe}.toml", [*common, f'train.output_dir="{tmp_path / "run"}"'])
    full = _metrics(run)
    break_checkpoints(run)
    shutil.rmtree(run / "lora")
    control = shutil.copytree(run, tmp_path / "control")
    with pytest.warns(UserWarning, match=match):
        finetune(resume=run, overrides=["train.progress=false"])
    monkeypatch.setattr(objective_class, "load_state_dict", lambda self, state: None)
    with pytest.warns(UserWarning, match=match):
        finetune(resume=control, overrides=["train.progress=false"])
    drop = lambda rows: [{k: v for k, v in row.items() if k not in ("step_time_s", "peak_memory_mb")} for row in rows]  # noqa: E731
    return drop(full), drop(_metrics(run)), drop(_metrics(control))


def _same_rows(ours: list[dict[str, str]], theirs: list[dict[str, str]]) -> bool:
    return len(ours) == len(theirs) and all(
        ours_row.keys() == theirs_row.keys() and all(float(ours_row[k]) == pytest.approx(float(theirs_row[k]), rel=1e-6, abs=1e-7) for k in ours_row)
        for ours_row, theirs_row in zip(ours, theirs, strict=True)
    )


@pytest.mark.slow
def test_online_dpo_resume_keeps_the_refreshed_reference(tmp_path, monkeypatch):
    """online_dpo on tiny Wan, reference refreshed every 2 steps, 4 steps: step 4's reference is the LoRA
    snapshot taken before step 3. Step 4's checkpoint is made incomplete (its objective state truncated):
    resume warns, falls back to step 3 and reproduces the uninterrupted run's step-4 row (loss, rewards,
    implicit accuracy, grad norm). The control resumes with the saved snapshot ignored (the reference is
    then the initial model): its step-4 loss differs, so the comparison can fail."""
    from rewardkit.finetune.objectives.online_dpo import OnlineDPO

    def truncate(run: Path) -> None:
        state = run / "checkpoints" / "step-000004" / "objective-rank0.pt"
        state.write_bytes(state.read_bytes()[:50])

    full, resumed, control = _resume_rows(
        "smoke-tiny-wan-online-dpo", ["objective.reference_refresh=2", "train.max_steps=4"], tmp_path, truncate,
        "skipping incomplete checkpoint .*step-000004.*objective-rank0.pt", monkeypatch, OnlineDPO,
    )
    assert [row["step"] for row in full] == ["1", "2", "3", "4"]
    assert _same_rows(resumed, full)
    assert float(control[3]["loss"]) != pytest.approx(float(full[3]["loss"]), rel=1e-6, abs=1e-7), (control[3]["loss"], full[3]["loss"])


@pytest.mark.slow
def test_grpo_resume_keeps_pending_chunks_and_the_window(tmp_path, monkeypatch):
    """GRPO on tiny Wan, one prompt's group of 4 split into 2 updates per rollout, MixGRPO window of 2
    moving every rollout, 3 steps: step 2 trains the second half of step 1's rollout (off-policy), step 3
    rolls out with the window moved one step. Step 3's checkpoint is made incomplete (objective state
    truncated) and step 2's (no trainer state): resume falls back to step 1 and reproduces steps 2 and 3
    (loss, rewards, advantages, ratio, trained chunk). The control resumes with the saved state ignored:
    it rolls out afresh at step 2 (its ratio is exactly 1 there), so its rows differ."""
    from rewardkit.finetune.objectives.grpo import GRPO

    def truncate(run: Path) -> None:
        state = run / "checkpoints" / "step-000003" / "objective-rank0.pt"
        state.write_bytes(state.read_bytes()[:50])
        (run / "checkpoints" / "step-000002" / "trainer_state.json").unlink()

    overrides = ["train.batch_size=1", "objective.group_size=4", "objective.updates_per_rollout=2", 'objective.train_steps="window"',
                 "objective.window_size=2", "objective.window_shift_every=1", "train.max_steps=3"]
    full, resumed, control = _resume_rows(
        "smoke-tiny-wan-grpo", overrides, tmp_path, truncate, "skipping incomplete checkpoint .*step-000003.*objective-rank0.pt", monkeypatch, GRPO,
    )
    assert [row["step"] for row in full] == ["1", "2", "3"] and float(full[1]["ratio_max_deviation"]) > 0  # step 2 is off-policy
    assert _same_rows(resumed, full)
    assert float(control[1]["ratio_max_deviation"]) == 0.0 and not _same_rows(control[2:], full[2:])


def _gather_in_process(rank: int, rewards: torch.Tensor, port: int, queue) -> None:
    import torch.distributed as dist

    from rewardkit.finetune.objectives.base import Processes
    from rewardkit.finetune.objectives.grpo import deal_groups, gathered_advantages

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)

    def gather(tensor):
        parts = [torch.empty_like(tensor) for _ in range(2)]
        dist.all_gather(parts, tensor)
        return torch.cat(parts)

    mine = rewards[deal_groups(3, 4, rank, 2)]
    advantages, _ = gathered_advantages(mine, 3, 4, Processes(rank, 2, gather, lambda items: items))
    queue.put((rank, advantages.tolist()))  # a list: a tensor's shared memory would vanish with this process
    dist.destroy_process_group()


@pytest.mark.slow
def test_group_statistics_over_two_processes_equal_one_process():
    """3 groups of 4 rewards dealt round-robin over two gloo processes (every group spans both): each
    process's advantages equal the one-process advantages of its videos (group_advantages on all 12)."""
    import torch.multiprocessing as mp

    from rewardkit.finetune.objectives.grpo import deal_groups

    rewards = torch.tensor([1.0, 2, 3, 4, 0.5, 0.5, 0.5, 0.5, 3, 1, 4, 1])
    expected = group_advantages(rewards, torch.arange(12) // 4)
    context = mp.get_context("spawn")
    queue = context.Queue()
    port = free_port()
    processes = [context.Process(target=_gather_in_process, args=(rank, rewards, port, queue)) for rank in range(2)]
    for process in processes:
        process.start()
    results = dict(queue.get(timeout=300) for _ in range(2))
    for process in processes:
        process.join(timeout=60)
    for rank in range(2):
        torch.testing.assert_close(torch.tensor(results[rank]), expected[deal_groups(3, 4, rank, 2)], rtol=0, atol=0)


# The online recipes' two-process runs are in tests/test_finetune_wan.py (one launch for every Wan recipe).


@pytest.mark.slow
def test_gpu_grpo_benchmark_runs_tiny_on_cpu(tmp_path):
    """benchmarks/gpu/grpo_gpu.py --tiny: the same code path on the tiny Wan on CPU writes its JSON with
    finite rollout and update times, 2 trained steps of 4 (60%), and an on-policy ratio of exactly 1."""
    import importlib.util
    import json

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "grpo_gpu.py"
    spec = importlib.util.spec_from_file_location("grpo_gpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--tiny", "--steps", "1", "--out", str(tmp_path / "grpo.json")])
    report = json.loads((tmp_path / "grpo.json").read_text())
    assert math.isfinite(report["rollout_s"]) and math.isfinite(report["update_s"]) and report["decoding_s"] > 0
    assert report["trained_steps"] == 2 and report["ratio_max_deviation"] == 0.0
