"""Sampling: the one loop every sampler in rewardkit runs, and ``rewardkit sample`` on top of it.

``sample_latents`` denoises a batch of videos (one prompt each; K videos of a prompt are K entries) on
an adapter of either family: the deterministic sampler (DDIM eta 0 / Euler), DDIM's ``eta`` / the
Flow-GRPO SDE on chosen steps with each stochastic step's Gaussian log-probability recorded (GRPO), and
reward guidance at chosen steps (``rewardkit.finetune.guidance``). The trainer's sample videos, every
objective's samples (``Objective.sample``: ``online_dpo``, ``rwr`` rollouts, ``reward_backprop``'s
editing starts), GRPO's rollouts and the command below all call it.

``rewardkit sample`` (``sample_videos``): each prompt gets ``num_per_prompt`` videos named VBench-style,
``{prompt}-{i}.mp4`` in ``out``, so ``rewardkit eval`` and ``rewardkit score`` read their prompts from
the names. A prompt that cannot be a file name (it holds ``/`` or is longer than 200 bytes) is written
under a shortened name with a sidecar ``NAME.txt`` holding the exact prompt (which both read first).
Video ``i`` of a prompt depends only on ``(prompt, i, seed)``: its initial noise (and the guidance's
frame draws) come from a generator seeded with a hash of the three (``seeded_noise``), so a resumed
run, another batch size or another process count writes the same video. Existing videos are kept
(resume); under ``accelerate launch`` / ``torchrun`` every process samples its contiguous share of the
videos (``rewardkit.distributed``) on its own device. When rewards are named, the videos are scored by
the scoring engine (``rewardkit.scoring.score``) into ``out/results.csv``, the ``rewardkit score`` table
(resumable too).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from rewardkit.errors import UserInputError
from rewardkit.finetune.models.base import Conditioning, VideoDiffusionAdapter
from rewardkit.finetune.objectives.losses import gaussian_log_prob

if TYPE_CHECKING:
    from rewardkit.finetune.guidance import RewardGuidance

__all__ = [
    "Samples", "sample_latents", "seeded_noise",
    "SampleJob", "SampleRun", "read_prompts", "video_stem", "sample_jobs", "load_sampler_model", "sample_videos",
]


@dataclass
class Samples:
    """What ``sample_latents`` returns: one row per video."""

    latents: torch.Tensor
    """The clean latents ``[N, ...]`` (float32)."""
    conditioning: Conditioning
    """The prompts' conditioning (with the negative prompt's when classifier-free guidance is on)."""
    levels: torch.Tensor
    """The chain's ``D + 1`` levels, noisiest first."""
    chain: list[torch.Tensor] = field(default_factory=list)
    """With ``record``: the latents before every step and after the last (``D + 1``, float32)."""
    log_probs: dict[int, torch.Tensor] = field(default_factory=dict)
    """With ``record``: step index -> ``[N]`` Gaussian log-probability (mean over latent elements, float32)
    of the transition taken, for every stochastic step."""


def seeded_noise(adapter: VideoDiffusionAdapter, seeds: Sequence[int]) -> torch.Tensor:
    """Initial noise ``[N, ...]`` (CPU), video ``i``'s drawn from a generator seeded with ``seeds[i]``, so a
    video's noise does not depend on its batch or process."""
    return torch.cat([torch.randn(adapter.latent_shape(1), generator=torch.Generator().manual_seed(seed)) for seed in seeds])


