"""rewardkit's ``imagereward`` against the official ``image-reward`` 1.5 package, same random weights.

What is compared. A random checkpoint in the official ``ImageReward.pt`` layout (every key of the
official model's ``state_dict()``, ``rewardkit.testing.imagereward``) with its ``med_config.json``, and one
bert-base-uncased-style vocabulary folder (30522 entries, so [DEC]/[ENC] get ids 30522/30523), are given to
both sides, at two sizes:

- ``tiny`` (fast): ViT width 128, 2 blocks (patch 16, 224 px, 197 tokens); BERT width 32, 2 layers, 30524
  vocabulary rows; MLP 32 -> 1024 -> 128 -> 64 -> 16 -> 1;
- ``real`` (marked slow): ViT-L/16 (1024 x 24) and BERT-base (768 x 12), the published architecture.

7 PIL images (224x224, 512x512, 640x360, 300x700, 1x1, 97x31, a grayscale ``L`` image) and 3 prompts
(4 tokens; mixed case and punctuation; 60+ tokens, truncated at 35 by both sides) are scored as every
image x prompt pair at the tiny size; at the real size each image is scored with one prompt, in turn (every
image, every prompt, 2-3 images per prompt: each pair costs a ViT-L/16 and BERT-base forward per side, and
the full product would run the same code on the same images 3 times):

- official: ``ImageReward.ImageReward(med_config).score(prompt, [pil images])`` once per prompt with that
  prompt's images (its list path,
  ``inference_rank``: the package's PIL transform, tokenizer call and BLIP modules), fp32 on cpu, built and
  loaded by ``tests/parity/official_imagereward.py`` (transformers-5 compatibility patches, offline tokenizer,
  tiny sizes; every checkpoint key checked) and called under ``torch.no_grad()``;
- rewardkit: ``create_reward("imagereward", weights={"model": folder, "tokenizer": vocab_folder}, mode="reference")``
  on the same pixels as a uint8 batch ``[1, 3, H, W]`` per pair (``np.asarray(image.convert("RGB"))``).

Every |official - rewardkit| must be <= 1e-4; the largest is printed (``pytest -s``). Not compared: palette
(``P``) and RGBA images, which the official code resizes before converting to RGB (Pillow resizes ``P``
with nearest neighbour and RGBA with premultiplied alpha); rewardkit takes RGB pixels.
"""

from __future__ import annotations

import gc
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rewardkit.testing import pattern_image

pytestmark = pytest.mark.parity

TOLERANCE = 1e-4
PROMPTS = [
    "a red cat",
    "A Photo of TWO dogs, running on the beach at sunset!",
    " ".join(["a very detailed oil painting of a red fox sitting in a snowy forest at dawn"] * 4),
]


def _pairs(size: str) -> list[tuple[int, int]]:
    """(image index, prompt index) pairs: all of them at the tiny size, each image once at the real size."""
    if size == "real":
        return [(image, image % len(PROMPTS)) for image in range(7)]
    return [(image, prompt) for prompt in range(len(PROMPTS)) for image in range(7)]


def _images() -> list[Image.Image]:
    sizes = [(224, 224), (512, 512), (640, 360), (300, 700), (1, 1), (97, 31)]
    images = [Image.fromarray(pattern_image(w, h, seed)) for seed, (w, h) in enumerate(sizes)]
    images.append(Image.fromarray(pattern_image(200, 150, 9)).convert("L"))
    return images


@pytest.fixture(scope="module")
def official_available() -> None:
    for module in ("ImageReward", "clip", "pkg_resources"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"the official image-reward package needs {module!r} (uv dependency group 'parity')")


def _files(root: Path, size: str) -> tuple[Path, Path]:
    from rewardkit.testing.imagereward import (
        REAL_MED_CONFIG,
        REAL_VISION,
        write_bert_vocab,
        write_imagereward_checkpoint,
    )

    options = {"med_config": REAL_MED_CONFIG, "vision": REAL_VISION, "weight_std": None} if size == "real" else {}
    write_imagereward_checkpoint(root / "model", seed=1, **options)
    return root / "model", write_bert_vocab(root / "tokenizer")


def _official_scores(
    model_dir: Path, tokenizer_dir: Path, images: list[Image.Image], pairs: list[tuple[int, int]]
) -> np.ndarray:
    """The official score of each (image, prompt) pair: one list call per prompt (2 images or more)."""
    from tests.parity.official_imagereward import official_imagereward

    model = official_imagereward(model_dir / "ImageReward.pt", tokenizer_dir)
    scores = {}
    with torch.no_grad():
        for prompt_index, prompt in enumerate(PROMPTS):
            indices = [image for image, prompt_of in pairs if prompt_of == prompt_index]
            values = model.score(prompt, [images[image] for image in indices])
            scores.update({(image, prompt_index): value for image, value in zip(indices, values, strict=True)})
    del model
    gc.collect()
    return np.array([scores[pair] for pair in pairs], dtype=np.float64)


def _rewardkit_scores(
    model_dir: Path, tokenizer_dir: Path, images: list[Image.Image], pairs: list[tuple[int, int]]
) -> np.ndarray:
    from rewardkit import create_reward

    reward = create_reward("imagereward", weights={"model": str(model_dir), "tokenizer": str(tokenizer_dir)}, mode="reference")
    with torch.no_grad():
        scores = [reward(torch.from_numpy(np.asarray(images[image].convert("RGB"))).permute(2, 0, 1)[None],
                         [PROMPTS[prompt]]).item()
                  for image, prompt in pairs]  # fmt: skip
    del reward
    gc.collect()
    return np.array(scores, dtype=np.float64)


@pytest.mark.parametrize(
    "size", ["tiny", pytest.param("real", marks=pytest.mark.slow)]
)
def test_imagereward_equals_official_package(size, official_available, tmp_path):
    model_dir, tokenizer_dir = _files(tmp_path, size)
    images, pairs = _images(), _pairs(size)
    official = _official_scores(model_dir, tokenizer_dir, images, pairs)
    ours = _rewardkit_scores(model_dir, tokenizer_dir, images, pairs)
    difference = np.abs(official - ours)
    print(f"\nimagereward parity ({size}): max |official - rewardkit| = {difference.max():.3g} "
          f"over {difference.size} pairs; score spread {official.min():.3f}..{official.max():.3f}")  # fmt: skip
    assert official.std() > 0.05, "the random weights must make scores depend on the inputs"
    assert difference.max() <= TOLERANCE, difference


def test_batched_scores_equal_official_loop(official_available, tmp_path):
    """One batched rewardkit call (4 images x 3 prompts) equals the official per-image loop."""
    from rewardkit import create_reward

    model_dir, tokenizer_dir = _files(tmp_path, "tiny")
    images = [Image.fromarray(pattern_image(320, 240, seed)) for seed in range(4)]
    pairs = [(image, prompt) for prompt in range(len(PROMPTS)) for image in range(len(images))]
    official = _official_scores(model_dir, tokenizer_dir, images, pairs)  # prompt-major, as the batch below
    reward = create_reward("imagereward", weights={"model": str(model_dir), "tokenizer": str(tokenizer_dir)})
    pixels = torch.stack([torch.from_numpy(np.asarray(image)).permute(2, 0, 1) for image in images])
    with torch.no_grad():
        got = reward(pixels.repeat(len(PROMPTS), 1, 1, 1), [p for p in PROMPTS for _ in images])
    difference = np.abs(got.double().numpy() - official)
    assert difference.max() <= TOLERANCE, difference
