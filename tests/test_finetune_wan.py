"""Wan 2.1, the flow-matching family (rewardkit.finetune.models.flow / .wan), on a tiny random WanPipeline
saved with save_pretrained (rewardkit.testing.wan) and loaded through the user's path.

Compared against: diffusers' schedulers (their ``sigmas`` and ``scale_noise``), diffusers' own WanPipeline
sampling loop (same latents, same prompts), the AutoencoderKLWan decoding the whole video, the exact
velocity of a straight path and of a 1-D Gaussian (REFERENCE §4's SDE sanity value), and hand values.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardkit.finetune.models.base import classifier_free_guidance
from rewardkit.finetune.models.flow import (
    flow_add_noise,
    flow_euler_step,
    flow_sde_step,
    flow_sigmas,
    flow_target,
    logit_normal_levels,
)
from rewardkit.testing.wan import TINY_WAN, WAN_SCHEDULER
from tests.distributed import torchrun_each

SIZE = {key: TINY_WAN[key] for key in ("num_frames", "height", "width")}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from rewardkit.testing.wan import write_tiny_wan_pipeline

    return write_tiny_wan_pipeline(tmp_path_factory.mktemp("tiny-wan"))


@pytest.fixture(scope="module")
def adapter(model_dir):
    from rewardkit.finetune.models.wan import load_wan

    return load_wan(str(model_dir), **SIZE)


# ------------------------------------------------------------------------------------ flow conventions


@pytest.mark.parametrize("num_steps", [4, 20, 50])
def test_schedules_equal_the_named_schedulers_sigmas(num_steps):
    """flow_sigmas equals diffusers' own ``sigmas`` after ``set_timesteps`` for UniPC with Wan's shipped
    settings and FlowMatchEuler with shift 3 (UniPC nudges its first sigma to 1 - 1e-6; ours is 1)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    unipc = UniPCMultistepScheduler(**WAN_SCHEDULER)
    unipc.set_timesteps(num_steps)
    euler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    euler.set_timesteps(num_steps)
    torch.testing.assert_close(flow_sigmas(num_steps, "unipc", 3.0).float(), unipc.sigmas, rtol=0, atol=2e-6)
    torch.testing.assert_close(flow_sigmas(num_steps, "flow_match_euler", 3.0).float(), euler.sigmas, rtol=0, atol=1e-6)