def sample_latents(
    adapter: VideoDiffusionAdapter,
    prompts: Sequence[str],
    *,
    num_steps: int,
    guidance_scale: float,
    negative_prompt: str = "",
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    eta: float = 0.0,
    sde_steps: Sequence[int] | None = None,
    record: bool = False,
    guidance: RewardGuidance | None = None,
    rngs: Sequence[np.random.Generator] = (),
) -> Samples:
    """Denoise one video per entry of ``prompts`` on the adapter's ``num_steps`` schedule, without gradients
    (except a guided step's reward gradient).

    ``noise``: the initial latents (default: drawn from ``generator``, then moved to ``device``).
    ``eta``: the stochasticity of the steps ``sde_steps`` (default: every step), the adapter's
    ``sde_step`` (DDPM: DDIM eta; flow: the Flow-GRPO SDE's ``a``); the other steps are deterministic
    (DDIM eta 0 / Euler). The SDE noise comes from ``generator``. ``record``: keep the chain and the
    log-probabilities of the stochastic steps (GRPO). ``guidance``: reward guidance at its steps (a
    guided step is deterministic; ``rngs``, one per video, draw its frames)."""
    videos = list(prompts)
    conditioning = adapter.encode_prompts(videos, negative_prompt, guidance_scale != 1.0)
    if noise is None:
        noise = torch.randn(adapter.latent_shape(len(videos)), generator=generator)
    if device is not None:
        noise = noise.to(device)
    if noise.shape[0] != len(videos):
        raise ValueError(f"got initial noise for {noise.shape[0]} videos and {len(videos)} prompts")
    levels = adapter.schedule(num_steps)
    guided = set(guidance.step_indices(num_steps)) if guidance is not None else set()
    stochastic = set(range(num_steps) if sde_steps is None else sde_steps)
    latents = noise
    samples = Samples(latents, conditioning, levels, [latents] if record else [])
    for index in range(num_steps):
        level, next_level = levels[index], levels[index + 1]
        if index in guided:
            latents, _ = guidance.step(adapter, latents, level, next_level, conditioning, guidance_scale, videos, rngs)
        else:
            noise_level = eta if index in stochastic else 0.0
            with torch.no_grad():
                latents, mean, std = adapter.sde_step(
                    latents, level, next_level, conditioning, guidance_scale, noise_level=noise_level, generator=generator
                )
                latents = latents.float()
                if record and noise_level > 0 and bool((std > 0).all()):
                    samples.log_probs[index] = gaussian_log_prob(latents, mean, std)
        if record:
            samples.chain.append(latents)
    samples.latents = latents
    return samples


MAX_NAME_BYTES = 200
"""Longest prompt kept whole in a file name (file systems allow 255 bytes; the suffix needs a few)."""


def read_prompts(path: str | os.PathLike[str]) -> list[str]:
    """Prompts from a text file (one per line; blank lines and ``#`` lines skipped) or a CSV with a
    ``prompt`` column; repeated prompts are kept once (their videos would share names)."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"prompt file {str(path)!r} not found; give a text file (one prompt per line), a CSV with a prompt column or an eval suite (.toml)")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if "prompt" not in (reader.fieldnames or []):
            raise UserInputError(f"{path}: a prompt CSV needs a 'prompt' column, got columns {reader.fieldnames}")
        prompts = [(row["prompt"] or "").strip() for row in reader]
    else:
        prompts = [line.strip() for line in text.splitlines() if not line.lstrip().startswith("#")]
    prompts = list(dict.fromkeys(prompt for prompt in prompts if prompt))
    if not prompts:
        raise UserInputError(f"{path}: no prompts in it")
    return prompts


def video_stem(prompt: str, index: int) -> tuple[str, bool]:
    """The file stem of video ``index`` of ``prompt`` and whether it needs a sidecar ``.txt`` (the prompt
    holds ``/`` or a newline, or is too long to be a file name)."""
    if "/" not in prompt and "\n" not in prompt and "\0" not in prompt and len(prompt.encode()) <= MAX_NAME_BYTES:
        return f"{prompt}-{index}", False
    short = prompt.replace("/", "_").replace("\n", " ").replace("\0", "")
    short = short.encode()[:120].decode(errors="ignore")
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:8]
    return f"{short} {digest}-{index}", True


def job_seed(seed: int, prompt: str, index: int) -> int:
    """The seed of video ``index`` of ``prompt``: a hash of the three (independent of batch and process)."""
    return int.from_bytes(hashlib.sha256(f"{seed}\0{prompt}\0{index}".encode()).digest()[:8], "little") >> 1


@dataclass(frozen=True)
class SampleJob:
    prompt: str
    index: int
    path: Path
    seed: int
    sidecar: bool


@dataclass
class SampleRun:
    """What ``sample_videos`` did: every video of the prompt list (this process's and the others'), the
    ones this process wrote now, the results table (None without rewards) and the guidance's cost."""

    videos: list[Path]
    written: list[Path]
    results: object | None = None
    guided_decoded_frames: int = 0
    guided_backward_passes: int = 0


