"""VBench motion_smoothness with AMT-S (rewardkit.rewards.amt).

Independent references: the official AMT-S parameter layout (key names and shapes read from VBench's
``vbench/third_party/amt/networks/AMT-S.py``; the full key-by-key comparison and the output parity run
against VBench's own code in tests/parity/test_amt_parity.py), and VBench's scoring formula
(``vbench/motion_smoothness.py``: even frames in, odd frames predicted, ``(x * 255).astype(uint8)``,
``(255 - mean |diff|) / 255``) evaluated by hand on clips whose interpolation a plain average gets exactly.
"""

from __future__ import annotations

import pytest
import torch

from rewardkit import create_reward
from rewardkit.rewards.amt import AmtS, MotionSmoothness, interpolation_score, load_amt_s
from rewardkit.testing.amt import write_amt_checkpoint
from rewardkit.testing.vbench import moving_square_clip
from rewardkit.weights import WeightsMismatchError


class Average(torch.nn.Module):
    """An interpolator with a hand-computable output: the mean of the two frames."""

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, embt: torch.Tensor) -> torch.Tensor:
        return (img0 + img1) / 2


def flat_clip(values: list[int], height: int = 120, width: int = 130) -> torch.Tensor:
    """uint8 video ``[1, T, 3, H, W]``: frame t is the constant ``values[t]`` plus a horizontal ramp (so a
    misplaced unpadding would show), sized off the 16-pixel grid so padding is exercised."""
    ramp = torch.arange(width).div(4).floor().to(torch.int64).expand(height, width)
    frames = torch.stack([(ramp + value).clamp(0, 255).expand(3, height, width) for value in values])
    return frames.to(torch.uint8)[None]


def test_official_parameter_layout():
    """Counts and shapes from AMT-S.py: 2,990,543 parameters in 213 tensors (the official module's own
    count), a few keys from each part with the shapes their constructors give."""
    state = AmtS().state_dict()
    assert len(state) == 213 and sum(value.numel() for value in state.values()) == 2_990_543
    expected = {
        "feat_encoder.conv1.weight": (32, 3, 7, 7),
        "feat_encoder.layer2.0.downsample.0.weight": (64, 32, 1, 1),
        "feat_encoder.conv2.weight": (84, 96, 1, 1),
        "encoder.pyramid4.1.1.weight": (56,),
        "decoder4.convblock.0.0.weight": (112, 113, 3, 3),  # convrelu(56 * 2 + 1, 56 * 2)
        "decoder4.convblock.1.conv2.0.weight": (20, 20, 3, 3),  # ResBlock side channels (skip 20)
        "decoder1.convblock.2.weight": (60, 24, 4, 4),  # ConvTranspose2d(20 * 3, 8 * 3 flows)
        "update4.convc1.weight": (64, 392, 1, 1),  # 2 * 4 levels * 7 * 7
        "update2.gru.0.weight": (76, 68 + 4 + 20, 3, 3),
        "update3.flow_head.2.weight": (4, 76, 3, 3),
        "comb_block.1.weight": (18,),
    }
    assert {key: tuple(state[key].shape) for key in expected} == expected


def test_loading_is_strict(tmp_path):
    path = write_amt_checkpoint(tmp_path / "amt-s.pth")
    checkpoint = torch.load(path, weights_only=True)
    model = load_amt_s(path)
    assert all(torch.equal(model.state_dict()[key], value) for key, value in checkpoint["state_dict"].items())
    missing = dict(checkpoint["state_dict"])
    missing.pop("comb_block.2.bias")
    torch.save({"state_dict": missing}, tmp_path / "missing.pth")
    with pytest.raises(WeightsMismatchError, match="missing"):
        load_amt_s(tmp_path / "missing.pth")
    torch.save({"state_dict": {**checkpoint["state_dict"], "extra.weight": torch.zeros(1)}}, tmp_path / "extra.pth")
    with pytest.raises(WeightsMismatchError, match="unexpected"):
        load_amt_s(tmp_path / "extra.pth")