def test_four_step_schedules_hand_values():
    """REFERENCE §4: UniPC (Wan's default, shift 3) [1, 0.9001, 0.7504, 0.501, 0]; FlowMatchEuler(shift 3)
    [1, 0.8577, 0.6022, 0.0089, 0]."""
    torch.testing.assert_close(flow_sigmas(4, "unipc", 3.0), torch.tensor([1, 0.9001, 0.7504, 0.501, 0], dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(
        flow_sigmas(4, "flow_match_euler", 3.0), torch.tensor([1, 0.8577, 0.6022, 0.0089, 0], dtype=torch.float64), atol=1e-4, rtol=0
    )
    with pytest.raises(ValueError, match="unknown flow scheduler"):
        flow_sigmas(4, "ddim")


def test_add_noise_equals_scale_noise():
    """(1 - s) x0 + s n equals FlowMatchEulerDiscreteScheduler.scale_noise at its own timesteps, one level per row."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.set_timesteps(10)
    generator = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 4, 2, 3, 3, generator=generator), torch.randn(3, 4, 2, 3, 3, generator=generator)
    picks = torch.tensor([0, 4, 9])
    expected = scheduler.scale_noise(x0, scheduler.timesteps[picks], noise)
    torch.testing.assert_close(flow_add_noise(x0, noise, scheduler.sigmas[picks]), expected)


def test_target_is_the_path_velocity_and_euler_lands_on_the_path():
    """x_s is linear in s with slope n - x0 (x_{s + h} - x_s = h (n - x0)); an Euler step with that
    velocity from x_s to any next level (per row, shifted levels) gives exactly x_{s_next}."""
    generator = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(2, 4, 3, 2, 2, generator=generator), torch.randn(2, 4, 3, 2, 2, generator=generator)
    level = torch.tensor([0.9001, 0.4], dtype=torch.float64)
    path = flow_add_noise(x0, noise, level)
    slope = (flow_add_noise(x0, noise, level - 0.25) - path) / -0.25
    torch.testing.assert_close(slope, flow_target(x0, noise), rtol=1e-5, atol=1e-5)
    next_level = torch.tensor([0.7504, 0.0], dtype=torch.float64)
    landed = flow_euler_step(path, flow_target(x0, noise), level, next_level)
    torch.testing.assert_close(landed, flow_add_noise(x0, noise, next_level))


def test_sde_step_hand_values_and_noise_level_zero():
    """sigma_t = a sqrt(s / (1 - s)): s 0.5 -> 0.4, a 0.7 gives std 0.7 sqrt(0.1); at s = 1 the next level
    replaces s under the denominator (flow_grpo's sigmas[1]): 1 -> 0.9 gives 0.7 sqrt(1 / 0.1) sqrt(0.1) = 0.7.
    Noise level 0 is the Euler step; a given prev_sample is returned with the same mean and std."""
    generator = torch.Generator().manual_seed(2)
    x, v = torch.randn(2, 3, 4, generator=generator), torch.randn(2, 3, 4, generator=generator)
    levels, next_levels = torch.tensor([0.5, 1.0]), torch.tensor([0.4, 0.9])
    _, mean, std = flow_sde_step(x, v, levels, next_levels, noise_level=0.7, generator=generator)
    torch.testing.assert_close(std.flatten(), torch.tensor([0.7 * math.sqrt(0.1), 0.7]))
    # mean = x + [v + sigma_t^2 / (2 s) (x + (1 - s) v)] dt, row 0 by hand: sigma_t^2 = 0.49, dt = -0.1
    torch.testing.assert_close(mean[0], x[0] + (v[0] + 0.49 / 1.0 * (x[0] + 0.5 * v[0])) * -0.1)
    euler, euler_mean, zero = flow_sde_step(x, v, levels, next_levels, noise_level=0.0)
    torch.testing.assert_close(euler, flow_euler_step(x, v, levels, next_levels))
    torch.testing.assert_close(euler_mean, euler)
    assert zero.abs().max() == 0
    given = torch.randn(2, 3, 4, generator=generator)
    again, again_mean, again_std = flow_sde_step(x, v, levels, next_levels, noise_level=0.7, prev_sample=given)
    assert again is given
    torch.testing.assert_close((again_mean, again_std), (mean, std))
    with pytest.raises(ValueError, match="less noise"):
        flow_sde_step(x, v, 0.4, 0.5, noise_level=0.7)


def test_sde_sampler_keeps_the_marginals_on_a_gaussian():
    """REFERENCE §4's sanity check: x0 ~ N(0, 0.5^2), the exact velocity E[n - x0 | x_s] of the straight
    path, 200 SDE steps with a = 0.7 from N(0, 1): the final std is 0.50 (a flipped correction term gives
    ~4.1, none ~1.08, so 0.50 +- 0.01 checks the correction's sign and size)."""
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(200_000, 1, generator=generator)
    levels = torch.linspace(1, 0, 201)
    for s, s_next in zip(levels[:-1], levels[1:], strict=True):
        variance = (1 - s) ** 2 * 0.25 + s**2
        velocity = (s - (1 - s) * 0.25) / variance * x  # E[n - x0 | x_s] for Gaussian x0 and n
        x, _, _ = flow_sde_step(x, velocity, float(s), float(s_next), noise_level=0.7, generator=generator)
    assert abs(x.std().item() - 0.50) < 0.01


def test_logit_normal_training_levels():
    """sigmoid(N(0, 1)): every level in (0, 1), logit(levels) has mean 0 and std 1 (100k draws), seeded."""
    levels = logit_normal_levels(100_000, torch.Generator().manual_seed(4))
    assert levels.min() > 0 and levels.max() < 1
    logits = torch.logit(levels.double())
    assert abs(logits.mean().item()) < 0.02 and abs(logits.std().item() - 1) < 0.02
    torch.testing.assert_close(logit_normal_levels(100_000, torch.Generator().manual_seed(4)), levels)


def test_guidance_hand_value():
    """v_u + w (v_c - v_u): v_u 1, v_c 3, w 5 -> 11."""
    assert classifier_free_guidance(torch.tensor(1.0), torch.tensor(3.0), 5.0).item() == 11.0


# ------------------------------------------------------------------------------------ the Wan adapter


def test_loads_through_the_family_registry_and_testing_path(tmp_path, monkeypatch):
    """``family = "wan"`` with ``path = "testing:tiny-wan"`` writes the tiny pipeline into the rewardkit
    cache and loads it (the smoke recipes' path): UMT5 encoder, AutoTokenizer-loaded T5 tokenizer,
    UniPC scheduler with Wan's flow shift 3, latent shape (B, 16, (F - 1) / 4 + 1, H / 8, W / 8)."""
    from transformers import UMT5EncoderModel

    from rewardkit.finetune.config import ModelConfig
    from rewardkit.finetune.models import load_model

    monkeypatch.setenv("REWARDKIT_CACHE", str(tmp_path))
    model = load_model(ModelConfig(family="wan", path="testing:tiny-wan", **SIZE))
    assert model.family == "wan" and model.lora_prefix == "transformer"
    assert isinstance(model.text_encoder, UMT5EncoderModel) and (tmp_path / "tiny-wan" / "model_index.json").is_file()
    assert (model.scheduler_name, model.shift) == ("unipc", 3.0)
    assert model.latent_shape(2) == (2, 16, 3, 4, 4)
    torch.testing.assert_close(model.schedule(4), flow_sigmas(4, "unipc", 3.0))


def test_missing_base_weights_offline_is_a_clear_error(tmp_path):
    """The real Hub id, not cached (tests are offline), and a missing folder are MissingWeightsErrors naming the fix."""
    from rewardkit.finetune.models.wan import load_wan
    from rewardkit.weights import MissingWeightsError

    with pytest.raises(MissingWeightsError, match="'Wan-AI/Wan2.1-T2V-1.3B-Diffusers': offline.*--set model.path="):
        load_wan("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", **SIZE)
    with pytest.raises(MissingWeightsError, match="model.path .* is not a folder"):
        load_wan(str(tmp_path / "absent" / "wan"), **SIZE)


@pytest.mark.parametrize(
    ("sizes", "message"),
    [({"num_frames": 8}, r"4k \+ 1 frames.*use 5"), ({"height": 40}, "multiples of 16"), ({"width": 24}, "multiples of 16")],
)
def test_sizes_are_checked(model_dir, sizes, message):
    """Frames 4k + 1 (causal VAE) and sizes multiple of 16 (VAE x8, patch 2): clear errors with a fix."""
    from rewardkit.finetune.models.wan import load_wan

    with pytest.raises(ValueError, match=message):
        load_wan(str(model_dir), **(SIZE | sizes))


def test_prompts_are_encoded_as_the_pipeline_does(adapter, model_dir):
    """Conditioning = WanPipeline.encode_prompt's states as the transformer's keyword arguments: UMT5 states
    padded to 512 with zeros past each prompt's tokens; the negative prompt's only with guidance."""
    conditioning = adapter.encode_prompts(["a red car", "a cat on the beach at night"], negative_prompt="dark")
    states = conditioning.positive["encoder_hidden_states"]
    assert states.shape == (2, 512, TINY_WAN["text_width"])
    tokens = adapter.tokenizer(["a red car", "a cat on the beach at night"]).attention_mask
    for row, mask in enumerate(tokens):
        assert states[row, : len(mask)].abs().sum(-1).min() > 0 and states[row, len(mask):].abs().max() == 0
    assert conditioning.negative["encoder_hidden_states"].shape == states.shape
    assert adapter.encode_prompts(["a cat"], guidance=False).negative is None


def test_predict_feeds_timestep_1000_s_and_guides_in_velocity_space(adapter):
    """predict(x, s, c, w) = v_u + w (v_c - v_u) with v = transformer(x, timestep=1000 s, **c), per-row levels."""
    conditioning = adapter.encode_prompts(["a red car", "a dog"], negative_prompt="dark")
    x = torch.randn(adapter.latent_shape(2), generator=torch.Generator().manual_seed(5))
    level = torch.tensor([0.9001, 0.25], dtype=torch.float64)
    with torch.no_grad():
        run = lambda states: adapter.transformer(x, torch.tensor([900.1, 250.0]), encoder_hidden_states=states).sample  # noqa: E731
        conditional = run(conditioning.positive["encoder_hidden_states"])
        unconditional = run(conditioning.negative["encoder_hidden_states"])
        torch.testing.assert_close(adapter.predict(x, level, conditioning, 1.0), conditional)
        torch.testing.assert_close(adapter.predict(x, level, conditioning, 5.0), unconditional + 5.0 * (conditional - unconditional))


def test_sampling_equals_wan_pipeline(adapter, model_dir):
    """The adapter's Euler chain (schedule + step, CFG 5, a negative prompt) from the same initial latents
    gives diffusers' WanPipeline latents when the pipeline runs FlowMatchEuler (an Euler sampler on the
    same shifted sigmas, timestep 1000 s)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline

    from rewardkit.finetune.models.wan import WanAdapter

    pipe = WanPipeline.from_pretrained(model_dir)
    pipe.scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    model = WanAdapter(pipe.transformer, pipe.vae, pipe.text_encoder, pipe.tokenizer, pipe.scheduler, **SIZE)
    prompts = ["a red car", "a cat"]
    start = torch.randn(model.latent_shape(2), generator=torch.Generator().manual_seed(6))
    expected = pipe(prompts, negative_prompt="dark", num_inference_steps=4, guidance_scale=5.0, latents=start.clone(), output_type="latent",
                    **SIZE).frames
    conditioning = model.encode_prompts(prompts, negative_prompt="dark")
    levels, x = model.schedule(4), start
    with torch.no_grad():
        for level, next_level in zip(levels[:-1], levels[1:], strict=True):
            x = model.step(x, level, next_level, conditioning, 5.0)
    torch.testing.assert_close(x, expected, rtol=1e-4, atol=1e-4)


def test_decode_frames_decodes_the_smallest_causal_window(adapter, monkeypatch):
    """Pixel frame j needs latent frames 0..ceil(j / 4): frames [0, 3] decode 2 latent frames, [5, 8] and
    [8] 3; the frames equal decoding the whole video with AutoencoderKLWan and selecting them."""
    from rewardkit.finetune.models.wan import latent_window

    assert [latent_window(j) for j in (0, 1, 4, 5, 8, 32)] == [1, 2, 2, 3, 3, 9]
    latents = torch.randn(adapter.latent_shape(3), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        everything = adapter.decode_all(latents)
        calls = []
        decode = adapter.vae.decode
        monkeypatch.setattr(adapter.vae, "decode", lambda z, **kwargs: calls.append(tuple(z.shape)) or decode(z, **kwargs))
        indices = torch.tensor([[0, 3], [5, 8], [8, 2]])
        frames = adapter.decode_frames(latents, indices)
    assert everything.shape == (3, 9, 3, 32, 32)
    assert sorted(call[0:3:2] for call in calls) == [(1, 2), (2, 3)]
    torch.testing.assert_close(frames, torch.stack([everything[row, indices[row]] for row in range(3)]), rtol=0, atol=1e-5)


def test_encode_videos_round_trip_and_checks(adapter):
    """encode_videos normalises the VAE's posterior mean with latents_mean / latents_std, decode_frames undoes
    it: re-encoding decoded frames gives latents the same shape, and the normalisation matches the
    pipeline's (latents / (1 / std) + mean before vae.decode). Wrong frame counts / sizes are clear errors."""
    videos = torch.rand(2, 9, 3, 32, 32, generator=torch.Generator().manual_seed(8))
    latents = adapter.encode_videos(videos)
    assert latents.shape == adapter.latent_shape(2)
    with torch.no_grad():
        mu = adapter.vae.encode(videos.permute(0, 2, 1, 3, 4) * 2 - 1).latent_dist.mean
    mean = torch.tensor(adapter.vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(adapter.vae.config.latents_std).view(1, -1, 1, 1, 1)
    torch.testing.assert_close(latents / (1.0 / std) + mean, mu, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"4k \+ 1 frames; got 8"):
        adapter.encode_videos(videos[:, :8])
    with pytest.raises(ValueError, match="multiples of 16"):
        adapter.encode_videos(videos[..., :24])


def test_reference_is_the_base_transformer_without_gradients(model_dir):
    """Within reference() the LoRA'd transformer (LoRA B moved off zero) gives the base model's output (a
    freshly loaded transformer) and builds no graph; outside it the LoRA is back and trainable."""
    from rewardkit.finetune.lora import add_lora, lora_parameters
    from rewardkit.finetune.models.wan import load_wan

    base = load_wan(str(model_dir), **SIZE)
    model = load_wan(str(model_dir), **SIZE)
    add_lora(model.denoiser, 4, 8, ["to_q", "to_k", "to_v", "to_out.0"])
    with torch.no_grad():
        for parameter in lora_parameters(model.denoiser):
            parameter.add_(0.05 * torch.randn_like(parameter))
    conditioning = base.encode_prompts(["a red car"], guidance=False)
    x = torch.randn(base.latent_shape(1), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        expected = base.predict(x, 0.6, conditioning)
    with model.reference():
        reference = model.predict(x, 0.6, conditioning)
    assert not reference.requires_grad
    torch.testing.assert_close(reference, expected)
    adapted = model.predict(x, 0.6, conditioning)
    assert adapted.requires_grad and not torch.allclose(adapted, expected)
    assert all(parameter.requires_grad for parameter in lora_parameters(model.denoiser))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, model_dir) -> Path:
    from rewardkit.finetune import finetune

    run = tmp_path_factory.mktemp("runs") / "wan"
    recipe = Path(__file__).resolve().parents[1] / "finetune" / "smoke-tiny-wan.toml"
    return finetune(recipe, [f'model.path="{model_dir}"', f'train.output_dir="{run}"', "train.progress=false"])


def test_editing_smoke_run(smoke_run):
    """2 CPU steps of InstructVideo-style editing on tiny Wan (finetune/smoke-tiny-wan.toml): finite losses
    equal to 1 - reward, the LoRA (B zero at init) moved, samples written at the last step."""
    import csv

    from safetensors.torch import load_file

    from rewardkit.finetune.lora import LORA_FILE

    with (smoke_run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == [1, 2]
    for row in rows:
        assert math.isfinite(float(row["loss"])) and abs(float(row["loss"]) - (1 - float(row["reward_mean"]))) < 1e-6
    lora = load_file(smoke_run / "lora" / LORA_FILE)
    assert all(key.startswith("transformer.blocks.") for key in lora)
    assert max(value.abs().max().item() for key, value in lora.items() if "lora_B" in key) > 0
    assert (smoke_run / "samples" / "step-000002" / "00.mp4").exists()


def test_lora_loads_with_wan_pipeline_load_lora_weights(smoke_run, model_dir):
    """WanPipeline.load_lora_weights reads the run's LoRA file (keys ``transformer.*``, alpha 8 != rank 4
    from the file's metadata): the loaded values are the saved ones and the transformer's output equals
    rewardkit's own LoRA'd adapter's, differs from the base, and survives fuse_lora."""
    from diffusers import WanPipeline
    from safetensors.torch import load_file

    from rewardkit.finetune.lora import LORA_FILE, add_lora
    from rewardkit.finetune.models.wan import load_wan

    pipe = WanPipeline.from_pretrained(model_dir)
    sample = torch.randn(1, 16, 3, 4, 4, generator=torch.Generator().manual_seed(10))
    states = torch.randn(1, 512, TINY_WAN["text_width"], generator=torch.Generator().manual_seed(11))
    timestep = torch.tensor([600.0])
    saved = load_file(smoke_run / "lora" / LORA_FILE)
    ours = load_wan(str(model_dir), **SIZE)
    add_lora(ours.denoiser, 4, 8, ["to_q", "to_k", "to_v", "to_out.0"])
    state = {name: value for name, value in ours.denoiser.state_dict().items() if "lora_" in name}
    for key, value in saved.items():
        state[key.removeprefix("transformer.").replace(".weight", ".default.weight")] = value
    ours.denoiser.load_state_dict(state, strict=False)
    with torch.no_grad():
        base = pipe.transformer(sample, timestep, encoder_hidden_states=states).sample
        pipe.load_lora_weights(smoke_run / "lora", adapter_name="reward")
        loaded = {name: p for name, p in pipe.transformer.named_parameters() if "lora_" in name}
        assert len(loaded) == len(saved)
        for key, value in saved.items():
            torch.testing.assert_close(loaded[key.removeprefix("transformer.").replace(".weight", ".reward.weight")].detach(), value)
        with_lora = pipe.transformer(sample, timestep, encoder_hidden_states=states).sample
        expected = ours.denoiser(sample, timestep, encoder_hidden_states=states).sample
        pipe.fuse_lora()
        pipe.unload_lora_weights()
        fused = pipe.transformer(sample, timestep, encoder_hidden_states=states).sample
    assert not torch.allclose(with_lora, base)
    torch.testing.assert_close(with_lora, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused, with_lora, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------ flow-family learning checks
#
# The tiny VAE is random, so pixel brightness does not survive its encoder (bright and dark clips encode to
# nearly the same latents). "Bright" is therefore defined through the decoder itself: the direction d of
# the gradient of the decoded videos' mean brightness, averaged over 8 random latents. Bright latents are
# +0.5 d + noise, dark ones -0.5 d + noise (d of unit RMS, noise std 0.5); the data check below confirms they decode brighter / darker. A model that learns
# the preference (or the reward weighting) moves its samples along d, which the decoder shows as brighter
# videos; a model that does not learn (e.g. learning rate 0) keeps inside = 0 (accuracy 0) and the same
# samples, and fails both checks.


def _brightness(adapter, latents: torch.Tensor) -> torch.Tensor:
    """Mean decoded pixel value per video (what the reward of the checks measures)."""
    with torch.no_grad():
        return adapter.decode_all(latents).mean(dim=(1, 2, 3, 4))


def _bright_dark_latents(adapter, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    points = torch.randn((8, *adapter.latent_shape(1)[1:]), generator=generator).requires_grad_(True)
    adapter.decode_all(points).mean().backward()
    direction = points.grad.mean(0, keepdim=True)
    direction = direction / direction.pow(2).mean().sqrt()
    noise = lambda: 0.5 * torch.randn(adapter.latent_shape(count), generator=generator)  # noqa: E731
    return 0.5 * direction + noise(), -0.5 * direction + noise()


def _objective(name: str, adapter, overrides: list[str]):
    """The registered objective built from the Wan smoke recipe of ``name`` (with LoRA on the adapter)."""
    from rewardkit.finetune.config import load_recipe
    from rewardkit.finetune.lora import add_lora
    from rewardkit.finetune.objectives import get_objective

    sizes = [f"model.{key}={value}" for key, value in SIZE.items()]
    recipe = load_recipe(Path(__file__).resolve().parents[1] / "finetune" / f"smoke-tiny-wan-{name}.toml", sizes + overrides)
    add_lora(adapter.denoiser, recipe.lora.rank, recipe.lora.alpha, recipe.lora.target_modules)
    return get_objective(name)(recipe, adapter, None, torch.device("cpu")), recipe


def _sample_brightness(objective, prompts: list[str]) -> float:
    return _brightness(objective.adapter, objective.sample(prompts, torch.Generator().manual_seed(123))).mean().item()


def _train(objective, batches, learning_rate: float, steps: int) -> None:
    from rewardkit.finetune.lora import lora_parameters

    optimizer = torch.optim.AdamW(lora_parameters(objective.adapter.denoiser), lr=learning_rate, weight_decay=0.0)
    generator, rng = torch.Generator().manual_seed(0), np.random.default_rng(0)
    for step in range(steps):
        loss, _ = objective.loss(batches(step), generator, rng)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


@pytest.fixture(scope="module")
def mixture_model_dir(model_dir, tmp_path_factory) -> Path:
    """The tiny pipeline after 150 steps of plain flow matching (all transformer weights, AdamW 2e-3,
    batch 16) on an even mixture of bright and dark latents, so that its samples, like a real base
    model's, are a mixture the preference objectives can shift (a random transformer's samples are far
    from any data). Saved with save_pretrained next to a copy of the other components."""
    import shutil

    from rewardkit.finetune.models.wan import load_wan

    folder = tmp_path_factory.mktemp("tiny-wan-mixture") / "model"
    shutil.copytree(model_dir, folder)
    adapter = load_wan(str(folder), **SIZE)
    bright, dark = _bright_dark_latents(adapter, 32, seed=20)
    data = torch.cat([bright, dark])
    conditioning = adapter.encode_prompts(["a cat"] * 16, guidance=False)
    adapter.transformer.requires_grad_(True)
    optimizer = torch.optim.AdamW(adapter.transformer.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(150):
        x0 = data[torch.randint(0, 64, (16,), generator=generator)]
        noise, levels = torch.randn(x0.shape, generator=generator), adapter.sample_training_levels(16, generator)
        prediction = adapter.predict(adapter.add_noise(x0, noise, levels), levels, conditioning)
        (prediction - adapter.target(x0, noise, levels)).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    adapter.transformer.save_pretrained(folder / "transformer")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("learning_rate", [1e-3, 0.0])
def test_flow_dpo_learns_bright_over_dark(mixture_model_dir, learning_rate):
    """Flow-DPO (objective "dpo" on the flow family: target n - x0, logit-normal sigma, reference = LoRA
    off, beta 100) from the mixture model on 16 bright-vs-dark pairs of the same mixture: held-out pairs' implicit accuracy (inside > 0 on 16 new
    pairs, 4 noise draws) above 0.5 and the samples' decoded brightness up. At learning rate 0 (a model
    that does not learn) both checks must fail."""
    from rewardkit.finetune.models.wan import load_wan
    from rewardkit.finetune.objectives.losses import dpo_inside

    adapter = load_wan(str(mixture_model_dir), **SIZE)
    bright, dark = _bright_dark_latents(adapter, 32, seed=20)
    assert bool((_brightness(adapter, bright) > _brightness(adapter, dark)).all())  # the data are what they claim
    objective, _ = _objective("dpo", adapter, ["objective.beta=100.0"])
    prompts = ["a cat", "a red car", "the beach at night", "a dog"]
    for index in range(32):
        objective.cache.latents[f"bright-{index}"] = bright[index]
        objective.cache.latents[f"dark-{index}"] = dark[index]

    def pairs(indices) -> dict:
        return {"chosen_path": [f"bright-{i}" for i in indices], "rejected_path": [f"dark-{i}" for i in indices],
                "prompts": [prompts[i % 4] for i in indices]}

    def held_out_accuracy() -> float:
        generator, inside = torch.Generator().manual_seed(99), []
        with torch.no_grad():
            for _ in range(4):
                errors = objective.pair_errors(pairs(range(16, 32)), generator)
                inside.append(dpo_inside(errors["policy_w"], errors["ref_w"], errors["policy_l"], errors["ref_l"], errors["beta"]))
        return (torch.cat(inside) > 0).float().mean().item()

    before = _sample_brightness(objective, prompts)
    _train(objective, lambda step: pairs([(4 * step + k) % 16 for k in range(4)]), learning_rate, steps=40)
    accuracy, after = held_out_accuracy(), _sample_brightness(objective, prompts)
    learned = accuracy > 0.5 and after > before + 0.002
    assert learned == (learning_rate > 0), f"held-out implicit accuracy {accuracy:.3f}, sample brightness {before:.4f} -> {after:.4f}"


@pytest.mark.slow
@pytest.mark.parametrize("learning_rate", [1e-3, 0.0])
def test_flow_rwr_raises_brightness(mixture_model_dir, learning_rate):
    """Flow-RWR (objective "rwr", exp weights softmax(r / 0.01) within the batch) from the mixture model on
    16 bright and 16 dark latents with their decoded brightness as the reward: the samples' decoded brightness rises; at
    learning rate 0 it does not."""
    from rewardkit.finetune.models.wan import load_wan

    adapter = load_wan(str(mixture_model_dir), **SIZE)
    bright, dark = _bright_dark_latents(adapter, 16, seed=21)
    latents = torch.cat([bright, dark])
    rewards = _brightness(adapter, latents)
    objective, _ = _objective("rwr", adapter, ["objective.temperature=0.01", "objective.variant=\"exp\""])
    prompts = ["a cat", "a red car", "the beach at night", "a dog"]
    for index in range(32):
        objective.cache.latents[f"clip-{index}"] = latents[index]
    order = torch.randperm(32, generator=torch.Generator().manual_seed(5)).tolist()

    def batch(step: int) -> dict:
        rows = [order[(8 * step + k) % 32] for k in range(8)]
        return {"path": [f"clip-{i}" for i in rows], "prompts": [prompts[i % 4] for i in rows], "reward": rewards[rows]}

    before = _sample_brightness(objective, prompts)
    _train(objective, batch, learning_rate, steps=40)
    after = _sample_brightness(objective, prompts)
    assert (after > before + 0.002) == (learning_rate > 0), f"sample brightness {before:.4f} -> {after:.4f}"


# ------------------------------------------------------------------------------------ Wan recipes


RECIPES = Path(__file__).resolve().parents[1] / "finetune"


def _metrics(run: Path) -> list[dict]:
    import csv

    with (run / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["smoke-tiny-wan-dpo", "smoke-tiny-wan-rwr"])
def test_wan_smoke_recipes(recipe, model_dir, tmp_path, monkeypatch):
    """Flow-DPO and Flow-RWR smoke recipes on tiny Wan (testing:bright-dark data written into a fresh
    cache): finite losses; Flow-DPO starts at ln 2 with implicit accuracy 0 (LoRA B is zero: policy =
    reference, an independent check of reference()); the LoRA moved; samples written at the last step."""
    from safetensors.torch import load_file

    from rewardkit.finetune import finetune

    monkeypatch.setenv("REWARDKIT_CACHE", str(tmp_path / "cache"))
    run = finetune(RECIPES / f"{recipe}.toml", [f'model.path="{model_dir}"', f'train.output_dir="{tmp_path / "run"}"', "train.progress=false"])
    rows = _metrics(run)
    assert [int(row["step"]) for row in rows] == [1, 2] and all(math.isfinite(float(row["loss"])) for row in rows)
    if "dpo" in recipe:
        assert float(rows[0]["loss"]) == pytest.approx(math.log(2), abs=1e-6) and float(rows[0]["implicit_acc"]) == 0.0
    up = [value for key, value in load_file(run / "lora" / "pytorch_lora_weights.safetensors").items() if "lora_B" in key]
    assert max(value.abs().max().item() for value in up) > 0
    assert (run / "samples" / "step-000002" / "00.mp4").exists()


def test_real_wan_recipes_load():
    """flow-dpo-wan, rwr-wan and instructvideo-wan read and check (before any model loads) with the
    settings their headers state."""
    from rewardkit.finetune.config import load_recipe

    dpo = load_recipe(RECIPES / "flow-dpo-wan.toml")
    assert (dpo.model.family, dpo.model.path) == ("wan", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers")
    assert (dpo.objective.name, dpo.objective.beta, dpo.objective.beta_schedule) == ("dpo", 100.0, "constant")
    assert (dpo.lora.rank, dpo.lora.alpha, dpo.train.learning_rate) == (32, 64.0, 3e-4)
    assert (dpo.model.num_frames - 1) % 4 == 0 and dpo.model.height % 16 == 0 and dpo.model.width % 16 == 0
    rwr = load_recipe(RECIPES / "rwr-wan.toml")
    assert (rwr.model.family, rwr.objective.name) == ("wan", "rwr")
    editing = load_recipe(RECIPES / "instructvideo-wan.toml")
    assert (editing.model.family, editing.objective.name, editing.objective.mode) == ("wan", "reward_backprop", "editing")


@pytest.mark.slow
def test_two_process_wan_runs_finish_with_samples_at_the_last_step(model_dir, tmp_path):
    """torchrun --nproc_per_node 2 (gloo on CPU) of each Wan smoke recipe (editing, Flow-DPO, Flow-RWR and
    the online GRPO and online DPO, in turn in one launch: tests/distributed.py's torchrun_each) with
    samples at the last step: both processes exit 0 within the timeout and each run's logged rows and
    samples exist; GRPO's ratio is exactly 1 on both processes (its groups span the two processes, the
    advantages come from the gathered rewards)."""
    import os
    import subprocess

    recipes = ["smoke-tiny-wan", "smoke-tiny-wan-dpo", "smoke-tiny-wan-rwr", "smoke-tiny-wan-grpo", "smoke-tiny-wan-online-dpo"]
    commands = [
        ["finetune", str(RECIPES / f"{recipe}.toml"), "--set", f'model.path="{model_dir}"', "--set", f'train.output_dir="{tmp_path / recipe}"',
         "--set", "train.progress=false", "--set", "train.max_steps=2", "--set", "train.sample_every=2", "--set", "train.batch_size=1"]
        for recipe in recipes
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "REWARDKIT_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(torchrun_each(commands), capture_output=True, text=True, timeout=1500, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    for recipe in recipes:
        rows = _metrics(tmp_path / recipe)
        assert [int(row["step"]) for row in rows] == [1, 2], recipe
        assert (tmp_path / recipe / "samples" / "step-000002" / "00.mp4").exists(), recipe
    assert all(float(row["ratio_max_deviation"]) == 0.0 for row in _metrics(tmp_path / "smoke-tiny-wan-grpo"))


@pytest.mark.slow
def test_wan_resume_skips_an_incomplete_checkpoint_and_reproduces_the_next_loss(model_dir, tmp_path, monkeypatch):
    """3 Flow-DPO steps on tiny Wan with a checkpoint every step; the step-3 checkpoint is then made
    incomplete (LoRA file truncated): resume warns, falls back to step 2 and reproduces the
    uninterrupted run's step-3 loss (the comparison is against that run, not a stored value)."""
    import shutil

    from rewardkit.finetune import finetune

    monkeypatch.setenv("REWARDKIT_CACHE", str(tmp_path / "cache"))
    common = [f'model.path="{model_dir}"', "train.progress=false", "train.sample_every=0", "train.checkpoint_every=1", "train.max_steps=3"]
    run = finetune(RECIPES / "smoke-tiny-wan-dpo.toml", [*common, f'train.output_dir="{tmp_path / "run"}"'])
    full = [float(row["loss"]) for row in _metrics(run)]
    checkpoint = run / "checkpoints" / "step-000003"
    lora_file = next(path for path in checkpoint.rglob("*.safetensors"))
    lora_file.write_bytes(lora_file.read_bytes()[:64])
    shutil.rmtree(run / "lora")
    with pytest.warns(UserWarning, match="skipping incomplete checkpoint .*step-000003"):
        finetune(resume=run, overrides=["train.progress=false"])
    resumed = [float(row["loss"]) for row in _metrics(run)]
    assert len(full) == 3 and resumed == pytest.approx(full, rel=1e-6, abs=1e-7)


@pytest.mark.slow
def test_gpu_benchmark_script_runs_tiny_on_cpu(tmp_path):
    """benchmarks/gpu/finetune_gpu.py (issue 9's GPU benchmark) with --tiny: the same code path on the tiny
    models on CPU writes its JSON with a finite step time and loss per case (DPO at theta = ref: ln 2)."""
    import importlib.util
    import json

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "finetune_gpu.py"
    spec = importlib.util.spec_from_file_location("finetune_gpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--tiny", "--families", "wan", "--steps", "1", "--out", str(tmp_path / "results.json")])
    cases = json.loads((tmp_path / "results.json").read_text())["families"]["wan"]["cases"]
    assert set(cases) == {"editing_b2", "dpo_b2", "rwr_b2"}
    assert all(math.isfinite(case["step_s"]) and math.isfinite(case["loss"]) for case in cases.values())
    assert cases["dpo_b2"]["loss"] == pytest.approx(math.log(2), abs=1e-3)
