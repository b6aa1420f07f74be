"""temporal_flickering against a direct numpy computation of VBench's formula."""

import numpy as np
import pytest
import torch

from rewardkit import create_reward


def vbench_flicker(frames: np.ndarray) -> float:
    """VBench temporal_flickering.py: mean over pairs of mean(absdiff(f_i, f_i+1)) in float32, then (255 - s)/255."""
    maes = [np.mean(np.abs(frames[i].astype(np.int16) - frames[i + 1].astype(np.int16)).astype(np.float32))
            for i in range(len(frames) - 1)]
    return float((255.0 - np.mean(maes)) / 255.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_numpy_vbench_formula(seed):
    frames = np.random.default_rng(seed).integers(0, 256, size=(9, 24, 32, 3), dtype=np.uint8)
    metric = create_reward("temporal_flickering")
    got = metric(torch.from_numpy(frames).permute(0, 3, 1, 2)[None]).item()
    assert got == pytest.approx(vbench_flicker(frames), abs=1e-6)


def test_float_input_and_gradients():
    frames = np.random.default_rng(2).integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8)
    pixels = (torch.from_numpy(frames).permute(0, 3, 1, 2)[None].float() / 255).requires_grad_(True)
    value = create_reward("temporal_flickering")(pixels)
    assert value.item() == pytest.approx(vbench_flicker(frames), abs=1e-5)
    value.sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0


def test_static_video_scores_one_and_single_frame_is_an_error():
    static = torch.full((1, 5, 3, 8, 8), 0.5)
    assert create_reward("temporal_flickering")(static).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 2"):
        create_reward("temporal_flickering")(static[:, :1])


@pytest.mark.parametrize("chunk", [1, 3, 9])
def test_uint8_stream_is_exact(chunk):
    """uint8 frames streamed in chunks of any size give VBench's formula evaluated exactly (integer sums,
    Python fractions), to float32's resolution."""
    from fractions import Fraction

    frames = np.random.default_rng(3).integers(0, 256, size=(9, 24, 32, 3), dtype=np.uint8)
    wide = frames.astype(np.int64)
    exact = (255 - Fraction(int(np.abs(np.diff(wide, axis=0)).sum()), 8 * frames[0].size)) / 255
    chunks = [frames[start : start + chunk] for start in range(0, len(frames), chunk)]
    got = create_reward("temporal_flickering").score_stream(chunks, list(range(9)), 9)["score"]
    assert got == pytest.approx(float(exact), abs=6e-8)
