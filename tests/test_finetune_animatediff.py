"""The AnimateDiff adapter (rewardkit.finetune.models.animatediff) on a tiny random AnimateDiffPipeline
saved with save_pretrained and loaded through the user's path (load_animatediff / the recipe), compared
with diffusers' own AnimateDiffPipeline sampling loop and DDIMScheduler, plus a 2-step CPU smoke run of
finetune/smoke-tiny-animatediff.toml whose LoRA reloads with diffusers' load_lora_weights."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardkit.finetune import finetune
from rewardkit.finetune.config import load_recipe
from rewardkit.finetune.lora import LORA_FILE, add_lora
from rewardkit.finetune.models import ddim_timesteps
from rewardkit.finetune.models.animatediff import AnimateDiffAdapter, load_animatediff
from rewardkit.finetune.objectives.reward_backprop import RewardBackprop, RewardFunction, RewardTerm
from rewardkit.testing.finetune import Brightness
from rewardkit.video.sampling import Segmental

RECIPE = Path(__file__).resolve().parents[1] / "finetune" / "smoke-tiny-animatediff.toml"
SIZE = {"num_frames": 8, "height": 16, "width": 16}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from rewardkit.testing.finetune import write_tiny_animatediff_pipeline

    return write_tiny_animatediff_pipeline(tmp_path_factory.mktemp("tiny-animatediff"))


@pytest.fixture()
def adapter(model_dir) -> AnimateDiffAdapter:
    model = load_animatediff(str(model_dir), **SIZE)
    add_lora(model.denoiser, 4, 4, ["to_q", "to_k", "to_v", "to_out.0"])
    return model




def test_recipe_selects_the_family():
    """The smoke recipe selects animatediff; an unknown family and a motion adapter on unet3d are errors."""
    recipe = load_recipe(RECIPE)
    assert (recipe.model.family, recipe.model.path, recipe.model.motion_adapter) == ("animatediff", "testing:tiny-animatediff", "")
    with pytest.raises(ValueError, match="'unet3d', 'animatediff'.*Did you mean 'animatediff'"):
        load_recipe(RECIPE, ["model.family=animatedif"])
    with pytest.raises(ValueError, match="motion_adapter is only read by model.family"):
        load_recipe(RECIPE, ["model.family=unet3d", "model.motion_adapter=guoyww/animatediff-motion-adapter-v1-5-2"])


def test_shapes_and_sampling_match_the_pipeline(model_dir):
    """Latents are [B, 4, F, h, w]; the UNet gets the text states once per frame; a 2-step CFG chain
    (D = 2, scale 3) of the adapter equals AnimateDiffPipeline(output_type="latent") from the same noise."""
    from diffusers import AnimateDiffPipeline

    model = load_animatediff(str(model_dir), **SIZE)
    assert model.latent_shape(2) == (2, 4, 8, 8, 8)
    conditioning = model.encode_prompts(["a cat", "a dog"], "blurry")
    positive = conditioning.positive["encoder_hidden_states"]
    assert positive.shape == conditioning.negative["encoder_hidden_states"].shape == (2, 77, 16)
    states = model.unet_text_states(positive)
    assert states.shape == (16, 77, 16) and torch.equal(states[8:], positive[1:].expand(8, -1, -1))
    noise = torch.randn(model.latent_shape(2), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert model.predict(noise, 501, conditioning, 3.0).shape == noise.shape
        ours = noise
        levels = model.schedule(2)
        for level, next_level in zip(levels[:-1], levels[1:], strict=True):
            ours = model.step(ours, level, next_level, conditioning, 3.0)
        pipe = AnimateDiffPipeline.from_pretrained(model_dir)
        theirs = pipe(
            ["a cat", "a dog"], negative_prompt=["blurry"] * 2, num_frames=8, height=16, width=16, num_inference_steps=2,
            guidance_scale=3.0, latents=noise.clone(), output_type="latent",
        ).frames
    assert model.schedule(2).tolist() == [*pipe.scheduler.timesteps.tolist(), -1] == [501, 1, -1]
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_partial_chain_and_gradients(adapter):
    """Editing (D = 20, tau = 0.6) starts at d(12) = 551 and runs 12 steps, the UNet3D adapter's map and
    diffusers' DDIM list (steps_offset 1); one step equals DDIMScheduler.step, including the last one to
    alpha = 1 (set_alpha_to_one); with K = 1 only the last step builds a graph and only LoRA gets grads."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(adapter.scheduler.config)
    scheduler.set_timesteps(20)
    objective = RewardBackprop(mode="editing", num_inference_steps=20, tau=0.6, backprop_steps=1, guidance_scale=1.0)
    assert objective.chain(adapter).tolist() == [*ddim_timesteps(20)[8:], -1] == [*scheduler.timesteps[8:].tolist(), -1]
    latents = torch.randn(adapter.latent_shape(1), generator=torch.Generator().manual_seed(0))
    conditioning = adapter.encode_prompts(["a cat"], guidance=False)
    with torch.no_grad():
        for timestep in (551, 1):
            eps = adapter.predict(latents, timestep, conditioning, 1.0)
            expected = scheduler.step(eps, timestep, latents, eta=0.0).prev_sample
            next_level = timestep - 50 if timestep > 1 else -1.0
            torch.testing.assert_close(adapter.step(latents, timestep, next_level, conditioning, 1.0), expected, rtol=1e-5, atol=1e-5)
    calls = []
    step = adapter.step
    adapter.step = lambda latents, level, *args, **kwargs: calls.append((int(level), torch.is_grad_enabled())) or step(latents, level, *args, **kwargs)
    reward = RewardFunction([RewardTerm("brightness", 1.0, Brightness(Segmental(2, "random")))])
    loss, details = objective.loss(
        adapter, reward, ["a cat"], generator=torch.Generator().manual_seed(0), rng=np.random.default_rng(0),
        device=torch.device("cpu"), clean_latents=torch.zeros(adapter.latent_shape(1)),
    )
    loss.backward()
    assert [t for t, _ in calls] == ddim_timesteps(20)[8:] and details["start_level"] == 551 and details["steps"] == 12
    assert [grad for _, grad in calls] == [False] * 11 + [True]
    with_grad = {name: p.grad for name, p in adapter.unet.named_parameters() if p.grad is not None}
    assert with_grad and all("lora_" in name for name in with_grad) and any(g.abs().sum() > 0 for g in with_grad.values())


