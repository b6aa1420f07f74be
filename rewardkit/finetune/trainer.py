"""The fine-tuning loop on accelerate: ``finetune(recipe, overrides=..., resume=...)``.

One run is one directory (``train.output_dir``)::

    config.toml                      the fully resolved recipe
    metrics.csv, tensorboard/        loss, the objective's metrics (reward mean/std, implicit accuracy,
                                     ...), grad norm, lr, step time, peak memory (CUDA: max allocated;
                                     CPU: peak RSS)
    checkpoints/step-NNNNNN/         accelerate state (optimizer, scheduler, RNG, scaler) + the LoRA +
                                     objective-rankR.pt (an online objective's state: online_dpo's
                                     reference snapshot, GRPO's untrained chunks and window position) +
                                     trainer_state.json (written last: a folder without it is incomplete)
    lora/pytorch_lora_weights.safetensors   the final LoRA (see rewardkit.finetune.lora)
    samples/step-NNNNNN/*.mp4, samples.csv  sample videos (and their rewards when the recipe has rewards)
    monitor.csv                      with train.monitor_rewards: held-out rewards of the samples, the
                                     reward-hacking alarm (rewardkit.finetune.monitor)
    <metric>.png                     the objective's main metric vs step (reward.png, implicit_acc.png)
    nonfinite-step-NNNNNN-rankR.pt   only when a loss was NaN/inf: that micro-batch and its details

The trainer only sequences: (the objective's rollout) -> micro-batches under gradient accumulation ->
backward, clip, step -> log the objective's metrics -> checkpoint, samples, plot. The objectives
(``rewardkit.finetune.objectives``) own their data, losses and metrics.

Randomness of step s (noise, frame sampling) comes from generators seeded with ``(seed, s, rank)``, and
the data order from accelerate's seedable sampler, so ``resume`` continues exactly where a run stopped.
Multi-GPU runs use ``accelerate launch`` / ``torchrun`` (DDP); sample videos are generated on the main
process through the unwrapped denoiser (a DDP forward there would wait for the other ranks), and a NaN/inf
loss on any rank stops every rank before the backward pass.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import resource
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardkit.errors import UserInputError
from rewardkit.finetune.config import Recipe, load_recipe, recipe_to_toml
from rewardkit.finetune.lora import LORA_FILE, add_lora, save_lora
from rewardkit.finetune.objectives import get_objective
from rewardkit.finetune.objectives.base import Processes
from rewardkit.finetune.objectives.reward_backprop import build_reward_function, check_reward_specs

__all__ = ["finetune", "NonFiniteLossError", "latest_checkpoint", "checkpoint_problem"]

STATE_FILE = "trainer_state.json"


class NonFiniteLossError(RuntimeError):
    """A NaN or inf loss stopped the run; the message names the saved batch."""


def checkpoint_problem(folder: Path) -> str | None:
    """Why a checkpoint folder cannot be resumed from (no or unreadable trainer state, a missing or
    truncated LoRA, optimizer or scheduler file), or None."""
    from safetensors.torch import load_file

    try:
        state = json.loads((folder / STATE_FILE).read_text())
        state["step"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"no readable {STATE_FILE}"
    for name in state.get("objective_files", []):
        try:
            torch.load(folder / name, map_location="cpu", weights_only=True)
        except Exception as error:  # truncated or missing
            return f"{name} is missing or truncated ({type(error).__name__})"
    try:
        load_file(folder / LORA_FILE)
    except Exception as error:  # safetensors raises its own error types for truncated files
        return f"{LORA_FILE} is missing or truncated ({error})"
    for name in ("optimizer.bin", "scheduler.bin"):
        try:
            torch.load(folder / name, map_location="cpu", weights_only=False)
        except Exception as error:  # a truncated pickle raises EOFError, RuntimeError, UnpicklingError
            return f"{name} is missing or truncated ({type(error).__name__})"
    return None


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint; incomplete ones (a run killed while saving) are skipped with a warning."""
    for folder in sorted(Path(run_dir, "checkpoints").glob("step-*"), reverse=True):
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder
        warnings.warn(f"skipping incomplete checkpoint {folder}: {problem}; resuming from an earlier one", stacklevel=2)
    return None


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _step_generators(seed: int, step: int, rank: int) -> tuple[torch.Generator, np.random.Generator]:
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 1009 + rank), np.random.default_rng([seed, step, rank])


