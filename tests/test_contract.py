"""The scorer contract (DESIGN.md), checked for every registered reward on its tiny fixture.

Parametrized over ``list_rewards()``, so a new reward is tested by registering it and adding its tiny
fixture to ``rewardkit.testing.TINY_REWARDS``; a registered reward without one fails here. What each
check compares against: the contract itself (shape ``[B]``, float32, ValueError for bad input), the same
reward on the same pixels in another form (uint8 vs float, alone vs in a batch, reference vs
differentiable preprocessing), and autograd (gradients reach the pixels, never the weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rewardkit import create_reward, list_rewards
from rewardkit.registry import get_reward_info
from rewardkit.testing import TINY_REWARDS, pattern_image
from rewardkit.testing.vbench import moving_square_clip

REWARDS = sorted(info.name for info in list_rewards())
# One score of two clips takes over 5 s on a loaded 2-core machine (DOVER ~20 s, MUSIQ on every frame
# ~20 s, VideoReward ~13 s, VideoScore ~7 s, full-size RAFT ~6 s, Tag2Text's 16 frames at 384 px with beam
# search ~10 s): their contract tests run in the slow step.
HEAVY = {"dover", "imaging_quality", "videoreward", "videoscore", "dynamic_degree", "scene"}
# GRiT describes every detected box token by token (~0.4 s a 32 px frame): its four dimensions get 2-frame
# 32 px clips; they share one scorer class and differ only in VBench's reading of the detections (each
# reading is hand-checked in test_vbench_grit.py), so object_class runs here and the other three slow.
SMALL_CLIPS = {"object_class", "multiple_objects", "color", "spatial_relationship"}
HEAVY |= SMALL_CLIPS - {"object_class"}


@pytest.fixture(autouse=True)
def grit_on_one_thread(request):
    """GRiT's small per-box kernels run ~10 times slower on two contended threads than on one."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("name") in SMALL_CLIPS:
        request.getfixturevalue("one_thread")


def params(names: list[str]) -> list:
    return [pytest.param(name, marks=pytest.mark.slow) if name in HEAVY else name for name in names]


DIFFERENTIABLE = params([name for name in REWARDS if get_reward_info(name).differentiable])
BOTH_MODES = [name for name in REWARDS if "mode" in get_reward_info(name).options]
PROMPTS = ["a red fox running through the snow", "a cat sitting on a chair"]


def test_every_registered_reward_has_a_tiny_fixture():
    """A reward registered without a fixture would silently escape every test below."""
    assert sorted(set(REWARDS) - set(TINY_REWARDS)) == [], "add the reward's tiny fixture to rewardkit.testing.TINY_REWARDS"
    assert sorted(set(TINY_REWARDS) - set(REWARDS)) == [], "TINY_REWARDS names a reward that is not registered"


@pytest.fixture(scope="module")
def build(tiny_reward_options):
    built: dict[tuple[str, str | None], torch.nn.Module] = {}

    def make(name: str, mode: str | None = None) -> torch.nn.Module:
        if (name, mode) not in built:
            options: dict[str, Any] = tiny_reward_options(name)
            if mode is not None:
                options["mode"] = mode
            built[name, mode] = create_reward(name, **options)
        return built[name, mode]

    return make


def pixels(name: str, count: int = 2) -> torch.Tensor:
    """uint8 inputs with real structure: 224 px images (the models' own size, so no resampling differs
    between the modes), or 4-frame 128 px clips (RAFT's smallest size; GRiT's: 2-frame 32 px) of a
    textured square moving over a textured background."""
    if get_reward_info(name).modality == "image":
        return torch.stack([torch.from_numpy(pattern_image(224, 224, seed)).permute(2, 0, 1) for seed in range(count)])
    frames, size = (2, 32) if name in SMALL_CLIPS else (4, 128)
    clips = [moving_square_clip(frames, size, size, speed=2.0 + seed, seed=seed) for seed in range(count)]
    return torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).contiguous()


def prompts(name: str, count: int = 2) -> list[str] | None:
    """Generic prompts, or the reward's own examples when its prompt is a label in a fixed form (VBench's
    GRiT dimensions: object names, colour prompts, spatial JSON)."""
    info = get_reward_info(name)
    if not info.needs_prompt:
        return None
    return list(info.prompt_examples[:count]) if info.prompt_examples else PROMPTS[:count]


