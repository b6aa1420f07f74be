"""Learning checks of the online objectives (issues 9 and 10) that tests/test_finetune_online.py does not
hold, with the brightness reward (rewardkit.testing.finetune.Brightness: the mean decoded pixel value of
every frame): online DPO on tiny Wan and on the tiny UNet3D, and RWR from rollouts and GRPO (DDPO-style)
on the tiny UNet3D. The UNet3D pipeline's VAE is fitted to reconstruct colour (the random one hardly
responded to its latents, so no brightness could be learned through it).

Compared against: the same run at learning rate 0 from the same seeds. Step k's rollout of both runs
starts from the same noise, so the difference of the fresh samples' rewards is what learning did (the
first rollout precedes any update and is identical). A model that does not learn keeps the control's
rewards and fails. For RWR the control is the same run with tied rewards instead (see its test). The
margin is stated per test against the measured gain and the control's own step-to-step drift.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rewardkit.finetune.config import load_recipe
from rewardkit.testing.finetune import Brightness
from tests.online_training import train_recording_rewards

RECIPES = Path(__file__).resolve().parents[1] / "finetune"
PROMPTS = ["a cat walking on grass"]

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _objective(family: str, name: str, overrides: list[str]):
    """The objective of the family's tiny smoke recipe (tiny model from the rewardkit cache, LoRA added)
    with the brightness reward; returns it and its LoRA parameters."""
    from rewardkit.finetune.lora import add_lora
    from rewardkit.finetune.models import load_model
    from rewardkit.finetune.objectives import get_objective
    from rewardkit.finetune.objectives.reward_backprop import RewardFunction, RewardTerm

    stem = f"smoke-tiny-{'wan-' if family == 'wan' else ''}{name.replace('_', '-')}"
    config = load_recipe(RECIPES / f"{stem}.toml", overrides)
    adapter = load_model(config.model)
    torch.manual_seed(0)
    parameters = add_lora(adapter.denoiser, config.lora.rank, config.lora.alpha or config.lora.rank, config.lora.target_modules)
    reward = RewardFunction([RewardTerm("brightness", 1.0, Brightness())])
    return get_objective(name)(config, adapter, reward, torch.device("cpu")), parameters


def _fresh_rewards(family: str, name: str, overrides: list[str], learning_rate: float, steps: int, tie_rewards: bool = False) -> np.ndarray:
    """The trainer's sequence (rollout -> parts -> backward -> one AdamW step) for ``steps`` steps; each
    step's mean reward of its fresh rollout (taken before that step's update)."""
    objective, parameters = _objective(family, name, overrides)
    return np.array(train_recording_rewards(objective, parameters, learning_rate, steps, PROMPTS, tie_rewards))


def _gain(family: str, name: str, overrides: list[str], learning_rate: float, steps: int, control: str = "lr0") -> tuple[float, np.ndarray, np.ndarray]:
    """Mean fresh-sample reward of the last 4 rollouts, learned minus the control: ``lr0`` the same run at
    learning rate 0, ``tied`` the same run trained as if all rewards were equal (RWR)."""
    learned = _fresh_rewards(family, name, overrides, learning_rate, steps)
    tied = control == "tied"
    control = _fresh_rewards(family, name, overrides, learning_rate if tied else 0.0, steps, tie_rewards=tied)
    assert learned[0] == control[0]  # the first rollout precedes any update: identical
    print(f"\n{family} {name}: learned {np.round(learned, 4).tolist()}\ncontrol {np.round(control, 4).tolist()}")
    return float(learned[-4:].mean() - control[-4:].mean()), learned, control


def test_tiny_vae_follows_its_latents():
    """The fitted tiny VAE (rewardkit.testing.finetune) passes brightness through: 5 grey frames from -0.8
    to 0.8 reconstruct in the same order, and +1 on some latent channel of 16 random model latents moves
    the mean decoded value (in [0, 1]) by more than that mean's spread over the latents. Measured: greys
    -0.8..0.8 -> -0.41, -0.19, 0.22, 0.46, 0.60; channel shifts -0.023, -0.035, +0.019, +0.007 against a
    spread of 0.023. (The random VAE it replaced: shifts 4e-5..9e-4 against 1.7e-3.)"""
    from rewardkit.testing.finetune import tiny_t2v_pipeline

    vae = tiny_t2v_pipeline().vae
    scale = vae.config.scaling_factor
    greys = torch.linspace(-0.8, 0.8, 5).view(5, 1, 1, 1).expand(5, 3, 16, 16)
    latents = torch.randn((16, 4, 8, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reconstructed = vae.decode(vae.encode(greys).latent_dist.mean).sample.mean(dim=(1, 2, 3))
        brightness = lambda z: ((vae.decode(z / scale).sample + 1) / 2).clamp(0, 1).mean(dim=(1, 2, 3))  # noqa: E731
        base = brightness(latents)
        shifts = [(brightness(latents + 1.0 * (torch.arange(4) == c).view(1, 4, 1, 1)) - base).mean().abs().item() for c in range(4)]
    assert bool((reconstructed.diff() > 0).all()), reconstructed
    assert max(shifts) > base.std().item(), (shifts, base.std().item())


@pytest.mark.slow
def test_online_dpo_raises_fresh_sample_brightness_wan():
    """Online DPO (Flow-DPO on fresh samples) on tiny Wan: one prompt, group 8, best vs worst, beta 100,
    reference refreshed every step (the smoke recipe's OnlineVPO-style curriculum), lr 5e-2, 12 steps.
    The fresh samples' brightness over the last 4 rollouts beats the learning-rate-0 control (same seeds,
    so the same noise at every step) by > 0.003, above the control's own step-to-step drift (~0.003 on
    this model). Measured: learned 0.4515, control 0.4473 (+0.0042); the paired differences of rollouts
    9-12 were +0.0049, +0.0053, +0.0044, +0.0021."""
    gain, _, _ = _gain("wan", "online_dpo", ["objective.group_size=8"], 5e-2, 12)
    assert gain > 0.003, gain


@pytest.mark.slow
def test_online_dpo_raises_fresh_sample_brightness_unet3d():
    """Online DPO (Diffusion-DPO on fresh samples, epsilon target) on the tiny UNet3D (ModelScope layout,
    its VAE fitted to colour so decoded brightness follows the latents): one prompt, group 8, best vs
    worst, beta 500, reference refreshed every step (the smoke recipe), lr 5e-2, 8 steps. The fresh
    samples' brightness over the last 4 rollouts beats the learning-rate-0 control (same seeds) by > 0.007.
    Measured: +0.0147, paired differences of rollouts 1-8: 0, +.0007, -.0012, +.0038, +.0102, +.0140,
    +.0147, +.0200 (the control itself moves 0.549-0.559 from rollout to rollout)."""
    gain, _, _ = _gain("unet3d", "online_dpo", ["objective.group_size=8"], 5e-2, 8)
    assert gain > 0.007, gain


@pytest.mark.slow
def test_rwr_raises_fresh_sample_brightness_unet3d():
    """Reward-weighted regression from rollouts (issue 9's RWR check on the epsilon family) on the tiny
    UNet3D, its VAE fitted to colour: one prompt, group 8, exp weights softmax(r / 0.005) within the group,
    lr 5e-2, 6 steps. The control is the same run trained as if all rewards were tied (the plain denoising
    loss on its own samples: it trains, but cannot learn the reward), so the difference is the weighting's
    effect. The fresh samples' brightness over the last 4 rollouts beats it by > 0.005. Measured: +0.0113,
    paired differences of rollouts 1-6: 0, -.0021, +.0066, +.0013, +.0221, +.0150. Continued to 8 steps
    both runs fall (0.5465 vs 0.5461 at step 8: the gain fades), and the sparse variant (top quarter)
    behaved the same (+.0115, +.0049, +.0341, +.0030 at rollouts 3-6, +.0020 at 8)."""
    overrides = ["objective.group_size=8", "objective.temperature=0.005", 'objective.variant="exp"']
    gain, _, _ = _gain("unet3d", "rwr", overrides, 5e-2, 6, control="tied")
    assert gain > 0.005, gain


@pytest.mark.slow
def test_grpo_raises_fresh_sample_brightness_unet3d():
    """GRPO, DDPO-style (DDIM eta 1 on the stochastic steps, per-step Gaussian log-probs, group-relative
    advantages) on the tiny UNet3D, its VAE fitted to colour: one prompt, group 8, MixGRPO-style window of
    the first 2 of the 4 steps (stochastic and trained; the last 2 deterministic), lr 5e-2, 6 rollouts. The
    fresh samples' brightness over the last 4 rollouts beats the learning-rate-0 control (same seeds) by
    > 0.01. Measured: +0.0208, paired differences of rollouts 1-6: 0, +.0107, +.0173, +.0147, +.0176,
    +.0334 (+.0316, +.0342 at rollouts 7-8). Training every step instead fails: with all 4 steps
    stochastic and trained (lr 2e-2, 8 rollouts) the differences were -.0011 ... -.0139 (last 4: -0.0112),
    and with a random half of them (lr 5e-2) -0.0047. Presumably because the last steps' tiny noise hardly
    changes the reward while their log-prob gradients (noise / std) are the largest, so the update is
    mostly noise; DDPO trains every step, but of a 50-step chain."""
    overrides = ["objective.group_size=8", 'objective.train_steps="window"', "objective.window_size=2"]
    gain, _, _ = _gain("unet3d", "grpo", overrides, 5e-2, 6)
    assert gain > 0.01, gain
