"""Weight-free VBench motion dimensions (rewardkit.rewards.motion) and temporal_flickering's static filter.

References: VBench's formulas written out independently in numpy below (np.sort-based top-k as in
vbench/dynamic_degree.py ``get_score``, the loops of ``check_move``/``check_static``, motion_smoothness's
``vfi_score``), hand-computed values, and synthetic clips with known motion (rewardkit.testing.vbench).
"""

import math

import cv2
import numpy as np
import pytest
import torch
from scipy.ndimage import map_coordinates

from rewardkit import create_reward
from rewardkit.rewards.errors import NotApplicable
from rewardkit.rewards.motion import (
    FrameRateSubsample,
    dynamic_params,
    flow_is_static,
    interpolate_midpoint,
    is_dynamic,
    is_static,
    optical_flow,
    static_params,
    top_fraction_mean,
)
from rewardkit.testing.vbench import flicker_clip, moving_square_clip, static_clip, to_video_tensor


def vbench_get_score(flow: np.ndarray, fraction: float) -> float:
    """vbench/dynamic_degree.py get_score: sort the negated magnitudes, keep int(h*w*fraction), mean."""
    rad = np.sqrt(np.square(flow[..., 0]) + np.square(flow[..., 1]))
    h, w = rad.shape
    return float(np.mean(abs(np.sort(-rad.flatten()))[: int(h * w * fraction)]))


def vbench_check_move(scores, height, width, count):
    """vbench/dynamic_degree.py set_params + check_move, loop as written."""
    thres, count_num = 6.0 * (min(height, width) / 256.0), round(4 * (count / 16.0))
    moving = 0
    for score in scores:
        if score > thres:
            moving += 1
        if moving >= count_num:
            return True
    return False


def vbench_check_static(scores, height, width, count):
    """vbench/cli/static_filter.py set_params + check_static, loops as written."""
    thres, count_num = 3.0 * (min(height, width) / 256.0), round(2 * (count / 16.0))
    moving = 0
    for score in scores[:-2]:
        if score > thres:
            moving += 1
        if moving > count_num:
            return False
    return all(score <= thres * count_num * 2 for score in scores[-2:])


def test_top_fraction_mean_matches_vbench_sort():
    flow = np.random.default_rng(0).normal(0, 3, size=(37, 53, 2)).astype(np.float32)
    for fraction in (0.02, 0.05):
        assert top_fraction_mean(flow, fraction) == pytest.approx(vbench_get_score(flow, fraction), rel=1e-6)
    with pytest.raises(ValueError, match="too small"):
        top_fraction_mean(flow[:4, :4], 0.05)


def test_thresholds_by_hand():
    # 256x448 video, 16 kept frames: thres 6 * 256/256 = 6, count_num round(4) = 4; static 3 and round(2) = 2.
    assert dynamic_params(256, 448, 16) == (6.0, 4)
    assert static_params(256, 448, 16) == (3.0, 2)
    # Python's round is VBench's: round(4 * 10 / 16) = round(2.5) = 2, round(4 * 6 / 16) = round(1.5) = 2.
    assert dynamic_params(64, 64, 10) == (1.5, 2) and dynamic_params(64, 64, 6)[1] == 2


@pytest.mark.parametrize("seed", range(6))
def test_decisions_match_vbench_loops(seed):
    rng = np.random.default_rng(seed)
    count = int(rng.integers(2, 20))
    scores = rng.uniform(0, 4, size=count - 1).tolist()
    loop = rng.uniform(0, 8, size=2).tolist()
    thres, count_num = dynamic_params(100, 120, count)
    assert is_dynamic(scores, thres, count_num) == vbench_check_move(scores, 100, 120, count)
    thres, count_num = static_params(100, 120, count)
    assert is_static(scores, loop, thres, count_num) == vbench_check_static(scores + loop, 100, 120, count)


