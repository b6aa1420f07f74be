"""Fine-tuning building blocks: recipe checks, the DDIM step map, the partial chain, gradient routing,
frame-selective decoding and offset noise, on a tiny random TextToVideoSDPipeline saved with
save_pretrained and loaded through the user's path (rewardkit.finetune.models.load_unet3d)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rewardkit.finetune.config import load_recipe, parse_overrides
from rewardkit.finetune.lora import add_lora
from rewardkit.finetune.models import ddim_timestep, ddim_timesteps
from rewardkit.finetune.models.unet3d import load_unet3d
from rewardkit.finetune.objectives.reward_backprop import (
    RewardBackprop,
    RewardFunction,
    RewardTerm,
    temporal_offset_noise,
)
from rewardkit.testing.finetune import Brightness
from rewardkit.video.sampling import All, Segmental

RECIPES = Path(__file__).resolve().parents[1] / "finetune"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    from rewardkit.testing.finetune import write_tiny_t2v_pipeline

    return write_tiny_t2v_pipeline(tmp_path_factory.mktemp("tiny-t2v"))


@pytest.fixture()
def adapter(tiny_model_dir):
    model = load_unet3d(str(tiny_model_dir), num_frames=8, height=16, width=16)
    add_lora(model.denoiser, 4, 4, ["to_q", "to_k", "to_v", "to_out.0"])
    return model




# ------------------------------------------------------------------------------------------ recipes


def test_shipped_recipes_load():
    """Every recipe in finetune/ passes the checks; the InstructVideo one holds the paper's values (REFERENCE §4)."""
    recipes = {path.name: load_recipe(path) for path in RECIPES.glob("*.toml")}
    assert set(recipes) >= {"instructvideo-modelscope.toml", "vader-zeroscope.toml", "smoke-tiny.toml", "dpo-modelscope.toml", "gran-dpo-modelscope.toml"}
    paper = recipes["instructvideo-modelscope.toml"]
    assert (paper.objective.tau, paper.objective.num_inference_steps, paper.objective.backprop_steps) == (0.6, 20, 1)
    assert (paper.objective.guidance_scale, paper.objective.offset_noise, paper.lora.rank) == (3.0, 0.1, 4)
    assert (paper.train.learning_rate, paper.train.weight_decay, paper.train.mixed_precision) == (1e-5, 0.0, "fp16")
    assert (paper.train.batch_size, paper.train.batch_size * paper.train.gradient_accumulation_steps) == (2, 8)  # VGen: 8 global
    assert paper.reward.rewards == ["hpsv2:version=v2.0"] and paper.reward.frames == "segmental:4:random"
    vader = recipes["vader-zeroscope.toml"]
    assert (vader.objective.mode, vader.objective.num_inference_steps, vader.lora.rank, vader.train.learning_rate) == ("full_chain", 25, 16, 2e-4)
    assert (vader.objective.eta, vader.objective.guidance_scale, vader.model.num_frames) == (1.0, 12.0, 12)  # VADER-VideoCrafter
    assert (recipes["dpo-modelscope.toml"].objective.beta, recipes["gran-dpo-modelscope.toml"].objective.name) == (5000.0, "gran_dpo")


