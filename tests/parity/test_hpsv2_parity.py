"""rewardkit's ``hpsv2`` against the official ``hpsv2`` 1.2.0 package, at the real ViT-H-14 size.

What is compared. One random ViT-H-14 checkpoint in HPS's published format (``{"state_dict": ...}`` in
fp16, as ``HPS_v2.1_compressed.pt``; seed 0) is loaded by both sides. 8 PIL images (224x224, no resize;
512x512; 640x360 landscape; 300x700 portrait; 1x1; 97x31; a grayscale ``L`` and a palette ``P`` image) are
each scored with one of 2 prompts, in turn (4 tokens; 96 tokens, so both sides truncate to 77): every
image's preprocessing and both prompts' tokenization are compared, 4 images per prompt. (An HPS score is the
cosine of an image embedding and a text embedding computed independently, so the full image x prompt
product would only repeat the same two encoders; at this size each pair costs a ViT-H-14 forward per side.)

- official: ``hpsv2.img_score.score([pil images], prompt, cp=checkpoint, hps_version="v2.1")``, once per
  prompt with that prompt's images (the package's own per-image loop), i.e. its bundled open_clip ViT-H-14
  (fp32, cpu, where its ``torch.cuda.amp.autocast()`` does nothing), its ``preprocess_val`` (RGB
  conversion, ToTensor, ResizeMaxSize, normalise) and tokenizer. Only its model construction is done by us
  (``tests/parity/official.py``), with ``pretrained=None`` instead of downloading the LAION base that the
  checkpoint overwrites anyway;
- rewardkit: ``create_reward("hpsv2", weights=checkpoint, architecture="ViT-H-14", version="v2.1",
  mode="reference", device="cpu", dtype=torch.float32)`` called on the same pixels as a uint8 tensor
  ``[1, 3, H, W]`` (``np.asarray(image.convert("RGB"))``) and the same prompt.

Every |official - rewardkit| must be <= 1e-5 (scores are cosines in [-1, 1]). The largest difference is
printed (``pytest -s``). A second test prints the mean and max |reference - differentiable| of rewardkit's
two modes on the same pairs with the images given as float ``uint8 / 255`` and requires the max below 1e-3.

Each ViT-H-14 takes ~4 GB in fp32, so the two models (rewardkit's, whose two modes share one build, and the
official one) are built one after another, never alive together; all scores are computed once per module.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from rewardkit.testing import pattern_image

pytestmark = [pytest.mark.parity, pytest.mark.slow]

TOLERANCE = 1e-5
MODE_GAP_TOLERANCE = 1e-3

SHORT_PROMPT = "a cat"
LONG_PROMPT = (
    "an extremely detailed oil painting of a red fox sitting in a snowy birch forest at dawn, soft golden "
    "light filtering through frosted branches, delicate brush strokes, muted blue shadows on the snow, a "
    "frozen stream winding in the background, mist rising between the trees, crows perched on a fallen log, "
    "painted in the style of nineteenth century romantic landscape masters, museum quality, highly detailed, "
    "volumetric lighting, sharp focus, intricate textures, award winning composition, trending on artstation"
)
PROMPTS = {"short": SHORT_PROMPT, "long": LONG_PROMPT}


def make_images() -> dict[str, Image.Image]:
    images = {
        f"{width}x{height}": Image.fromarray(pattern_image(width, height, seed), mode="RGB")
        for seed, (width, height) in enumerate(
            [(224, 224), (512, 512), (640, 360), (300, 700), (1, 1), (97, 31)]
        )
    }
    images["L 320x240"] = Image.fromarray(pattern_image(320, 240, 10)[..., 1], mode="L")
    images["P 256x192"] = Image.fromarray(pattern_image(256, 192, 11), mode="RGB").quantize(colors=64)
    assert images["L 320x240"].mode == "L" and images["P 256x192"].mode == "P"
    return images


IMAGES = make_images()
CASES = [(image, list(PROMPTS)[index % len(PROMPTS)]) for index, image in enumerate(IMAGES)]


def as_uint8_batch(image: Image.Image) -> torch.Tensor:
    """The official transform's first step (``convert("RGB")`` unless RGBA) as a uint8 ``[1, 3, H, W]``."""
    return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)[None]


def _free() -> None:
    gc.collect()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from rewardkit.testing.clip import write_hps_checkpoint

    path = write_hps_checkpoint(
        tmp_path_factory.mktemp("hps-vit-h-14") / "HPS_v2.1_compressed.pt",
        "ViT-H-14",
        seed=0,
        dtype=torch.float16,
    )
    yield path
    os.remove(path)  # 2 GB; do not leave it in pytest's basetemp


