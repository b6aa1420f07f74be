"""HPSv2 scoring of 16 images: the official ``hpsv2`` package against rewardkit, on the cpu.

Run:
    HF_HUB_OFFLINE=1 uv run pytest benchmarks/bench_hpsv2.py --benchmark-only -o python_files='bench_*.py' \\
        -p no:cacheprovider

Architecture: open_clip ViT-B-32, not HPS's ViT-H-14. A ViT-H-14 forward takes ~2.5 s per image on a
2-core cpu, so the same two pipelines are timed on a ViT-B-32 with random weights saved in HPS's published
checkpoint format (``{"state_dict": ...}``, fp16; ``rewardkit.testing.write_hps_checkpoint``). hpsv2's
bundled open_clip and open_clip 3.x have identical ViT-B-32 configs (no QuickGELU in either; same keys
and shapes), so the very same file loads strictly into both, and every benchmark checks its scores
against rewardkit's within 1e-4: all four measure the same computation. The text tower is ViT-B-32's
too; the official ``score`` tokenizes with ``get_tokenizer('ViT-H-14')``, the same CLIP BPE tokenizer.

Workload: 16 PIL images (8 of 512x512, 8 of 640x360, alternating) and one prompt; one thread pool of
torch's default size. Group ``hpsv2-16-images``:

- ``official_list``: ``score(images, prompt, cp=path)``, one call: it loads the checkpoint once, then
  scores image by image (preprocessing, image AND text encoding per image).
- ``official_per_image``: ``[score(image, prompt, cp=path) for image in images]``, as users typically
  write it: the checkpoint is loaded 16 times.
- ``rewardkit_engine``: the reward is built once, outside the timing; timed: ``convert("RGB")`` and
  ``reward.preprocessor`` per image, ``reward.score_preprocessed`` in batches of 8 under
  ``torch.inference_mode()``. The text-feature cache is cleared first, so the prompt is encoded once
  per call (rather than not at all).
- ``rewardkit_with_load``: the same plus ``create_reward`` (model construction and checkpoint load)
  inside the timing, to compare with ``official_list``, which also loads the checkpoint per call.

Group ``hpsv2-engine-overhead`` (no official package): the same 16 images preprocessed once, outside the
timing. ``bare_forward`` is open_clip's own ``model.encode_image(normalize=True)`` per batch of 8 and the
dot product with the prompt's text features (encoded once, outside the timing): the model's floor.
``engine_forward`` is what the engine calls on those batches: ``reward.score_preprocessed`` (device and
dtype move, the text-feature cache, the cosine). The ratio is the engine's overhead on the model.

Each benchmark runs one warm-up round, then 3 timed rounds of 1 iteration (``benchmark.pedantic``).

Real size: ``REWARDKIT_BENCH_ARCH=ViT-H-14 REWARDKIT_BENCH_ROUNDS=1`` runs the same four on HPS's own
architecture (one round, no warm-up; ~10 minutes and ~12 GB on a 2-core cpu).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# rewardkit remembers checkpoint hashes here; keep the benchmark's random checkpoints out of ~/.cache.
os.environ.setdefault("REWARDKIT_CACHE", tempfile.mkdtemp(prefix="rewardkit-bench-"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from pytest_benchmark.fixture import BenchmarkFixture  # noqa: E402

from rewardkit import create_reward  # noqa: E402
from rewardkit.testing import gradient_images  # noqa: E402
from rewardkit.testing.clip import write_hps_checkpoint  # noqa: E402
from tests.parity.official import official_hpsv2, release_official_hpsv2  # noqa: E402

ARCHITECTURE = os.environ.get("REWARDKIT_BENCH_ARCH", "ViT-B-32")
PROMPT = "a red fox sitting in a snowy birch forest at dawn"
NUM_IMAGES, BATCH_SIZE = 16, 8
SIZES = [(512, 512), (640, 360)]  # (width, height)
AGREEMENT = 1e-4
_ROUNDS = int(os.environ.get("REWARDKIT_BENCH_ROUNDS", "3"))
ROUNDS = {"rounds": _ROUNDS, "iterations": 1, "warmup_rounds": 1 if _ROUNDS > 1 else 0}

pytestmark = pytest.mark.benchmark(group="hpsv2-16-images")


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return gradient_images(NUM_IMAGES, SIZES)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_hps_checkpoint(tmp_path_factory.mktemp("hps") / "HPS_v2.1_compressed.pt", ARCHITECTURE)


def build_reward(checkpoint: Path) -> torch.nn.Module:
    return create_reward(
        "hpsv2",
        weights=str(checkpoint),
        architecture=ARCHITECTURE,
        version="v2.1",
        mode="reference",
        device="cpu",
        dtype=torch.float32,
    )


@pytest.fixture(scope="module")
def reward(checkpoint: Path) -> torch.nn.Module:
    return build_reward(checkpoint)


@pytest.fixture(scope="module")
def official_score() -> Iterator[Callable[..., list]]:
    yield official_hpsv2(ARCHITECTURE)
    release_official_hpsv2()


def rewardkit_scores(reward: torch.nn.Module, images: list[Image.Image]) -> np.ndarray:
    """rewardkit's engine path: per-image preprocessing, then batched scoring."""
    reward.text_features.clear()
    scores = []
    with torch.inference_mode():
        for start in range(0, len(images), BATCH_SIZE):
            chunk = images[start : start + BATCH_SIZE]
            pixel_values = torch.stack(
                [reward.preprocessor(np.asarray(image.convert("RGB"))) for image in chunk]
            )
            scores.append(reward.score_preprocessed(pixel_values, [PROMPT] * len(chunk)))
    return torch.cat(scores).numpy()


