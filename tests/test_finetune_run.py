"""CPU smoke runs of finetune/smoke-tiny.toml (tiny random UNet3D pipeline, temporal_flickering reward):
finite loss, LoRA weights change, the LoRA reloads into a diffusers TextToVideoSDPipeline, and --resume
reproduces the losses of an uninterrupted run."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from rewardkit.cli import main
from rewardkit.finetune import finetune

RECIPE = Path(__file__).resolve().parents[1] / "finetune" / "smoke-tiny.toml"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from rewardkit.testing.finetune import write_tiny_t2v_pipeline

    return write_tiny_t2v_pipeline(tmp_path_factory.mktemp("tiny-t2v"))


def _metrics(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, model_dir) -> Path:
    run = tmp_path_factory.mktemp("runs") / "full"
    return finetune(RECIPE, [f'model.path="{model_dir}"', f'train.output_dir="{run}"', "train.progress=false"])


def test_smoke_run_outputs(full_run):
    """4 steps: finite losses equal to 1 - reward, LoRA moved from its zero-initialised B, every output present."""
    from safetensors.torch import load_file

    rows = _metrics(full_run)
    assert [int(row["step"]) for row in rows] == [1, 2, 3, 4]
    for row in rows:
        assert torch.isfinite(torch.tensor(float(row["loss"])))
        assert abs(float(row["loss"]) - (1 - float(row["reward_mean"]))) < 1e-6
    lora = load_file(full_run / "lora" / "pytorch_lora_weights.safetensors")
    up = [value for key, value in lora.items() if "lora_B" in key]
    assert up and all(key.startswith("unet.") for key in lora)
    assert max(value.abs().max().item() for value in up) > 0  # B starts at zero: it was trained
    for name in ("config.toml", "reward.png", "samples.csv", "samples/step-000004/00.mp4", "checkpoints/step-000002/optimizer.bin"):
        assert (full_run / name).exists(), name


def test_lora_reloads_into_diffusers_pipeline(full_run, model_dir):
    """The saved LoRA loads into TextToVideoSDPipeline's unet with the trained values, and merging it gives
    the same UNet output as the unmerged LoRA (independent: peft merge vs. LoRA forward)."""
    from diffusers import TextToVideoSDPipeline
    from safetensors.torch import load_file

    from rewardkit.finetune.lora import load_lora_into_pipeline, lora_state_dict

    pipe = load_lora_into_pipeline(TextToVideoSDPipeline.from_pretrained(model_dir), full_run / "lora")
    saved = load_file(full_run / "lora" / "pytorch_lora_weights.safetensors")
    loaded = lora_state_dict(pipe.unet)
    assert set(f"unet.{key}" for key in loaded) == set(saved)
    for key, value in loaded.items():
        torch.testing.assert_close(value, saved[f"unet.{key}"])
    sample = torch.randn(1, 4, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    states = torch.randn(1, 77, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = pipe.unet(sample, 501, encoder_hidden_states=states).sample
        merged = load_lora_into_pipeline(TextToVideoSDPipeline.from_pretrained(model_dir), full_run / "lora", merge=True)
        after = merged.unet(sample, 501, encoder_hidden_states=states).sample
    assert not any("lora_" in name for name, _ in merged.unet.named_parameters())
    torch.testing.assert_close(before, after, rtol=1e-4, atol=1e-5)


def test_resume_continues_exactly(full_run, model_dir, tmp_path):
    """Stop after 2 steps, resume to 4: steps 3 and 4 have the uninterrupted run's losses."""
    run = tmp_path / "resumed"
    common = [f'model.path="{model_dir}"', "train.progress=false"]
    finetune(RECIPE, [*common, f'train.output_dir="{run}"', "train.max_steps=2", "train.sample_every=0"])
    assert len(_metrics(run)) == 2
    assert main(["finetune", "--resume", str(run), "--set", "train.max_steps=4", "--set", "train.progress=false"]) == 0
    resumed, full = _metrics(run), _metrics(full_run)
    assert [int(row["step"]) for row in resumed] == [1, 2, 3, 4]
    for ours, theirs in zip(resumed, full, strict=True):
        assert float(ours["loss"]) == pytest.approx(float(theirs["loss"]), rel=1e-6, abs=1e-7)


def test_cli_errors_before_loading(tmp_path, capsys):
    """A bad key is exit code 2 with the close match; so is a base model that is neither cached nor downloadable offline."""
    assert main(["finetune", str(RECIPE), "--set", "train.learnig_rate=1"]) == 2
    assert "Did you mean 'learning_rate'" in capsys.readouterr().err
    code = main(["finetune", str(RECIPE), "--set", 'model.path="nobody/no-such-t2v"', "--set", f'train.output_dir="{tmp_path / "run"}"'])
    error = capsys.readouterr().err
    assert code == 2 and "'nobody/no-such-t2v'" in error and "--set model.path=" in error