def sample_jobs(prompts: Sequence[str], num_per_prompt: int, seed: int, out: str | os.PathLike[str]) -> list[SampleJob]:
    """Every video of the prompt list, prompt by prompt (``{prompt}-0`` .. ``{prompt}-{K-1}``)."""
    jobs = []
    for prompt in prompts:
        for index in range(num_per_prompt):
            stem, sidecar = video_stem(prompt, index)
            jobs.append(SampleJob(prompt, index, Path(out) / f"{stem}.mp4", job_seed(seed, prompt, index), sidecar))
    return jobs


def load_sampler_model(
    model: str,
    *,
    family: str | None = None,
    num_frames: int | None = None,
    height: int | None = None,
    width: int | None = None,
    dtype: str | None = None,
):
    """``(ModelConfig, objective config or None)`` for ``--model``: a recipe (``.toml``, e.g. a run's
    ``config.toml``: its ``[model]`` and its sampler settings) or a model path / Hub id / ``testing:NAME``;
    the other arguments override what the recipe says."""
    from rewardkit.finetune.config import ModelConfig, load_recipe

    objective = None
    if model.endswith(".toml"):
        recipe = load_recipe(model)
        config, objective = recipe.model, recipe.objective
    else:
        config = ModelConfig(path=model)
    changes = {key: value for key, value in dict(family=family, num_frames=num_frames, height=height, width=width, dtype=dtype).items() if value is not None}
    config = dataclasses.replace(config, **changes)
    from rewardkit.finetune.models import family_names

    if config.family not in family_names():
        from rewardkit.parsing import did_you_mean

        raise UserInputError(f"--family {config.family!r} is not a model family.{did_you_mean(config.family, family_names())} Families: {', '.join(family_names())}")
    return config, objective


