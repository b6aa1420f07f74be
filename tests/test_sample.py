"""`rewardkit sample` and reward guidance on the tiny random pipelines (ModelScope UNet3D layout and Wan 2.1
layout, written offline and loaded through the user's path via the smoke recipes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rewardkit.cli import main
from rewardkit.finetune.guidance import RewardGuidance, guided_step_indices
from rewardkit.finetune.objectives.losses import gaussian_log_prob
from rewardkit.finetune.objectives.reward_backprop import RewardFunction, RewardTerm
from rewardkit.finetune.sample import (
    load_sampler_model,
    read_prompts,
    sample_jobs,
    sample_latents,
    seeded_noise,
    video_stem,
)
from rewardkit.testing.finetune import Brightness
from rewardkit.video.sampling import Segmental
from tests.distributed import torchrun

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"unet3d": ROOT / "finetune" / "smoke-tiny.toml", "wan": ROOT / "finetune" / "smoke-tiny-wan.toml"}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module", params=["unet3d", "wan"])
def adapter(request):
    from rewardkit.finetune.models import load_model

    config, _ = load_sampler_model(str(RECIPES[request.param]))
    return load_model(config, "cpu")




def _frames(path: Path) -> np.ndarray:
    from rewardkit.video.io import read_frames

    return np.asarray(read_frames(str(path)))


# ------------------------------------------------------------------------------------------ the sampler step


def test_denoised_recomposes_the_step(adapter):
    """``denoised`` splits a prediction into (x0, n) with x = add_noise(x0, n, t), and add_noise(x0, n, t')
    is the adapter's own deterministic step (DDIM eta 0 / Euler, tested against diffusers elsewhere): the
    identity the guided step relies on, so guidance with W = 0 is exactly unguided sampling."""
    conditioning = adapter.encode_prompts(["a cat"], "", True)
    x = torch.randn(adapter.latent_shape(1), generator=torch.Generator().manual_seed(0))
    levels = adapter.schedule(4)
    for level, next_level in zip(levels[:-1], levels[1:], strict=True):
        with torch.no_grad():
            output = adapter.predict(x, level, conditioning, 3.0)
            clean, noise = adapter.denoised(x, level, output)
            torch.testing.assert_close(adapter.add_noise(clean, noise, level), x, rtol=1e-4, atol=1e-4)
            stepped = adapter.step(x, level, next_level, conditioning, 3.0)
            torch.testing.assert_close(adapter.add_noise(clean, noise, next_level), stepped, rtol=1e-4, atol=1e-4)
            x = stepped


def test_one_loop_deterministic_stochastic_and_recorded(adapter):
    """``sample_latents``, the loop of every sampler: with eta 0 it is the adapter's deterministic step
    applied D times (a hand-written loop); with eta on step 1 only and ``record``, the other steps of the
    recorded chain are deterministic steps of their predecessors, step 1 added noise, and its log-prob is
    ``gaussian_log_prob`` of the recorded transition under ``sde_step``'s Gaussian (what GRPO's update
    recomputes, bit for bit). ``seeded_noise``: a video's noise does not depend on its batch."""
    prompts = ["a cat", "a dog"]
    noise = seeded_noise(adapter, [7, 8])
    torch.testing.assert_close(noise[1:], seeded_noise(adapter, [8]), rtol=0, atol=0)
    conditioning = adapter.encode_prompts(prompts, "", True)
    levels = adapter.schedule(3)
    x = noise
    with torch.no_grad():
        for level, next_level in zip(levels[:-1], levels[1:], strict=True):
            x = adapter.step(x, level, next_level, conditioning, 3.0)
    torch.testing.assert_close(sample_latents(adapter, prompts, num_steps=3, guidance_scale=3.0, noise=noise).latents, x, rtol=0, atol=0)

    run = sample_latents(adapter, prompts, num_steps=3, guidance_scale=3.0, noise=noise, eta=0.7, sde_steps=[1], record=True,
                         generator=torch.Generator().manual_seed(0))
    chain = run.chain
    assert len(chain) == 4 and list(run.log_probs) == [1] and run.log_probs[1].shape == (2,)
    with torch.no_grad():
        for index in (0, 2):
            torch.testing.assert_close(adapter.step(chain[index], levels[index], levels[index + 1], conditioning, 3.0), chain[index + 1], rtol=0, atol=0)
        assert not torch.allclose(adapter.step(chain[1], levels[1], levels[2], conditioning, 3.0), chain[2])
        _, mean, std = adapter.sde_step(chain[1], levels[1], levels[2], conditioning, 3.0, noise_level=0.7, prev_sample=chain[2])
    assert torch.equal(gaussian_log_prob(chain[2], mean, std), run.log_probs[1])