def test_only_selected_frames_are_decoded(adapter):
    """The VAE sees exactly B x S frames (spy on vae.decode), equal to the full decode at those indices."""
    sizes = []
    decode = adapter.vae.decode
    adapter.vae.decode = lambda z, **kwargs: sizes.append(z.shape[0]) or decode(z, **kwargs)
    latents = torch.randn(adapter.latent_shape(2), generator=torch.Generator().manual_seed(1))
    indices = torch.tensor([[0, 3, 5], [7, 2, 2]])
    with torch.no_grad():
        chosen = adapter.decode_frames(latents, indices)
        assert sizes == [6] and chosen.shape == (2, 3, 3, 16, 16)
        full = adapter.decode_all(latents)
    torch.testing.assert_close(chosen, torch.stack([full[row, indices[row]] for row in range(2)]), rtol=1e-5, atol=1e-6)


def test_base_model_plus_motion_adapter(model_dir, tmp_path):
    """An SD folder (unet = UNet2DConditionModel) + a MotionAdapter folder give the same UNetMotionModel as
    the saved pipeline (same seed) and AnimateDiff's linear-beta DDIM; the SD folder alone is a clear error."""
    from rewardkit.testing.finetune import tiny_sd_unet_and_motion_adapter

    sd = tmp_path / "sd"
    for part in ("vae", "text_encoder", "tokenizer", "scheduler"):
        shutil.copytree(model_dir / part, sd / part)
    unet2d, motion = tiny_sd_unet_and_motion_adapter()
    unet2d.save_pretrained(sd / "unet")
    motion.save_pretrained(tmp_path / "motion")
    with pytest.raises(ValueError, match="set model.motion_adapter"):
        load_animatediff(str(sd), **SIZE)
    with pytest.raises(ValueError, match="leave model.motion_adapter empty"):
        load_animatediff(str(model_dir), motion_adapter=str(tmp_path / "motion"), **SIZE)
    composed = load_animatediff(str(sd), motion_adapter=str(tmp_path / "motion"), **SIZE)
    saved = load_animatediff(str(model_dir), **SIZE)
    assert composed.scheduler.config.beta_schedule == "linear" and composed.scheduler.config.steps_offset == 1
    latents = torch.randn(composed.latent_shape(1), generator=torch.Generator().manual_seed(2))
    conditioning = saved.encode_prompts(["a cat"], guidance=False)
    with torch.no_grad():
        torch.testing.assert_close(composed.predict(latents, 301, conditioning, 1.0), saved.predict(latents, 301, conditioning, 1.0))
    with pytest.raises(ValueError, match="motion_max_seq_length"):
        load_animatediff(str(model_dir), num_frames=40, height=16, width=16)


