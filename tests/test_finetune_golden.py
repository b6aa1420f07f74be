"""reward_backprop on the objective seam gives the numbers of the code before the seam: the losses and
LoRA weights after 2 steps of finetune/smoke-tiny.toml (editing, and full_chain) equal the recorded ones
(tests/data/golden_reward_backprop, same seed, recipe and tiny model).

History of the recording: first written by the pre-seam trainer; the seam's trainer reproduced it (this
test, on main up to c275266). The tiny-t2v fixture then changed (its VAE is fitted to reconstruct colour,
rewardkit.testing.finetune._fitted_vae), which changes every number, so the file was re-recorded by the
same trainer code (rewardkit/finetune unchanged in that commit), only the fixture differing. It still
guards reward_backprop's numbers against any later change of the trainer or the objective."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from rewardkit.finetune import finetune

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden_reward_backprop"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["editing", "full_chain"])
def test_reward_backprop_numbers_unchanged(mode, tmp_path):
    """Same seed and recipe as the recording: losses equal to float32 precision, LoRA weights equal."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from rewardkit.testing.finetune import write_tiny_t2v_pipeline

    with safe_open(str(GOLDEN / f"{mode}.safetensors"), framework="pt") as handle:
        metadata = handle.metadata()
    expected_losses = [float(value) for value in json.loads(metadata["losses"])]
    model = write_tiny_t2v_pipeline(tmp_path / "model")
    run = finetune(
        ROOT / "finetune" / "smoke-tiny.toml",
        [f'model.path="{model}"', f'train.output_dir="{tmp_path / "run"}"', "train.progress=false", "train.max_steps=2",
         "train.sample_every=0", "train.checkpoint_every=0", *json.loads(metadata["overrides"])],
    )
    with (run / "metrics.csv").open() as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert losses == pytest.approx(expected_losses, rel=1e-6, abs=1e-7)
    lora, golden = load_file(run / "lora" / "pytorch_lora_weights.safetensors"), load_file(GOLDEN / f"{mode}.safetensors")
    assert set(lora) == set(golden)
    for key, value in golden.items():
        torch.testing.assert_close(lora[key], value, rtol=1e-5, atol=1e-7)
