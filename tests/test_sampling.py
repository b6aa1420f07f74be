"""Segmental sampling and temporal attenuation against hand-computed values (InstructVideo, F=16, S=4)."""

import math

import numpy as np
import pytest
import torch

from rewardkit.video.sampling import All, Segmental, Uniform, parse_sampler
from rewardkit.video.weighting import Mean, TemporalAttenuation, parse_weighting


def test_segmental_first_and_middle():
    assert Segmental(4, "first").indices(16) == [0, 4, 8, 12]
    assert Segmental(4, "middle").indices(16) == [1, 5, 9, 13]
    # 18 frames: segments of 18 // 4 = 4, the last 2 frames are never chosen (as in the paper).
    assert Segmental(4, "first").indices(18) == [0, 4, 8, 12]


def test_segmental_random_is_one_frame_per_segment_and_seeded():
    draws = [Segmental(4, "random").indices(16, np.random.default_rng(seed)) for seed in range(200)]
    for indices in draws:
        assert [index // 4 for index in indices] == [0, 1, 2, 3]
    # Every offset 0..3 occurs in every segment, independently.
    for segment in range(4):
        assert {indices[segment] % 4 for indices in draws} == {0, 1, 2, 3}
    # g(s) = s * (F // S) + randint(F // S) with the generator's integers(0, 4, size=4)
    expected = list(np.arange(4) * 4 + np.random.default_rng(7).integers(0, 4, size=4))
    assert Segmental(4, "random").indices(16, np.random.default_rng(7)) == expected
    assert Segmental(4, "random", seed=3).indices(16) == Segmental(4, "random", seed=3).indices(16)


def test_too_few_frames_is_a_clear_error():
    with pytest.raises(ValueError, match="needs at least 4 frame"):
        Segmental(4).indices(3)


def test_uniform_and_all():
    assert Uniform(4).indices(16) == [0, 5, 10, 15]
    assert All().indices(3) == [0, 1, 2]


def test_temporal_attenuation_matches_hand_computed_values():
    # F = 16, middle F // 2 = 8, lambda = 1: frames 0, 4, 8, 12 get exp(-8), exp(-4), exp(0), exp(-4).
    scores = torch.tensor([[0.2, 0.3, 0.4, 0.5]], dtype=torch.float64)
    indices = torch.tensor([[0, 4, 8, 12]])
    weights = [math.exp(-8), math.exp(-4), 1.0, math.exp(-4)]
    paper = sum(w * r for w, r in zip(weights, [0.2, 0.3, 0.4, 0.5], strict=True)) / 4
    assert TemporalAttenuation(1.0)(scores, indices, 16).item() == pytest.approx(paper, rel=1e-12)
    normalized = sum(w * r for w, r in zip(weights, [0.2, 0.3, 0.4, 0.5], strict=True)) / sum(weights)
    assert TemporalAttenuation(1.0, normalized=True)(scores, indices, 16).item() == pytest.approx(normalized, rel=1e-12)
    assert Mean()(scores, indices, 16).item() == pytest.approx(0.35)


def test_weighting_is_differentiable_and_batched():
    scores = torch.rand(3, 4, requires_grad=True)
    indices = torch.tensor([[0, 5, 9, 13], [1, 4, 8, 12], [3, 7, 11, 15]])
    TemporalAttenuation(1.0)(scores, indices, 16).sum().backward()
    expected = torch.exp(-(indices.double() - 8).abs()) / 4
    assert torch.allclose(scores.grad.double(), expected)


def test_parsers():
    assert parse_sampler("segmental:4") == Segmental(4, "first")
    assert parse_sampler("segmental:4:random") == Segmental(4, "random")
    assert parse_sampler("uniform:8") == Uniform(8) and parse_sampler("all") == All()
    assert parse_weighting("tar:1.0") == TemporalAttenuation(1.0)
    assert parse_weighting("tar:0.5:normalized") == TemporalAttenuation(0.5, normalized=True)
    with pytest.raises(ValueError, match="segmental:S"):
        parse_sampler("every-other")
    with pytest.raises(ValueError, match="tar:LAMBDA"):
        parse_weighting("tar:x")