def test_guided_step_spec():
    """all / first:N / last:N as 0-based step indices (hand-listed); anything else is a clear error."""
    assert guided_step_indices("all", 3) == [0, 1, 2]
    assert guided_step_indices("first:2", 5) == [0, 1]
    assert guided_step_indices("last:2", 5) == [3, 4]
    assert guided_step_indices("last:9", 3) == [0, 1, 2]
    with pytest.raises(ValueError, match="all, first:N or last:N"):
        guided_step_indices("middle", 5)


def test_guidance_raises_the_guiding_reward(adapter):
    """From the same noise, brightness-guided sampling ends brighter than unguided sampling for every video,
    negative W darker (the update adds c(t') W g / rms(g); W = 0 is unguided: test_denoised_recomposes_the_step)."""
    prompts = ["a cat", "a dog"]
    reward = RewardFunction([RewardTerm("brightness", 1.0, Brightness(Segmental(2, "random")))])
    noise = torch.randn(adapter.latent_shape(2), generator=torch.Generator().manual_seed(1))

    def brightness(scale: float | None) -> torch.Tensor:
        guidance = None if scale is None else RewardGuidance(reward, scale, "all")
        rngs = [np.random.default_rng(seed) for seed in range(2)]
        latents = sample_latents(adapter, prompts, num_steps=3, guidance_scale=3.0, noise=noise, guidance=guidance, rngs=rngs).latents
        with torch.no_grad():
            return adapter.decode_all(latents).mean(dim=(1, 2, 3, 4))

    scale = 1.0  # RMS change of the clean latent per guided step (the tiny random decoder responds weakly)
    plain, up, down = brightness(None), brightness(scale), brightness(-scale)
    assert bool((up > plain + 0.004).all()), (plain, up)
    assert bool((down < plain - 0.002).all()), (plain, down)


# ------------------------------------------------------------------------------------------ names and prompts


def test_names_prompts_and_seeds(tmp_path):
    """VBench names `{prompt}-{i}`; a prompt that cannot be a file name gets a short name and a sidecar; the
    seed depends on (prompt, i, seed) only; prompt files: text (comments skipped), CSV prompt column."""
    assert video_stem("a cat", 3) == ("a cat-3", False)
    stem, sidecar = video_stem("a/b", 0)
    assert sidecar and "/" not in stem and stem.endswith("-0")
    assert video_stem("x" * 300, 1)[1]
    first, second = sample_jobs(["a", "b"], 2, 0, tmp_path), sample_jobs(["b"], 2, 0, tmp_path)
    assert [job.seed for job in first[2:]] == [job.seed for job in second]
    assert len({job.seed for job in first}) == 4 and sample_jobs(["a"], 1, 1, tmp_path)[0].seed != first[0].seed
    (tmp_path / "p.txt").write_text("# comment\na cat\n\na dog\na cat\n")
    assert read_prompts(tmp_path / "p.txt") == ["a cat", "a dog"]
    (tmp_path / "p.csv").write_text("path,prompt\nx.mp4,a cow\ny.mp4,a hen\n")
    assert read_prompts(tmp_path / "p.csv") == ["a cow", "a hen"]
    (tmp_path / "bad.csv").write_text("path,text\nx.mp4,a cow\n")
    with pytest.raises(ValueError, match="'prompt' column"):
        read_prompts(tmp_path / "bad.csv")


# ------------------------------------------------------------------------------------------ the command