def test_frame_rate_subsample_is_vbench_interval():
    # VBench: interval = max(1, round(fps / 8)); frames 0, interval, 2 * interval, ...
    assert FrameRateSubsample(8).indices(5) == [0, 1, 2, 3, 4]
    assert FrameRateSubsample(24).indices(10) == [0, 3, 6, 9]
    assert FrameRateSubsample(12).interval == 2 and FrameRateSubsample(20).interval == 2  # round half to even
    with pytest.raises(ValueError, match="needs 2"):
        FrameRateSubsample(30).indices(3)


def reference_dynamic(clip: np.ndarray) -> tuple[float, float]:
    """Independent dynamic-degree computation: cv2 DIS flow as in the metric, VBench's sort and loops."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in clip]
    scores = [vbench_get_score(dis.calc(a, b, None), 0.05) for a, b in zip(gray[:-1], gray[1:], strict=True)]
    return float(vbench_check_move(scores, clip.shape[1], clip.shape[2], len(clip))), float(np.mean(scores))


def test_dynamic_degree_flow_against_reference_and_known_motion():
    """Static and slow (0.5 px/frame) clips are not dynamic, 3 px/frame is (64 px: thres 1.5 px)."""
    clips = [static_clip(12), moving_square_clip(12, speed=0.5), moving_square_clip(12, speed=3)]
    metric = create_reward("dynamic_degree_flow")
    details = metric.score_sampled_details(to_video_tensor(*clips), None, 12)
    assert details["score"].tolist() == [0.0, 0.0, 1.0]
    for index, clip in enumerate(clips):
        flag, statistic = reference_dynamic(clip)
        assert details["score"][index].item() == flag
        assert details["flow_top5"][index].item() == pytest.approx(statistic, rel=1e-5, abs=1e-6)
    # The moving square's top-5 % flow is its speed (576 of 4096 pixels move): DIS gets it within 10 %.
    assert details["flow_top5"][2].item() == pytest.approx(3.0, rel=0.1)
    assert details["threshold"].tolist() == [1.5] * 3 and details["required_pairs"].tolist() == [3.0] * 3
    assert details["moving_pairs"][2].item() == 11


def test_dynamic_degree_fps_subsampling_through_forward():
    """fps=24 keeps frames 0, 3, 6, 9: 1 px/frame becomes 3 px per kept pair, so the clip turns dynamic."""
    video = to_video_tensor(moving_square_clip(10, speed=1.0))
    assert create_reward("dynamic_degree_flow")(video).item() == 0.0
    assert create_reward("dynamic_degree_flow", fps=24.0)(video).item() == 1.0
    assert create_reward("dynamic_degree_flow", flow="farneback", fps=24.0)(video).item() == 1.0


def numpy_midpoint(frame0: np.ndarray, frame1: np.ndarray) -> np.ndarray:
    """Super SloMo t=1/2 linear flow approximation written independently: scipy bilinear sampling."""
    flow01, flow10 = optical_flow(frame0, frame1), optical_flow(frame1, frame0)
    flow_t0, flow_t1 = -0.25 * flow01 + 0.25 * flow10, 0.25 * flow01 - 0.25 * flow10
    rows, columns = np.mgrid[0 : frame0.shape[0], 0 : frame0.shape[1]].astype(np.float64)

    def warp(image, flow):
        coordinates = [rows + flow[..., 1], columns + flow[..., 0]]
        return np.stack([map_coordinates(image[..., c].astype(np.float64), coordinates, order=1, mode="nearest")
                         for c in range(3)], axis=-1)

    return np.clip(0.5 * warp(frame0, flow_t0) + 0.5 * warp(frame1, flow_t1), 0, 255)


def test_midpoint_interpolation_matches_numpy_warp():
    clip = moving_square_clip(3, speed=2)
    ours = interpolate_midpoint(clip[0], clip[2]).astype(np.float64)
    # uint8 truncation (AMT's tensor2img) is at most 1 below the float result; bilinear rounding aside.
    difference = ours - numpy_midpoint(clip[0], clip[2])
    assert difference.max() <= 1e-3 and difference.min() >= -1.0 - 1e-3
    # and it is a good interpolation of the real middle frame (square at 2 px): far better than frame 0
    assert np.abs(ours - clip[1]).mean() < 0.5 * np.abs(clip[0].astype(np.float64) - clip[1]).mean()


def test_motion_smoothness_formula_by_hand_on_flat_frames():
    """Flat frames have zero flow, so the midpoint of even frames (value 100) is 100 exactly; odd frames
    are 110, so mean |odd - interp| = 10 and the score is (255 - 10) / 255. Frame 5 has no right neighbour
    among the kept frames 0, 2, 4 and is not used (VBench's vfi_score)."""
    values = [100, 110, 100, 110, 100, 250]
    video = torch.tensor(values, dtype=torch.uint8).view(1, 6, 1, 1, 1).expand(1, 6, 3, 16, 16).contiguous()
    details = create_reward("motion_smoothness_flow").score_sampled_details(video, None, 6)
    assert details["score"].item() == pytest.approx(245 / 255, abs=1e-7)
    assert details["interp_mae"].item() == pytest.approx(10.0)


def test_motion_smoothness_against_numpy_formula():
    """Per pair: mean(absdiff(odd frame, interpolated)); score (255 - mean over pairs) / 255."""
    clip = moving_square_clip(7, speed=1.5)
    expected_mae = np.mean([np.mean(cv2.absdiff(clip[2 * j + 1], interpolate_midpoint(clip[2 * j], clip[2 * j + 2])))
                            for j in range(3)])
    score = create_reward("motion_smoothness_flow")(to_video_tensor(clip)).item()
    assert score == pytest.approx((255 - expected_mae) / 255, abs=1e-6)
    static = create_reward("motion_smoothness_flow")(to_video_tensor(static_clip(5))).item()
    assert static == 1.0 and score < 1.0
    with pytest.raises(ValueError, match="at least 3 frames"):
        create_reward("motion_smoothness_flow")(to_video_tensor(static_clip(2)))


def test_static_filter_on_synthetic_clips():
    """VBench's static filter (top 2 %, thres 3 * 64/256 = 0.75 px): still and flickering scenes are static,
    a square at 0.5 px/frame is not (it drifts 7.5 px first -> last > 2 * count_num * thres = 3)."""
    assert flow_is_static(static_clip(16, noise=2.0))
    assert flow_is_static(flicker_clip(16))
    assert not flow_is_static(moving_square_clip(16, speed=0.5))


def test_temporal_flickering_static_filter():
    videos = to_video_tensor(flicker_clip(8), moving_square_clip(8, speed=2))
    unfiltered = create_reward("temporal_flickering")(videos)
    # flicker clip: |diff| is 20 everywhere (no clipping in the texture range used) -> (255 - 20) / 255
    assert unfiltered[0].item() == pytest.approx(235 / 255, abs=1e-3)
    filtered = create_reward("temporal_flickering", static_filter="flow")
    assert filtered(videos[:1]).item() == pytest.approx(unfiltered[0].item())
    with pytest.raises(NotApplicable, match=r"video\(s\) \[1\]") as raised:
        filtered(videos)
    assert isinstance(raised.value, ValueError)
    assert raised.value.scores[0].item() == pytest.approx(unfiltered[0].item())
    assert math.isnan(raised.value.scores[1].item())
    assert raised.value.applicable.tolist() == [True, False]


def test_options_and_weights_are_checked():
    with pytest.raises(ValueError, match="static_filter"):
        create_reward("temporal_flickering", static_filter="sometimes")
    with pytest.raises(ValueError, match="no weights"):
        create_reward("dynamic_degree_flow", weights="x.pth")
    with pytest.raises(FileNotFoundError, match="raft-things.pth"):
        create_reward("temporal_flickering", static_filter="raft")


def test_float_input_equals_uint8_input():
    clip = moving_square_clip(6, speed=2)
    uint8 = to_video_tensor(clip)
    metric = create_reward("motion_smoothness_flow")
    assert metric(uint8.float() / 255).item() == metric(uint8).item()