def test_formula_by_hand_with_an_averaging_interpolator():
    """Frames 100, 97, 103 (+ the same ramp): the middle of frames 0 and 2 is 101.5, truncated to 101 as
    VBench's ``astype(uint8)`` does; |97 - 101| = 4 everywhere, so the score is (255 - 4) / 255."""
    scorer = MotionSmoothness(Average())
    details = scorer.score_sampled_details(flat_clip([100, 97, 103]), None, 3)
    assert details["mean_abs_diff"].item() == pytest.approx(4.0)
    assert details["score"].item() == pytest.approx(251 / 255)


def test_even_length_drops_the_last_odd_frame_and_linear_motion_is_perfect():
    """Frames 0, 50, 100, 200: evens 0 and 100 give one middle (50, exact), the last odd frame (200) has
    no interpolated counterpart, as in VBench's loop over the interpolated frames; score 1."""
    details = MotionSmoothness(Average()).score_sampled_details(flat_clip([0, 50, 100, 200]), None, 4)
    assert details["score"].item() == 1.0 and details["mean_abs_diff"].item() == 0.0
    # Five frames, two middles: |60 - 40| and |90 - 90| -> mean 10.
    details = MotionSmoothness(Average()).score_sampled_details(flat_clip([20, 60, 60, 90, 120]), None, 5)
    assert details["mean_abs_diff"].item() == pytest.approx(10.0)


def test_interpolation_score_is_mean_per_frame_then_over_frames():
    real = torch.zeros(2, 2, 2, 3, dtype=torch.uint8)
    fake = real.clone()
    fake[0, 0, 0, 0] = 12  # frame 0: 12 / 12 values = 1
    fake[1] = 3  # frame 1: 3
    assert interpolation_score(real, fake) == (pytest.approx(2.0), pytest.approx(253 / 255))


@pytest.mark.slow  # the contract tests (tests/test_contract.py) already run AMT-S through create_reward in the fast suite
def test_real_network_through_create_reward(tmp_path):
    """The user's path: registry -> weights path -> strict load -> all frames. A random network still
    scores in (0, 1]; the uint8 and float [0, 1] forms of the same pixels agree exactly (float is
    quantised back to the 8 bits a video holds)."""
    reward = create_reward("motion_smoothness", weights=str(write_amt_checkpoint(tmp_path / "amt-s.pth")))
    clip = torch.from_numpy(moving_square_clip(5, 128, 128, speed=2.0)).permute(0, 3, 1, 2)[None]
    as_uint8 = reward(clip)
    assert 0.0 < as_uint8.item() <= 1.0
    assert torch.equal(as_uint8, reward(clip.float() / 255))
    assert reward.weights_sha256 is not None


def test_too_few_or_too_small_frames_are_value_errors():
    scorer = MotionSmoothness(Average())
    with pytest.raises(ValueError, match="at least 3 frames"):
        scorer.score_sampled_details(flat_clip([1, 2]), None, 2)
    with pytest.raises(ValueError, match="113 x 113"):
        scorer.score_sampled_details(flat_clip([1, 2, 3], height=64, width=64), None, 3)


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_half_precision_interpolates_like_float32(tmp_path, dtype):
    """Under ``dtype=bf16|fp16`` the correlation lookups and warps run in float32 (bf16 cannot hold a
    128 px grid's positions: its warp once produced NaN frames and a score 0.08 off), so the random
    network's score stays within 1e-3 of its own float32 score (measured: 0 for bf16, 1e-4 for fp16)."""
    weights = str(write_amt_checkpoint(tmp_path / "amt-s.pth"))
    clip = torch.from_numpy(moving_square_clip(3, 128, 128, speed=2.0)).permute(0, 3, 1, 2)[None]
    full = create_reward("motion_smoothness", weights=weights)(clip)
    half = create_reward("motion_smoothness", weights=weights, dtype=dtype)(clip)
    assert torch.isfinite(half).all() and abs(half.item() - full.item()) < 1e-3
