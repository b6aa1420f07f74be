"""Issue 13 §3: the score difference of ``dtype=bf16`` / ``fp16`` from fp32, per model reward.

Every registered reward with weights is built three times (fp32, bf16, fp16) from the same random-weight
files in the official formats and scores the same inputs: 4 generated 224 px images (one at the real size)
with one prompt (image rewards), or one generated 16-frame 64x64 clip (video rewards; 128x128 for the two
that need 113 px, 256x256 at the real size). Reported per reward and dtype: the largest absolute difference
from fp32, and the fp32 scores to read it against. Sizes:

- ``tiny`` (default): the tiny fixtures of ``rewardkit.testing.TINY_REWARDS`` (every model reward);
- ``real``: ``rewardkit.testing.realsize`` (HPSv2 ViT-H-14, PickScore ViT-H-14, ImageReward ViT-L/16 + BERT,
  DOVER, CLIP and the aesthetic predictor on ViT-L/14): minutes and ~10 GB on a CPU, run it niced.

Run: ``uv run python benchmarks/bench_dtype.py --size tiny|real [--rewards a,b] [--device cuda]``; it prints
a Markdown table. On a CPU, fp16 kernels that torch lacks are reported as such. CI runs ``test_dtype_smoke``
(two tiny rewards) so the script cannot rot.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

PROMPT = "a red fox sitting in a snowy birch forest at dawn"
DTYPES = ("bf16", "fp16")


def model_rewards() -> list[str]:
    """Registered rewards that load weights (the weight-free metrics have no dtype to speak of)."""
    from rewardkit.testing import TINY_REWARDS

    return [name for name, fixture in TINY_REWARDS.items() if not fixture.endswith(":weight_free")]


# Video rewards whose flow / interpolation networks need frames of at least 113 px get 128 px tiny clips.
LARGER_TINY_CLIPS = ("dynamic_degree", "motion_smoothness")


def _inputs(name: str, modality: str, real: bool) -> torch.Tensor:
    from rewardkit.testing import pattern_image
    from rewardkit.testing.dover import pattern_video

    if modality == "image":  # one image at the real size: minutes per dtype on a CPU
        return torch.stack([torch.from_numpy(pattern_image(224, 224, seed=seed)).permute(2, 0, 1) for seed in range(1 if real else 4)])
    size = 256 if real else 128 if name in LARGER_TINY_CLIPS else 64
    return torch.from_numpy(pattern_video(16, size, size, seed=0)).permute(0, 3, 1, 2)[None]


def measure(name: str, options: dict[str, Any], *, real: bool = False, device: str = "cpu") -> dict[str, Any]:
    """fp32 scores of reward ``name`` and, per dtype in ``DTYPES``, the largest |score - fp32 score|."""
    from rewardkit import create_reward
    from rewardkit.registry import get_reward_info

    info = get_reward_info(name)
    inputs = _inputs(name, info.modality, real)
    prompts = [PROMPT] * len(inputs) if info.needs_prompt else None
    row: dict[str, Any] = {"reward": name, "size": "real" if real else "tiny"}
    reference = None
    for dtype in ("fp32", *DTYPES):
        started = time.perf_counter()
        try:
            reward = create_reward(name, device=device, dtype=dtype, **options)
            with torch.inference_mode():
                if info.modality == "image":
                    scores = reward(inputs.to(device), prompts)
                else:
                    scores = reward(inputs.to(device), prompts, rng=np.random.default_rng(0))
            scores = scores.float().cpu()
        except (RuntimeError, NotImplementedError) as error:  # e.g. an fp16 kernel torch has only on GPUs
            if dtype == "fp32":
                raise
            row[f"max_abs_diff_{dtype}"] = f"not run: {str(error).splitlines()[0][:80]}"
            continue
        finally:
            reward = None
        row[f"seconds_{dtype}"] = round(time.perf_counter() - started, 2)
        if reference is None:
            reference = scores
            row["fp32_scores"] = [round(float(value), 5) for value in scores]
        else:
            row[f"max_abs_diff_{dtype}"] = float((scores - reference).abs().max())
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| reward | size | fp32 scores | bf16 max abs diff | fp16 max abs diff |", "|---|---|---|---|---|"]
    for row in rows:
        cells = []
        for dtype in DTYPES:
            value = row.get(f"max_abs_diff_{dtype}", "")
            cells.append(f"{value:.2g}" if isinstance(value, float) else str(value))
        scores = row.get("fp32_scores", [])
        span = f"{min(scores):.4g} .. {max(scores):.4g}" if scores else row.get("error", "")
        lines.append(f"| {row['reward']} | {row['size']} | {span} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def run(size: str, rewards: list[str], device: str = "cpu") -> list[dict[str, Any]]:
    from rewardkit.testing import tiny_reward_options
    from rewardkit.testing.realsize import real_size_reward_options

    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        for name in rewards:
            folder = Path(temporary) / name
            try:
                options = real_size_reward_options(name, folder) if size == "real" else tiny_reward_options(name, folder)
                row = measure(name, options, real=size == "real", device=device)
            except Exception as error:  # one reward's failure is its row, the table goes on
                row = {"reward": name, "size": size, "error": f"{type(error).__name__}: {error}"[:200]}
            print(json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
    return rows


def test_dtype_smoke() -> None:
    """CI smoke: two tiny rewards (an image and a video one) through the same code; bf16 differs from fp32
    by less than the score range (a bf16 path that ignored the weights would not)."""
    rows = run("tiny", ["hpsv2", "dover"])
    assert all("error" not in row for row in rows), rows
    for row in rows:
        assert isinstance(row["max_abs_diff_bf16"], float) and row["max_abs_diff_bf16"] < 0.1, row


def main(argv: list[str] | None = None) -> None:
    from rewardkit.testing.realsize import REAL_SIZE_REWARDS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=("tiny", "real"), default="tiny")
    parser.add_argument("--rewards", default=None, help="comma-separated (default: every model reward at tiny size, "
                        "every one with real-size files at real size)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    rewards = args.rewards.split(",") if args.rewards else (list(REAL_SIZE_REWARDS) if args.size == "real" else model_rewards())
    torch.manual_seed(0)
    rows = run(args.size, rewards, args.device)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