def test_overrides_are_typed():
    """--set values are read as TOML values and converted to the field's type."""
    recipe = load_recipe(RECIPES / "smoke-tiny.toml", ["train.max_steps=7", "objective.tau=0.8", "lora.target_modules=to_q,to_v", "model.gradient_checkpointing=false"])
    assert (recipe.train.max_steps, recipe.objective.tau, recipe.lora.target_modules, recipe.model.gradient_checkpointing) == (7, 0.8, ["to_q", "to_v"], False)
    assert parse_overrides(['reward.rewards=["a", "b"]']) == {"reward": {"rewards": ["a", "b"]}}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.max_step=3", "Did you mean 'max_steps'"),
        ("trian.max_steps=3", "Did you mean 'train'"),
        ("objective.mode=edit", "'editing', 'full_chain'"),
        ("train.max_steps=three", "train.max_steps must be an integer"),
        ("train.mixed_precision=fp8", "'no', 'fp16', 'bf16'"),
        ("objective.backprop_steps=4", "more than the 3 denoising steps"),
        ("maxsteps", "write SECTION.KEY=VALUE"),
    ],
)
def test_recipe_errors_name_the_key_and_the_fix(override, message):
    """Bad keys and values are ValueErrors with close matches / allowed values, raised while reading."""
    with pytest.raises(ValueError, match=message):
        load_recipe(RECIPES / "smoke-tiny.toml", [override])


# ------------------------------------------------------------------------------------------ chain