def sample_videos(
    prompts: Sequence[str] | str | os.PathLike[str],
    model: str,
    out: str | os.PathLike[str],
    *,
    family: str | None = None,
    lora: str | os.PathLike[str] | None = None,
    num_per_prompt: int = 1,
    steps: int | None = None,
    cfg: float | None = None,
    negative_prompt: str | None = None,
    seed: int = 0,
    batch_size: int = 1,
    num_frames: int | None = None,
    height: int | None = None,
    width: int | None = None,
    dtype: str | None = None,
    device: str | None = None,
    fps: float = 8.0,
    rewards: Sequence[str] = (),
    weights: Mapping[str, str] | None = None,
    guidance: str | None = None,
    guidance_scale: float | None = None,
    guidance_steps: str | None = None,
    guidance_frames: str = "segmental:4:random",
    progress: bool = True,
) -> SampleRun:
    """Sample ``num_per_prompt`` videos per prompt into ``out`` (see the module docstring).

    ``prompts``: a list, or a text / CSV file (``read_prompts``). ``model``: a recipe ``.toml`` or a model
    path / Hub id / ``testing:NAME`` of ``family`` (default ``unet3d``). ``steps``, ``cfg`` and
    ``negative_prompt`` default to the recipe's ``[objective]`` sampler settings, else 20, 5.0 and "".
    ``guidance``: a differentiable registry reward ``NAME[:key=value]`` moving the clean latent at the
    ``guidance_steps`` (``all``, the default; ``first:N``, ``last:N``) by ``guidance_scale`` (default 0.1:
    the RMS change of the clean latent per guided step; ``rewardkit.finetune.guidance``). ``rewards``: specs the videos are scored with into
    ``out/results.csv`` (``weights``: reward name -> local weights path, as ``rewardkit score``).
    """
    from rewardkit.distributed import processes
    from rewardkit.finetune.guidance import RewardGuidance
    from rewardkit.finetune.objectives.reward_backprop import build_reward_function, check_reward_specs
    from rewardkit.registry import parse_device

    prompt_list = read_prompts(prompts) if isinstance(prompts, (str, os.PathLike)) else list(dict.fromkeys(prompts))
    if not prompt_list or any(not isinstance(prompt, str) or not prompt.strip() for prompt in prompt_list):
        raise UserInputError("give at least one prompt, none of them empty")
    for name, value in (("num_per_prompt", num_per_prompt), ("batch_size", batch_size)):
        if value < 1:
            raise UserInputError(f"{name} must be at least 1, got {value}")
    if steps is not None and steps < 1:
        raise UserInputError(f"steps must be at least 1, got {steps}")
    if fps <= 0:
        raise UserInputError(f"fps must be positive, got {fps}")
    check_reward_specs(rewards, differentiable=False)
    if guidance is not None:
        check_reward_specs([guidance], differentiable=True)
        from rewardkit.video.sampling import parse_sampler

        parse_sampler(guidance_frames)
    elif guidance_scale is not None or guidance_steps is not None:
        raise UserInputError("--guidance-scale and --guidance-steps need --guidance REWARD")
    config, objective = load_sampler_model(model, family=family, num_frames=num_frames, height=height, width=width, dtype=dtype)
    steps = steps or (objective.num_inference_steps if objective is not None else 20)
    cfg = cfg if cfg is not None else (objective.guidance_scale if objective is not None else 5.0)
    negative_prompt = negative_prompt if negative_prompt is not None else (objective.negative_prompt if objective is not None else "")

    group = processes()
    device_name = parse_device(group.device(device or ("cuda" if torch.cuda.is_available() else "cpu")))  # several: each its own GPU
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = sample_jobs(prompt_list, num_per_prompt, seed, out)
    mine = [job for job in group.split(jobs) if not job.path.is_file()]  # shares of the whole list: the same on every process
    run = SampleRun(videos=[job.path for job in jobs], written=[])
    if mine:
        reward_guidance = None
        if guidance is not None:
            reward = build_reward_function([guidance], frames=guidance_frames, weighting="mean", device=device_name, differentiable=True)
            reward_guidance = RewardGuidance(reward, 0.1 if guidance_scale is None else guidance_scale, guidance_steps or "all")
        _sample(mine, run, config, lora, steps, cfg, negative_prompt, batch_size, device_name, fps, progress and group.is_main, reward_guidance)
        if reward_guidance is not None:
            run.guided_decoded_frames, run.guided_backward_passes = reward_guidance.decoded_frames, reward_guidance.backward_passes
    group.barrier()  # every video exists before any process scores
    if rewards and group.is_main:  # one writer: `score` locks its --out, and every video is here now
        from rewardkit.scoring import score

        run.results = score([str(path) for path in run.videos], list(rewards), device=str(device_name), out=out / "results.csv",
                            weights=weights, progress=progress, workers=0)
    return run


def _sample(jobs, run, config, lora, steps, cfg, negative_prompt, batch_size, device, fps, progress, guidance) -> None:
    """Sample ``jobs`` in batches and write their videos (the model loads only when there is work)."""
    from tqdm.auto import tqdm

    from rewardkit.finetune.lora import load_lora
    from rewardkit.finetune.models import load_model
    from rewardkit.video.io import write_video

    adapter = load_model(config, device)
    if lora is not None:
        load_lora(adapter.denoiser, lora, prefix=adapter.lora_prefix, merge=True)
        adapter.denoiser.to(device)
    bar = tqdm(total=len(jobs), desc="sample", unit="video", file=sys.stderr, disable=not progress)
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start : start + batch_size]
        seeds = [job.seed for job in batch]
        samples = sample_latents(adapter, [job.prompt for job in batch], num_steps=steps, guidance_scale=cfg, negative_prompt=negative_prompt,
                                 noise=seeded_noise(adapter, seeds), device=device, guidance=guidance,
                                 rngs=[np.random.default_rng(seed) for seed in seeds])
        with torch.no_grad():
            videos = adapter.decode_all(samples.latents)
        for job, video in zip(batch, videos, strict=True):
            frames = (video.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
            partial = job.path.with_name(f".{job.path.stem}.partial.mp4")  # a killed run leaves no half video
            write_video(partial, frames, fps=fps)
            if job.sidecar:
                job.path.with_suffix(".txt").write_text(job.prompt + "\n", encoding="utf-8")
            partial.replace(job.path)
            run.written.append(job.path)
        bar.update(len(batch))
    bar.close()