def test_missing_base_weights_offline_is_a_clear_error(tmp_path):
    """A Hub id that is not cached (tests are offline) and a missing folder are MissingWeightsErrors naming the fix."""
    from rewardkit.weights import MissingWeightsError

    with pytest.raises(MissingWeightsError, match="'nobody/no-such-animatediff': offline.*--set model.path="):
        load_animatediff("nobody/no-such-animatediff", **SIZE)
    with pytest.raises(MissingWeightsError, match="model.path .* is not a folder"):
        load_animatediff(str(tmp_path / "absent" / "model"), **SIZE)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, model_dir) -> Path:
    run = tmp_path_factory.mktemp("runs") / "animatediff"
    return finetune(RECIPE, [f'model.path="{model_dir}"', f'train.output_dir="{run}"', "train.progress=false"])


def test_smoke_run(smoke_run):
    """2 CPU steps of the smoke recipe: finite losses equal to 1 - reward, the LoRA's B (zero at init) moved."""
    from safetensors.torch import load_file

    with (smoke_run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == [1, 2]
    for row in rows:
        assert np.isfinite(float(row["loss"])) and abs(float(row["loss"]) - (1 - float(row["reward_mean"]))) < 1e-6
    lora = load_file(smoke_run / "lora" / LORA_FILE)
    up = [value for key, value in lora.items() if "lora_B" in key]
    assert up and max(value.abs().max().item() for value in up) > 0
    assert any(".motion_modules." in key for key in lora) and any(".attentions." in key for key in lora)
    assert (smoke_run / "samples" / "step-000002" / "00.mp4").exists()


def test_lora_loads_with_diffusers_load_lora_weights(smoke_run, model_dir):
    """UNetMotionModel is PEFT-backed: AnimateDiffPipeline.load_lora_weights reads the run's LoRA file with
    the trained values; its UNet output equals rewardkit's own loader's, differs from the base, and
    fuse_lora (merged weights) gives the same output."""
    from diffusers import AnimateDiffPipeline
    from safetensors.torch import load_file

    from rewardkit.finetune.lora import load_lora_into_pipeline

    pipe = AnimateDiffPipeline.from_pretrained(model_dir)
    sample = torch.randn(1, 4, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    states = torch.randn(8, 77, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        base = pipe.unet(sample, 501, encoder_hidden_states=states).sample
        pipe.load_lora_weights(smoke_run / "lora", adapter_name="reward")
        loaded = {name: p for name, p in pipe.unet.named_parameters() if "lora_" in name}
        saved = load_file(smoke_run / "lora" / LORA_FILE)
        assert len(loaded) == len(saved)
        for key, value in saved.items():
            name = key.removeprefix("unet.").replace(".weight", ".reward.weight")
            torch.testing.assert_close(loaded[name].detach(), value)
        with_lora = pipe.unet(sample, 501, encoder_hidden_states=states).sample
        ours = load_lora_into_pipeline(AnimateDiffPipeline.from_pretrained(model_dir), smoke_run / "lora")
        torch.testing.assert_close(with_lora, ours.unet(sample, 501, encoder_hidden_states=states).sample, rtol=1e-5, atol=1e-6)
        pipe.fuse_lora()
        pipe.unload_lora_weights()
        fused = pipe.unet(sample, 501, encoder_hidden_states=states).sample
    assert not torch.allclose(with_lora, base)
    torch.testing.assert_close(fused, with_lora, rtol=1e-4, atol=1e-5)