def test_ddim_step_map_matches_vgen():
    """d(i) = (T/D)(i-1)+1; VGen's list is (1 + arange(0, 1000, 1000 // D)).flip(0) and tau=0.6, D=20 starts at 551."""
    assert ddim_timestep(12, 20) == 551 and ddim_timestep(1, 20) == 1 and ddim_timestep(20, 20) == 951
    vgen = (1 + torch.arange(0, 1000, 1000 // 20)).flip(0).tolist()
    assert ddim_timesteps(20) == vgen
    assert vgen[-int(0.6 * 20):][0] == 551  # VGen: steps[-int(len(steps) * starting_partial):]
    with pytest.raises(ValueError):
        ddim_timestep(0, 20)


def test_ddim_step_matches_diffusers_scheduler(adapter):
    """One adapter step (guidance off) equals diffusers' DDIMScheduler.step (eta 0) on the same UNet output."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(adapter.scheduler.config)
    scheduler.set_timesteps(20)
    assert scheduler.timesteps.tolist() == ddim_timesteps(20)
    latents = torch.randn(adapter.latent_shape(1), generator=torch.Generator().manual_seed(0))
    conditioning = adapter.encode_prompts(["a cat"], guidance=False)
    with torch.no_grad():
        for timestep in (551, 1):
            ours = adapter.step(latents, timestep, timestep - 50 if timestep > 1 else -1.0, conditioning, 1.0)
            eps = adapter.predict(latents, timestep, conditioning, 1.0)
            theirs = scheduler.step(eps, timestep, latents, eta=0.0).prev_sample
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("mode", "first", "count"), [("editing", 551, 12), ("full_chain", 951, 20)])
def test_chain_start_and_length(adapter, mode, first, count):
    """Editing starts at d(tau*D) = 551 and runs tau*D = 12 steps; full_chain runs all 20 from 951 (spy on step)."""
    objective = RewardBackprop(mode=mode, num_inference_steps=20, tau=0.6, backprop_steps=1, guidance_scale=1.0)
    calls = []
    step = adapter.step
    adapter.step = lambda latents, level, *args, **kwargs: calls.append(int(level)) or step(latents, level, *args, **kwargs)
    clean = torch.zeros(adapter.latent_shape(1))
    reward = RewardFunction([RewardTerm("brightness", 1.0, Brightness(Segmental(1, "first")))])
    objective.loss(adapter, reward, ["a cat"], generator=torch.Generator().manual_seed(0), rng=np.random.default_rng(0), device=torch.device("cpu"), clean_latents=clean)
    assert calls[0] == first and len(calls) == count and calls[-1] == 1
    assert calls == ddim_timesteps(20)[20 - count:]


def test_gradients_reach_only_lora_and_only_last_k_steps(adapter):
    """With K = 2 only the last two steps build a graph (grad mode recorded per step); after backward only
    LoRA parameters hold gradients, and some are non-zero."""
    objective = RewardBackprop(mode="editing", num_inference_steps=10, tau=0.6, backprop_steps=2, guidance_scale=2.0)
    grad_modes = []
    step = adapter.step

    def spy(latents, *args, **kwargs):
        grad_modes.append(torch.is_grad_enabled())
        return step(latents, *args, **kwargs)

    adapter.step = spy
    reward = RewardFunction([RewardTerm("brightness", 1.0, Brightness(Segmental(2, "random")))])
    clean = torch.randn(adapter.latent_shape(2), generator=torch.Generator().manual_seed(2))
    loss, details = objective.loss(
        adapter, reward, ["a cat", "a dog"], generator=torch.Generator().manual_seed(0), rng=np.random.default_rng(0),
        device=torch.device("cpu"), clean_latents=clean,
    )
    loss.backward()
    assert grad_modes == [False] * 4 + [True] * 2 and details["steps"] == 6
    named = dict(adapter.unet.named_parameters())
    with_grad = {name for name, parameter in named.items() if parameter.grad is not None}
    assert with_grad and all("lora_" in name for name in with_grad)
    assert sum(named[name].grad.abs().sum().item() for name in with_grad) > 0
    for module in (adapter.vae, adapter.text_encoder):
        assert all(parameter.grad is None for parameter in module.parameters())


def test_only_sampled_frames_are_decoded(adapter):
    """The VAE sees exactly B x S frames (spy on vae.decode), and they equal the full decode at those indices."""
    sizes = []
    decode = adapter.vae.decode
    adapter.vae.decode = lambda z, **kwargs: sizes.append(z.shape[0]) or decode(z, **kwargs)
    latents = torch.randn(adapter.latent_shape(2), generator=torch.Generator().manual_seed(1))
    reward = RewardFunction([RewardTerm("brightness", 1.0, Brightness(Segmental(4, "random")))])
    with torch.no_grad():
        rewards, details = reward(latents, adapter, ["a", "b"], np.random.default_rng(3))
        assert sizes == [2 * 4] and details["decoded_frames"] == 8
        indices = torch.tensor([Segmental(4, "random").indices(8, rng) for rng in [np.random.default_rng(3)] for _ in range(2)])
        full = adapter.decode_frames(latents, torch.arange(8).expand(2, -1))
    expected = torch.stack([full[row, indices[row]] for row in range(2)]).mean(dim=(1, 2, 3, 4))
    torch.testing.assert_close(rewards, expected, rtol=1e-5, atol=1e-6)


def test_temporal_offset_noise_shape():
    """noise = randn(b,c,f,h,w) + 0.1 * randn(b,c,f,1,1): recomputed from the same generator state."""
    shape = (2, 4, 8, 6, 5)
    noise = temporal_offset_noise(shape, 0.1, torch.Generator().manual_seed(7))
    generator = torch.Generator().manual_seed(7)
    base = torch.randn(shape, generator=generator)
    offset = torch.randn(2, 4, 8, 1, 1, generator=generator)
    assert noise.shape == shape
    torch.testing.assert_close(noise, base + 0.1 * offset)
    torch.testing.assert_close(noise - base, (0.1 * offset).expand(shape))  # constant over h, w


def test_overfit_brightness_rises(adapter):
    """Optimising mean brightness of the decoded frames with the LoRA raises it over a few dozen steps."""
    objective = RewardBackprop(mode="full_chain", num_inference_steps=2, backprop_steps=1, guidance_scale=1.0)
    reward = RewardFunction([RewardTerm("brightness", 1.0, Brightness(All()))])
    optimizer = torch.optim.AdamW([p for p in adapter.unet.parameters() if p.requires_grad], lr=3e-2)
    history = []
    for step in range(30):
        loss, details = objective.loss(adapter, reward, ["a cat"], generator=torch.Generator().manual_seed(step), rng=np.random.default_rng(step), device=torch.device("cpu"))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(details["rewards"].mean().item())
    assert np.mean(history[-5:]) > np.mean(history[:5]) + 0.005 and max(history[-5:]) > max(history[:5]), history
