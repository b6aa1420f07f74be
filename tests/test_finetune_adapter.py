"""The widened adapter interface on the epsilon families (UNet3D, AnimateDiff), tiny random pipelines
saved with save_pretrained and loaded through the family registry: noise levels, forward process and
targets against diffusers' DDIMScheduler, the stochastic DDIM step against DDIMScheduler.step with eta,
the LoRA-off reference against the base model loaded without LoRA, conditioning rows, gradient
checkpointing inside the UNet3D blocks, and the AnimateDiff final alpha from an SD 1.5 PNDM config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from rewardkit.finetune.config import ModelConfig
from rewardkit.finetune.lora import add_lora, lora_parameters
from rewardkit.finetune.models import Conditioning, get_family, load_model

SIZE = {"num_frames": 8, "height": 16, "width": 16}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    from rewardkit.testing.finetune import write_tiny_animatediff_pipeline, write_tiny_t2v_pipeline

    return {
        "unet3d": write_tiny_t2v_pipeline(tmp_path_factory.mktemp("tiny-t2v")),
        "animatediff": write_tiny_animatediff_pipeline(tmp_path_factory.mktemp("tiny-animatediff")),
    }


def _load(model_dirs, family: str, lora: bool = True):
    adapter = load_model(ModelConfig(family=family, path=str(model_dirs[family]), **SIZE))
    if lora:
        torch.manual_seed(0)  # peft's gaussian init of A
        add_lora(adapter.denoiser, 4, 4, ["to_q", "to_k", "to_v", "to_out.0"])
        with torch.no_grad():  # B starts at zero (LoRA = identity): make the LoRA change the output
            for parameter in lora_parameters(adapter.denoiser):
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(parameter.numel())))
    return adapter


def test_registry_names_and_errors():
    """Families are registered by name and built lazily; a typo is a ValueError with the close match."""
    assert get_family("unet3d").__module__ == "rewardkit.finetune.models.unet3d"
    with pytest.raises(ValueError, match="Did you mean 'animatediff'"):
        get_family("animatedif")


@pytest.mark.parametrize("family", ["unet3d", "animatediff"])
def test_reference_is_the_base_model_without_gradient(model_dirs, family):
    """Inside reference() the LoRA-adapted denoiser gives the output of the same base loaded WITHOUT LoRA
    (independent instance), and the output carries no gradient; outside, the LoRA acts again and its
    parameters are still trainable."""
    adapter, base = _load(model_dirs, family), _load(model_dirs, family, lora=False)
    x = torch.randn(adapter.latent_shape(2), generator=torch.Generator().manual_seed(0))
    conditioning = adapter.encode_prompts(["a cat", "a dog"], guidance=True)
    levels = torch.tensor([17.0, 640.0])
    with torch.no_grad():
        expected = base.predict(x, levels, conditioning, 3.0)
    with adapter.reference():
        reference = adapter.predict(x, levels, conditioning, 3.0)
    assert not reference.requires_grad
    torch.testing.assert_close(reference, expected, rtol=0, atol=0)
    policy = adapter.predict(x, levels, conditioning, 3.0)
    assert policy.requires_grad and (policy - expected).abs().max() > 1e-4
    assert all(parameter.requires_grad for parameter in lora_parameters(adapter.denoiser))


@pytest.mark.parametrize("family", ["unet3d", "animatediff"])
def test_levels_noise_and_targets_match_diffusers(model_dirs, family):
    """Per-sample levels: add_noise = DDIMScheduler.add_noise, the v target = get_velocity, the epsilon
    target is the noise; schedule(D) = the scheduler's timesteps + the final level -1; training levels are
    integers in [0, T)."""
    from diffusers import DDIMScheduler

    adapter = _load(model_dirs, family, lora=False)
    scheduler = DDIMScheduler.from_config(adapter.scheduler.config)
    scheduler.set_timesteps(5)
    assert adapter.schedule(5).tolist() == [*scheduler.timesteps.tolist(), -1.0]
    levels = adapter.sample_training_levels(64, torch.Generator().manual_seed(0))
    assert levels.shape == (64,) and torch.equal(levels, levels.round()) and 0 <= levels.min() and levels.max() < 1000
    x0 = torch.randn(adapter.latent_shape(3), generator=torch.Generator().manual_seed(1))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2))
    timesteps = torch.tensor([0, 401, 999])
    torch.testing.assert_close(adapter.add_noise(x0, noise, timesteps.double()), scheduler.add_noise(x0, noise, timesteps))
    assert torch.equal(adapter.target(x0, noise, timesteps.double()), noise)
    adapter.prediction_type = "v_prediction"
    torch.testing.assert_close(adapter.target(x0, noise, timesteps.double()), scheduler.get_velocity(x0, noise, timesteps))


def test_stochastic_ddim_step_matches_diffusers(model_dirs):
    """step(eta) and sde_step equal DDIMScheduler.step(eta=0.7, variance_noise) for the same noise, with
    per-sample levels; x_next = mean + std * noise; prev_sample is passed through."""
    from diffusers import DDIMScheduler

    adapter = _load(model_dirs, "unet3d")
    scheduler = DDIMScheduler.from_config(adapter.scheduler.config)
    scheduler.set_timesteps(20)
    x = torch.randn(adapter.latent_shape(1), generator=torch.Generator().manual_seed(0))
    conditioning = adapter.encode_prompts(["a cat"], guidance=False)
    with torch.no_grad():
        x_next, mean, std = adapter.sde_step(x, 551.0, 501.0, conditioning, 1.0, noise_level=0.7, generator=torch.Generator().manual_seed(5))
        eps = adapter.predict(x, 551.0, conditioning)
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
        expected = scheduler.step(eps, 551, x, eta=0.7, variance_noise=noise).prev_sample
        torch.testing.assert_close(x_next, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(x_next, mean + std * noise)
        assert std.flatten()[0] > 0
        again = adapter.step(x, 551.0, 501.0, conditioning, 1.0, eta=0.7, generator=torch.Generator().manual_seed(5))
        torch.testing.assert_close(again, expected, rtol=1e-5, atol=1e-5)
        assert adapter.sde_step(x, 551.0, 501.0, conditioning, 1.0, noise_level=0.7, prev_sample=x)[0] is x
        both = torch.cat([x, x])
        batched = adapter.step(both, torch.tensor([551.0, 51.0]), torch.tensor([501.0, 1.0]), conditioning.repeat(2), 1.0)
        torch.testing.assert_close(batched[:1], adapter.step(x, 551.0, 501.0, conditioning, 1.0))
        torch.testing.assert_close(batched[1:], adapter.step(x, 51.0, 1.0, conditioning, 1.0))


def test_conditioning_select_and_repeat():
    """Rows are picked from every keyword tensor; repeat tiles the batch; a missing negative stays None."""
    states = torch.arange(6.0).reshape(3, 2)
    conditioning = Conditioning({"encoder_hidden_states": states}, {"encoder_hidden_states": -states})
    picked = conditioning.select([2, 0])
    assert torch.equal(picked.positive["encoder_hidden_states"], states[[2, 0]])
    assert torch.equal(picked.negative["encoder_hidden_states"], -states[[2, 0]])
    tiled = Conditioning({"encoder_hidden_states": states}, None).repeat(2)
    assert torch.equal(tiled.positive["encoder_hidden_states"], torch.cat([states, states])) and tiled.negative is None


def test_unet3d_gradient_checkpointing_inside_blocks(model_dirs):
    """With checkpointing the LoRA gradients equal the plain ones, and the layers inside the UNet3D blocks
    run their forward again during backward (counted on a resnet's conv), while parameter names are unchanged."""
    plain, checkpointed = _load(model_dirs, "unet3d"), _load(model_dirs, "unet3d")
    names = [name for name, _ in checkpointed.denoiser.named_parameters()]
    checkpointed.enable_gradient_checkpointing()
    assert [name for name, _ in checkpointed.denoiser.named_parameters()] == names
    calls = []
    checkpointed.unet.down_blocks[0].resnets[0].conv1.register_forward_hook(lambda *args: calls.append(torch.is_grad_enabled()))
    x = torch.randn(plain.latent_shape(1), generator=torch.Generator().manual_seed(0))
    conditioning = plain.encode_prompts(["a cat"], guidance=False)
    grads = []
    for adapter in (plain, checkpointed):
        adapter.predict(x, 300.0, conditioning).square().mean().backward()
        grads.append([parameter.grad.clone() for parameter in lora_parameters(adapter.denoiser)])
    assert len(calls) == 2  # forward, then the recomputation in backward
    for ours, theirs in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-7)