def test_sample_scores_resumes_and_eval_reads_it(tmp_path, capsys):
    """`rewardkit sample` on an eval suite: VBench-named mp4s (plus a sidecar) that `rewardkit eval` reads
    with full prompt coverage; --reward writes the `rewardkit score` table (its COLUMNS, prompts from the
    names); a rerun keeps the videos; a deleted video comes back identical with another batch size."""
    from rewardkit.scoring import COLUMNS

    (tmp_path / "prompts.txt").write_text("a cat\na dog/cat\n")
    suite = tmp_path / "suite.toml"
    suite.write_text('name = "t"\nprompts = "prompts.txt"\nvideos_per_prompt = 2\n\n'
                     '[[dimensions]]\nname = "temporal_flickering"\nreward = "temporal_flickering"\nframes = "all"\n')
    out = tmp_path / "videos"
    command = ["sample", str(suite), "--model", str(RECIPES["unet3d"]), "--steps", "3", "--out", str(out), "--no-progress"]
    assert main([*command, "--reward", "temporal_flickering", "--batch-size", "3"]) == 0
    assert "4 videos, 4 written now" in capsys.readouterr().out
    names = sorted(path.name for path in out.glob("*.mp4"))
    assert names[:2] == ["a cat-0.mp4", "a cat-1.mp4"] and len(names) == 4
    sidecars = list(out.glob("*.txt"))
    assert len(sidecars) == 2 and sidecars[0].read_text().strip() == "a dog/cat"
    results = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert list(results.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert sorted(results["prompt"]) == ["a cat", "a cat", "a dog/cat", "a dog/cat"] and set(results["status"]) == {"ok"}

    before = _frames(out / "a cat-1.mp4")
    (out / "a cat-1.mp4").unlink()
    assert main([*command, "--batch-size", "1"]) == 0
    assert "4 videos, 1 written now" in capsys.readouterr().out
    np.testing.assert_array_equal(_frames(out / "a cat-1.mp4"), before)  # same (prompt, i, seed): same video

    assert main(["eval", str(suite), "--videos", str(out), "--out", str(tmp_path / "run"), "--no-progress", "--workers", "0"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    coverage = summary["coverage"]
    assert coverage["without_prompt"] == [] and not coverage.get("short") and not coverage.get("not_in_prompt_list"), coverage


def test_sample_errors_before_loading(tmp_path, capsys):
    """Bad input is exit 2 with a message naming the problem, before any model loads."""
    (tmp_path / "p.txt").write_text("a cat\n")
    base = ["sample", str(tmp_path / "p.txt"), "--model", str(RECIPES["unet3d"]), "--out", str(tmp_path / "o")]
    for extra, message in [
        (["--guidance", "videoreward"], "not differentiable"),
        (["--guidance-scale", "2"], "need --guidance"),
        (["--guidance", "temporal_flickering", "--guidance-steps", "some"], "first:N or last:N"),
        (["--family", "wann"], "Did you mean 'wan'"),
        (["--reward", "nosuch"], "nosuch"),
    ]:
        assert main([*base, *extra]) == 2
        assert message in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "missing.txt"), *base[2:]]) == 2
    assert "not found" in capsys.readouterr().err


def test_guided_command_on_wan(tmp_path, capsys):
    """`--guidance` on the Wan family through the command: it reports its cost (one backward pass per
    guided step and video; the frames the reward decoded), and W = 0 writes the unguided video (up to
    rounding)."""
    (tmp_path / "p.txt").write_text("a cat\n")
    base = ["sample", str(tmp_path / "p.txt"), "--model", str(RECIPES["wan"]), "--steps", "3", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "plain")]) == 0
    guided = ["--guidance", "temporal_flickering", "--guidance-steps", "last:2"]
    assert main([*base, *guided, "--guidance-scale", "0", "--out", str(tmp_path / "zero")]) == 0
    output = capsys.readouterr().out
    assert "guidance: 2 reward backward passes, 18 frames decoded with a graph" in output  # temporal_flickering reads all 9 frames
    # W = 0 equals unguided sampling up to float rounding (exact identity: test_denoised_recomposes_the_step);
    # rounding can flip a pixel level, which the h264 encoder spreads to a few pixels of that block
    difference = np.abs(_frames(tmp_path / "zero" / "a cat-0.mp4").astype(int) - _frames(tmp_path / "plain" / "a cat-0.mp4"))
    assert difference.mean() < 0.1, difference.mean()


@pytest.mark.slow
def test_two_processes_write_the_same_videos(tmp_path):
    """torchrun --nproc_per_node 2 (gloo on CPU): each process samples every other video, and the videos
    equal a one-process run's (the seed is per (prompt, i, seed), not per process)."""
    import os
    import subprocess

    (tmp_path / "p.txt").write_text("a cat\na dog\na cow\n")
    arguments = ["sample", str(tmp_path / "p.txt"), "--model", str(RECIPES["unet3d"]), "--steps", "2", "--num-per-prompt", "1", "--no-progress"]
    command = torchrun(*arguments, "--out", str(tmp_path / "two"))
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert main([*arguments, "--out", str(tmp_path / "one")]) == 0
    for name in ("a cat-0.mp4", "a dog-0.mp4", "a cow-0.mp4"):
        np.testing.assert_array_equal(_frames(tmp_path / "two" / name), _frames(tmp_path / "one" / name))
