"""The preference and regression objectives on the tiny random UNet3D pipeline (ModelScope layout) and
synthetic bright-vs-dark clips (rewardkit.testing.finetune.write_bright_dark_data): a DPO learning check
on held-out pairs, the per-video latent cache, a NaN on the loss stopping the run with the batch saved,
smoke runs of every objective's recipe, and resume skipping an incomplete checkpoint and reproducing the
next step's loss."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardkit.finetune import NonFiniteLossError, finetune
from rewardkit.finetune.config import load_recipe
from rewardkit.finetune.data import collate
from rewardkit.finetune.lora import add_lora
from rewardkit.finetune.models import load_model
from rewardkit.finetune.objectives import get_objective

RECIPES = Path(__file__).resolve().parents[1] / "finetune"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from rewardkit.testing.finetune import write_tiny_t2v_pipeline

    return write_tiny_t2v_pipeline(tmp_path_factory.mktemp("tiny-t2v"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    from rewardkit.testing.finetune import write_bright_dark_data

    return write_bright_dark_data(tmp_path_factory.mktemp("bright-dark"), count=8)


def _metrics(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def _objective(model_dir, data_dir, name="dpo", recipe="smoke-tiny-dpo", overrides=()):
    config = load_recipe(RECIPES / f"{recipe}.toml", [f'model.path="{model_dir}"', f'data.pairs="{data_dir}/pairs.jsonl"', *overrides])
    adapter = load_model(config.model)
    torch.manual_seed(0)
    parameters = add_lora(adapter.denoiser, 8, 8, ["to_q", "to_k", "to_v", "to_out.0"])
    cls = get_objective(name)
    return cls(config, adapter, None, torch.device("cpu")), cls.build_dataset(config), parameters


def _held_out_accuracy(objective, items, draws=6) -> float:
    insides = []
    with torch.no_grad():
        for draw in range(draws):
            insides.append(objective.loss(collate(items), torch.Generator().manual_seed(1000 + draw), None)[1]["inside"])
    return (torch.cat(insides) > 0).float().mean().item()


@pytest.mark.slow
@pytest.mark.parametrize("learning_rate", [5e-3, 0.0])
def test_dpo_learns_bright_over_dark(model_dir, data_dir, learning_rate):
    """DPO on 6 bright-vs-dark pairs: held-out implicit accuracy (2 unseen prompts, several noise draws)
    starts at 0 (policy = reference: the inside is exactly 0) and ends above 0.5; with learning rate 0 (a
    model that does not learn) it stays at 0. (Sample brightness is not checked: the tiny random VAE
    decodes the bright and the dark clips to the same ~0.51 mean, so pixels carry no preference signal.)"""
    objective, dataset, parameters = _objective(model_dir, data_dir, overrides=["objective.beta=500"])
    train, held = [dataset[i] for i in range(6)], [dataset[i] for i in range(6, 8)]
    assert _held_out_accuracy(objective, held) == 0.0
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate)
    for step in range(30):
        chosen = np.random.default_rng(step).choice(6, 2, replace=False)
        loss, _ = objective.loss(collate([train[i] for i in chosen]), torch.Generator().manual_seed(step), None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    accuracy = _held_out_accuracy(objective, held)
    assert (accuracy > 0.5) == (learning_rate > 0), accuracy


def test_latents_are_encoded_once_per_video(model_dir, data_dir):
    """Two passes over the pairs encode each video once (spy on the adapter's encode_videos)."""
    objective, dataset, _ = _objective(model_dir, data_dir)
    encode, calls = objective.adapter.encode_videos, []
    objective.adapter.encode_videos = lambda videos: calls.append(videos.shape[0]) or encode(videos)
    for _ in range(2):
        for start in range(0, 4, 2):
            objective.pair_latents(collate([dataset[start], dataset[start + 1]]))
    assert sum(calls) == 8 and objective.cache.encoded == 8  # 4 pairs x 2 videos, no re-encoding


def test_nonfinite_loss_stops_with_the_batch_saved(model_dir, data_dir, tmp_path, monkeypatch):
    """A NaN loss raises NonFiniteLossError before backward and saves the micro-batch."""
    from rewardkit.finetune.objectives.dpo import DPO

    loss = DPO.loss
    monkeypatch.setattr(DPO, "loss", lambda self, *args: (loss(self, *args)[0] * float("nan"), loss(self, *args)[1]))
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match="stopped every rank"):
        finetune(RECIPES / "smoke-tiny-dpo.toml", [f'model.path="{model_dir}"', f'data.pairs="{data_dir}/pairs.jsonl"',
                                                   f'train.output_dir="{run}"', "train.progress=false"])
    saved = torch.load(next(run.glob("nonfinite-step-000001-rank0.pt")), weights_only=False)
    assert saved["step"] == 1 and len(saved["batch"]["prompts"]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["smoke-tiny-dpo", "smoke-tiny-gran-dpo", "smoke-tiny-rwr"])