def test_animatediff_from_sd15_pndm_config_ends_at_alpha_one(model_dirs, tmp_path):
    """An SD 1.5 base whose scheduler is SD's PNDMScheduler config (scaled_linear, set_alpha_to_one false,
    the runwayml/stable-diffusion-v1-5 scheduler_config.json values) + a MotionAdapter: the DDIM chain ends
    at alpha 1 (AnimateDiff's DDIM, diffusers' set_alpha_to_one default) on linear betas."""
    from rewardkit.testing.finetune import tiny_sd_unet_and_motion_adapter

    sd = tmp_path / "sd"
    for part in ("vae", "text_encoder", "tokenizer"):
        shutil.copytree(model_dirs["animatediff"] / part, sd / part)
    (sd / "scheduler").mkdir()
    (sd / "scheduler" / "scheduler_config.json").write_text(json.dumps({
        "_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
        "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
        "trained_betas": None, "clip_sample": False,
    }))
    unet2d, motion = tiny_sd_unet_and_motion_adapter()
    unet2d.save_pretrained(sd / "unet")
    motion.save_pretrained(tmp_path / "motion")
    adapter = load_model(ModelConfig(family="animatediff", path=str(sd), motion_adapter=str(tmp_path / "motion"), **SIZE))
    assert adapter.final_alpha == 1.0 and float(adapter.alphas(-1.0, 1)[0]) == 1.0
    linear = torch.cumprod(1 - torch.linspace(0.00085, 0.012, 1000, dtype=torch.float64), 0)
    torch.testing.assert_close(adapter.alphas_cumprod, linear, rtol=1e-6, atol=0)