def _score_all(reward: Any, float_input: bool) -> dict[tuple[str, str], float]:
    scores = {}
    with torch.no_grad():
        for name, key in CASES:
            pixels = as_uint8_batch(IMAGES[name])
            if float_input:
                pixels = pixels.float() / 255
            values = reward(pixels, [PROMPTS[key]])
            assert values.shape == (1,) and values.dtype == torch.float32
            scores[name, key] = values.item()
    return scores


def _rewardkit_scores(checkpoint: Path) -> dict[str, dict[tuple[str, str], float]]:
    """Both modes from one ViT-H-14 build: ``reference`` through ``create_reward`` (the user's path), and
    ``differentiable`` as the same class around the same loaded model (saves a second 4 GB build)."""
    from rewardkit import create_reward
    from rewardkit.rewards.hpsv2 import HPSv2

    reward = create_reward(
        "hpsv2",
        weights=str(checkpoint),
        architecture="ViT-H-14",
        version="v2.1",
        mode="reference",
        device="cpu",
        dtype=torch.float32,
    )
    differentiable = HPSv2(reward.model, reward.tokenizer, mode="differentiable", device="cpu", dtype=torch.float32)
    scores = {"reference": _score_all(reward, float_input=False),
              "differentiable": _score_all(differentiable, float_input=True)}
    del reward, differentiable
    _free()
    return scores


def _official_scores(checkpoint: Path) -> dict[tuple[str, str], float]:
    from tests.parity.official import official_hpsv2, release_official_hpsv2

    score = official_hpsv2("ViT-H-14")
    scores = {}
    try:
        for key, prompt in PROMPTS.items():
            names = [name for name, case_prompt in CASES if case_prompt == key]
            values = score([IMAGES[name] for name in names], prompt, cp=str(checkpoint), hps_version="v2.1")
            scores.update({(name, key): float(value) for name, value in zip(names, values, strict=True)})
    finally:
        release_official_hpsv2()
        _free()
    return scores


@pytest.fixture(scope="module")
def scores(hpsv2_available, checkpoint: Path) -> dict[str, dict[tuple[str, str], float]]:
    """All scores of the module, computed one model at a time (peak memory: one ViT-H-14 + checkpoint)."""
    runs = {"rewardkit": lambda: _rewardkit_scores(checkpoint), "official": lambda: {"official": _official_scores(checkpoint)}}
    results = {}
    for name, run in runs.items():
        start = time.perf_counter()
        results.update(run())
        print(f"\n{name}: scores in {time.perf_counter() - start:.1f} s (model build included)")
    return results


def test_prompts_exercise_truncation() -> None:
    from open_clip.tokenizer import SimpleTokenizer

    tokenizer = SimpleTokenizer()
    assert len(tokenizer.encode(SHORT_PROMPT)) + 2 <= 77
    assert len(tokenizer.encode(LONG_PROMPT)) + 2 > 77


@pytest.mark.parametrize(("image", "prompt"), CASES, ids=[f"{image}-{prompt}" for image, prompt in CASES])
def test_reference_matches_official(scores, image: str, prompt: str) -> None:
    official, ours = scores["official"][image, prompt], scores["reference"][image, prompt]
    diff = abs(official - ours)
    print(f"\n{image:>10} {prompt:>5}: official {official:+.8f} rewardkit {ours:+.8f} |diff| {diff:.3e}")
    assert diff <= TOLERANCE, f"{image}/{prompt}: official {official} vs rewardkit {ours} (|diff| {diff:.3e})"


def test_reference_parity_summary(scores) -> None:
    diffs = {case: abs(scores["official"][case] - scores["reference"][case]) for case in scores["official"]}
    worst = max(diffs, key=diffs.get)
    print(
        f"\nhpsv2 ViT-H-14 parity: max |official - rewardkit| = {diffs[worst]:.3e} at {worst} over {len(diffs)} cases"
    )
    assert diffs[worst] <= TOLERANCE


def test_differentiable_close_to_reference(scores) -> None:
    gaps = np.array(
        [abs(scores["reference"][case] - scores["differentiable"][case]) for case in scores["reference"]]
    )
    print(
        f"\nhpsv2 ViT-H-14 |reference - differentiable|: mean {gaps.mean():.3e} max {gaps.max():.3e} over {len(gaps)} cases"
    )
    assert gaps.max() < MODE_GAP_TOLERANCE