def test_smoke_recipes(recipe, model_dir, tmp_path):
    """Each objective's smoke recipe (testing:bright-dark data from the cache): finite losses; DPO-type
    losses start at ln 2 (the LoRA's B is zero, so policy = reference: an independent check of reference());
    the LoRA moved; samples written at the last step."""
    from safetensors.torch import load_file

    run = finetune(RECIPES / f"{recipe}.toml", [f'model.path="{model_dir}"', f'train.output_dir="{tmp_path / "run"}"', "train.progress=false"])
    rows = _metrics(run)
    assert [int(row["step"]) for row in rows] == [1, 2] and all(np.isfinite(float(row["loss"])) for row in rows)
    if "dpo" in recipe:
        assert float(rows[0]["loss"]) == pytest.approx(np.log(2), abs=1e-6) and float(rows[0]["implicit_acc"]) == 0.0
    up = [value for key, value in load_file(run / "lora" / "pytorch_lora_weights.safetensors").items() if "lora_B" in key]
    assert max(value.abs().max().item() for value in up) > 0
    assert (run / "samples" / "step-000002" / "00.mp4").exists()


@pytest.mark.slow
def test_resume_skips_an_incomplete_checkpoint_and_reproduces_the_next_loss(model_dir, data_dir, tmp_path):
    """3 DPO steps with a checkpoint every step; the step-3 checkpoint is then made incomplete (optimizer
    truncated) and step 2's trainer state removed: resume warns, falls back to step 1 and reproduces the
    uninterrupted run's losses of steps 2 and 3."""
    common = [f'model.path="{model_dir}"', f'data.pairs="{data_dir}/pairs.jsonl"', "train.progress=false",
              "train.sample_every=0", "train.checkpoint_every=1", "train.max_steps=3"]
    run = finetune(RECIPES / "smoke-tiny-dpo.toml", [*common, f'train.output_dir="{tmp_path / "run"}"'])
    full = [float(row["loss"]) for row in _metrics(run)]
    optimizer = run / "checkpoints" / "step-000003" / "optimizer.bin"
    optimizer.write_bytes(optimizer.read_bytes()[:100])
    (run / "checkpoints" / "step-000002" / "trainer_state.json").unlink()
    shutil.rmtree(run / "lora")
    with pytest.warns(UserWarning, match="skipping incomplete checkpoint .*step-000003.*optimizer.bin"):
        finetune(resume=run, overrides=["train.progress=false"])
    resumed = [float(row["loss"]) for row in _metrics(run)]
    assert resumed == pytest.approx(full, rel=1e-6, abs=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("recipe", "family"),
    [("smoke-tiny-animatediff", "animatediff"), ("smoke-tiny-dpo", "unet3d"), ("smoke-tiny-rwr", "unet3d"), ("smoke-tiny-gran-dpo", "unet3d")],
)
def test_two_process_run_finishes_with_samples_at_the_last_step(recipe, family, model_dir, data_dir, tmp_path):
    """torchrun --nproc_per_node 2 (gloo on CPU) of each objective's smoke recipe with samples at the last
    step: both processes exit 0 within the timeout (before the fix, AnimateDiff hung: rank 0 sampled
    through the DDP wrapper, whose buffer broadcast the other rank never joined) and the samples exist."""
    import os
    import subprocess
    import sys

    if family == "animatediff":
        from rewardkit.testing.finetune import write_tiny_animatediff_pipeline

        model = write_tiny_animatediff_pipeline(tmp_path / "model")
    else:
        model = model_dir
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(29500 + os.getpid() % 1000),
        "-m", "rewardkit.cli", "finetune", str(RECIPES / f"{recipe}.toml"), "--set", f'model.path="{model}"',
        "--set", f'train.output_dir="{run}"', "--set", "train.progress=false", "--set", "train.max_steps=2",
        "--set", "train.sample_every=2", "--set", "train.batch_size=1",
    ]
    if "dpo" in recipe:
        command += ["--set", f'data.pairs="{data_dir}/pairs.jsonl"']
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [int(row["step"]) for row in _metrics(run)] == [1, 2]
    assert (run / "samples" / "step-000002" / "00.mp4").exists()
