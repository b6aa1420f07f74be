"""ImageReward scoring of 16 image-prompt pairs: the official ``image-reward`` 1.5 package against rewardkit.

Run:
    HF_HUB_OFFLINE=1 uv run pytest benchmarks/bench_imagereward.py --benchmark-only -o python_files='bench_*.py' \\
        -p no:cacheprovider

Weights: one random checkpoint in the official ``ImageReward.pt`` layout with its ``med_config.json``
(``rewardkit.testing.imagereward``), loaded by both sides; the official model is built by
``tests/parity/official_imagereward.py`` (transformers-5 patches, offline tokenizer). Default size:
``tiny`` (ViT 128 x 2 blocks, BERT 32 x 2 layers, 224 px, 197 image tokens, 35 text tokens, full 30524-row
vocabulary). ``REWARDKIT_BENCH_SIZE=real`` uses the published ViT-L/16 + BERT-base (~1.8 GB of fp32
weights; ``REWARDKIT_BENCH_ROUNDS=1`` recommended). Every benchmark checks its scores against rewardkit's
within 1e-4, so all measure the same computation.

Workload: 8 prompts x 2 images each (16 PIL images, 512x512 and 640x360 alternating); torch's default
thread pool; models built outside the timing. Group ``imagereward-16-pairs-<size>``:

- ``official_per_prompt``: ``[model.score(prompt, [image_a, image_b]) for prompt in prompts]``, the
  package's list path (``inference_rank``: tokenizes the prompt, then per image: PIL transform, vision
  encoder, cross-attention text encoder), under ``torch.no_grad()``;
- ``official_per_image``: ``model.score(prompt, image)`` for each of the 16 pairs, under ``torch.no_grad()``;
- ``rewardkit_batched``: per image ``reward.preprocessor`` (the same PIL transform), then one
  ``reward.score_preprocessed`` call on all 16 under ``torch.inference_mode()``; the tokenization cache
  is cleared first, so every prompt is tokenized once per round.
- ``model_forward``: the floor, what no batching can remove on this device: the network alone (BLIP's
  vision encoder, the cross-attention text encoder and the MLP head: ``reward.model``) on the 16 images
  preprocessed and the prompts tokenized outside the timing, in one call. ``official_per_prompt`` over
  this is the most batching can gain here; ``rewardkit_batched`` over this is preprocessing and
  tokenization.

Each benchmark runs one warm-up round, then 3 timed rounds of 1 iteration (``benchmark.pedantic``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("REWARDKIT_CACHE", tempfile.mkdtemp(prefix="rewardkit-bench-"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from pytest_benchmark.fixture import BenchmarkFixture  # noqa: E402

from rewardkit import create_reward  # noqa: E402
from rewardkit.testing import gradient_images  # noqa: E402
from rewardkit.testing.imagereward import (  # noqa: E402
    REAL_MED_CONFIG,
    REAL_VISION,
    write_bert_vocab,
    write_imagereward_checkpoint,
)
from tests.parity.official_imagereward import official_imagereward  # noqa: E402

SIZE = os.environ.get("REWARDKIT_BENCH_SIZE", "tiny")
PROMPTS = [
    "a red fox sitting in a snowy forest at dawn",
    "a cat",
    "two dogs running on the beach at sunset",
    "a portrait of an old man, oil painting",
    "a castle on a hill under a dark sky",
    "a small boat on a lake, watercolor",
    "a robot reading a book in a kitchen",
    "a city street at night in the rain, cinematic lighting",
]
IMAGES_PER_PROMPT = 2
SIZES = [(512, 512), (640, 360)]
AGREEMENT = 1e-4
_ROUNDS = int(os.environ.get("REWARDKIT_BENCH_ROUNDS", "3"))
ROUNDS = {"rounds": _ROUNDS, "iterations": 1, "warmup_rounds": 1 if _ROUNDS > 1 else 0}

pytestmark = pytest.mark.benchmark(group=f"imagereward-16-pairs-{SIZE}")


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return gradient_images(len(PROMPTS) * IMAGES_PER_PROMPT, SIZES)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("imagereward")
    options = {"med_config": REAL_MED_CONFIG, "vision": REAL_VISION, "weight_std": None} if SIZE == "real" else {}
    checkpoint = write_imagereward_checkpoint(root / "model", seed=0, **options)
    return checkpoint, write_bert_vocab(root / "tokenizer")


@pytest.fixture(scope="module")
def reward(files) -> torch.nn.Module:
    checkpoint, tokenizer = files
    return create_reward("imagereward", weights={"model": str(checkpoint), "tokenizer": str(tokenizer)}, mode="reference")


@pytest.fixture(scope="module")
def official(files):
    checkpoint, tokenizer = files
    return official_imagereward(checkpoint, tokenizer)


def rewardkit_scores(reward: torch.nn.Module, images: list[Image.Image]) -> np.ndarray:
    reward.text_features.clear()
    prompts = [prompt for prompt in PROMPTS for _ in range(IMAGES_PER_PROMPT)]
    with torch.inference_mode():
        pixel_values = torch.stack([reward.preprocessor(np.asarray(image.convert("RGB"))) for image in images])
        return reward.score_preprocessed(pixel_values, prompts).numpy()


def official_per_prompt(official, images: list[Image.Image]) -> list[float]:
    scores: list[float] = []
    with torch.no_grad():
        for index, prompt in enumerate(PROMPTS):
            group = images[index * IMAGES_PER_PROMPT : (index + 1) * IMAGES_PER_PROMPT]
            scores.extend(official.score(prompt, group))
    return scores


def official_per_image(official, images: list[Image.Image]) -> list[float]:
    with torch.no_grad():
        return [official.score(PROMPTS[index // IMAGES_PER_PROMPT], image) for index, image in enumerate(images)]


@pytest.fixture(scope="module")
def expected(reward, images) -> np.ndarray:
    return rewardkit_scores(reward, images)


def check(scores, expected: np.ndarray) -> None:
    scores = np.asarray(scores, dtype=np.float64)
    assert scores.shape == expected.shape
    gap = np.abs(scores - expected).max()
    assert gap <= AGREEMENT, f"scores differ from rewardkit's by up to {gap:.3e}"


def test_official_per_prompt(benchmark: BenchmarkFixture, official, images, expected) -> None:
    check(benchmark.pedantic(lambda: official_per_prompt(official, images), **ROUNDS), expected)


def test_official_per_image(benchmark: BenchmarkFixture, official, images, expected) -> None:
    check(benchmark.pedantic(lambda: official_per_image(official, images), **ROUNDS), expected)


def test_rewardkit_batched(benchmark: BenchmarkFixture, reward, images, expected) -> None:
    check(benchmark.pedantic(lambda: rewardkit_scores(reward, images), **ROUNDS), expected)


def test_model_forward(benchmark: BenchmarkFixture, reward, images, expected) -> None:
    prompts = [prompt for prompt in PROMPTS for _ in range(IMAGES_PER_PROMPT)]
    with torch.inference_mode():
        pixel_values = torch.stack([reward.preprocessor(np.asarray(image.convert("RGB"))) for image in images])
        tokens = reward.text_features(prompts)
        scores = benchmark.pedantic(lambda: reward.model(pixel_values, tokens[:, 0], tokens[:, 1]).numpy(), **ROUNDS)
    check(scores, expected)