def run(reward: torch.nn.Module, name: str, inputs: torch.Tensor, texts: list[str] | None) -> torch.Tensor:
    """Score; video rewards get a fresh seeded generator each call, so random sampling repeats."""
    if get_reward_info(name).modality == "video":
        return reward(inputs, texts, rng=np.random.default_rng(0))
    return reward(inputs, texts)


@pytest.mark.parametrize("name", params(REWARDS))
def test_scores_are_float32_one_per_item(build, name):
    scores = run(build(name), name, pixels(name), prompts(name))
    assert scores.shape == (2,) and scores.dtype == torch.float32 and torch.isfinite(scores).all()


@pytest.mark.parametrize("name", params(REWARDS))
def test_uint8_input_equals_the_same_pixels_as_float(build, name):
    """Equal up to rounding: a pipeline that resizes uint8 tensors as the official code does (VBench's
    ViCLIP transform) rounds after resizing, which moves its score by ~1e-4 here."""
    reward, inputs = build(name), pixels(name)
    as_uint8 = run(reward, name, inputs, prompts(name))
    as_float = run(reward, name, inputs.float() / 255, prompts(name))
    assert torch.allclose(as_uint8, as_float, rtol=1e-3, atol=1e-3), (as_uint8, as_float)


@pytest.mark.parametrize("name", params(REWARDS))
def test_an_item_scores_the_same_alone_and_in_a_batch(build, name):
    """Items of a batch do not influence each other. A reward that draws randomness per video from the
    generator (DOVER's fragments) gives the first video the same draws alone and in the batch; the others
    are compared when the scores do not depend on the generator at all."""
    reward, inputs, texts = build(name), pixels(name), prompts(name)
    together = run(reward, name, inputs, texts)
    alone = torch.cat([run(reward, name, inputs[i : i + 1], None if texts is None else texts[i : i + 1]) for i in range(2)])
    assert torch.allclose(together[0], alone[0], rtol=1e-4, atol=1e-5)
    if get_reward_info(name).modality == "video":
        other_draws = reward(inputs[1:], None if texts is None else texts[1:], rng=np.random.default_rng(1))
        if not torch.allclose(other_draws, alone[1:], rtol=1e-4, atol=1e-5):
            return
    assert torch.allclose(together[1], alone[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", params(REWARDS))
def test_bad_input_is_a_value_error(build, name):
    reward, inputs, texts = build(name), pixels(name), prompts(name)
    wrong_rank = inputs[:, 0] if inputs.dim() == 5 else inputs[:, None]
    with pytest.raises(ValueError):
        run(reward, name, wrong_rank, texts)
    with pytest.raises(ValueError):
        run(reward, name, inputs.to(torch.int32), texts)
    if texts is not None:
        with pytest.raises(ValueError):
            run(reward, name, inputs, texts[:1])


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_gradients_reach_the_pixels_not_the_weights(build, name):
    reward = build(name, "differentiable" if name in BOTH_MODES else None)
    inputs = (pixels(name).float() / 255).requires_grad_(True)
    run(reward, name, inputs, prompts(name)).sum().backward()
    assert inputs.grad is not None and torch.isfinite(inputs.grad).all() and inputs.grad.abs().sum() > 0
    assert not any(parameter.requires_grad for parameter in reward.parameters()), "rewards are frozen judges"


@pytest.mark.parametrize("name", params(BOTH_MODES))
def test_reference_and_differentiable_modes_agree(build, name):
    """The same pixels through the official (PIL) preprocessing and the all-torch one. Images are at the
    models' 224 px, so only rounding differs; clips are resampled from 128 px, where PIL's and torch's
    antialiased bicubic differ by a few grey levels (the documented gap, benchmarks/report_gap.py)."""
    inputs, texts = pixels(name), prompts(name)
    reference = run(build(name, "reference"), name, inputs, texts)
    differentiable = run(build(name, "differentiable"), name, inputs.float() / 255, texts)
    scale = max(1.0, reference.abs().max().item())
    assert torch.allclose(reference, differentiable, atol=GAP[get_reward_info(name).modality] * scale)


GAP = {"image": 5e-3, "video": 2e-2}


def test_readme_reward_table_is_the_generated_one(capsys):
    """The README's table is `rewardkit list --format markdown`, verbatim: regenerate it after adding a
    reward or changing its weights (`uv run rewardkit list --format markdown`)."""
    from rewardkit.cli import main

    assert main(["list", "--format", "markdown"]) == 0
    table = capsys.readouterr().out.strip()
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert f"-->\n{table}\n\n" in readme, "README's reward table is stale: paste `rewardkit list --format markdown` into it"