def finetune(
    recipe: str | os.PathLike[str] | Recipe | dict | None = None,
    overrides: Sequence[str] = (),
    resume: str | os.PathLike[str] | None = None,
) -> Path:
    """Run a recipe (a TOML path, mapping or Recipe) with ``--set`` overrides; return the run directory.

    ``resume``: a run directory; its ``config.toml`` is used (``overrides`` may still change, e.g.,
    ``train.max_steps``) and training continues from its latest checkpoint.
    """
    if resume is not None:
        resume = Path(resume)
        if not (resume / "config.toml").is_file():
            raise FileNotFoundError(f"--resume {str(resume)!r}: no config.toml there; give the run directory of an earlier run")
        config = load_recipe(resume / "config.toml", [*overrides, f'train.output_dir="{resume}"'])
    elif recipe is None:
        raise ValueError("give a recipe (finetune/*.toml) or --resume RUN_DIR")
    else:
        config = load_recipe(recipe, overrides)
    objective = get_objective(config.objective.name)
    # reward names and options, before any model loads
    check_reward_specs(config.reward.rewards, differentiable=objective.reward_use == "differentiable")
    check_reward_specs(config.train.monitor_rewards, differentiable=False)
    return Trainer(config, resume=resume is not None).train()


class Trainer:
    def __init__(self, config: Recipe, resume: bool = False) -> None:
        from accelerate import Accelerator
        from accelerate.utils import (
            DataLoaderConfiguration,
            GradientAccumulationPlugin,
            ProjectConfiguration,
            set_seed,
        )

        self.config, self.resume = config, resume
        train = config.train
        self.run_dir = Path(train.output_dir)
        self.objective_class = get_objective(config.objective.name)
        self.accelerator = Accelerator(
            mixed_precision=train.mixed_precision,
            # Accumulate by count only: the batches are endless (an epoch's end must not step the optimizer early).
            gradient_accumulation_plugin=GradientAccumulationPlugin(
                num_steps=train.gradient_accumulation_steps * self.objective_class.parts_per_batch(config.objective), sync_with_dataloader=False
            ),
            cpu=train.device == "cpu",
            project_config=ProjectConfiguration(project_dir=str(self.run_dir)),
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        )
        set_seed(train.seed)
        self.device = self.accelerator.device
        self.dataset = self.objective_class.build_dataset(config)  # rows checked before any model loads

    # ---------------------------------------------------------------------------------- setup

    def _build(self) -> None:
        from diffusers.optimization import get_scheduler

        from rewardkit.finetune.models import load_model

        config, train = self.config, self.config.train
        self.adapter = load_model(config.model, self.device)
        if config.model.gradient_checkpointing:
            self.adapter.enable_gradient_checkpointing()
        self.parameters = add_lora(self.adapter.denoiser, config.lora.rank, config.lora.alpha, config.lora.target_modules, config.lora.dropout)
        self.reward = None
        if config.reward.rewards:
            self.reward = build_reward_function(
                config.reward.rewards, config.reward.weights, frames=config.reward.frames, weighting=config.reward.weighting,
                weight_files=config.reward.weight_files, device=self.device, dtype=config.reward.dtype,
                differentiable=self.objective_class.reward_use == "differentiable",
            )
        self.objective = self.objective_class(config, self.adapter, self.reward, self.device)
        from accelerate.utils import gather_object

        accelerator = self.accelerator
        self.objective.processes = Processes(accelerator.process_index, accelerator.num_processes, accelerator.gather, gather_object)
        if self.accelerator.is_main_process:
            for line in self.objective.announce():
                print(f"rewardkit finetune: {line}", file=sys.stderr)
        optimizer = torch.optim.AdamW(
            self.parameters, lr=train.learning_rate, betas=(train.adam_beta1, train.adam_beta2),
            eps=train.adam_epsilon, weight_decay=train.weight_decay,
        )
        scheduler = get_scheduler(
            train.lr_scheduler, optimizer, num_warmup_steps=train.warmup_steps * self.accelerator.num_processes,
            num_training_steps=train.max_steps * self.accelerator.num_processes,
        )
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=train.batch_size, shuffle=True, collate_fn=self.objective_class.collate,
            num_workers=config.data.num_workers, drop_last=len(self.dataset) >= train.batch_size,
            generator=torch.Generator().manual_seed(train.seed),
        )
        unet, self.optimizer, self.loader, self.scheduler = self.accelerator.prepare(self.adapter.denoiser, optimizer, loader, scheduler)
        self.adapter.denoiser_forward = unet
        self.accelerator.register_save_state_pre_hook(self._save_hook)
        self.accelerator.register_load_state_pre_hook(self._load_hook)

    def _save_hook(self, models: list, weights: list, output_dir: str) -> None:
        # Only the LoRA is saved, not the frozen base model accelerate would otherwise write whole.
        if self.accelerator.is_main_process:
            save_lora(self.adapter.denoiser, output_dir, prefix=self.adapter.lora_prefix)
        while weights:
            weights.pop()

    def _load_hook(self, models: list, input_dir: str) -> None:
        from peft.utils import set_peft_model_state_dict
        from safetensors.torch import load_file

        prefix = self.adapter.lora_prefix + "."
        state = {key.removeprefix(prefix): value for key, value in load_file(Path(input_dir) / LORA_FILE).items()}
        result = set_peft_model_state_dict(self.adapter.denoiser, state)
        if getattr(result, "unexpected_keys", None):
            raise ValueError(f"checkpoint {input_dir} does not fit this model's LoRA: {result.unexpected_keys[:3]}")
        while models:
            models.pop()

    # ---------------------------------------------------------------------------------- loop

    def train(self) -> Path:
        accelerator, train = self.accelerator, self.config.train
        checkpoint = latest_checkpoint(self.run_dir) if self.resume else None
        if not self.resume and (self.run_dir / "checkpoints").exists() and any((self.run_dir / "checkpoints").iterdir()):
            raise FileExistsError(
                f"{self.run_dir} already holds a run; continue it with --resume {self.run_dir} or choose another --set train.output_dir="
            )
        if accelerator.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.toml").write_text(recipe_to_toml(self.config))
        self._build()
        step, micro = 0, 0
        if checkpoint is not None:
            accelerator.load_state(str(checkpoint))
            state = json.loads((checkpoint / STATE_FILE).read_text())
            step, micro = state["step"], state["micro_batches"]
            self._load_objective_state(checkpoint, state.get("objective_files", []))
        self._open_logs(step)
        self.monitor = None
        if train.monitor_rewards:
            from rewardkit.finetune.monitor import RewardMonitor

            self.monitor = RewardMonitor(self.config, self.run_dir, str(self.device), resume_step=step)
            if step == 0:
                self._samples(0)  # the base model's samples: the alarm's first evaluation
        alarm = ""
        batches = self._batches(micro)
        progress = self._progress(step)
        rank = accelerator.process_index
        while step < train.max_steps:
            started = time.perf_counter()
            for _ in range(train.gradient_accumulation_steps):
                batch = next(batches)
                micro += 1
                generator, rng = _step_generators(train.seed, micro, rank)
                with self._unwrapped():
                    batch = self.objective.rollout(batch, generator, rng)
                for part in self.objective.micro_batches(batch):
                    with accelerator.accumulate(self.adapter.denoiser_forward):
                        loss, details = self.objective.loss(part, generator, rng)
                        self._stop_if_nonfinite(step + 1, loss, part, details)
                        accelerator.backward(loss)
                        grad_norm = float("nan")
                        if accelerator.sync_gradients:
                            # max_grad_norm = 0: no clipping, but the (unscaled, under fp16) norm is still computed
                            limit = train.max_grad_norm if train.max_grad_norm > 0 else float("inf")
                            grad_norm = float(accelerator.clip_grad_norm_(self.parameters, limit))
                        self.optimizer.step()
                        self.scheduler.step()
                        self.optimizer.zero_grad(set_to_none=True)
            step += 1
            row = self._log(step, loss, details, grad_norm, time.perf_counter() - started)
            progress.update(1)
            progress.set_postfix({key: f"{row[key]:.4f}" for key in ("loss", self.objective.plot[0]) if key in row})
            if train.checkpoint_every and step % train.checkpoint_every == 0 or step == train.max_steps:
                self._checkpoint(step, micro)
            if train.sample_every and (step % train.sample_every == 0 or step == train.max_steps):
                alarm = self._samples(step)
                if alarm and train.monitor_stop:
                    if not (train.checkpoint_every and step % train.checkpoint_every == 0 or step == train.max_steps):
                        self._checkpoint(step, micro)
                    break
        progress.close()
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            save_lora(self.adapter.denoiser, self.run_dir / "lora", prefix=self.adapter.lora_prefix)
            self._plot()
        self._close_logs()
        if alarm and train.monitor_stop:
            from rewardkit.finetune.monitor import RewardHackingStop

            raise RewardHackingStop(f"train.monitor_stop: stopped at step {step} by the reward-hacking alarm ({alarm}); "
                                    f"the LoRA of that step is in {self.run_dir / 'lora'}, the evaluations in {self.run_dir / 'monitor.csv'}")
        return self.run_dir

    @contextlib.contextmanager
    def _unwrapped(self) -> Iterator[None]:
        """The adapter calls the bare denoiser inside (no DDP collectives: one process may sample alone)."""
        wrapped = self.adapter.denoiser_forward
        self.adapter.denoiser_forward = self.accelerator.unwrap_model(wrapped, keep_fp32_wrapper=True)
        try:
            yield
        finally:
            self.adapter.denoiser_forward = wrapped

    def _batches(self, consumed: int):
        """Endless batches; on resume the first ``consumed`` micro-batches (of their epochs) are skipped."""
        per_epoch = len(self.loader)
        epoch, skip = divmod(consumed, per_epoch)
        while True:
            self.loader.set_epoch(epoch)
            loader = self.accelerator.skip_first_batches(self.loader, skip) if skip else self.loader
            yield from loader
            epoch, skip = epoch + 1, 0

    def _progress(self, step: int):
        from tqdm.auto import tqdm

        return tqdm(
            total=self.config.train.max_steps, initial=step, desc="finetune", unit="step", file=sys.stderr,
            disable=not (self.config.train.progress and self.accelerator.is_main_process),
        )

    # ---------------------------------------------------------------------------------- outputs

    def _open_logs(self, step: int) -> None:
        self.metrics_path = self.run_dir / "metrics.csv"
        self.writer = None
        if not self.accelerator.is_main_process:
            return
        if self.metrics_path.exists():  # resume: keep the rows up to the checkpoint, drop any later ones
            with self.metrics_path.open() as handle:
                rows = [row for row in csv.DictReader(handle) if int(row["step"]) <= step]
            self._rewrite_metrics(rows)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=step + 1 if step else None)
        except ImportError:
            self.writer = None

    def _rewrite_metrics(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            self.metrics_path.unlink(missing_ok=True)
            return
        with self.metrics_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    def _log(self, step: int, loss: torch.Tensor, details: dict[str, Any], grad_norm: float, seconds: float) -> dict[str, Any]:
        accelerator = self.accelerator
        row: dict[str, Any] = {"step": step, "loss": accelerator.gather(loss.detach().reshape(1)).mean().item()}
        row.update(self.objective.metrics(details, accelerator.gather))
        row.update(grad_norm=grad_norm, lr=self.scheduler.get_last_lr()[0], step_time_s=seconds, peak_memory_mb=_peak_memory_mb(self.device))
        if not accelerator.is_main_process or step % self.config.train.log_every and step != self.config.train.max_steps:
            return row
        new = not self.metrics_path.exists()
        with self.metrics_path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self.writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, float) and math.isfinite(value):
                    self.writer.add_scalar(f"train/{key}", value, step)
        return row

    def _close_logs(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def _checkpoint(self, step: int, micro: int) -> None:
        accelerator = self.accelerator
        folder = self.run_dir / "checkpoints" / f"step-{step:06d}"
        accelerator.save_state(str(folder))
        state: dict[str, Any] = {"step": step, "micro_batches": micro}
        objective_state = self.objective.state_dict()
        if objective_state:  # every process's own (GRPO's chunks differ by process)
            path = folder / f"objective-rank{accelerator.process_index}.pt"
            partial = path.with_name(f".{path.name}.partial")
            torch.save(objective_state, partial)
            partial.replace(path)
            state["objective_files"] = [f"objective-rank{rank}.pt" for rank in range(accelerator.num_processes)]
        accelerator.wait_for_everyone()  # every process's files exist before the state that completes the folder
        if accelerator.is_main_process:
            (folder / STATE_FILE).write_text(json.dumps(state))

    def _load_objective_state(self, checkpoint: Path, files: list[str]) -> None:
        if not files:
            return
        if len(files) != self.accelerator.num_processes:
            raise UserInputError(
                f"{checkpoint} holds the {self.config.objective.name} state of {len(files)} process(es); resume it with "
                f"{len(files)} process(es) (accelerate launch --num_processes {len(files)})"
            )
        path = checkpoint / files[self.accelerator.process_index]
        self.objective.load_state_dict(torch.load(path, map_location=self.device, weights_only=True))

    def _stop_if_nonfinite(self, step: int, loss: torch.Tensor, batch: dict, details: dict) -> None:
        """Every rank learns whether any rank's loss is NaN/inf (one small gather) and stops before backward,
        so no rank is left waiting in DDP's gradient all-reduce; the offending rank saves its micro-batch."""
        accelerator = self.accelerator
        finite = torch.isfinite(loss.detach()).all().float().reshape(1).to(self.device)
        flags = accelerator.gather(finite) if accelerator.num_processes > 1 else finite
        if bool((flags > 0).all()):
            return
        bad = [rank for rank, flag in enumerate(flags.tolist()) if flag == 0]
        message = f"loss is NaN/inf at step {step} on rank(s) {bad}; stopped every rank."
        if accelerator.process_index in bad:
            path = self.run_dir / f"nonfinite-step-{step:06d}-rank{accelerator.process_index}.pt"
            keep = lambda value: value.detach().cpu() if torch.is_tensor(value) else value  # noqa: E731
            torch.save({"step": step, "loss": keep(loss), "batch": {k: keep(v) for k, v in batch.items()},
                        "details": {k: keep(v) for k, v in details.items()}}, path)
            message += f" The micro-batch is saved in {path}."
        raise NonFiniteLossError(message + " Lower train.learning_rate, use train.mixed_precision=\"bf16\" or check the reward/data.")

    def _samples(self, step: int) -> str:
        """Write the sample videos (main process); with monitor rewards every process then helps score them
        and the alarm's message (the same on every process) is returned, else ""."""
        prompts = self.config.train.sample_prompts or self.dataset.prompts[: min(2, len(self.dataset.prompts))]
        rewards = self._write_samples(step, prompts)
        if self.monitor is None:
            return ""
        from accelerate.utils import broadcast_object_list

        self.accelerator.wait_for_everyone()  # the videos exist before any process scores them
        paths = [self.run_dir / "samples" / f"step-{step:06d}" / f"{index:02d}.mp4" for index in range(len(prompts))]
        means = self.monitor.score(paths, prompts)
        alarm = [self.monitor.record(step, float(torch.stack(rewards).mean()), means) if self.accelerator.is_main_process else ""]
        return broadcast_object_list(alarm)[0] if self.accelerator.num_processes > 1 else alarm[0]

    def _write_samples(self, step: int, prompts: list[str]) -> list:
        from rewardkit.video.io import write_video

        if not self.accelerator.is_main_process:
            return []
        generator, rng = _step_generators(self.config.train.seed, 0, 0)  # the same noise at every sample step
        folder = self.run_dir / "samples" / f"step-{step:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        with torch.no_grad(), self._unwrapped():
            latents = self.objective.sample(prompts, generator)
            rewards = self.reward(latents, self.adapter, prompts, rng)[0] if self.reward is not None else [None] * len(prompts)
            videos = self.adapter.decode_all(latents)
        table = self.run_dir / "samples.csv"
        new = not table.exists()
        with table.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["step", "index", "prompt", "file", "reward"])
            for index, (prompt, video, reward) in enumerate(zip(prompts, videos, rewards, strict=True)):
                path = folder / f"{index:02d}.mp4"
                frames = (video.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
                write_video(path, frames)
                writer.writerow([step, index, prompt, str(path.relative_to(self.run_dir)), "" if reward is None else f"{reward.item():.6f}"])
        return list(rewards)

    def _plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if not self.metrics_path.exists():
            return
        with self.metrics_path.open() as handle:
            rows = list(csv.DictReader(handle))
        metric, stem = self.objective.plot
        if self.monitor is not None:  # the held-out rewards beside the training reward
            figure, (axis, lower) = plt.subplots(2, 1, figsize=(6, 7))
            self.monitor.plot(lower)
        else:
            figure, axis = plt.subplots(figsize=(6, 3.5))
        axis.plot([int(row["step"]) for row in rows], [float(row[metric]) for row in rows], label=f"train {metric} (batch)")
        axis.set_xlabel("step")
        axis.set_ylabel(metric)
        axis.set_title(f"{self.config.objective.name}: {', '.join(self.config.reward.rewards) or 'no reward'}")
        axis.legend()
        figure.tight_layout()
        figure.savefig(self.run_dir / f"{stem}.png", dpi=100)
        plt.close(figure)