@pytest.fixture(scope="module")
def expected(reward: torch.nn.Module, images: list[Image.Image]) -> np.ndarray:
    return rewardkit_scores(reward, images)


def check(scores, expected: np.ndarray) -> None:
    scores = np.asarray(scores, dtype=np.float64)
    assert scores.shape == expected.shape
    gap = np.abs(scores - expected).max()
    assert gap <= AGREEMENT, f"scores differ from rewardkit's by up to {gap:.3e}"


def test_official_list(benchmark: BenchmarkFixture, official_score, checkpoint, images, expected) -> None:
    scores = benchmark.pedantic(
        lambda: official_score(images, PROMPT, cp=str(checkpoint), hps_version="v2.1"), **ROUNDS
    )
    check(scores, expected)


def test_official_per_image(
    benchmark: BenchmarkFixture, official_score, checkpoint, images, expected
) -> None:
    scores = benchmark.pedantic(
        lambda: [
            official_score(image, PROMPT, cp=str(checkpoint), hps_version="v2.1")[0] for image in images
        ],
        **ROUNDS,
    )
    check(scores, expected)


def test_rewardkit_engine(benchmark: BenchmarkFixture, reward, images, expected) -> None:
    scores = benchmark.pedantic(lambda: rewardkit_scores(reward, images), **ROUNDS)
    check(scores, expected)


def test_rewardkit_with_load(benchmark: BenchmarkFixture, checkpoint, images, expected) -> None:
    scores = benchmark.pedantic(lambda: rewardkit_scores(build_reward(checkpoint), images), **ROUNDS)
    check(scores, expected)


@pytest.fixture(scope="module")
def pixel_values(reward: torch.nn.Module, images: list[Image.Image]) -> torch.Tensor:
    return torch.stack([reward.preprocessor(np.asarray(image.convert("RGB"))) for image in images])


@pytest.mark.benchmark(group="hpsv2-engine-overhead")
def test_bare_forward(benchmark: BenchmarkFixture, reward, pixel_values, expected) -> None:
    with torch.inference_mode():
        text = reward.model.encode_text(reward.tokenizer([PROMPT]), normalize=True).float()

        def run() -> np.ndarray:
            batches = [pixel_values[start : start + BATCH_SIZE] for start in range(0, len(pixel_values), BATCH_SIZE)]
            return torch.cat([reward.model.encode_image(batch, normalize=True).float() @ text[0] for batch in batches]).numpy()

        check(benchmark.pedantic(run, **ROUNDS), expected)


@pytest.mark.benchmark(group="hpsv2-engine-overhead")
def test_engine_forward(benchmark: BenchmarkFixture, reward, pixel_values, expected) -> None:
    with torch.inference_mode():
        reward.text_features([PROMPT])

        def run() -> np.ndarray:
            batches = [pixel_values[start : start + BATCH_SIZE] for start in range(0, len(pixel_values), BATCH_SIZE)]
            return torch.cat([reward.score_preprocessed(batch, [PROMPT] * len(batch)) for batch in batches]).numpy()

        check(benchmark.pedantic(run, **ROUNDS), expected)
